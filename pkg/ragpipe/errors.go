// Package ragpipe holds the domain types shared by every part of the platform:
// tenants, documents, jobs, chunks and the error codes that travel with them.
// It imports nothing else of ours.
package ragpipe

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes for request-level failures. The HTTP layer maps each to a status.
const (
	EINVALID       = "invalid_request"        // 400
	EINCOMPLETE    = "upload_incomplete"      // 400: the request body ended (or stalled) early
	EUNAUTHORIZED  = "unauthorized"           // 401
	ENOTFOUND      = "not_found"              // 404
	ECONFLICT      = "conflict"               // 409
	ETOOLARGE      = "payload_too_large"      // 413
	EUNSUPPORTED   = "unsupported_media_type" // 415
	EUNPROCESSABLE = "unprocessable"          // 422
	ERATELIMITED   = "rate_limited"           // 429
	EINTERNAL      = "internal"               // 500
	EUNAVAILABLE   = "unavailable"            // 503
	ETIMEOUT       = "provider_timeout"       // 504: a model provider did not answer in time
	ETOKENLIMIT    = "token_limit_exceeded"   // 400: a text is longer than its token limit (Error.Details: tokens, limit)
)

// Error codes for documents that cannot be processed. They end a job at once:
// retrying would give the same answer.
const (
	CodePDFCorrupt     = "pdf_corrupt"
	CodePDFEncrypted   = "pdf_encrypted"
	CodeNoText         = "no_text"
	CodeLimitExceeded  = "limit_exceeded"
	CodeTimeout        = "timeout"
	CodeUnsupported    = "unsupported_type"
	CodeRetriesSpent   = "retries_exhausted"
	CodeDocumentGone   = "document_missing"
	CodeInvalidContent = "invalid_content"
	CodeEmbedRejected  = "embedding_rejected"
)

// Error is a failure with a machine-readable code and a message fit for clients.
// Err, when set, is the underlying cause; it is logged, never shown to clients.
// Field, when set, names the request field at fault (see FieldErrorf).
type Error struct {
	Code    string
	Message string
	Field   string
	Details map[string]int // figures a client acts on, shown beside the message ("tokens", "limit")
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns the error of an invalid request field: its code is
// "invalid_" and the field's top-level name (invalid_metadata for
// "metadata.lang"), and the HTTP layer answers it with 422.
func FieldErrorf(field, format string, args ...any) *Error {
	top, _, _ := strings.Cut(field, ".")
	return &Error{Code: "invalid_" + top, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and message that keeps err as its cause.
func Wrap(err error, code, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, or EINTERNAL.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of the first *Error in err's
// chain, or a generic one for anything else.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
