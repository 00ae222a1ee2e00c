package postgres

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// encodeCursor makes the opaque cursor of a listing ordered by (created_at,
// id) descending: the position after the row at, id.
func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id))
}

// decodeCursor reads a cursor made by encodeCursor; anything else is an
// EINVALID error.
func decodeCursor(s string) (time.Time, string, error) {
	bad := ragpipe.Errorf(ragpipe.EINVALID, "invalid cursor")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, "", bad
	}
	ts, id, ok := strings.Cut(string(b), "|")
	at, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil || !validUUID(id) {
		return time.Time{}, "", bad
	}
	return at, id, nil
}
