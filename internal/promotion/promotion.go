// Package promotion moves one artifact digest through a project's ordered
// environments (dev -> test -> prod) without copying or rebuilding it.
//
// An environment of a repository is a tag named after it (apps/web:prod),
// which only promotions move; deployments pull it, or the digest it names.
// Every promotion, approval, rollback and revocation is a signed in-toto
// attestation the server attaches to the artifact (predicate types below),
// so the history travels with the artifact and verifies offline, and is an
// audit log entry. A promotion first evaluates the environment's gate
// (internal/gate) over verified facts only, built from the evidence
// internal/evidence collects (signatures by keys valid when they signed,
// attestations by trusted keys, prior promotions) and vulnerability
// findings. See docs/promotion.md.
package promotion

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/repopattern"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/timestamp"
)

// The records the server writes are evidence.Record, evidence.Approval and
// evidence.Revocation attestations.

// Environment is one stage of a project.
type Environment struct {
	Name string
	// Gate decides entry; nil admits anything (still recorded).
	Gate *gate.Gate
	// Approvals is how many distinct approvers a promotion needs (0 or 1:
	// the promoter alone).
	Approvals int
	// Protected marks the environment protected although it needs no
	// approvals (see Guarded).
	Protected bool
}

// Guarded reports whether the environment is protected: it needs an
// approval, or the configuration says so. Promotions and approvals to it
// need a recent second factor (step-up, docs/security.md).
func (e Environment) Guarded() bool { return e.Approvals >= 1 || e.Protected }

// Guarded reports whether environment env of repo is protected (false
// for one that does not exist: the request fails on that anyway).
func (s *Service) Guarded(repo, env string) bool {
	p, i, err := s.Lookup(repo, env)
	return err == nil && p.Environments[i].Guarded()
}

// Project is a repository pattern and its ordered environments.
type Project struct {
	// Name names the project (optional; Title falls back to Repositories).
	Name         string
	Repositories string
	Environments []Environment
}

// Findings reports vulnerability and pinning findings for an artifact from
// its verified SBOMs and waivers (internal/vuln). Optional.
type Findings interface {
	Findings(ctx context.Context, artifact gate.Artifact, sboms [][]byte, vex [][]byte) ([]gate.Finding, error)
}

// Service promotes, rolls back and revokes.
type Service struct {
	Projects []Project
	// Remote reaches the registry holding the artifacts (the server's
	// in-process client) and Host names it in references.
	Remote []remote.Option
	Host   string
	// Signer signs the server's attestations with a key of its ring.
	Signer crypto.Signer
	// Timestamper, when set, time-stamps them (the ring's authority).
	Timestamper timestamp.Stamper
	// Trust decides which signatures, attestations and records count:
	// the server's trust root and any configured extra keys, each inside
	// its validity window; records (promotions, approvals, revocations)
	// only by the server's own keys, active or retired, so a key rotation
	// does not forget a revocation.
	Trust *evidence.Trust
	// Findings, when set, supplies vulnerability findings.
	Findings Findings
	// Tags lists what environment tags pointed at (the candidates of
	// At); Audit, when set, finds the audit-log entry of each record.
	Tags  TagHistories
	Audit AuditSearch
	Now   func() time.Time
}

// Errors.
var (
	ErrNoProject = errors.New("no project covers this repository")
	ErrNoEnv     = errors.New("no such environment")
	ErrRevoked   = errors.New("artifact revoked")
	ErrGate      = errors.New("gate refused")
	// ErrNoRollback: the environment holds no earlier digest to go back to.
	ErrNoRollback = errors.New("nothing to roll back")
	// ErrNoReason: a revocation must say why.
	ErrNoReason = errors.New("a revocation needs a reason")
)

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// ProjectOf returns the project repo belongs to: the first whose
// repository pattern matches it, or nil (also on a nil Service).
func (s *Service) ProjectOf(repo string) *Project {
	if s == nil {
		return nil
	}
	for i := range s.Projects {
		if repopattern.Match(s.Projects[i].Repositories, repo) {
			return &s.Projects[i]
		}
	}
	return nil
}

