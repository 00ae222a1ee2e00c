package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

type jobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type jobJSON struct {
	ID             string     `json:"id"`
	Kind           string     `json:"kind"`
	DocumentID     string     `json:"document_id"`
	Status         string     `json:"status"`
	Stage          string     `json:"stage"`
	Progress       float64    `json:"progress"`
	Attempts       int        `json:"attempts"`
	Error          *jobError  `json:"error"`
	TotalChunks    int        `json:"total_chunks"`
	EmbeddedChunks int        `json:"embedded_chunks"`
	CreatedAt      time.Time  `json:"created_at"`
	StartedAt      *time.Time `json:"started_at"`
	FinishedAt     *time.Time `json:"finished_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

func toJob(j *ragpipe.Job) jobJSON {
	out := jobJSON{
		ID: j.ID, Kind: j.Kind, DocumentID: j.DocumentID, Status: j.Status, Stage: j.Stage, Progress: j.Progress,
		Attempts: j.Attempts, TotalChunks: j.TotalChunks, EmbeddedChunks: j.EmbeddedChunks,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, UpdatedAt: j.UpdatedAt,
	}
	if j.ErrorCode != "" {
		out.Error = &jobError{Code: j.ErrorCode, Message: j.ErrorMessage}
	}
	return out
}

func handleGetJob(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		j, err := s.Job(c.Request().Context(), tenantOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, toJob(j))
	}
}
