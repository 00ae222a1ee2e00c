package postgres

import (
	"context"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// SearchSQL lets the tests explain the very queries Search runs.
var SearchSQL = searchSQL

// SearchMode runs Search's query with the vector leg exact or walking the
// HNSW index, as the benchmark compares them.
func (db *DB) SearchMode(ctx context.Context, q ragpipe.SearchQuery, exact bool) ([]ragpipe.SearchResult, error) {
	return search(ctx, db.pool, q, exact)
}
