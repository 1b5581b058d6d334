// Package promotionhttp serves the promotion API and the admission
// webhook over a promotion.Service built from the configured projects.
package promotionhttp

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
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
	"github.com/custody-dev/custody/internal/timestamp"
	"github.com/custody-dev/custody/internal/veto"
)

// Handler serves the promotion API (docs/promotion.md):
//
//	POST /api/v1/promotions   {"repository","digest","environment","reason"}  promoter
//	POST /api/v1/gate         {"repository","digest","environment"}  evaluate only (reader)
//	POST /api/v1/rejections   {"repository","digest","environment","reason"}  promoter
//	GET  /api/v1/projects     the projects and their environments (signed in)
//	POST /api/v1/rollback     {"repository","environment","reason"}  promoter
//	POST /api/v1/revocations  {"repository","digest","reason"}  maintainer
//	GET  /api/v1/environments?repository=R&environment=E[&digest=D][&at=T]
//	GET  /api/v1/environments?environment=E[&project=P][&at=T]  project-wide
//	GET  /api/v1/history?repository=R&digest=D  (audit read, checked by the server)
//	GET  /api/v1/evidence?repository=R&digest=D  manifest and verified evidence (reader)
//	POST /admission/{env}     the Kubernetes admission webhook (docs/admission.md)
type Handler struct {
	svc        *promotion.Service
	authz      *auth.Service
	audit      audit.Auditor
	index      builds.Index
	log        *slog.Logger
	registries []string
}

// Options is what the promotion API is built from.
type Options struct {
	// Projects declare the environments; with none, New returns nil.
	Projects []config.Project
	// Ring is the server's key ring: its keys are trusted and only they
	// record promotions, approvals and revocations. TrustRoot names a file
	// of further trusted keys (promotion.trustRoot), or is empty.
	Ring      *key.Ring
	TrustRoot string
	// Signer signs what the server records; nil refuses promotions.
	Signer crypto.Signer
	// Timestamper time-stamps what it signs; nil for none.
	Timestamper timestamp.Stamper
	// Remote reaches the registry the service reads and writes, named Host.
	Remote []remote.Option
	Host   string
	// Findings, when set, supplies promotion gates with vulnerability
	// findings.
	Findings promotion.Findings
	Authz    *auth.Service
	Audit    audit.Auditor
	Index    builds.Index
	// AuditLog is the audit log the point-in-time answers and histories
	// name entries of.
	AuditLog promotion.AuditSearch
	Log      *slog.Logger
	// Registries are the host names clients use for this registry
	// (admission.registries); when set, the admission webhook refuses
	// images of any other host.
	Registries []string
}

// verdicts bounds the attestation verdicts the service remembers (a few
// KiB each: the parsed record and its statement).
const verdicts = 4096

