package origin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/provenance"
)

// MaxDocument caps a provenance document sent to POST /api/v1/feeds/report.
const MaxDocument = provenance.MaxPredicateBytes + 1<<20

// ErrNoProvenance: the build has no trusted SLSA provenance.
var ErrNoProvenance = errors.New("no trusted SLSA v1 provenance attestation")

// Handler serves the dependency report (docs/feeds.md):
//
//	GET  /api/v1/feeds/report?repository=R&digest=D  of a stored build's
//	     trusted provenance attestations (pull on R)
//	POST /api/v1/feeds/report                         of a provenance
//	     document in the body (any signed-in caller)
//
// Versions in repositories the caller may not pull count as not found.
type Handler struct {
	Feeds []config.Feed
	Store *feed.Store
	// Provenance returns the predicates of the build's trusted SLSA
	// provenance attestations, or ErrNoProvenance; nil when the server
	// cannot verify attestations.
	Provenance func(ctx context.Context, repo, digest string) ([]*provenance.Predicate, error)
	// Authz checks callers; nil when authentication is off.
	Authz *auth.Service
	Log   *slog.Logger
}

// Register mounts the endpoints on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/feeds/report", h.stored)
	mux.HandleFunc("POST /api/v1/feeds/report", h.posted)
}

func (h *Handler) canRead(ctx context.Context, repo string) bool {
	if h.Authz == nil {
		return true
	}
	p := auth.PrincipalFrom(ctx)
	return p != nil && p.Can(repo, auth.PermPull)
}

func (h *Handler) stored(w http.ResponseWriter, r *http.Request) {
	repo, dgst := r.URL.Query().Get("repository"), r.URL.Query().Get("digest")
	if repo == "" || dgst == "" {
		problem.Write(w, problem.InvalidReference, "name the build: ?repository=<repository>&digest=<sha256:...>")
		return
	}
	if h.Authz != nil {
		var ok bool
		if r, _, ok = h.Authz.Require(w, r, "feeds.report", repo, auth.PermPull); !ok {
			return
		}
	}
	if h.Provenance == nil {
		problem.Write(w, problem.NotFound, "this server verifies no attestations; POST the provenance document instead")
		return
	}
	preds, err := h.Provenance(r.Context(), repo, dgst)
	switch {
	case errors.Is(err, ErrBadReference):
		problem.Write(w, problem.InvalidReference, err.Error())
		return
	case errors.Is(err, ErrNoBuild):
		problem.Write(w, problem.NotFound, err.Error())
		return
	case errors.Is(err, ErrNoProvenance):
		problem.Write(w, problem.NotFound, repo+"@"+dgst+" has no trusted SLSA v1 provenance attestation")
		return
	}
	if k, refused := problem.From(err); err != nil && refused {
		problem.Write(w, k, err.Error())
		return
	} else if err != nil {
		problem.Fail(w, r, h.Log, "reading the build's provenance failed", err)
		return
	}
	var deps []provenance.ResourceDescriptor
	for _, p := range preds {
		deps = append(deps, p.BuildDefinition.ResolvedDependencies...)
	}
	h.answer(w, r, repo+"@"+dgst, deps)
}

func (h *Handler) posted(w http.ResponseWriter, r *http.Request) {
	if h.Authz != nil {
		var ok bool
		if r, _, ok = h.Authz.Require(w, r, "feeds.report", "", 0); !ok {
			return
		}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxDocument+1))
	if k, refused := problem.From(err); err != nil && refused {
		problem.Write(w, k, err.Error())
		return
	} else if err != nil {
		problem.Write(w, problem.UnreadableBody, "reading the provenance failed")
		return
	}
	if len(b) > MaxDocument {
		problem.Write(w, problem.BodyTooLarge, fmt.Sprintf("the provenance document is larger than %d bytes", MaxDocument))
		return
	}
	p, err := ParseDocument(b)
	if err != nil {
		problem.Write(w, problem.InvalidBody, err.Error())
		return
	}
	h.answer(w, r, "", p.BuildDefinition.ResolvedDependencies)
}

func (h *Handler) answer(w http.ResponseWriter, r *http.Request, subject string, deps []provenance.ResourceDescriptor) {
	rep, err := Of(r.Context(), h.Store, h.Feeds, deps, h.canRead)
	if err != nil {
		problem.Fail(w, r, h.Log, "reading the feeds failed", err)
		return
	}
	rep.Subject = subject
	problem.JSON(w, http.StatusOK, rep)
}

// ParseDocument reads an SLSA v1 provenance as a predicate, an in-toto
// statement carrying one, or a DSSE envelope of such a statement (its
// signature is not checked here: the report says where dependencies came
// from, it does not vouch for the build).
func ParseDocument(b []byte) (*provenance.Predicate, error) {
	var probe struct {
		PayloadType   string          `json:"payloadType"`
		Payload       string          `json:"payload"`
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("not a JSON provenance document: %w", err)
	}
	if probe.Payload != "" {
		raw, err := base64.StdEncoding.DecodeString(probe.Payload)
		if err != nil {
			return nil, errors.New("the DSSE envelope's payload is not base64")
		}
		probe.Predicate = nil
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, fmt.Errorf("the DSSE envelope's payload is not an in-toto statement: %w", err)
		}
		if probe.Predicate == nil {
			return nil, errors.New("the DSSE envelope's statement has no predicate")
		}
	}
	if probe.Predicate != nil {
		if probe.PredicateType != "" && probe.PredicateType != "https://slsa.dev/provenance/v1" {
			return nil, fmt.Errorf("predicateType %q is not SLSA provenance v1", probe.PredicateType)
		}
		b = bytes.TrimSpace(probe.Predicate)
	}
	return provenance.Parse(b)
}
