package server

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/jsondoc"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/retention"
)

// The management API, under /api/v1/ (JSON; errors are RFC 9457
// application/problem+json):
//
//	GET  /api/v1/policies                       current policy of every pattern
//	GET  /api/v1/policies/<pattern...>[?version=N]
//	PUT  /api/v1/policies/<pattern...>          store a new version
//	GET  /api/v1/retention/<repo...>            locks of a repository
//	GET  /api/v1/retention/<repo...>/@<digest>  lock of an artifact
//	PUT  /api/v1/retention/<repo...>/@<digest>  {"mode": ..., "retainUntil": RFC 3339}
//	PUT  /api/v1/hold/<repo...>/@<digest>       place a legal hold
//	DELETE /api/v1/hold/<repo...>/@<digest>     remove it
//	/api/v1/audit/...                           the audit log (internal/tlog, docs/audit.md)
//
// Repository names never contain '@', so "/@" separates the digest.

// PolicyResponse is the body of a policy GET or PUT.
type PolicyResponse struct {
	Repository string        `json:"repository"`
	Version    int           `json:"version"`
	Source     string        `json:"source"` // "api" or "config"
	Created    time.Time     `json:"created,omitzero"`
	Policy     policy.Policy `json:"policy"`
}

// RetentionRequest is the body of a retention PUT.
type RetentionRequest struct {
	Mode        string    `json:"mode"`
	RetainUntil time.Time `json:"retainUntil"`
}

type api struct {
	policies *policy.Engine
	checker  *retention.Checker
	locks    retention.Store
	log      *slog.Logger
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	kind, sub, _ := strings.Cut(rest, "/")
	switch kind {
	case "policies":
		a.policy(w, r, sub)
	case "retention", "hold":
		repo, dig, hasDigest := strings.Cut(sub, "/@")
		if !registry.ValidName(repo) {
			problem.Write(w, problem.InvalidName, "repository name "+strconv.Quote(repo)+" is not valid")
			return
		}
		var d digest.Digest
		if hasDigest {
			var err error
			if d, err = digest.Parse(dig); err == nil {
				err = blob.Supported(d)
			}
			if err != nil {
				problem.Write(w, problem.InvalidDigest, err.Error())
				return
			}
		}
		if kind == "retention" {
			a.retention(w, r, repo, d)
		} else {
			a.hold(w, r, repo, d)
		}
	default:
		problem.Write(w, problem.NotFound, "no such endpoint: "+r.URL.Path)
	}
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	problem.Write(w, problem.MethodNotAllowed, r.Method+" is not allowed here")
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = jsondoc.UnmarshalStrict(b, v)
	}
	if err != nil {
		problem.Write(w, problem.InvalidBody, err.Error())
		return false
	}
	return true
}

// writeErr answers err as its problem (see problem.Error).
func (a *api) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	problem.Error(w, r, a.log, "management API", err)
}

func (a *api) policy(w http.ResponseWriter, r *http.Request, pattern string) {
	ctx := r.Context()
	if pattern == "" {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, "GET")
			return
		}
		recs, err := a.policies.List(ctx)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		out := []PolicyResponse{}
		for _, rec := range recs {
			out = append(out, policyResponse(rec.Policy, rec.Record))
		}
		problem.JSON(w, http.StatusOK, out)
		return
	}
	switch r.Method {
	case http.MethodGet:
		version := 0
		if v := r.URL.Query().Get("version"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				problem.Write(w, problem.Invalid, "version must be a positive integer")
				return
			}
			version = n
		}
		p, rec, err := a.policies.Get(ctx, pattern, version)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		problem.JSON(w, http.StatusOK, policyResponse(p, rec))
	case http.MethodPut:
		var p policy.Policy
		if !decode(w, r, &p) {
			return
		}
		rec, err := a.policies.Put(ctx, pattern, p)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		problem.JSON(w, http.StatusOK, policyResponse(p, rec))
	default:
		methodNotAllowed(w, r, "GET, PUT")
	}
}

func policyResponse(p policy.Policy, rec policy.Record) PolicyResponse {
	src := "api"
	if rec.Version == 0 {
		src = "config"
	}
	return PolicyResponse{Repository: rec.Pattern, Version: rec.Version, Source: src, Created: rec.Created, Policy: p}
}

func (a *api) retention(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) {
	ctx := r.Context()
	if d == "" {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, "GET")
			return
		}
		locks, err := a.locks.ListLocks(ctx, repo)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		if locks == nil {
			locks = []retention.Lock{}
		}
		problem.JSON(w, http.StatusOK, locks)
		return
	}
	switch r.Method {
	case http.MethodGet:
		if _, err := a.checker.Meta.GetManifest(ctx, repo, d); err != nil {
			a.writeErr(w, r, err)
			return
		}
		l, err := a.locks.GetLock(ctx, repo, d)
		if errors.Is(err, retention.ErrNotFound) {
			l, err = retention.Lock{Repo: repo, Digest: d}, nil
		}
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		problem.JSON(w, http.StatusOK, l)
	case http.MethodPut:
		var req RetentionRequest
		if !decode(w, r, &req) {
			return
		}
		l, err := a.checker.SetRetention(ctx, repo, d, req.Mode, req.RetainUntil)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		problem.JSON(w, http.StatusOK, l)
	default:
		methodNotAllowed(w, r, "GET, PUT")
	}
}

func (a *api) hold(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) {
	if d == "" {
		problem.Write(w, problem.NotFound, "use /api/v1/hold/<repository>/@<digest>")
		return
	}
	var on bool
	switch r.Method {
	case http.MethodPut:
		on = true
	case http.MethodDelete:
	default:
		methodNotAllowed(w, r, "PUT, DELETE")
		return
	}
	l, err := a.checker.SetHold(r.Context(), repo, d, on)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	problem.JSON(w, http.StatusOK, l)
}