// Lookup returns the project of repo and the index of env in it.
func (s *Service) Lookup(repo, env string) (*Project, int, error) {
	p := s.ProjectOf(repo)
	if p == nil {
		return nil, -1, fmt.Errorf("%w %s: add it to environments in the config", ErrNoProject, repo)
	}
	for j, e := range p.Environments {
		if e.Name == env {
			return p, j, nil
		}
	}
	names := make([]string, len(p.Environments))
	for j, e := range p.Environments {
		names[j] = e.Name
	}
	return p, -1, fmt.Errorf("%w %q for %s (environments: %s)", ErrNoEnv, env, repo, strings.Join(names, " -> "))
}

// IsEnvironmentTag reports whether tag is an environment of repo: only
// promotions may move it.
func (s *Service) IsEnvironmentTag(repo, tag string) bool {
	if p := s.ProjectOf(repo); p != nil {
		return slices.ContainsFunc(p.Environments, func(e Environment) bool { return e.Name == tag })
	}
	return false
}

func (s *Service) ref(repo, dgst string) (name.Digest, error) {
	return name.NewDigest(s.Host+"/"+repo+"@"+dgst, name.Insecure)
}

func (s *Service) opts(ctx context.Context) sign.Options {
	return sign.Options{Remote: append(slices.Clone(s.Remote), remote.WithContext(ctx)), Timestamper: s.Timestamper}
}

// Facts are what a gate sees of an artifact, plus the custody records.
type Facts struct {
	Input      gate.Input
	Approvals  []evidence.Approval
	Rejections []evidence.Rejection
	Promotions []evidence.Record
	Revoked    *evidence.Revocation
	Problems   []string // attestations that did not verify (not seen by gates)
	// Evidence is everything verified about the digest.
	Evidence *evidence.Set
	// Manifest is the artifact's manifest (or index) as stored.
	Manifest []byte
}

// Gather collects the verified facts about repo@dgst.
func (s *Service) Gather(ctx context.Context, repo, dgst string) (*Facts, error) {
	d, err := s.ref(repo, dgst)
	if err != nil {
		return nil, err
	}
	o := s.opts(ctx)
	desc, err := remote.Get(d, o.Remote...)
	if err != nil {
		return nil, fmt.Errorf("artifact %s@%s: %w", repo, dgst, err)
	}
	set := evidence.Collect(ctx, d, s.Trust, o)
	if err := set.SignatureErr; err != nil && !errors.Is(err, sign.ErrNoSignature) && !errors.Is(err, sign.ErrNotVerified) {
		return nil, err
	}
	if set.AttestationErr != nil {
		return nil, set.AttestationErr
	}
	f := &Facts{Evidence: set, Approvals: set.ApprovalsOf(repo), Rejections: set.Rejections, Promotions: set.PromotionsOf(repo), Revoked: set.Revoked(), Manifest: desc.Manifest}
	var inputErrs []string
	f.Input, inputErrs = InputOf(repo, set, s.now())
	f.Input.Artifact.MediaType = string(desc.MediaType)
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(desc.Manifest, &m) == nil && m.Annotations != nil {
		f.Input.Artifact.Annotations = m.Annotations
	}
	for _, a := range set.Attestations {
		if !a.Trusted() {
			f.Problems = append(f.Problems, a.Err.Error())
		}
	}
	if s.Findings != nil {
		fs, err := s.Findings.Findings(ctx, f.Input.Artifact, set.Predicates(evidence.SBOMTypes...), set.Predicates(evidence.PredicateOpenVEX))
		if err != nil {
			return nil, fmt.Errorf("vulnerability findings: %w", err)
		}
		f.Input.Findings = fs
	}
	f.Problems = append(f.Problems, inputErrs...)
	return f, nil
}

