package postgres

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// CreateKey stores a key hash for the tenant named name, creating the tenant
// if it does not exist, and returns the tenant's ID.
func (db *DB) CreateKey(ctx context.Context, name, prefix string, hash []byte) (string, error) {
	var tenantID string
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO tenants (id, name) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`,
			uuid.New(), name).Scan(&tenantID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO api_keys (id, tenant_id, prefix, hash) VALUES ($1, $2, $3, $4)`,
			uuid.New(), tenantID, prefix, hash)
		return err
	})
	return tenantID, err
}

// TenantByKeyHash returns the ID of the tenant that owns the live key with
// this hash, or an EUNAUTHORIZED error.
func (db *DB) TenantByKeyHash(ctx context.Context, hash []byte) (string, error) {
	var tenantID string
	err := db.pool.QueryRow(ctx, `SELECT tenant_id FROM api_keys WHERE hash = $1 AND revoked_at IS NULL`, hash).Scan(&tenantID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ragpipe.Errorf(ragpipe.EUNAUTHORIZED, "invalid API key")
	}
	return tenantID, err
}
