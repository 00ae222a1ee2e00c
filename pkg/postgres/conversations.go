package postgres

import (
	"context"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// titleRunes is how much of its first question a conversation's title keeps.
const titleRunes = 80

// SaveTurn adds t to the tenant's conversation conversationID, or to a new
// one when conversationID is "", numbering it after the last turn, and
// records its cost in the tenant's usage, in one transaction. It returns
// the conversation's ID; an unknown conversation is ENOTFOUND.
func (db *DB) SaveTurn(ctx context.Context, tenantID, conversationID string, t ragpipe.Turn) (string, error) {
	citations, err := json.Marshal(t.Citations)
	if err != nil {
		return "", err
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var n int
		if conversationID == "" {
			conversationID = uuid.NewString()
			title := t.Question
			if utf8.RuneCountInString(title) > titleRunes {
				title = string([]rune(title)[:titleRunes-1]) + "…"
			}
			if _, err := tx.Exec(ctx, `INSERT INTO conversations (id, tenant_id, title, turns) VALUES ($1, $2, $3, 1)`,
				conversationID, tenantID, title); err != nil {
				return err
			}
			n = 1
		} else {
			if !validUUID(conversationID) {
				return ragpipe.Errorf(ragpipe.ENOTFOUND, "conversation not found")
			}
			err := tx.QueryRow(ctx, `UPDATE conversations SET turns = turns + 1, updated_at = now()
				WHERE tenant_id = $1 AND id = $2 RETURNING turns`, tenantID, conversationID).Scan(&n)
			if err != nil {
				return notFound(err, "conversation")
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO conversation_turns (conversation_id, n, question, answer, citations,
			provider, model, prompt_tokens, completion_tokens) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			conversationID, n, t.Question, t.Answer, citations, t.Provider, t.Model, t.PromptTokens, t.CompletionTokens); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO chat_usage (tenant_id, provider, model, prompt_tokens, completion_tokens)
			VALUES ($1, $2, $3, $4, $5)`, tenantID, t.Provider, t.Model, t.PromptTokens, t.CompletionTokens)
		return err
	})
	if err != nil {
		return "", err
	}
	return conversationID, nil
}

// Conversation returns the tenant's conversation id with its turns in order.
func (db *DB) Conversation(ctx context.Context, tenantID, id string) (*ragpipe.Conversation, error) {
	if !validUUID(id) {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "conversation not found")
	}
	c := &ragpipe.Conversation{}
	err := db.pool.QueryRow(ctx, `SELECT id, tenant_id, title, turns, created_at, updated_at
		FROM conversations WHERE tenant_id = $1 AND id = $2`, tenantID, id).
		Scan(&c.ID, &c.TenantID, &c.Title, &c.TurnCount, &c.CreatedAt, &c.UpdatedAt)
	if err != nil {
		return nil, notFound(err, "conversation")
	}
	rows, err := db.pool.Query(ctx, `SELECT n, question, answer, citations, provider, model, prompt_tokens,
		completion_tokens, created_at FROM conversation_turns WHERE conversation_id = $1 ORDER BY n`, id)
	if err != nil {
		return nil, err
	}
	c.Turns, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragpipe.Turn, error) {
		var t ragpipe.Turn
		var citations []byte
		if err := r.Scan(&t.N, &t.Question, &t.Answer, &citations, &t.Provider, &t.Model, &t.PromptTokens,
			&t.CompletionTokens, &t.CreatedAt); err != nil {
			return t, err
		}
		return t, json.Unmarshal(citations, &t.Citations)
	})
	return c, err
}

// ConversationHistory returns the question and answer of the last n turns
// of the tenant's conversation id, oldest first; an unknown conversation is
// ENOTFOUND.
func (db *DB) ConversationHistory(ctx context.Context, tenantID, id string, n int) ([][2]string, error) {
	if !validUUID(id) {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "conversation not found")
	}
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $1 AND id = $2)`,
		tenantID, id).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "conversation not found")
	}
	rows, err := db.pool.Query(ctx, `SELECT question, answer FROM (SELECT n, question, answer FROM conversation_turns
		WHERE conversation_id = $1 ORDER BY n DESC LIMIT $2) last ORDER BY n`, id, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var t [2]string
		return t, r.Scan(&t[0], &t[1])
	})
}

// Conversations lists the tenant's conversations, newest first, limit at a
// time, without their turns; cursor is "" or the page before's next cursor.
func (db *DB) Conversations(ctx context.Context, tenantID, cursor string, limit int) ([]*ragpipe.Conversation, string, error) {
	args := []any{tenantID, limit + 1}
	where := "tenant_id = $1"
	if cursor != "" {
		at, id, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		args = append(args, at, id)
		where += " AND (created_at, id) < ($3, $4)"
	}
	rows, err := db.pool.Query(ctx, `SELECT id, tenant_id, title, turns, created_at, updated_at FROM conversations
		WHERE `+where+` ORDER BY created_at DESC, id DESC LIMIT $2`, args...)
	if err != nil {
		return nil, "", err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*ragpipe.Conversation, error) {
		c := &ragpipe.Conversation{}
		return c, r.Scan(&c.ID, &c.TenantID, &c.Title, &c.TurnCount, &c.CreatedAt, &c.UpdatedAt)
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = encodeCursor(list[limit-1].CreatedAt, list[limit-1].ID)
	}
	return list, next, nil
}

// DeleteConversation deletes the tenant's conversation id and its turns;
// its usage stays counted.
func (db *DB) DeleteConversation(ctx context.Context, tenantID, id string) error {
	if !validUUID(id) {
		return ragpipe.Errorf(ragpipe.ENOTFOUND, "conversation not found")
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM conversations WHERE tenant_id = $1 AND id = $2`, tenantID, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ragpipe.Errorf(ragpipe.ENOTFOUND, "conversation not found")
	}
	return nil
}

// ChatUsage totals the tenant's answers from from (inclusive) to to
// (exclusive) by provider and model.
func (db *DB) ChatUsage(ctx context.Context, tenantID string, from, to time.Time) ([]ragpipe.UsageTotal, error) {
	rows, err := db.pool.Query(ctx, `SELECT provider, model, count(*), sum(prompt_tokens), sum(completion_tokens)
		FROM chat_usage WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
		GROUP BY provider, model ORDER BY provider, model`, tenantID, from, to)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragpipe.UsageTotal, error) {
		var u ragpipe.UsageTotal
		return u, r.Scan(&u.Provider, &u.Model, &u.Requests, &u.PromptTokens, &u.CompletionTokens)
	})
}
