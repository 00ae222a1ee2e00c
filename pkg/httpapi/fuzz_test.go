package httpapi

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// FuzzSearchRequest feeds arbitrary bodies to the search request's decoding
// and validation: neither may panic, and every refusal must be a domain
// error (a 4xx with a code), never an internal one.
func FuzzSearchRequest(f *testing.F) {
	for _, seed := range []string{
		`{"query":"otters","top_k":5,"mode":"hybrid","explain":true}`,
		`{"query":"x","metadata":{"k":["a",1,true]},"created_after":"2026-01-01T00:00:00Z","weights":{"vector":0.5}}`,
		`{"query":"a\u0000b"}`, `{"query":"\ud800","language":"german"}`, `{"metadata":{"\u0000":{}}}`,
		`{"query":"x","document_ids":["00000000-0000-0000-0000-000000000000"],"collection":"c"}`, `[`, `null`,
	} {
		f.Add([]byte(seed))
	}
	weights := ragpipe.SearchWeights{Keyword: 1, Vector: 1}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req searchRequest
		if json.Unmarshal(body, &req) != nil {
			return // the handler answers 400 before validation
		}
		q, err := req.validate("00000000-0000-0000-0000-000000000001", weights)
		if err != nil {
			var de *ragpipe.Error
			if !errors.As(err, &de) || de.Code == ragpipe.EINTERNAL {
				t.Fatalf("body %q: %v is not a client error", body, err)
			}
			return
		}
		if err := checkText("query", q.Query); err != nil || q.TopK < 1 || q.TopK > maxTopK {
			t.Fatalf("body %q validated into %+v", body, q)
		}
		for k, vs := range q.Metadata {
			if checkText("metadata", k) != nil || len(vs) == 0 {
				t.Fatalf("body %q: metadata %q = %v passed", body, k, vs)
			}
		}
	})
}
