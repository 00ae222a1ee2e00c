package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ingest"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

const (
	formOverhead     = 1 << 20  // multipart headers and small fields beyond the file itself
	maxMetadataBytes = 64 << 10 // a metadata object larger than this is refused
)

var collectionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// uploadForm is what the parts of an upload said; file is set once the
// file part is stored.
type uploadForm struct {
	file        *ingest.File
	metadata    json.RawMessage
	collection  string
	language    string
	callbackURL string
}

// handleUpload accepts one document as multipart/form-data. The file streams
// to the object store through a size cap, after its first bytes are sniffed;
// nothing is recorded unless every part is valid.
func handleUpload(p Params) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		limit := p.MaxUploadBytes
		if r.ContentLength > limit+formOverhead {
			return ingest.TooLarge(limit)
		}
		mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
		if err != nil || mt != echo.MIMEMultipartForm {
			return ragpipe.Errorf(ragpipe.EUNSUPPORTED, "send the document as multipart/form-data with a \"file\" part")
		}
		idemKey := r.Header.Get(headerIdempotencyKey)
		if len(idemKey) > 255 || strings.ContainsFunc(idemKey, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			return ragpipe.Errorf(ragpipe.EINVALID, "Idempotency-Key must be at most 255 printable ASCII characters")
		}
		if err := p.Backpressure.admit(r.Context(), c); err != nil {
			return err
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit+formOverhead)
		mr, err := r.MultipartReader()
		if err != nil {
			return ragpipe.Errorf(ragpipe.EINVALID, "malformed multipart body: %v", err)
		}
		ctx, tenant := r.Context(), tenantOf(c)
		form, err := readForm(ctx, mr, p, tenant, limit)
		if err != nil {
			if form.file != nil {
				p.Ingest.Discard(ctx, form.file)
			}
			return err
		}
		req := ingest.Request{RequestID: requestID(c), Collection: form.collection, Language: form.language, Metadata: form.metadata,
			CallbackURL: form.callbackURL, Dedupe: c.QueryParam("dedupe") != "false"}
		if idemKey != "" {
			req.Idempotency = &ragpipe.IdempotencyRecord{Key: idemKey, Status: http.StatusAccepted,
				Body: func(d *ragpipe.Document, j *ragpipe.Job) ([]byte, error) {
					return json.Marshal(uploadResponse{DocumentID: d.ID, JobID: j.ID, Status: j.Status, Document: d.JSON()})
				}}
		}
		res, err := p.Ingest.Accept(ctx, form.file, req)
		switch {
		case err != nil:
			return err
		case res.Replay != nil:
			return replay(c, res.Replay)
		case res.Deduplicated:
			d := res.Document
			c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+d.LastJobID)
			return c.JSON(http.StatusOK, uploadResponse{DocumentID: d.ID, JobID: d.LastJobID,
				Status: d.Status, Deduplicated: true, Document: d.JSON()})
		}
		c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+res.Job.ID)
		if req.Idempotency != nil { // answer with the very bytes a retry will get
			return c.Blob(http.StatusAccepted, echo.MIMEApplicationJSON, req.Idempotency.RawBody)
		}
		return c.JSON(http.StatusAccepted, uploadResponse{DocumentID: res.Document.ID, JobID: res.Job.ID,
			Status: res.Job.Status, Document: res.Document.JSON()})
	}
}

// headerIdempotencyKey names the header that makes a retried upload return
// the first answer.
const headerIdempotencyKey = "Idempotency-Key"

// replay answers with a recorded response.
func replay(c echo.Context, rec *ragpipe.IdempotencyRecord) error {
	c.Response().Header().Set("Idempotent-Replayed", "true")
	var body uploadResponse
	if err := json.Unmarshal(rec.RawBody, &body); err == nil && body.JobID != "" {
		c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+body.JobID)
	}
	return c.Blob(rec.Status, echo.MIMEApplicationJSON, rec.RawBody)
}

