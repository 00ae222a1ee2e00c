package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

type turnJSON struct {
	N         int                `json:"n"`
	Question  string             `json:"question"`
	Answer    string             `json:"answer"`
	Citations []ragpipe.Citation `json:"citations"`
	Model     string             `json:"model"`
	Usage     usageJSON          `json:"usage"`
	CreatedAt time.Time          `json:"created_at"`
}

type conversationJSON struct {
	ID        string     `json:"id"`
	Title     string     `json:"title"`
	TurnCount int        `json:"turn_count"`
	Turns     []turnJSON `json:"turns,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

func conversationOut(c *ragpipe.Conversation) conversationJSON {
	out := conversationJSON{ID: c.ID, Title: c.Title, TurnCount: c.TurnCount, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	for _, t := range c.Turns {
		out.Turns = append(out.Turns, turnJSON{N: t.N, Question: t.Question, Answer: t.Answer, Citations: t.Citations,
			Model: t.Model, Usage: usageJSON{t.PromptTokens, t.CompletionTokens}, CreatedAt: t.CreatedAt})
	}
	return out
}

func handleListConversations(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit, err := queryLimit(c, 20, 100)
		if err != nil {
			return err
		}
		list, next, err := s.Conversations(c.Request().Context(), tenantOf(c), c.QueryParam("cursor"), limit)
		if err != nil {
			return err
		}
		out := struct {
			Conversations []conversationJSON `json:"conversations"`
			NextCursor    string             `json:"next_cursor"`
		}{Conversations: make([]conversationJSON, 0, len(list)), NextCursor: next}
		for _, conv := range list {
			out.Conversations = append(out.Conversations, conversationOut(conv))
		}
		return c.JSON(http.StatusOK, out)
	}
}

func handleGetConversation(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		conv, err := s.Conversation(c.Request().Context(), tenantOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		out := conversationOut(conv)
		if out.Turns == nil {
			out.Turns = []turnJSON{}
		}
		return c.JSON(http.StatusOK, out)
	}
}

func handleDeleteConversation(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.DeleteConversation(c.Request().Context(), tenantOf(c), c.Param("id")); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// handleUsage totals the caller's answers by provider and model between
// from (default: 30 days ago) and to (default: now), RFC 3339 times.
func handleUsage(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		to, from := time.Now().UTC(), time.Now().UTC().AddDate(0, 0, -30)
		for _, f := range []struct {
			name string
			dst  *time.Time
		}{{"from", &from}, {"to", &to}} {
			if v := c.QueryParam(f.name); v != "" {
				at, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					return ragpipe.FieldErrorf(f.name, "must be an RFC 3339 time such as 2026-01-31T12:00:00Z")
				}
				*f.dst = at
			}
		}
		if !from.Before(to) {
			return ragpipe.FieldErrorf("from", "must be before to")
		}
		totals, err := s.ChatUsage(c.Request().Context(), tenantOf(c), from, to)
		if err != nil {
			return err
		}
		type totalJSON struct {
			Provider         string `json:"provider"`
			Model            string `json:"model"`
			Requests         int    `json:"requests"`
			PromptTokens     int64  `json:"prompt_tokens"`
			CompletionTokens int64  `json:"completion_tokens"`
		}
		out := struct {
			From  time.Time   `json:"from"`
			To    time.Time   `json:"to"`
			Usage []totalJSON `json:"usage"`
		}{From: from, To: to, Usage: make([]totalJSON, 0, len(totals))}
		for _, u := range totals {
			out.Usage = append(out.Usage, totalJSON{u.Provider, u.Model, u.Requests, u.PromptTokens, u.CompletionTokens})
		}
		return c.JSON(http.StatusOK, out)
	}
}
