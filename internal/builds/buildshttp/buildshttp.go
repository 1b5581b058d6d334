// Package buildshttp serves the build metadata index (builds.Index) as JSON
// under /api/v1/. It is separate from package builds so that metadata
// backends implementing builds.Index need not import the registry.
package buildshttp

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
)

// Handler serves the index as JSON:
//
//	GET /api/v1/builds?revision=<rev>           → builds.BuildList
//	GET /api/v1/tags/<repo...>/<tag>/history    → builds.TagHistory
//	GET /api/v1/versions/<repo...>              → builds.VersionList
//
// Errors are RFC 9457 problem details.
type Handler struct {
	Index builds.Index
	Log   *slog.Logger
}

// Register mounts the handler's routes on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/builds", h.builds)
	mux.HandleFunc("GET /api/v1/tags/", h.tagHistory)
	mux.HandleFunc("GET /api/v1/versions/", h.versions)
}

func (h *Handler) builds(w http.ResponseWriter, r *http.Request) {
	rev := r.URL.Query().Get("revision")
	if rev == "" || len(rev) > 256 {
		problem.Write(w, problem.Invalid, "the revision parameter is required (at most 256 bytes)")
		return
	}
	bs, err := h.Index.Builds(r.Context(), rev)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	problem.JSON(w, http.StatusOK, builds.BuildList{Revision: rev, Builds: bs})
}

func (h *Handler) tagHistory(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/api/v1/tags/")
	rest, ok := strings.CutSuffix(rest, "/history")
	i := strings.LastIndexByte(rest, '/')
	if !ok || i < 0 {
		problem.Write(w, problem.NotFound, "use /api/v1/tags/<repository>/<tag>/history")
		return
	}
	repo, tag := rest[:i], rest[i+1:]
	if !registry.ValidName(repo) || !registry.ValidTag(tag) {
		problem.Write(w, problem.InvalidName, "the repository name or tag is not valid")
		return
	}
	hist, err := h.Index.TagHistory(r.Context(), repo, tag)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	if len(hist) == 0 {
		problem.Write(w, problem.NotFound, "the tag has no history in this repository")
		return
	}
	problem.JSON(w, http.StatusOK, builds.TagHistory{Repo: repo, Tag: tag, History: hist})
}

func (h *Handler) versions(w http.ResponseWriter, r *http.Request) {
	repo := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/v1/versions/"), "/")
	if !registry.ValidName(repo) {
		problem.Write(w, problem.InvalidName, "the repository name is not valid")
		return
	}
	vs, err := h.Index.Versions(r.Context(), repo)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	problem.JSON(w, http.StatusOK, builds.VersionList{Repo: repo, Versions: vs})
}

func (h *Handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	problem.Fail(w, r, h.Log, "build index query failed", err)
}
