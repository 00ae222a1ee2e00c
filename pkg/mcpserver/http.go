package mcpserver

import (
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ragpipe/ragpipe/pkg/client"
)

// HTTPHandler serves MCP over streamable HTTP (stateless: each request
// carries its own bearer key, so no session outlives or crosses a key).
// Its tools call api, the API's own handler, in process, with the
// request's key: the API authenticates and scopes every call as it would a
// client's. upload_file is not offered: the server's files are not the
// caller's.
func HTTPHandler(api func() http.Handler) http.Handler {
	return mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		c := &client.Client{BaseURL: "http://ragpipe.internal", Key: key,
			HTTP: &http.Client{Transport: inProcess{api: api, remote: r.RemoteAddr}}}
		return New(c, Options{})
	}, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
}

// inProcess answers requests by calling the API's handler directly.
type inProcess struct {
	api    func() http.Handler
	remote string // the MCP client's address, for the API's logs
}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.RemoteAddr = t.remote
	if req.Body == nil {
		req.Body = http.NoBody // as a server's requests always have one
	}
	rec := httptest.NewRecorder()
	t.api().ServeHTTP(rec, req)
	return rec.Result(), nil
}
