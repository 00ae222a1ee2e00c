// Package migrations holds the numbered SQL files that define ragpipe's schema.
package migrations

import "embed"

// FS holds every migration, named NNNN_name.up.sql / NNNN_name.down.sql.
//
//go:embed *.sql
var FS embed.FS
