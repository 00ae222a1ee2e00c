package httpapi

import (
	"compress/gzip"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// consoleCSP keeps the console to its own scripts, styles and API: no
// inline script, nothing from elsewhere, no framing.
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// handleAssets serves the files of assets under prefix ("/console"), one
// path segment deep: the prefix itself is index.html. A file stored as NAME.gz is served for NAME,
// compressed to clients that take gzip. headers go on every answer.
func handleAssets(assets fs.FS, headers map[string]string) echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("file")
		if name == "" {
			name = "index.html"
		}
		if strings.Contains(name, "/") || !fs.ValidPath(name) {
			return ragpipe.Errorf(ragpipe.ENOTFOUND, "no such file")
		}
		w := c.Response()
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		w.Header().Set(echo.HeaderContentType, ctype)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if f, err := assets.Open(name); err == nil {
			defer f.Close()
			w.Header().Set(echo.HeaderCacheControl, "no-cache")
			w.WriteHeader(http.StatusOK)
			_, err := io.Copy(w, f)
			return err
		}
		f, err := assets.Open(name + ".gz")
		if err != nil {
			return ragpipe.Errorf(ragpipe.ENOTFOUND, "no such file")
		}
		defer f.Close()
		w.Header().Set(echo.HeaderCacheControl, "public, max-age=86400")
		w.Header().Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
		if strings.Contains(c.Request().Header.Get(echo.HeaderAcceptEncoding), "gzip") {
			w.Header().Set(echo.HeaderContentEncoding, "gzip")
			w.WriteHeader(http.StatusOK)
			_, err := io.Copy(w, f)
			return err
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusOK)
		_, err = io.Copy(w, zr)
		return err
	}
}
