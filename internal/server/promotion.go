package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/jsondoc"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/veto"
)

// promoter serves the promotion API (docs/promotion.md):
//
//	POST /api/v1/promotions   {"repository","digest","environment","reason"}  promoter
//	POST /api/v1/gate         {"repository","digest","environment"}  evaluate only (reader)
//	POST /api/v1/rollback     {"repository","environment","reason"}  promoter
//	POST /api/v1/revocations  {"repository","digest","reason"}  maintainer
//	GET  /api/v1/environments?repository=R&environment=E[&digest=D]
type promoter struct {
	svc   *promotion.Service
	authz *auth.Service
	audit audit.Auditor
	index builds.Index
	log   *slog.Logger
}

// newPromoter builds the promotion service from the configured projects;
// it returns nil when none is configured.
func newPromoter(cfg config.Config, sg *signing, authz *auth.Service, audit audit.Auditor, index builds.Index, findings promotion.Findings) (*promoter, error) {
	if len(cfg.Projects) == 0 {
		return nil, nil
	}
	svc := &promotion.Service{Remote: sg.remote, Host: internalHost, Signer: sg.signer, Findings: findings}
	trust, err := promotionTrust(sg.ring, cfg.Promotion.TrustRoot)
	if err != nil {
		return nil, err
	}
	svc.Trust = trust
	for i, p := range cfg.Projects {
		pr := promotion.Project{Repositories: p.Repositories}
		for _, e := range p.Environments {
			env := promotion.Environment{Name: e.Name, Approvals: e.Approvals}
			if len(e.Gate.Rules) > 0 {
				g, err := gate.Compile(e.Gate)
				if err != nil {
					return nil, fmt.Errorf("projects[%d] environment %s: gate: %w", i, e.Name, err)
				}
				env.Gate = g
			}
			pr.Environments = append(pr.Environments, env)
		}
		svc.Projects = append(svc.Projects, pr)
	}
	return &promoter{svc: svc, authz: authz, audit: audit, index: index, log: sg.log}, nil
}

// promotionTrust trusts the server ring's keys plus a configured trust
// root's, each inside its validity window; only the ring's keys (active
// and retired) record promotions, approvals and revocations.
func promotionTrust(ring *key.Ring, extra string) (*evidence.Trust, error) {
	tr, err := ring.TrustRoot()
	if err != nil {
		return nil, err
	}
	var own []string
	for _, k := range tr.Keys {
		own = append(own, k.ID)
	}
	if extra != "" {
		b, err := os.ReadFile(extra)
		if err != nil {
			return nil, fmt.Errorf("promotion.trustRoot: %w", err)
		}
		more, err := key.ParseTrustRoot(b)
		if err != nil {
			return nil, fmt.Errorf("promotion.trustRoot: %w", err)
		}
		tr.Keys = append(tr.Keys, more.Keys...)
	}
	t, err := evidence.NewTrust(tr)
	if err != nil {
		return nil, err
	}
	return t.RecordsOnlyBy(own...), nil
}

func (p *promoter) register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/promotions", p.promote)
	mux.HandleFunc("POST /api/v1/gate", p.evaluate)
	mux.HandleFunc("POST /api/v1/rollback", p.rollback)
	mux.HandleFunc("POST /api/v1/revocations", p.revoke)
	mux.HandleFunc("GET /api/v1/environments", p.environment)
}

// policy returns the registry.Policy that keeps environment tags for
// promotions: no client may set, move or delete them directly.
func (p *promoter) policy() registry.Policy { return envTags{p.svc} }

type envTags struct{ svc *promotion.Service }

func (e envTags) check(ctx context.Context, repo, tag string) error {
	if !e.svc.IsEnvironmentTag(repo, tag) {
		return nil
	}
	if id, ok := identity.From(ctx); ok && id == serverIdentity {
		return nil
	}
	return fmt.Errorf("%w: tag %s of %s is an environment: it moves only by promotion (custody promote %s@<digest> --to %s)", veto.ErrDenied, tag, repo, repo, tag)
}

