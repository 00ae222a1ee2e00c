package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/extract"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"github.com/ragpipe/ragpipe/pkg/webhook"
)

const (
	formOverhead     = 1 << 20  // multipart headers and small fields beyond the file itself
	maxMetadataBytes = 64 << 10 // a metadata object larger than this is refused
)

var collectionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// errTooLarge ends an upload whose file passes the size limit.
var errTooLarge = errors.New("file exceeds the upload limit")

// limitedHashReader counts, hashes and caps what passes through it.
type limitedHashReader struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	limit int64
}

func (l *limitedHashReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	l.h.Write(p[:n])
	if l.n > l.limit {
		return n, errTooLarge
	}
	return n, err
}

type uploadForm struct {
	filename    string
	format      extract.Format
	size        int64
	sha256      string
	metadata    json.RawMessage
	collection  string
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
			return tooLarge(limit)
		}
		mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
		if err != nil || mt != echo.MIMEMultipartForm {
			return ragpipe.Errorf(ragpipe.EUNSUPPORTED, "send the document as multipart/form-data with a \"file\" part")
		}
		if k := r.Header.Get(headerIdempotencyKey); len(k) > 255 || strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
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
		tenant := tenantOf(c)
		doc := &ragpipe.Document{ID: uuid.NewString(), TenantID: tenant, Status: ragpipe.DocProcessing}
		doc.RawKey = ragpipe.RawKey(tenant, doc.ID)
		form, err := readForm(c.Request().Context(), mr, p, doc.RawKey, limit)
		if err != nil {
			if form != nil && form.size > 0 {
				_ = p.Blobs.Delete(context.WithoutCancel(r.Context()), doc.RawKey)
			}
			return err
		}
		doc.Filename, doc.Format, doc.SizeBytes, doc.SHA256 = form.filename, string(form.format), form.size, form.sha256
		doc.Collection, doc.Metadata = form.collection, form.metadata
		ctx := r.Context()
		discard := func() {
			_ = p.Blobs.Delete(context.WithoutCancel(ctx), doc.RawKey)
			if form.callbackURL != "" {
				_ = p.Webhooks.DeleteDocumentCallback(context.WithoutCancel(ctx), tenant, doc.ID)
			}
		}
		dedupe := c.QueryParam("dedupe") != "false"
		idemKey := r.Header.Get(headerIdempotencyKey)
		fingerprint := form.fingerprint(dedupe)
		if idemKey != "" {
			rec, err := p.Store.IdempotentResponse(ctx, tenant, idemKey)
			if err != nil || rec != nil {
				discard()
				if err != nil {
					return err
				}
				return replay(c, rec, fingerprint)
			}
		}
		job := &ragpipe.Job{
			ID: uuid.NewString(), TenantID: tenant, DocumentID: doc.ID, Kind: ragpipe.JobIngest,
			Status: ragpipe.JobQueued, Stage: ragpipe.StageExtract, RequestID: requestID(c),
			ChunkSize: p.ChunkSize, ChunkOverlap: p.ChunkOverlap,
		}
		// The callback is recorded first, so no event of the document can miss it.
		if form.callbackURL != "" {
			if err := p.Webhooks.SetDocumentCallback(ctx, tenant, doc.ID, form.callbackURL, webhook.NewSecret()); err != nil {
				_ = p.Blobs.Delete(context.WithoutCancel(ctx), doc.RawKey)
				return err
			}
		}
		opts := postgres.CreateOptions{Dedupe: dedupe}
		if idemKey != "" {
			opts.Idempotency = &postgres.IdempotencyRecord{Key: idemKey, Fingerprint: fingerprint, Status: http.StatusAccepted,
				Body: func(d *ragpipe.Document, j *ragpipe.Job) ([]byte, error) {
					return json.Marshal(uploadResponse{DocumentID: d.ID, JobID: j.ID, Status: j.Status, Document: toDocument(d)})
				}}
		}
		existing, err := p.Store.CreateDocument(ctx, doc, job, opts)
		if errors.Is(err, postgres.ErrIdempotencyConflict) {
			discard()
			rec, err := p.Store.IdempotentResponse(ctx, tenant, idemKey)
			if err != nil || rec == nil {
				return ragpipe.Errorf(ragpipe.ECONFLICT, "a request with this Idempotency-Key is in progress; retry")
			}
			return replay(c, rec, fingerprint)
		}
		if err != nil {
			discard()
			return err
		}
		if existing != nil {
			discard()
			c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+existing.LastJobID)
			return c.JSON(http.StatusOK, uploadResponse{DocumentID: existing.ID, JobID: existing.LastJobID,
				Status: existing.Status, Deduplicated: true, Document: toDocument(existing)})
		}
		c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+job.ID)
		if opts.Idempotency != nil { // answer with the very bytes a retry will get
			return c.Blob(http.StatusAccepted, echo.MIMEApplicationJSON, opts.Idempotency.RawBody)
		}
		return c.JSON(http.StatusAccepted, uploadResponse{DocumentID: doc.ID, JobID: job.ID, Status: job.Status, Document: toDocument(doc)})
	}
}

