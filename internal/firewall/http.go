package firewall

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/problem"
)

// Handler serves the firewall's waivers (docs/feeds.md):
//
//	POST /api/v1/feeds/{feed}/waivers   add a waiver (admin)
//	GET  /api/v1/feeds/{feed}/waivers   list the feed's waivers
type Handler struct {
	Feeds   []config.Feed
	Waivers *Waivers
	// Authz checks callers; nil when authentication is off.
	Authz *auth.Service
	Audit audit.Auditor
	Log   *slog.Logger
	Now   func() time.Time
}

// Register mounts the endpoints on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/feeds/{feed}/waivers", h.add)
	mux.HandleFunc("GET /api/v1/feeds/{feed}/waivers", h.list)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) require(w http.ResponseWriter, r *http.Request, action string, perm auth.Perm) (*http.Request, string, bool) {
	if h.Authz == nil {
		return r, "anonymous", true
	}
	r, p, ok := h.Authz.Require(w, r, action, "", perm)
	if !ok {
		return r, "", false
	}
	return r, p.Subject, true
}

func (h *Handler) feed(w http.ResponseWriter, r *http.Request) (config.Feed, bool) {
	name := r.PathValue("feed")
	for _, f := range h.Feeds {
		if f.Name == name && f.Ecosystem != config.FeedEcosystemOCI {
			return f, true
		}
	}
	problem.Write(w, problem.NotFound, "no package feed "+name+" is configured")
	return config.Feed{}, false
}

func (h *Handler) add(w http.ResponseWriter, r *http.Request) {
	r, who, ok := h.require(w, r, "firewall.waive", auth.PermAdmin)
	if !ok {
		return
	}
	f, ok := h.feed(w, r)
	if !ok {
		return
	}
	now := h.now()
	req, expires, err := ParseWaiverRequest(r.Body, f, now)
	if k, refused := problem.From(err); err != nil && refused {
		problem.Write(w, k, err.Error())
		return
	} else if err != nil {
		problem.Write(w, problem.InvalidBody, err.Error())
		return
	}
	wv, err := h.Waivers.Add(r.Context(), r, f, req, expires, who, now)
	if err != nil {
		if k, refused := problem.From(err); refused {
			problem.Write(w, k, err.Error())
			return
		}
		problem.Fail(w, r, h.Log, "storing the waiver failed", err)
		return
	}
	h.Audit.Record(r.Context(), audit.Event{Action: "firewall.waive", Repo: f.Name, Tag: wv.ID, Result: "ok",
		Reason: wv.Package + " " + wv.Advisory + " until " + wv.Expires.Format(time.RFC3339) + ": " + wv.Reason, Request: r})
	problem.JSON(w, http.StatusCreated, wv)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	r, _, ok := h.require(w, r, "firewall.waivers", 0)
	if !ok {
		return
	}
	f, ok := h.feed(w, r)
	if !ok {
		return
	}
	out, err := h.Waivers.List(r.Context(), f.Name, h.now())
	if err != nil {
		problem.Fail(w, r, h.Log, "reading the waivers failed", err)
		return
	}
	problem.JSON(w, http.StatusOK, out)
}
