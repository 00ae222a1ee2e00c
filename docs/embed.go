// Package docs carries the API reference so the server can serve it.
package docs

import _ "embed"

// OpenAPI is the OpenAPI 3.1 description of the HTTP API.
//
//go:embed openapi.yaml
var OpenAPI []byte