// InputOf builds what a gate sees of repo@set.Digest from its evidence:
// the signatures and attestations that count (the server's records are
// not attestations to a gate: they are Promotions and Revoked), and the
// prior promotions. It returns the trusted attestations the gate could
// not read (a provenance or test result that does not parse), which a
// gate then does not see.
func InputOf(repo string, set *evidence.Set, now time.Time) (gate.Input, []string) {
	in := gate.Input{
		Artifact:     gate.Artifact{Digest: set.Digest, Repository: repo, Annotations: map[string]string{}, Tags: []string{}},
		Signatures:   []gate.Signature{},
		Notation:     []gate.NotationSignature{},
		Attestations: map[string][]gate.Attestation{},
		Findings:     []gate.Finding{},
		Promotions:   []gate.Promotion{},
		Sources:      []gate.Source{},
		Now:          now,
		Revoked:      set.Revoked() != nil,
	}
	for _, sg := range set.TrustedSignatures() {
		gs := gate.SignatureOf(sg.Verified)
		gs.SignedAt = sg.SignedAt
		gs.Certificate = map[string]string{}
		if sg.Identity != nil {
			gs.Identity, gs.Issuer, gs.Certificate = sg.Identity.Subject, sg.Identity.Issuer, sg.Identity.Claims()
		}
		in.Signatures = append(in.Signatures, gs)
	}
	for _, n := range set.TrustedNotation() {
		in.Notation = append(in.Notation, gate.NotationSignature{Identity: n.Identity, Issuer: n.Issuer, Format: n.Format, Policy: n.Policy, SignedAt: n.SignedAt})
	}
	var problems []string
	for _, a := range set.Attestations {
		if !a.Trusted() || a.IsRecord() {
			continue
		}
		if err := in.AddAttestation(a.Verified); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, r := range set.PromotionsOf(repo) {
		in.Promotions = append(in.Promotions, gate.Promotion{Environment: r.Environment, At: r.At, By: r.By, Digest: r.Digest})
	}
	for _, v := range set.SourcesOf(repo) {
		in.Sources = append(in.Sources, gate.Source{Commit: v.Commit, Method: v.Method, Principals: append([]string{}, v.Principals...),
			KeyFingerprint: v.KeyFingerprint, Committer: v.Committer, VerifiedAt: v.VerifiedAt})
	}
	return in, problems
}

// Evaluate runs env's gate on repo@dgst without changing anything
// (custody policy test).
func (s *Service) Evaluate(ctx context.Context, repo, dgst, env string) (gate.Result, *Facts, error) {
	p, i, err := s.Lookup(repo, env)
	if err != nil {
		return gate.Result{}, nil, err
	}
	f, err := s.Gather(ctx, repo, dgst)
	if err != nil {
		return gate.Result{}, nil, err
	}
	f.Input.Environment = gate.Environment{Name: env}
	if i > 0 {
		f.Input.Environment.Previous = p.Environments[i-1].Name
	}
	g := p.Environments[i].Gate
	if g == nil {
		return gate.Result{Pass: !f.Input.Revoked, Rules: []gate.RuleResult{{Name: "not_revoked", Pass: !f.Input.Revoked, Message: "the artifact is not revoked"}}}, f, nil
	}
	res := g.Evaluate(ctx, f.Input)
	if f.Input.Revoked && res.Pass {
		// Revocation is absolute, whatever the gate says.
		res.Pass = false
		res.Rules = append(res.Rules, gate.RuleResult{Name: "not_revoked", Message: "the artifact is not revoked"})
	}
	return res, f, nil
}

// Request asks for a promotion.
type Request struct {
	Repository  string `json:"repository"`
	Digest      string `json:"digest"`
	Environment string `json:"environment"`
	Reason      string `json:"reason,omitempty"`
}

// Outcome is the result of Promote.
type Outcome struct {
	// Promoted is true when the environment now points at the digest.
	Promoted bool `json:"promoted"`
	// Pending is true when the gate passed but more approvals are needed.
	Pending   bool              `json:"pending,omitempty"`
	Approvers []string          `json:"approvers,omitempty"`
	Needed    int               `json:"approvalsNeeded,omitempty"`
	Previous  string            `json:"previousDigest,omitempty"`
	Gate      gate.Result       `json:"gate"`
	Record    *evidence.Record  `json:"record,omitempty"`
	Problems  []string          `json:"problems,omitempty"`
	Tags      map[string]string `json:"-"`
}

// Promote evaluates the gate of req.Environment and, when it passes (and
// enough distinct approvers approved), records a signed promotion and
// moves the environment tag. by is the promoter's identity.
func (s *Service) Promote(ctx context.Context, req Request, by string) (Outcome, error) {
	p, i, err := s.Lookup(req.Repository, req.Environment)
	if err != nil {
		return Outcome{}, err
	}
	res, f, err := s.Evaluate(ctx, req.Repository, req.Digest, req.Environment)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Gate: res, Problems: f.Problems}
	if f.Revoked != nil {
		return out, fmt.Errorf("%w by %s: %s", ErrRevoked, f.Revoked.By, f.Revoked.Reason)
	}
	if !res.Pass {
		return out, ErrGate
	}
	env := p.Environments[i]
	if env.Approvals > 1 {
		approvers := f.Approvers(env.Name)
		if !slices.Contains(approvers, by) {
			if err := s.attach(ctx, req.Repository, req.Digest, evidence.PredicateApproval, evidence.Approval{Environment: env.Name, Repository: req.Repository, By: by, Reason: req.Reason, At: s.now()}); err != nil {
				return out, err
			}
			approvers = append(approvers, by)
		}
		out.Approvers, out.Needed = approvers, env.Approvals
		if len(approvers) < env.Approvals {
			out.Pending = true
			return out, nil
		}
	}
	prev, _ := s.Current(ctx, req.Repository, env.Name)
	rec := evidence.Record{Environment: env.Name, Repository: req.Repository, Digest: req.Digest, Previous: prev, By: by,
		Approvers: out.Approvers, Reason: req.Reason, At: s.now(), Gate: res.Rules}
	if err := s.move(ctx, req.Repository, req.Digest, env.Name, rec); err != nil {
		return out, err
	}
	out.Promoted, out.Previous, out.Record = true, prev, &rec
	return out, nil
}

