package postgres

import (
	"context"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// SearchSQL lets the tests explain the very queries Search runs.
var SearchSQL = searchSQL

// VectorIndexName names the HNSW index of a tenant's chunks in a space.
var VectorIndexName = vectorIndexName

// SearchMode runs Search's query with the vector leg exact or walking the
// tenant's HNSW index, as the benchmark compares them.
func (db *DB) SearchMode(ctx context.Context, q ragpipe.SearchQuery, exact bool) ([]ragpipe.SearchResult, error) {
	return search(ctx, db.pool, q, exact)
}

// BuildTenantVectorIndex builds the HNSW index of the tenant's chunks in its
// space without listing it: Search goes on comparing every chunk, and only
// SearchMode walks it, as the benchmark measures the walk.
func (db *DB) BuildTenantVectorIndex(ctx context.Context, tenantID string) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var space, dims int
	if err := conn.QueryRow(ctx, `SELECT s.id, s.dimensions FROM tenants t JOIN embedding_spaces s ON s.id = t.embedding_space_id
		WHERE t.id = $1`, tenantID).Scan(&space, &dims); err != nil {
		return err
	}
	return buildVectorIndex(ctx, conn, tenantID, space, dims)
}