func (e envTags) CheckTag(ctx context.Context, repo, tag string, _, _ digest.Digest) error {
	return e.check(ctx, repo, tag)
}
func (e envTags) CheckDeleteTag(ctx context.Context, repo, tag string, _ digest.Digest) error {
	return e.check(ctx, repo, tag)
}
func (envTags) CheckManifest(context.Context, meta.Manifest) error               { return nil }
func (envTags) CheckDeleteManifest(context.Context, string, digest.Digest) error { return nil }
func (envTags) CheckDeleteBlob(context.Context, string, digest.Digest) error     { return nil }

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil {
		err = jsondoc.UnmarshalStrict(b, v)
	}
	if err != nil {
		problem.Write(w, problem.InvalidBody, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

func validArtifact(w http.ResponseWriter, repo, dgst string) bool {
	if !registry.ValidName(repo) {
		problem.Write(w, problem.InvalidName, "repository "+repo+" is not a valid name")
		return false
	}
	if _, err := digest.Parse(dgst); err != nil {
		problem.Write(w, problem.InvalidDigest, "promote by digest (sha256:...): "+err.Error())
		return false
	}
	return true
}

// lookupError answers errors of Lookup and Gather: no such project or
// environment is the client's; anything else is logged, not sent.
func (p *promoter) lookupError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, promotion.ErrNoProject) || errors.Is(err, promotion.ErrNoEnv) {
		problem.Write(w, problem.NotFound, err.Error())
		return
	}
	problem.FailAs(w, r, p.log, problem.ArtifactUnreadable, "reading the artifact or its evidence failed", err)
}

// PromotionProblem is the body of a refused promotion: the problem and
// the outcome (gate results).
type PromotionProblem struct {
	problem.Details
	Outcome promotion.Outcome `json:"outcome"`
}

func (p *promoter) promote(w http.ResponseWriter, r *http.Request) {
	var req promotion.Request
	if !decodeJSON(w, r, &req) || !validArtifact(w, req.Repository, req.Digest) {
		return
	}
	r, pr, ok := p.authz.Require(w, r, "promote", req.Repository, auth.PermMoveTag)
	if !ok {
		return
	}
	d := digest.Digest(req.Digest)
	out, err := p.svc.Promote(r.Context(), req, pr.Subject)
	ev := audit.Event{Action: "promote", Repo: req.Repository, Digest: d, Tag: req.Environment, Request: r}
	switch {
	case err == nil && out.Pending:
		ev.Result, ev.Reason = "ok", fmt.Sprintf("approval %d of %d for %s", len(out.Approvers), out.Needed, req.Environment)
		p.audit.Record(r.Context(), ev)
		problem.JSON(w, http.StatusAccepted, out)
	case err == nil:
		ev.Result, ev.Reason = "ok", fmt.Sprintf("to %s (was %s): %s", req.Environment, orNone(out.Previous), req.Reason)
		p.audit.Record(r.Context(), ev)
		problem.JSON(w, http.StatusOK, out)
	case errors.Is(err, promotion.ErrGate), errors.Is(err, promotion.ErrRevoked):
		reason := err.Error()
		for _, f := range out.Gate.Failed() {
			reason += "; " + f.Name
		}
		ev.Result, ev.Reason = "denied", reason
		p.audit.Record(r.Context(), ev)
		problem.WriteBody(w, problem.GateRefused.Status(), PromotionProblem{Details: problem.GateRefused.Details(reason), Outcome: out})
	default:
		ev.Result, ev.Reason = "error", err.Error()
		p.audit.Record(r.Context(), ev)
		p.lookupError(w, r, err)
	}
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func (p *promoter) evaluate(w http.ResponseWriter, r *http.Request) {
	var req promotion.Request
	if !decodeJSON(w, r, &req) || !validArtifact(w, req.Repository, req.Digest) {
		return
	}
	r, _, ok := p.authz.Require(w, r, "gate.evaluate", req.Repository, auth.PermPull)
	if !ok {
		return
	}
	res, f, err := p.svc.Evaluate(r.Context(), req.Repository, req.Digest, req.Environment)
	if err != nil {
		p.lookupError(w, r, err)
		return
	}
	problem.JSON(w, http.StatusOK, map[string]any{"gate": res, "input": f.Input, "problems": f.Problems})
}

// RollbackRequest is the body of POST /api/v1/rollback.
type RollbackRequest struct {
	Repository  string `json:"repository"`
	Environment string `json:"environment"`
	Reason      string `json:"reason,omitempty"`
}

func (p *promoter) rollback(w http.ResponseWriter, r *http.Request) {
	var req RollbackRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	r, pr, ok := p.authz.Require(w, r, "rollback", req.Repository, auth.PermMoveTag)
	if !ok {
		return
	}
	hist, err := p.index.TagHistory(r.Context(), req.Repository, req.Environment)
	if err != nil {
		problem.Fail(w, r, p.log, "reading the tag history failed", err)
		return
	}
	var digests []string
	for _, h := range hist {
		digests = append(digests, h.Digest.String())
	}
	rec, err := p.svc.Rollback(r.Context(), req.Repository, req.Environment, digests, pr.Subject, req.Reason)
	ev := audit.Event{Action: "rollback", Repo: req.Repository, Tag: req.Environment, Request: r}
	if err != nil {
		ev.Result, ev.Reason = "denied", err.Error()
		p.audit.Record(r.Context(), ev)
		if errors.Is(err, promotion.ErrRevoked) || errors.Is(err, promotion.ErrNoRollback) {
			problem.Write(w, problem.RollbackRefused, err.Error())
			return
		}
		p.lookupError(w, r, err)
		return
	}
	ev.Result, ev.Digest, ev.Reason = "ok", digest.Digest(rec.Digest), "from "+rec.Previous+": "+req.Reason
	p.audit.Record(r.Context(), ev)
	problem.JSON(w, http.StatusOK, rec)
}

// RevokeRequest is the body of POST /api/v1/revocations.
type RevokeRequest struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Reason     string `json:"reason"`
}