// Approvers are the distinct people whose approval of a promotion into
// env counts: those recorded after the latest rejection for env (a
// rejection withdraws the approvals before it), in the order recorded.
func (f *Facts) Approvers(env string) []string {
	var since time.Time
	for _, r := range f.Rejections {
		if r.Environment == env && r.At.After(since) {
			since = r.At
		}
	}
	approvers := []string{}
	for _, a := range f.Approvals {
		if a.Environment == env && a.At.After(since) && !slices.Contains(approvers, a.By) {
			approvers = append(approvers, a.By)
		}
	}
	return approvers
}

// ErrNothingPending: a rejection needs a pending promotion (approvals
// that do not yet make up the number the environment needs).
var ErrNothingPending = errors.New("no promotion is pending approval")

// Reject records by's signed rejection of the promotion of req.Digest
// into req.Environment that is pending approval: the approvals recorded
// so far no longer count, so the promotion starts again from none.
// Nothing moves.
func (s *Service) Reject(ctx context.Context, req Request, by string) error {
	p, i, err := s.Lookup(req.Repository, req.Environment)
	if err != nil {
		return err
	}
	env := p.Environments[i]
	f, err := s.Gather(ctx, req.Repository, req.Digest)
	if err != nil {
		return err
	}
	if env.Approvals < 2 || len(f.Approvers(env.Name)) == 0 {
		return fmt.Errorf("%w: %s@%s into %s", ErrNothingPending, req.Repository, req.Digest, env.Name)
	}
	return s.attach(ctx, req.Repository, req.Digest, evidence.PredicateRejection, evidence.Rejection{Environment: env.Name, By: by, Reason: req.Reason, At: s.now()})
}

// move attaches the promotion record and points the environment tag at
// the digest.
func (s *Service) move(ctx context.Context, repo, dgst, env string, rec evidence.Record) error {
	if err := s.attach(ctx, repo, dgst, evidence.PredicatePromotion, rec); err != nil {
		return err
	}
	d, err := s.ref(repo, dgst)
	if err != nil {
		return err
	}
	o := s.opts(ctx)
	desc, err := remote.Get(d, o.Remote...)
	if err != nil {
		return err
	}
	tag := d.Context().Tag(env)
	return remote.Tag(tag, desc, o.Remote...)
}

// Attest signs pred as an attestation of repo@dgst with the server key
// and attaches it (scan results, for instance).
func (s *Service) Attest(ctx context.Context, repo, dgst, predicateType string, pred any) error {
	return s.attach(ctx, repo, dgst, predicateType, pred)
}

