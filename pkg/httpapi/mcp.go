package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// handleMCP serves the MCP server (pkg/mcpserver) behind the API's
// authentication and rate limit, or 404 where none is configured.
func handleMCP(h http.Handler) echo.HandlerFunc {
	if h == nil {
		return func(echo.Context) error { return ragpipe.Errorf(ragpipe.ENOTFOUND, "no MCP server here") }
	}
	return echo.WrapHandler(h)
}
