package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
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
	filename   string
	format     extract.Format
	size       int64
	sha256     string
	metadata   json.RawMessage
	collection string
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
		job := &ragpipe.Job{
			ID: uuid.NewString(), TenantID: tenant, DocumentID: doc.ID,
			Status: ragpipe.JobQueued, Stage: ragpipe.StageExtract, RequestID: requestID(c),
			ChunkSize: p.ChunkSize, ChunkOverlap: p.ChunkOverlap,
		}
		payload := queue.Payload{JobID: job.ID, RequestID: job.RequestID}
		task := postgres.OutboxTask{Type: queue.TypeExtract, ID: queue.TaskID(queue.TypeExtract, payload), Payload: queue.Encode(payload)}
		if err := p.Store.CreateDocument(r.Context(), doc, job, task); err != nil {
			_ = p.Blobs.Delete(context.WithoutCancel(r.Context()), doc.RawKey)
			return err
		}
		// The outbox row guarantees delivery; enqueueing here only saves the
		// relay's delay. A failure is logged and left to the relay.
		if err := p.Queue.Enqueue(r.Context(), task.Type, task.Payload); err != nil {
			p.Logger.Warn("enqueue failed; outbox relay will retry", "job_id", job.ID, "err", err)
		} else if err := p.Store.MarkSent(r.Context(), task.ID); err != nil {
			p.Logger.Warn("mark outbox sent", "job_id", job.ID, "err", err)
		}
		c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+job.ID)
		return c.JSON(http.StatusAccepted, uploadResponse{DocumentID: doc.ID, JobID: job.ID, Status: job.Status, Document: toDocument(doc)})
	}
}

type uploadResponse struct {
	DocumentID string       `json:"document_id"`
	JobID      string       `json:"job_id"`
	Status     string       `json:"status"`
	Document   documentJSON `json:"document"`
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
