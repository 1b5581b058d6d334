package assessment

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/registry"
)

// Handler serves the assessment (access control is the server's: the
// audit permission, as for the audit log):
//
//	GET /api/v1/assessment[?project=P][&after=REPO][&limit=N]
//
// It answers a Report as JSON. At most limit repositories (default
// DefaultRepositories, at most MaxRepositories) are assessed per request;
// the report's next names where to continue.
type Handler struct {
	Sources *Sources
	Log     *slog.Logger
}

// Register mounts the endpoint on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/assessment", h.serve)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := Query{Project: q.Get("project"), After: q.Get("after"), Host: r.Host}
	if query.After != "" && !registry.ValidName(query.After) {
		problem.Write(w, problem.InvalidName, "after: "+strconv.Quote(query.After)+" is not a repository name")
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxRepositories {
			problem.Write(w, problem.Invalid, "limit: give a number of repositories from 1 to "+strconv.Itoa(MaxRepositories))
			return
		}
		query.Limit = n
	}
	rep, err := h.Sources.Assess(r.Context(), query)
	if errors.Is(err, promotion.ErrNoProject) {
		problem.Write(w, problem.NotFound, err.Error())
		return
	}
	if err != nil {
		problem.Fail(w, r, h.Log, "assessing the repositories failed", err)
		return
	}
	problem.JSON(w, http.StatusOK, rep)
}
