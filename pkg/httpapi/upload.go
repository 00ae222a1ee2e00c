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

// uploadForm is what the parts of an upload said: its files in order, each
// stored or refused.
type uploadForm struct {
	files       []formFile
	metadata    json.RawMessage
	collection  string
	language    string
	callbackURL string
}

// formFile is one file part: stored, or refused on its own (err).
type formFile struct {
	name string
	file *ingest.File
	err  error
}

// discard removes every stored file of the form.
func (f *uploadForm) discard(ctx context.Context, in Ingest) {
	for _, ff := range f.files {
		if ff.file != nil {
			in.Discard(ctx, ff.file)
		}
	}
}

// handleUpload accepts documents as multipart/form-data: one "file" part,
// or up to MaxFilesPerUpload of them. Each file streams to the object store
// through a size cap, after its first bytes are sniffed; nothing is
// recorded unless every other part is valid. With several files, each is
// accepted or refused on its own (see uploadMany).
func handleUpload(p Params) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		limit := p.MaxUploadBytes
		if r.ContentLength > int64(max(1, p.MaxFilesPerUpload))*limit+formOverhead {
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
		r.Body = http.MaxBytesReader(c.Response(), r.Body, int64(max(1, p.MaxFilesPerUpload))*limit+formOverhead)
		mr, err := r.MultipartReader()
		if err != nil {
			return ragpipe.Errorf(ragpipe.EINVALID, "malformed multipart body: %v", err)
		}
		ctx, tenant := r.Context(), tenantOf(c)
		form, err := readForm(ctx, mr, p, tenant, limit)
		if err == nil && len(form.files) > 1 && idemKey != "" {
			err = ragpipe.Errorf(ragpipe.EINVALID, "Idempotency-Key applies to uploads of one file")
		}
		if err != nil {
			form.discard(ctx, p.Ingest)
			return err
		}
		req := ingest.Request{RequestID: requestID(c), Collection: form.collection, Language: form.language, Metadata: form.metadata,
			CallbackURL: form.callbackURL, Dedupe: c.QueryParam("dedupe") != "false"}
		if len(form.files) > 1 {
			return uploadMany(c, p, form, req)
		}
		if form.files[0].err != nil {
			return form.files[0].err
		}
		if idemKey != "" {
			req.Idempotency = &ragpipe.IdempotencyRecord{Key: idemKey, Status: http.StatusAccepted,
				Body: func(d *ragpipe.Document, j *ragpipe.Job) ([]byte, error) {
					return json.Marshal(uploadResponse{DocumentID: d.ID, JobID: j.ID, Status: j.Status, Document: d.JSON()})
				}}
		}
		res, err := p.Ingest.Accept(ctx, form.files[0].file, req)
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

// uploadedJSON is one file of an upload of several.
type uploadedJSON struct {
	Filename     string       `json:"filename"`
	DocumentID   string       `json:"document_id,omitempty"`
	JobID        string       `json:"job_id,omitempty"`
	Status       string       `json:"status,omitempty"`
	Deduplicated bool         `json:"deduplicated,omitempty"`
	Error        *errorDetail `json:"error,omitempty"`
}

// uploadMany accepts each stored file of form with req's settings and
// answers 202 with one entry per file part, in order: its document and job,
// or the error that refused it, which does not sink the others.
func uploadMany(c echo.Context, p Params, form *uploadForm, req ingest.Request) error {
	ctx := c.Request().Context()
	rid := c.Response().Header().Get(echo.HeaderXRequestID)
	out := make([]uploadedJSON, len(form.files))
	for i, ff := range form.files {
		out[i].Filename = ff.name
		err := ff.err
		if err == nil {
			var res *ingest.Result
			if res, err = p.Ingest.Accept(ctx, ff.file, req); err == nil {
				d := res.Document
				out[i].DocumentID, out[i].Status, out[i].Deduplicated = d.ID, d.Status, res.Deduplicated
				out[i].JobID = d.LastJobID
				if res.Job != nil {
					out[i].JobID, out[i].Status = res.Job.ID, res.Job.Status
				}
				continue
			}
		}
		var de *ragpipe.Error
		if !errors.As(err, &de) {
			// The store is out of reach: the client retries the whole upload,
			// so the files not yet accepted go (those accepted dedupe then).
			rest := &uploadForm{files: form.files[i+1:]}
			rest.discard(ctx, p.Ingest)
			return err
		}
		out[i].Error = &errorDetail{Code: de.Code, Message: de.Message, Field: de.Field, RequestID: rid}
	}
	return c.JSON(http.StatusAccepted, map[string]any{"documents": out})
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

// readForm reads every part; each file goes to the ingest service, which
// stores it. A file the service refuses for its content (its type, empty)
// is kept as that file's error and the others go on; a broken body or a
// file past the size limit fails the whole form. On error, the stored files must be discarded.
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
			if len(form.files) == max(1, p.MaxFilesPerUpload) {
				return form, ragpipe.FieldErrorf("file", "at most %d files per upload", max(1, p.MaxFilesPerUpload))
			}
			name := cleanFilename(part.FileName())
			f, err := p.Ingest.Upload(ctx, tenant, name, bodyReader{part, limit}, limit)
			var de *ragpipe.Error
			if err != nil && (!errors.As(err, &de) || de.Code == ragpipe.EINCOMPLETE || de.Code == ragpipe.ETOOLARGE) {
				return form, err // the body itself: broken, or too large to read on through
			}
			form.files = append(form.files, formFile{name: name, file: f, err: err})
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
	if len(form.files) == 0 {
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
