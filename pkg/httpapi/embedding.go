package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

type embeddingSpaceJSON struct {
	Provider      string `json:"provider"`
	Model         string `json:"model"`
	BaseURL       string `json:"base_url"`
	Dimensions    int    `json:"dimensions"`
	PassagePrefix string `json:"passage_prefix"`
}

func spaceJSON(s ragpipe.EmbeddingSpace) embeddingSpaceJSON {
	return embeddingSpaceJSON{Provider: s.Provider, Model: s.Model, BaseURL: s.BaseURL, Dimensions: s.Dimensions,
		PassagePrefix: s.PassagePrefix}
}

type embeddingMigrationJSON struct {
	State          string             `json:"state"`
	From           embeddingSpaceJSON `json:"from"`
	Target         embeddingSpaceJSON `json:"target"`
	TotalChunks    int                `json:"total_chunks"`
	EmbeddedChunks int                `json:"embedded_chunks"`
	Progress       float64            `json:"progress"`
	Error          *string            `json:"error"`
	StartedAt      time.Time          `json:"started_at"`
	UpdatedAt      time.Time          `json:"updated_at"`
	FinishedAt     *time.Time         `json:"finished_at"`
}

// handleEmbeddingStatus answers GET /v1/embedding: the embedding space the
// tenant's searches use and the latest re-embedding of its chunks.
func handleEmbeddingStatus(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		st, err := s.EmbeddingStatus(c.Request().Context(), tenantOf(c))
		if err != nil {
			return err
		}
		out := struct {
			Space     embeddingSpaceJSON      `json:"space"`
			Migration *embeddingMigrationJSON `json:"migration"`
		}{Space: spaceJSON(st.Space)}
		if m := st.Migration; m != nil {
			out.Migration = &embeddingMigrationJSON{State: m.State, From: spaceJSON(m.From), Target: spaceJSON(m.Target),
				TotalChunks: m.TotalChunks, EmbeddedChunks: m.EmbeddedChunks, Progress: m.Progress(),
				StartedAt: m.StartedAt, UpdatedAt: m.UpdatedAt, FinishedAt: m.FinishedAt}
			if m.Error != "" {
				out.Migration.Error = &m.Error
			}
		}
		return c.JSON(http.StatusOK, out)
	}
}