type uploadResponse struct {
	DocumentID   string               `json:"document_id"`
	JobID        string               `json:"job_id"`
	Status       string               `json:"status"`
	Deduplicated bool                 `json:"deduplicated"`
	Document     ragpipe.DocumentJSON `json:"document"`
}

// readForm reads every part; the file goes to the ingest service, which
// stores it. On error, form.file (if set) is stored and must be discarded.
func readForm(ctx context.Context, mr *multipart.Reader, p Params, tenant string, limit int64) (*uploadForm, error) {
	form := &uploadForm{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return form, bodyError(err, limit)
		}
		switch part.FormName() {
		case "file":
			if form.file != nil {
				return form, ragpipe.Errorf(ragpipe.EINVALID, "send one \"file\" part per request")
			}
			f, err := p.Ingest.Upload(ctx, tenant, cleanFilename(part.FileName()), bodyReader{part, limit}, limit)
			if err != nil {
				return form, err
			}
			form.file = f
		case "metadata":
			b, err := io.ReadAll(io.LimitReader(part, maxMetadataBytes+1))
			if err != nil {
				return form, bodyError(err, limit)
			}
			if len(b) > maxMetadataBytes {
				return form, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "metadata is larger than %d bytes", maxMetadataBytes)
			}
			var obj map[string]any
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber() // numbers re-encoded exactly as sent
			if err := dec.Decode(&obj); err != nil || obj == nil || dec.More() {
				return form, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "metadata must be a JSON object")
			}
			if err := checkJSONText("metadata", obj); err != nil {
				return form, err
			}
			// Re-encoded, so that escapes the database refuses (a lone
			// surrogate) arrive as the replacement character encoding/json read.
			if form.metadata, err = json.Marshal(obj); err != nil {
				return form, err
			}
		case "collection":
			b, err := io.ReadAll(io.LimitReader(part, 256))
			if err != nil {
				return form, bodyError(err, limit)
			}
			if !collectionRe.Match(b) {
				return form, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "collection must be 1-128 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
			}
			form.collection = string(b)
		case "language":
			b, err := io.ReadAll(io.LimitReader(part, 64))
			if err != nil {
				return form, bodyError(err, limit)
			}
			if !slices.Contains(ragpipe.Languages, string(b)) {
				return form, ragpipe.FieldErrorf("language", "must be one of %s", strings.Join(ragpipe.Languages, ", "))
			}
			form.language = string(b)
		case "callback_url":
			b, err := io.ReadAll(io.LimitReader(part, 4096))
			if err != nil {
				return form, bodyError(err, limit)
			}
			if err := checkCallbackURL(ctx, p.WebhookGuard, string(b)); err != nil {
				return form, err
			}
			form.callbackURL = string(b)
		default:
			if _, err := io.Copy(io.Discard, io.LimitReader(part, formOverhead)); err != nil {
				return form, bodyError(err, limit)
			}
		}
	}
	if form.file == nil {
		return form, ragpipe.Errorf(ragpipe.EINVALID, "missing \"file\" part")
	}
	return form, nil
}

// bodyReader reads a part of the request body, its failures told as the
// client errors they are.
type bodyReader struct {
	r     io.Reader
	limit int64
}

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = bodyError(err, b.limit)
	}
	return n, err
}

// bodyError maps a failure to read the request body to a client error.
func bodyError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return ingest.TooLarge(limit)
	case errors.Is(err, io.ErrUnexpectedEOF), isTimeout(err):
		return ragpipe.Errorf(ragpipe.EINCOMPLETE, "the upload ended before its body did; nothing was stored")
	}
	return ragpipe.Errorf(ragpipe.EINVALID, "malformed multipart body: %v", err)
}

// cleanFilename keeps the base name of the client's filename, valid UTF-8,
// at most 255 bytes.
func cleanFilename(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	if name == "." || name == "/" {
		return ""
	}
	return displayName(name, 255)
}