func (p *promoter) revoke(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	if !decodeJSON(w, r, &req) || !validArtifact(w, req.Repository, req.Digest) {
		return
	}
	r, pr, ok := p.authz.Require(w, r, "revoke", req.Repository, auth.PermManage)
	if !ok {
		return
	}
	ev := audit.Event{Action: "revoke", Repo: req.Repository, Digest: digest.Digest(req.Digest), Reason: req.Reason, Request: r}
	if err := p.svc.Revoke(r.Context(), req.Repository, req.Digest, pr.Subject, req.Reason); err != nil {
		ev.Result, ev.Reason = "error", err.Error()
		p.audit.Record(r.Context(), ev)
		if errors.Is(err, promotion.ErrNoReason) {
			problem.Write(w, problem.Invalid, err.Error())
			return
		}
		problem.Fail(w, r, p.log, "attaching the revocation failed", err)
		return
	}
	ev.Result = "ok"
	p.audit.Record(r.Context(), ev)
	w.WriteHeader(http.StatusNoContent)
}

// EnvironmentStatus is the answer of GET /api/v1/environments.
type EnvironmentStatus struct {
	Repository  string            `json:"repository"`
	Environment string            `json:"environment"`
	Current     string            `json:"current"`
	History     []builds.TagEvent `json:"history"`
	Check       *promotion.Check  `json:"check,omitempty"`
}

func (p *promoter) environment(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	repo, env, dgst := q.Get("repository"), q.Get("environment"), q.Get("digest")
	if !registry.ValidName(repo) {
		problem.Write(w, problem.InvalidName, "give ?repository=NAME&environment=ENV")
		return
	}
	r, _, ok := p.authz.Require(w, r, "environment.read", repo, auth.PermPull)
	if !ok {
		return
	}
	if _, _, err := p.svc.Lookup(repo, env); err != nil {
		p.lookupError(w, r, err)
		return
	}
	st := EnvironmentStatus{Repository: repo, Environment: env, History: []builds.TagEvent{}}
	st.Current, _ = p.svc.Current(r.Context(), repo, env)
	if h, err := p.index.TagHistory(r.Context(), repo, env); err == nil && h != nil {
		st.History = h
	}
	if dgst != "" {
		if _, err := digest.Parse(dgst); err != nil {
			problem.Write(w, problem.InvalidDigest, err.Error())
			return
		}
		c, err := p.svc.CheckDeploy(r.Context(), repo, dgst, env)
		if err != nil {
			p.lookupError(w, r, err)
			return
		}
		st.Check = &c
	}
	problem.JSON(w, http.StatusOK, st)
}