// headerIdempotencyKey names the header that makes a retried upload return
// the first answer.
const headerIdempotencyKey = "Idempotency-Key"

// fingerprint identifies what an upload asked for, so a retry with the same
// Idempotency-Key but a different request can be told apart.
func (f *uploadForm) fingerprint(dedupe bool) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%t", f.sha256, f.collection, f.metadata, f.callbackURL, dedupe)
	return hex.EncodeToString(h.Sum(nil))
}

// replay answers with a recorded response, or refuses a key reused for a
// different request.
func replay(c echo.Context, rec *postgres.IdempotencyRecord, fingerprint string) error {
	if rec.Fingerprint != fingerprint {
		return ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "this Idempotency-Key was used for a different request")
	}
	c.Response().Header().Set("Idempotent-Replayed", "true")
	var body uploadResponse
	if err := json.Unmarshal(rec.RawBody, &body); err == nil && body.JobID != "" {
		c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+body.JobID)
	}
	return c.Blob(rec.Status, echo.MIMEApplicationJSON, rec.RawBody)
}

type uploadResponse struct {
	DocumentID   string       `json:"document_id"`
	JobID        string       `json:"job_id"`
	Status       string       `json:"status"`
	Deduplicated bool         `json:"deduplicated"`
	Document     documentJSON `json:"document"`
}

// readForm reads every part; the file goes to the object store at key. On
// error the returned form (if any) tells whether bytes were stored.
func readForm(ctx context.Context, mr *multipart.Reader, p Params, key string, limit int64) (*uploadForm, error) {
	form := &uploadForm{}
	seenFile := false
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
			if seenFile {
				return form, ragpipe.Errorf(ragpipe.EINVALID, "send one \"file\" part per request")
			}
			seenFile = true
			if err := storeFile(ctx, part, p, key, limit, form); err != nil {
				return form, err
			}
		case "metadata":
			b, err := io.ReadAll(io.LimitReader(part, maxMetadataBytes+1))
			if err != nil {
				return form, bodyError(err, limit)
			}
			if len(b) > maxMetadataBytes {
				return form, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "metadata is larger than %d bytes", maxMetadataBytes)
			}
			var obj map[string]any
			if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
				return form, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "metadata must be a JSON object")
			}
			form.metadata = b
		case "collection":
			b, err := io.ReadAll(io.LimitReader(part, 256))
			if err != nil {
				return form, bodyError(err, limit)
			}
			if !collectionRe.Match(b) {
				return form, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "collection must be 1-128 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
			}
			form.collection = string(b)
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
	if !seenFile {
		return form, ragpipe.Errorf(ragpipe.EINVALID, "missing \"file\" part")
	}
	return form, nil
}

// storeFile sniffs the part's first bytes, refuses unsupported content before
// storing anything, then streams the whole part to the object store.
func storeFile(ctx context.Context, part *multipart.Part, p Params, key string, limit int64, form *uploadForm) error {
	head := make([]byte, extract.SniffLen)
	n, err := io.ReadFull(part, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return bodyError(err, limit)
	}
	head = head[:n]
	if n == 0 {
		return ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "the file is empty")
	}
	format, err := extract.Sniff(head)
	if err != nil {
		return err
	}
	form.format = format
	form.filename = cleanFilename(part.FileName())
	lr := &limitedHashReader{r: io.MultiReader(bytes.NewReader(head), part), h: sha256.New(), limit: limit}
	if err := p.Blobs.Upload(ctx, key, lr); err != nil {
		form.size = lr.n
		if errors.Is(err, errTooLarge) {
			return tooLarge(limit)
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(limit)
		}
		if ctx.Err() != nil {
			return ragpipe.Errorf(ragpipe.EINVALID, "upload interrupted")
		}
		return ragpipe.Wrap(err, ragpipe.EUNAVAILABLE, "object store unavailable; retry later")
	}
	form.size = lr.n
	form.sha256 = hex.EncodeToString(lr.h.Sum(nil))
	return nil
}

func tooLarge(limit int64) error {
	return ragpipe.Errorf(ragpipe.ETOOLARGE, "the file is larger than the limit of %d bytes", limit)
}

// bodyError maps a failure to read the request body to a client error.
func bodyError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(limit)
	}
	return ragpipe.Errorf(ragpipe.EINVALID, "malformed multipart body: %v", err)
}

// cleanFilename keeps the base name of the client's filename, valid UTF-8,
// at most 255 bytes.
func cleanFilename(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.ToValidUTF8(name, "")
	if name == "." || name == "/" {
		name = ""
	}
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}