// New builds the promotion service from the configured projects; it
// returns nil when none is configured.
func New(o Options) (*Handler, error) {
	if len(o.Projects) == 0 {
		return nil, nil
	}
	svc := &promotion.Service{Remote: o.Remote, Host: o.Host, Signer: o.Signer, Timestamper: o.Timestamper, Findings: o.Findings, Tags: o.Index, Audit: o.AuditLog}
	trust, err := Trust(o.Ring, o.TrustRoot)
	if err != nil {
		return nil, err
	}
	svc.Trust = trust
	svc.Verdicts = evidence.NewVerdicts(verdicts)
	for i, p := range o.Projects {
		pr := promotion.Project{Name: p.Name, Repositories: p.Repositories}
		for _, e := range p.Environments {
			env := promotion.Environment{Name: e.Name, Approvals: e.Approvals, Protected: e.Protected}
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
	return &Handler{svc: svc, authz: o.Authz, audit: o.Audit, index: o.Index, log: o.Log, registries: o.Registries}, nil
}

// Service returns the promotion service the handler serves.
func (p *Handler) Service() *promotion.Service { return p.svc }

// Trust is the trust of the server's evidence readers (promotions and the
// assessment): the server ring's keys plus a configured trust root's,
// each inside its validity window; only the ring's keys (active and
// retired) record promotions, approvals, revocations and drill reports.
func Trust(ring *key.Ring, extra string) (*evidence.Trust, error) {
	tr, err := ring.TrustRoot()
	if err != nil {
		return nil, err
	}
	t, _, err := ServerTrust(tr, extra)
	return t, err
}

// TrustRoot returns what the server trusts: the ring's keys (active and
// retired, each inside its validity window) plus a configured trust
// root's (promotion.trustRoot, extra, when not empty), and the IDs of the
// ring's keys, the only ones whose promotions, approvals and revocations
// count. Evidence bundles carry the same (custody/trust.json).
func TrustRoot(ring *key.Ring, extra string) (key.TrustRoot, []string, error) {
	tr, err := ring.TrustRoot()
	if err != nil {
		return tr, nil, err
	}
	return combine(tr, extra)
}

// ServerTrust is the trust of the server: the keys of own (its ring's
// trust root, current or archived) plus those of the trust-root file
// extra (promotion.trustRoot; none when ""), each inside its validity
// window; only own's keys record promotions, approvals and revocations.
// It also returns the combined trust root.
func ServerTrust(own key.TrustRoot, extra string) (*evidence.Trust, key.TrustRoot, error) {
	tr, ids, err := combine(own, extra)
	if err != nil {
		return nil, key.TrustRoot{}, err
	}
	t, err := evidence.NewTrust(tr)
	if err != nil {
		return nil, key.TrustRoot{}, err
	}
	return t.RecordsOnlyBy(ids...), tr, nil
}

// combine is own's keys plus those of the trust-root file extra, and the
// IDs of own's keys (the recorders).
func combine(own key.TrustRoot, extra string) (key.TrustRoot, []string, error) {
	tr := own
	tr.Keys = slices.Clone(own.Keys)
	var ids []string
	for _, k := range tr.Keys {
		ids = append(ids, k.ID)
	}
	if extra != "" {
		b, err := os.ReadFile(extra)
		if err != nil {
			return tr, nil, fmt.Errorf("promotion.trustRoot: %w", err)
		}
		more, err := key.ParseTrustRoot(b)
		if err != nil {
			return tr, nil, fmt.Errorf("promotion.trustRoot: %w", err)
		}
		tr.Keys = append(tr.Keys, more.Keys...)
		tr.TimestampAuthorities = append(slices.Clone(own.TimestampAuthorities), more.TimestampAuthorities...)
		tr.CertificateAuthorities = append(slices.Clone(own.CertificateAuthorities), more.CertificateAuthorities...)
		tr.TransparencyLogs = append(slices.Clone(own.TransparencyLogs), more.TransparencyLogs...)
	}
	return tr, ids, nil
}

// Register mounts the promotion API and the admission webhook on mux.
func (p *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/promotions", p.promote)
	mux.HandleFunc("POST /api/v1/gate", p.evaluate)
	mux.HandleFunc("POST /api/v1/rejections", p.reject)
	mux.HandleFunc("GET /api/v1/projects", p.projects)
	mux.HandleFunc("POST /api/v1/rollback", p.rollback)
	mux.HandleFunc("POST /api/v1/revocations", p.revoke)
	mux.HandleFunc("GET /api/v1/environments", p.environment)
	mux.HandleFunc("GET /api/v1/history", p.history)
	mux.HandleFunc("GET /api/v1/evidence", p.evidenceOf)
	mux.Handle("POST /admission/{env}", p.admissionHandler(p.registries))
}

// Policy returns the registry.Policy that keeps environment tags for
// promotions: no client may set, move or delete them directly.
func (p *Handler) Policy() registry.Policy { return envTags{p.svc} }

type envTags struct{ svc *promotion.Service }

func (e envTags) check(ctx context.Context, repo, tag string) error {
	if !e.svc.IsEnvironmentTag(repo, tag) {
		return nil
	}
	if id, ok := identity.From(ctx); ok && id == identity.Server {
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

// DecodeJSON reads a JSON request body of at most 64 KiB strictly into v;
// on failure it answers the client's error and returns false.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
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

// ValidArtifact answers a bad repository name or digest as the client's
// error and returns false.
func ValidArtifact(w http.ResponseWriter, repo, dgst string) bool {
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
func (p *Handler) LookupError(w http.ResponseWriter, r *http.Request, err error) {
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

func (p *Handler) promote(w http.ResponseWriter, r *http.Request) {
	var req promotion.Request
	if !DecodeJSON(w, r, &req) || !ValidArtifact(w, req.Repository, req.Digest) {
		return
	}
	r, pr, ok := p.authz.Require(w, r, "promote", req.Repository, auth.PermMoveTag)
	if !ok {
		return
	}
	if p.svc.Guarded(req.Repository, req.Environment) &&
		!p.authz.RequireStepUp(w, r, "promote", req.Repository, "promoting to (or approving for) the protected environment "+req.Environment) {
		return
	}
	d := digest.Digest(req.Digest)
	out, err := p.svc.Promote(r.Context(), req, pr.Subject)
	ev := audit.Event{Action: "promote", Repo: req.Repository, Digest: d, Tag: req.Environment, Request: r}
	switch {
	case err == nil && out.Pending:
		ev.Result, ev.Reason = "ok", promotion.ApprovalReason(len(out.Approvers), out.Needed, req.Environment)
		p.audit.Record(r.Context(), ev)
		problem.JSON(w, http.StatusAccepted, out)
	case err == nil:
		ev.Result, ev.Reason = "ok", promotion.PromotedReason(req.Environment, out.Previous, req.Reason)
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
		p.LookupError(w, r, err)
	}
}

func (p *Handler) evaluate(w http.ResponseWriter, r *http.Request) {
	var req promotion.Request
	if !DecodeJSON(w, r, &req) || !ValidArtifact(w, req.Repository, req.Digest) {
		return
	}
	r, _, ok := p.authz.Require(w, r, "gate.evaluate", req.Repository, auth.PermPull)
	if !ok {
		return
	}
	res, f, err := p.svc.Evaluate(r.Context(), req.Repository, req.Digest, req.Environment)
	if err != nil {
		p.LookupError(w, r, err)
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

func (p *Handler) rollback(w http.ResponseWriter, r *http.Request) {
	var req RollbackRequest
	if !DecodeJSON(w, r, &req) {
		return
	}
	r, pr, ok := p.authz.Require(w, r, "rollback", req.Repository, auth.PermMoveTag)
	if !ok {
		return
	}
	if p.svc.Guarded(req.Repository, req.Environment) &&
		!p.authz.RequireStepUp(w, r, "rollback", req.Repository, "rolling back the protected environment "+req.Environment) {
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
		p.LookupError(w, r, err)
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

func (p *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	if !DecodeJSON(w, r, &req) || !ValidArtifact(w, req.Repository, req.Digest) {
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

// EnvironmentStatus is the answer of GET /api/v1/environments for one
// repository: what the environment tag names now (Current) and every
// position it had (History), and what ran at At (now unless asked) with
// the signed record that proves it (Deployment).
type EnvironmentStatus struct {
	Repository  string                `json:"repository"`
	Environment string                `json:"environment"`
	Current     string                `json:"current"`
	History     []builds.TagEvent     `json:"history"`
	Check       *promotion.Check      `json:"check,omitempty"`
	At          time.Time             `json:"at"`
	Deployment  *promotion.Deployment `json:"deployment,omitempty"`
	// Pending are the promotions into the environment waiting for
	// approvals, newest first.
	Pending []promotion.Pending `json:"pending"`
	// Can says what the caller may do to the environment (the same
	// grants the promotion API checks).
	Can Abilities `json:"can"`
}

// Abilities are what the caller may do to a repository's environment.
type Abilities struct {
	// Promote: promote, approve, reject and roll back (promoter).
	Promote bool `json:"promote"`
	// Revoke: revoke a digest (maintainer).
	Revoke bool `json:"revoke"`
}

// ProjectEnvironment is the answer of GET /api/v1/environments without a
// repository: what every repository of the project ran in the
// environment at At.
type ProjectEnvironment struct {
	Project     string                 `json:"project"`
	Environment string                 `json:"environment"`
	At          time.Time              `json:"at"`
	Deployments []promotion.Deployment `json:"deployments"`
	// Pending are the promotions into the environment that wait for
	// approvals now, by repository (absent with at=: pending is a
	// present state).
	Pending []promotion.Pending `json:"pending,omitempty"`
}

func (p *Handler) environment(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	repo, env, dgst, project := q.Get("repository"), q.Get("environment"), q.Get("digest"), q.Get("project")
	at := time.Now().UTC()
	if q.Has("at") {
		t, err := promotion.ParseTime(q.Get("at"))
		if err != nil {
			detail := "at: " + err.Error()
			if strings.Contains(q.Get("at"), " ") && strings.Contains(q.Get("at"), "T") {
				// A + in a query decodes to a space.
				detail += `; write a "+" of a UTC offset as %2B in a URL`
			}
			problem.Write(w, problem.Invalid, detail)
			return
		}
		at = t
	}
	if env == "" {
		problem.Write(w, problem.Invalid, "give ?environment=ENV and a repository=NAME or project=NAME (or neither, with one project)")
		return
	}
	if repo == "" && !q.Has("repository") {
		if dgst != "" {
			problem.Write(w, problem.Invalid, "a digest is checked against one repository: give repository=NAME")
			return
		}
		p.projectEnvironment(w, r, project, env, at, !q.Has("at"))
		return
	}
	if project != "" {
		problem.Write(w, problem.Invalid, "give repository=NAME or project=NAME, not both")
		return
	}
	if !registry.ValidName(repo) {
		problem.Write(w, problem.InvalidName, "give ?repository=NAME&environment=ENV")
		return
	}
	if dgst != "" {
		if _, err := digest.Parse(dgst); err != nil {
			problem.Write(w, problem.InvalidDigest, err.Error())
			return
		}
	}
	r, pr, ok := p.authz.Require(w, r, "environment.read", repo, auth.PermPull)
	if !ok {
		return
	}
	if _, _, err := p.svc.Lookup(repo, env); err != nil {
		p.LookupError(w, r, err)
		return
	}
	st := EnvironmentStatus{Repository: repo, Environment: env, History: []builds.TagEvent{}, At: at}
	if pr != nil {
		st.Can = Abilities{Promote: pr.Can(repo, auth.PermMoveTag), Revoke: pr.Can(repo, auth.PermManage)}
	}
	pending, err := p.svc.Pending(r.Context(), repo, env)
	if err != nil {
		p.LookupError(w, r, err)
		return
	}
	st.Pending = pending
	st.Current, _ = p.svc.Current(r.Context(), repo, env)
	if h, err := p.index.TagHistory(r.Context(), repo, env); err == nil && h != nil {
		st.History = h
	}
	dep, err := p.svc.At(r.Context(), repo, env, at)
	if err != nil {
		p.LookupError(w, r, err)
		return
	}
	st.Deployment = &dep
	if dgst != "" {
		c, err := p.svc.CheckDeploy(r.Context(), repo, dgst, env)
		if err != nil {
			p.LookupError(w, r, err)
			return
		}
		p.recordCheck(r, c)
		st.Check = &c
	}
	problem.JSON(w, http.StatusOK, st)
}

// recordCheck records a deploy-time check (custody verify --env) in the
// audit log: the verification belongs to the digest's history.
func (p *Handler) recordCheck(r *http.Request, c promotion.Check) {
	ev := audit.Event{Action: promotion.ActionVerify, Repo: c.Repository, Digest: digest.Digest(c.Digest), Tag: c.Environment, Result: "ok", Request: r}
	switch {
	case c.OK:
		ev.Reason = "runs in " + c.Environment + " and its gate holds"
	case c.Revoked:
		ev.Result, ev.Reason = "denied", "revoked"
	case !c.Promoted:
		ev.Result, ev.Reason = "denied", fmt.Sprintf("not what %s runs (it runs %s)", c.Environment, cmp.Or(c.Current, "nothing"))
	default:
		var failed []string
		for _, f := range c.Gate.Failed() {
			failed = append(failed, f.Name)
		}
		ev.Result, ev.Reason = "denied", "the gate no longer holds: "+strings.Join(failed, ", ")
	}
	p.audit.Record(r.Context(), ev)
}

// projectEnvironment answers what every repository of project ran in env
// at at. The caller must be signed in and may read the environment of
// every repository listed (pull, as for one repository).
func (p *Handler) projectEnvironment(w http.ResponseWriter, r *http.Request, project, env string, at time.Time, now bool) {
	r, pr, ok := p.authz.Require(w, r, "environment.read", "", 0)
	if !ok {
		return
	}
	proj, repos, err := p.svc.Repositories(r.Context(), project, env)
	if err != nil {
		if errors.Is(err, promotion.ErrWhichProject) {
			problem.Write(w, problem.Invalid, err.Error())
			return
		}
		p.LookupError(w, r, err)
		return
	}
	var pending []promotion.Pending
	if now {
		if pending, err = p.svc.ProjectPending(r.Context(), proj.Title(), env); err != nil {
			p.LookupError(w, r, err)
			return
		}
	}
	check := slices.Clone(repos)
	for _, pe := range pending {
		check = append(check, pe.Repository)
	}
	for _, repo := range check {
		if !pr.Can(repo, auth.PermPull) {
			// Refused without naming the repository: a caller who may
			// not pull it may not list it either (the catalog needs pull
			// on the registry). The audit log names it.
			detail := fmt.Sprintf("the project-wide answer needs pull on every repository of project %s (%s) that %s held something of; ask for one repository instead", proj.Title(), proj.Repositories, env)
			p.audit.Record(r.Context(), audit.Event{Action: "environment.read", Repo: repo, Result: "denied", Reason: detail, Request: r})
			problem.Write(w, problem.Denied, detail)
			return
		}
	}
	out := ProjectEnvironment{Project: proj.Title(), Environment: env, At: at, Deployments: []promotion.Deployment{}, Pending: pending}
	for _, repo := range repos {
		dep, err := p.svc.At(r.Context(), repo, env, at)
		if err != nil {
			p.LookupError(w, r, err)
			return
		}
		out.Deployments = append(out.Deployments, dep)
	}
	problem.JSON(w, http.StatusOK, out)
}

// history answers every audit-log event about one digest. The server's
// API guard requires the audit permission, as for the audit log itself.
func (p *Handler) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	repo, dgst := q.Get("repository"), q.Get("digest")
	if !registry.ValidName(repo) {
		problem.Write(w, problem.InvalidName, "give ?repository=NAME&digest=sha256:...")
		return
	}
	if _, err := digest.Parse(dgst); err != nil {
		problem.Write(w, problem.InvalidDigest, "give the artifact by digest (sha256:...): "+err.Error())
		return
	}
	h, err := p.svc.History(r.Context(), repo, dgst)
	if err != nil {
		problem.Fail(w, r, p.log, "reading the history failed", err)
		return
	}
	if len(h.Events) == 0 {
		problem.Write(w, problem.NotFound, "the audit log records nothing about "+repo+"@"+dgst)
		return
	}
	problem.JSON(w, http.StatusOK, h)
}

// reject records a promoter's signed rejection of a promotion pending
// approval: the approvals so far stop counting (docs/promotion.md).
func (p *Handler) reject(w http.ResponseWriter, r *http.Request) {
	var req promotion.Request
	if !DecodeJSON(w, r, &req) || !ValidArtifact(w, req.Repository, req.Digest) {
		return
	}
	r, pr, ok := p.authz.Require(w, r, "reject", req.Repository, auth.PermMoveTag)
	if !ok {
		return
	}
	ev := audit.Event{Action: "reject", Repo: req.Repository, Digest: digest.Digest(req.Digest), Tag: req.Environment, Request: r}
	if err := p.svc.Reject(r.Context(), req, pr.Subject); err != nil {
		ev.Result, ev.Reason = "denied", err.Error()
		if errors.Is(err, promotion.ErrNothingPending) {
			p.audit.Record(r.Context(), ev)
			problem.Write(w, problem.Invalid, err.Error())
			return
		}
		ev.Result = "error"
		p.audit.Record(r.Context(), ev)
		p.LookupError(w, r, err)
		return
	}
	ev.Result, ev.Reason = "ok", "rejected the pending promotion into "+req.Environment+": "+req.Reason
	p.audit.Record(r.Context(), ev)
	w.WriteHeader(http.StatusNoContent)
}

// ProjectInfo is one project of GET /api/v1/projects.
type ProjectInfo struct {
	Name         string            `json:"name"`
	Repositories string            `json:"repositories"`
	Environments []EnvironmentInfo `json:"environments"`
}

// EnvironmentInfo is one environment of a project, in promotion order.
type EnvironmentInfo struct {
	Name string `json:"name"`
	// Approvals is how many distinct promoters a promotion needs (0 or
	// 1: the promoter alone).
	Approvals int `json:"approvals"`
}

// projects answers the configured projects and their environments to any
// signed-in caller (the configuration, not what runs).
func (p *Handler) projects(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := p.authz.Require(w, r, "projects.read", "", 0); !ok {
		return
	}
	out := []ProjectInfo{}
	for _, pr := range p.svc.Projects {
		info := ProjectInfo{Name: pr.Title(), Repositories: pr.Repositories, Environments: []EnvironmentInfo{}}
		for _, e := range pr.Environments {
			info.Environments = append(info.Environments, EnvironmentInfo{Name: e.Name, Approvals: e.Approvals})
		}
		out = append(out, info)
	}
	problem.JSON(w, http.StatusOK, out)
}