// attach signs pred as an attestation of repo@dgst with the server key.
func (s *Service) attach(ctx context.Context, repo, dgst, predicateType string, pred any) error {
	if s.Signer == nil {
		return errors.New("the server has no unlocked signing key: promotions are signed (custody key create; CUSTODY_KEY_PASSWORD)")
	}
	b, err := json.Marshal(pred)
	if err != nil {
		return err
	}
	stmt, err := attest.StatementFor(repo, dgst, predicateType, b)
	if err != nil {
		return err
	}
	env, err := attest.Sign(ctx, s.Signer, "", stmt)
	if err != nil {
		return err
	}
	d, err := s.ref(repo, dgst)
	if err != nil {
		return err
	}
	_, err = sign.Attach(ctx, d, env, predicateType, s.opts(ctx))
	return err
}

// Current returns the digest env's tag points at in repo, or "".
func (s *Service) Current(ctx context.Context, repo, env string) (string, error) {
	t, err := name.NewTag(s.Host+"/"+repo+":"+env, name.Insecure)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(t, s.opts(ctx).Remote...)
	if err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}

// Rollback points env back at the digest it held before the current one,
// recorded like a promotion (the older artifact is still stored: retention
// keeps it). The gate is not evaluated again, but a revoked artifact is
// refused. history lists the digests env pointed at, oldest first.
func (s *Service) Rollback(ctx context.Context, repo, env string, history []string, by, reason string) (evidence.Record, error) {
	if _, i, err := s.Lookup(repo, env); err != nil || i < 0 {
		return evidence.Record{}, err
	}
	cur, err := s.Current(ctx, repo, env)
	if err != nil {
		return evidence.Record{}, fmt.Errorf("%w: environment %s of %s holds nothing: %w", ErrNoRollback, env, repo, err)
	}
	target := ""
	for i := len(history) - 1; i >= 0; i-- {
		if history[i] != cur {
			target = history[i]
			break
		}
	}
	if target == "" {
		return evidence.Record{}, fmt.Errorf("%w: environment %s of %s has no earlier digest than %s", ErrNoRollback, env, repo, cur)
	}
	f, err := s.Gather(ctx, repo, target)
	if err != nil {
		return evidence.Record{}, err
	}
	if f.Revoked != nil {
		return evidence.Record{}, fmt.Errorf("%w: the previous digest %s was revoked by %s: %s", ErrRevoked, target, f.Revoked.By, f.Revoked.Reason)
	}
	rec := evidence.Record{Environment: env, Repository: repo, Digest: target, Previous: cur, By: by, Reason: reason, At: s.now(), Rollback: true}
	return rec, s.move(ctx, repo, target, env, rec)
}

// Revoke attaches a revocation: the digest fails every later gate,
// promotion, rollback and environment check.
func (s *Service) Revoke(ctx context.Context, repo, dgst, by, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return ErrNoReason
	}
	return s.attach(ctx, repo, dgst, evidence.PredicateRevocation, evidence.Revocation{By: by, Reason: reason, At: s.now()})
}

// Check says whether repo@dgst may run in env now: the environment points
// at it, it is not revoked, and its gate still holds.
type Check struct {
	Repository  string      `json:"repository"`
	Digest      string      `json:"digest"`
	Environment string      `json:"environment"`
	Current     string      `json:"current"`
	Promoted    bool        `json:"promoted"`
	Revoked     bool        `json:"revoked"`
	Gate        gate.Result `json:"gate"`
	OK          bool        `json:"ok"`
}

// CheckDeploy is custody verify --env: exits 0 only if this digest is
// currently in env and the gate still passes.
func (s *Service) CheckDeploy(ctx context.Context, repo, dgst, env string) (Check, error) {
	c := Check{Repository: repo, Digest: dgst, Environment: env}
	cur, err := s.Current(ctx, repo, env)
	if err == nil {
		c.Current = cur
	}
	res, f, err := s.Evaluate(ctx, repo, dgst, env)
	if err != nil {
		return c, err
	}
	c.Gate, c.Revoked = res, f.Revoked != nil
	c.Promoted = c.Current == dgst
	c.OK = c.Promoted && !c.Revoked && res.Pass
	return c, nil
}
