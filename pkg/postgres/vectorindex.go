package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// vectorIndexLock is the advisory lock key under which one process at a
// time builds and drops tenants' vector indexes.
const vectorIndexLock = 0x7261677665637478 // "ragvectx"

// hasVectorIndex holds for a tenant t with an index of its own in its space.
const hasVectorIndex = `EXISTS (SELECT 1 FROM tenant_vector_indexes v
	WHERE v.tenant_id = t.id AND v.space_id = t.embedding_space_id)`

// dueVectorIndex holds for a tenant t (joined to its tenant_term_stats ts)
// of at least $1 chunks without an index of its own in its space.
const dueVectorIndex = `ts.chunks >= $1 AND NOT ` + hasVectorIndex

// vectorIndexName is the name of the HNSW index over the tenant's chunks in
// the space.
func vectorIndexName(tenantID string, space int) string {
	return fmt.Sprintf("chunks_vec_%s_s%d", strings.ReplaceAll(tenantID, "-", ""), space)
}

// BuildVectorIndexes gives every tenant holding at least minChunks chunks
// an HNSW index of its own over its chunks in its embedding space, which
// its searches walk from then on (until then they compare every chunk,
// exactly), and drops the indexes of spaces tenants have moved out of. The
// indexes are built one at a time and concurrently with writes and
// searches; an index a crash left half-built is built anew. While another
// process builds, it returns at once. It returns how many it built.
func (db *DB) BuildVectorIndexes(ctx context.Context, minChunks int) (int, error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(vectorIndexLock)).Scan(&locked); err != nil || !locked {
		return 0, err
	}
	// On a connection that fails, the server drops the lock with it.
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(vectorIndexLock)) //nolint:errcheck
	if err := dropLeftVectorIndexes(ctx, conn); err != nil {
		return 0, err
	}
	type due struct {
		Tenant     string
		Space      int
		Dimensions int
	}
	rows, err := conn.Query(ctx, `SELECT t.id::text, s.id, s.dimensions FROM tenants t
		JOIN tenant_term_stats ts ON ts.tenant_id = t.id
		JOIN embedding_spaces s ON s.id = t.embedding_space_id
		WHERE `+dueVectorIndex+`
		ORDER BY ts.chunks DESC, t.id`, minChunks)
	if err != nil {
		return 0, err
	}
	todo, err := pgx.CollectRows(rows, pgx.RowToStructByPos[due])
	if err != nil {
		return 0, err
	}
	// A build that fails does not hold up the tenants after it.
	built := 0
	var failed []error
	for _, d := range todo {
		err := buildVectorIndex(ctx, conn, d.Tenant, d.Space, d.Dimensions)
		if err == nil {
			_, err = conn.Exec(ctx, `INSERT INTO tenant_vector_indexes (tenant_id, space_id) VALUES ($1, $2)
				ON CONFLICT DO NOTHING`, d.Tenant, d.Space)
		}
		if err != nil {
			if ctx.Err() != nil {
				return built, err
			}
			failed = append(failed, err)
			continue
		}
		built++
	}
	return built, errors.Join(failed...)
}

// buildVectorIndex builds the HNSW index over the tenant's chunks in the
// space unless it exists, first dropping one left half-built.
func buildVectorIndex(ctx context.Context, conn *pgxpool.Conn, tenant string, space, dims int) error {
	name := vectorIndexName(tenant, space)
	var valid *bool
	err := conn.QueryRow(ctx, `SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)`, name).Scan(&valid)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if valid != nil && *valid {
		return nil
	}
	if valid != nil {
		if _, err := conn.Exec(ctx, `DROP INDEX CONCURRENTLY `+name); err != nil {
			return fmt.Errorf("drop half-built vector index %s: %w", name, err)
		}
	}
	// The tenant ID is a uuid read from the database, safe to write into
	// the statement, as the index's predicate must be literal.
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE INDEX CONCURRENTLY %s ON chunks
		USING hnsw ((embedding::vector(%d)) vector_cosine_ops) WHERE tenant_id = '%s' AND space_id = %d`,
		name, dims, tenant, space)); err != nil {
		return fmt.Errorf("build vector index %s: %w", name, err)
	}
	return nil
}

// VectorIndexCounts returns how many tenants have an HNSW index of their own
// in their space, and how many hold minChunks chunks or more without one
// (their builds are due, or running).
func (db *DB) VectorIndexCounts(ctx context.Context, minChunks int) (ready, due int, err error) {
	err = db.pool.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE `+hasVectorIndex+`),
		count(*) FILTER (WHERE `+dueVectorIndex+`)
		FROM tenants t JOIN tenant_term_stats ts ON ts.tenant_id = t.id WHERE t.embedding_space_id IS NOT NULL`, minChunks).Scan(&ready, &due)
	return ready, due, err
}

// dropLeftVectorIndexes drops the indexes of spaces their tenants' chunks
// have moved out of (a re-embedding finished), each before its entry: a
// search that still walks one finds no index and compares every chunk.
func dropLeftVectorIndexes(ctx context.Context, conn *pgxpool.Conn) error {
	rows, err := conn.Query(ctx, `SELECT v.tenant_id::text, v.space_id FROM tenant_vector_indexes v
		JOIN tenants t ON t.id = v.tenant_id WHERE t.embedding_space_id IS DISTINCT FROM v.space_id`)
	if err != nil {
		return err
	}
	type left struct {
		Tenant string
		Space  int
	}
	gone, err := pgx.CollectRows(rows, pgx.RowToStructByPos[left])
	if err != nil {
		return err
	}
	for _, g := range gone {
		name := vectorIndexName(g.Tenant, g.Space)
		if _, err := conn.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+name); err != nil {
			return fmt.Errorf("drop vector index %s: %w", name, err)
		}
		if _, err := conn.Exec(ctx, `DELETE FROM tenant_vector_indexes WHERE tenant_id = $1 AND space_id = $2`,
			g.Tenant, g.Space); err != nil {
			return err
		}
	}
	return nil
}
