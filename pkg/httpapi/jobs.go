package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

func handleGetJob(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		j, err := s.Job(c.Request().Context(), tenantOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, j.JSON())
	}
}
