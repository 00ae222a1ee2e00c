package httpapi

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"gopkg.in/yaml.v3"

	"github.com/ragpipe/ragpipe/docs"
)

// openAPISpec is the part of docs/openapi.yaml these tests read.
type openAPISpec struct {
	OpenAPI string                    `yaml:"openapi"`
	Paths   map[string]map[string]any `yaml:"paths"`
}

// specMethods are the keys of an OpenAPI path item that are operations; the
// others (parameters, summary, …) are not.
var specMethods = map[string]bool{
	"get": true, "put": true, "post": true, "delete": true,
	"options": true, "head": true, "patch": true, "trace": true,
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

func loadSpec(t *testing.T) openAPISpec {
	t.Helper()
	var spec openAPISpec
	if err := yaml.Unmarshal(docs.OpenAPI, &spec); err != nil {
		t.Fatalf("docs/openapi.yaml does not parse: %v", err)
	}
	if !strings.HasPrefix(spec.OpenAPI, "3.1") {
		t.Fatalf("docs/openapi.yaml: openapi is %q, want 3.1.x", spec.OpenAPI)
	}
	return spec
}

// TestOpenAPIMatchesRoutes keeps docs/openapi.yaml and addRoutes in step: every
// registered route is described, and every described operation is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	e := echo.New()
	addRoutes(e, Params{})
	registered := map[string]bool{}
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound {
			continue // Echo's catch-alls for unknown paths under a group
		}
		registered[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	if len(registered) == 0 {
		t.Fatal("addRoutes registered no routes")
	}

	described := map[string]bool{}
	for path, item := range loadSpec(t).Paths {
		for method := range item {
			if specMethods[method] {
				described[strings.ToUpper(method)+" "+path] = true
			}
		}
	}

	var undocumented, unserved []string
	for r := range registered {
		if !described[r] {
			undocumented = append(undocumented, r)
		}
	}
	for op := range described {
		if !registered[op] {
			unserved = append(unserved, op)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unserved)
	for _, r := range undocumented {
		t.Errorf("route %s is registered in routes.go but missing from docs/openapi.yaml", r)
	}
	for _, op := range unserved {
		t.Errorf("operation %s is in docs/openapi.yaml but no route serves it", op)
	}
}

// TestOpenAPIErrorResponses checks that every operation documents the
// responses every request can get: 500 everywhere, and on /v1 the 401, 429
// and 503 of the authentication and rate-limit middleware.
func TestOpenAPIErrorResponses(t *testing.T) {
	t.Parallel()
	for path, item := range loadSpec(t).Paths {
		for method, op := range item {
			if !specMethods[method] {
				continue
			}
			fields, _ := op.(map[string]any)
			responses, _ := fields["responses"].(map[string]any)
			want := []int{http.StatusInternalServerError}
			if strings.HasPrefix(path, "/v1/") {
				want = append(want, http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusServiceUnavailable)
			}
			for _, code := range want {
				if _, ok := responses[strconv.Itoa(code)]; !ok {
					t.Errorf("%s %s: no %d response documented", strings.ToUpper(method), path, code)
				}
			}
		}
	}
}

// TestOpenAPIRefsResolve checks that every local $ref points at something.
func TestOpenAPIRefsResolve(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := yaml.Unmarshal(docs.OpenAPI, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml does not parse: %v", err)
	}
	var walk func(node any, at string)
	walk = func(node any, at string) {
		switch n := node.(type) {
		case map[string]any:
			if ref, ok := n["$ref"].(string); ok {
				if !strings.HasPrefix(ref, "#/") {
					t.Errorf("%s: $ref %q is not local", at, ref)
				} else if !resolves(doc, strings.Split(ref[2:], "/")) {
					t.Errorf("%s: $ref %q points at nothing", at, ref)
				}
			}
			for k, v := range n {
				walk(v, at+"/"+k)
			}
		case []any:
			for _, v := range n {
				walk(v, at+"/[]")
			}
		}
	}
	walk(doc, "#")
}

func resolves(node any, path []string) bool {
	for _, p := range path {
		p = strings.NewReplacer("~1", "/", "~0", "~").Replace(p)
		m, ok := node.(map[string]any)
		if !ok {
			return false
		}
		if node, ok = m[p]; !ok {
			return false
		}
	}
	return true
}
