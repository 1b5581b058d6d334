// Package assessment rates each repository, and each environment of its
// project, on two scales from the evidence custody stores — not from what
// the configuration claims alone:
//
//   - the five-stage artifact-management maturity model (1 ad hoc ... 5
//     immutable, signed artifacts with audit-ready storage), and
//   - the SLSA build level (0 ... 3).
//
// Every criterion is one row of the Criteria table: its stage or level,
// the sentence of the model it stands for, and the check that reads the
// gathered facts. A criterion reports the evidence behind its verdict
// (counts, an example digest, the configuration value that counts) and,
// when it fails, the exact command that closes the gap. docs/assessment.md
// is generated from the table (TestDocMatchesCriteria).
//
// What counts as a trusted signature or attestation is decided by
// internal/evidence, immutability by internal/policy, retention by
// internal/retention, environments and gates by internal/promotion; this
// package only reads their answers.
package assessment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/tlog"
)

// Schema names the JSON shape of a Report; it changes only with an
// incompatible change of that shape.
const Schema = "https://custody.dev/assessment/v1"

// Bounds on the work of one assessment request.
const (
	// DefaultRepositories and MaxRepositories bound the repositories one
	// request assesses (?limit=); the answer's Next continues after them.
	DefaultRepositories = 20
	MaxRepositories     = 100
	// MaxArtifacts is how many distinct tagged artifacts of a repository
	// are examined: those its environments run, then the newest.
	MaxArtifacts = 10
	// MaxTags is how many tags of a repository are read to find them.
	MaxTags = 1000
	// MaxAuditEntries is how many audit-log entries about a repository are
	// read (the count says "at least" when it is reached).
	MaxAuditEntries = 1000
	// DrillWindow is how recent a restoration drill must be to count: the
	// model asks for one "once or twice a year".
	DrillWindow = 365 * 24 * time.Hour
)

// Models.
const (
	Maturity = "maturity"
	SLSA     = "slsa"
)

// StageNames are the five stages of the maturity model, index = stage-1.
var StageNames = []string{
	"Ad-Hoc or Non-Existent Artifact Management",
	"Environment-Specific Rebuilds",
	"Basic Artifact Storage with Version Control",
	"Pinned Dependencies with Cryptographic Verification",
	"Immutable, Signed Artifacts with Audit-Ready Storage",
}

// Report is the answer of GET /api/v1/assessment.
type Report struct {
	Schema    string    `json:"schema"`
	Generated time.Time `json:"generated"`
	// Project is the project asked for ("" for every repository).
	Project string `json:"project,omitempty"`
	// Server holds the facts that are the same for every repository.
	Server       Server       `json:"server"`
	Repositories []Repository `json:"repositories"`
	// Next, when set, is the repository to continue after (?after=) to
	// assess the rest.
	Next   string `json:"next,omitempty"`
	Limits Limits `json:"limits"`
}

// Limits are the bounds this report was made within.
type Limits struct {
	Repositories int `json:"repositories"`
	Artifacts    int `json:"artifactsPerRepository"`
	Tags         int `json:"tagsPerRepository"`
	AuditEntries int `json:"auditEntriesPerRepository"`
}

// Server are the server-wide facts criteria read.
type Server struct {
	AuthMode      string    `json:"authMode"`
	AuditLog      bool      `json:"auditLog"`
	AuditSize     uint64    `json:"auditLogSize"`
	Checkpoint    uint64    `json:"checkpointSize"`
	ScrubSchedule string    `json:"scrubSchedule,omitempty"`
	LastScrub     time.Time `json:"lastScrub,omitzero"`
	ScrubDamaged  int       `json:"lastScrubDamaged"`
	VulnRecords   int       `json:"vulnerabilityRecords"`
	VulnUpdated   time.Time `json:"vulnerabilityDatabaseUpdated,omitzero"`
	BuilderID     string    `json:"platformBuilderID"`
}

// Repository is the assessment of one repository and of each environment
// of its project.
type Repository struct {
	Assessment
	Project      string       `json:"project,omitempty"`
	Environments []Assessment `json:"environments"`
}

// Assessment is the rating of one subject: a repository as a whole (its
// examined artifacts) or one environment (the artifact it runs).
type Assessment struct {
	Repository  string `json:"repository"`
	Environment string `json:"environment,omitempty"`
	// Digest is what the environment runs ("" when nothing).
	Digest string `json:"digest,omitempty"`
	// Artifacts is how many artifacts were examined, of Tagged found.
	Artifacts int    `json:"artifacts"`
	Tagged    int    `json:"taggedArtifacts"`
	Stage     int    `json:"stage"`
	StageName string `json:"stageName"`
	SLSALevel int    `json:"slsaLevel"`
	// NextStage and NextLevel list the criteria that fail for the next
	// stage and level; each names its command in Criteria.
	NextStage []string `json:"nextStage"`
	NextLevel []string `json:"nextLevel"`
	Criteria  []Result `json:"criteria"`
}

// Result is one criterion's verdict on one subject.
type Result struct {
	ID    string `json:"id"`
	Model string `json:"model"`
	// Rank is the stage (maturity) or level (slsa) the criterion belongs to.
	Rank     int      `json:"rank"`
	Title    string   `json:"title"`
	Pass     bool     `json:"pass"`
	Evidence Evidence `json:"evidence"`
	// Command closes the gap (when Pass is false), with Setting the
	// configuration it needs, if any.
	Command string `json:"command,omitempty"`
	Setting string `json:"setting,omitempty"`
}

// Evidence is what a criterion found.
type Evidence struct {
	Summary string `json:"summary"`
	// Count of Total examined met the criterion.
	Count int `json:"count"`
	Total int `json:"total"`
	// Example is a digest: one that fails when the criterion fails (the
	// one Command acts on), else one that passes.
	Example string `json:"example,omitempty"`
	// Config is the configuration value that counts, if any.
	Config string `json:"config,omitempty"`
}

// Sources is what an assessment reads.
type Sources struct {
	Meta       meta.Store
	Locks      retention.Store
	Policies   *policy.Engine
	Promotions *promotion.Service // nil without projects
	Trust      *evidence.Trust
	// Remote reaches the registry (the server's in-process client), named
	// Host in the references evidence is read from.
	Remote []remote.Option
	Host   string
	Audit  *tlog.Log
	Config config.Config
	// LastScrub reports the last in-server scrub (ok false: none yet).
	LastScrub func() (at time.Time, damaged int, ok bool)
	// Vuln reports the vulnerability database's record count and update.
	Vuln func(ctx context.Context) (records int, updated time.Time, err error)
	Now  func() time.Time
}

// Query asks for an assessment.
type Query struct {
	// Project selects the repositories of one project (its name or
	// repositories pattern); "" assesses every repository.
	Project string
	// After continues a previous report (its Next); Limit caps the
	// repositories (default DefaultRepositories, at most MaxRepositories).
	After string
	Limit int
	// Host names the registry in the commands of the report (the host the
	// client reached).
	Host string
}

// Assess rates the repositories Query selects, within the Limits.
func (s *Sources) Assess(ctx context.Context, q Query) (Report, error) {
	now := time.Now().UTC()
	if s.Now != nil {
		now = s.Now().UTC()
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultRepositories
	}
	limit = min(limit, MaxRepositories)
	rep := Report{Schema: Schema, Generated: now, Project: q.Project, Repositories: []Repository{},
		Limits: Limits{Repositories: limit, Artifacts: MaxArtifacts, Tags: MaxTags, AuditEntries: MaxAuditEntries}}
	// project, when asked for, selects the repositories it claims (its
	// pattern matches and no earlier project's does).
	var project *promotion.Project
	if q.Project != "" {
		if s.Promotions == nil {
			return rep, fmt.Errorf("%w named %q: no projects are configured", promotion.ErrNoProject, q.Project)
		}
		p, err := s.Promotions.ProjectNamed(q.Project)
		if err != nil {
			return rep, err
		}
		project = p
	}
	selected := func(repo string) bool { return project == nil || s.Promotions.ProjectOf(repo) == project }
	srv, err := s.server(ctx)
	if err != nil {
		return rep, err
	}
	rep.Server = srv
	// Page through the repository names until limit of them match.
	after := q.After
	var repos []string
	for len(repos) < limit {
		page, err := s.Meta.Repositories(ctx, after, 1000)
		if err != nil {
			return rep, err
		}
		for _, r := range page {
			after = r
			if selected(r) {
				repos = append(repos, r)
				if len(repos) == limit {
					break
				}
			}
		}
		if len(page) < 1000 {
			break
		}
	}
	if len(repos) == limit {
		// Another repository to assess follows (names only are read):
		// the client continues after the last one assessed.
		more, err := s.nextMatch(ctx, repos[len(repos)-1], selected)
		if err != nil {
			return rep, err
		}
		if more {
			rep.Next = repos[len(repos)-1]
		}
	}
	host := q.Host
	if host == "" {
		host = s.Host
	}
	for _, r := range repos {
		f, err := s.gather(ctx, r, srv, now, host)
		if err != nil {
			return rep, fmt.Errorf("assessing %s: %w", r, err)
		}
		rep.Repositories = append(rep.Repositories, f.assess())
	}
	return rep, nil
}

// nextMatch reports whether a repository after last is selected.
func (s *Sources) nextMatch(ctx context.Context, last string, selected func(string) bool) (bool, error) {
	for {
		page, err := s.Meta.Repositories(ctx, last, 1000)
		if err != nil {
			return false, err
		}
		for _, r := range page {
			if selected(r) {
				return true, nil
			}
			last = r
		}
		if len(page) < 1000 {
			return false, nil
		}
	}
}

// server gathers the server-wide facts.
func (s *Sources) server(ctx context.Context) (Server, error) {
	c := s.Config
	srv := Server{AuthMode: c.Auth.Mode, AuditLog: !c.Audit.DisableUnsafe, BuilderID: c.Signing.BuilderID}
	if srv.AuthMode == "" {
		srv.AuthMode = "builtin"
	}
	if srv.BuilderID == "" {
		srv.BuilderID = "https://custody.dev/builders/platform/v1"
	}
	if c.Scrub.Schedule > 0 {
		srv.ScrubSchedule = time.Duration(c.Scrub.Schedule).String()
	}
	if s.LastScrub != nil {
		if at, n, ok := s.LastScrub(); ok {
			srv.LastScrub, srv.ScrubDamaged = at.UTC(), n
		}
	}
	if s.Audit != nil {
		srv.AuditSize = s.Audit.Size()
		if cp, err := s.Audit.Latest(ctx); err == nil {
			srv.Checkpoint = cp.Size
		} else if !errors.Is(err, tlog.ErrNotFound) {
			return srv, err
		}
	}
	if s.Vuln != nil {
		n, at, err := s.Vuln(ctx)
		if err != nil {
			return srv, err
		}
		srv.VulnRecords, srv.VulnUpdated = n, at.UTC()
	}
	return srv, nil
}

// artifact is one examined artifact and its evidence.
type artifact struct {
	Digest      string
	Tags        []string
	Annotations map[string]string
	Created     time.Time
	Set         *evidence.Set
	Lock        *retention.Lock
}

// environment is one environment of the repository's project.
type environment struct {
	Env    promotion.Environment
	Last   bool // the project's last environment (production)
	Digest string
}

// facts is everything the criteria read about one repository.
type facts struct {
	now     time.Time
	host    string
	repo    string
	server  Server
	project *promotion.Project
	envs    []environment
	// arts are the examined artifacts (environments' first), tagged the
	// number of distinct tagged artifacts found.
	arts   []*artifact
	tagged int
	// audit counts the audit entries about the repository by action;
	// auditTotal is their sum (at most MaxAuditEntries).
	audit      map[string]int
	auditTotal int
	policies   *policy.Engine
	policy     policy.Policy
	pattern    string
}

func (s *Sources) gather(ctx context.Context, repo string, srv Server, now time.Time, host string) (*facts, error) {
	f := &facts{now: now, host: host, repo: repo, server: srv, policies: s.Policies, audit: map[string]int{}}
	if s.Policies != nil {
		f.policy, f.pattern = s.Policies.Effective(repo)
	}
	f.project = s.Promotions.ProjectOf(repo)
	tags, err := s.Meta.Tags(ctx, repo, "", MaxTags)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return nil, err
	}
	byDigest := map[string]*artifact{}
	var all []*artifact
	for _, t := range tags {
		if sign.IsEvidenceTag(t) {
			continue
		}
		d, err := s.Meta.ResolveTag(ctx, repo, t)
		if err != nil {
			continue // moved or deleted since listed
		}
		a := byDigest[d.String()]
		if a == nil {
			a = &artifact{Digest: d.String()}
			if m, err := s.Meta.GetManifest(ctx, repo, d); err == nil {
				a.Annotations, a.Created = m.Annotations, m.Created
			}
			byDigest[a.Digest] = a
			all = append(all, a)
		}
		a.Tags = append(a.Tags, t)
	}
	f.tagged = len(all)
	// The environments' artifacts first, then the newest.
	var chosen []*artifact
	if f.project != nil {
		for i, e := range f.project.Environments {
			env := environment{Env: e, Last: i == len(f.project.Environments)-1}
			for _, a := range all {
				if slices.Contains(a.Tags, e.Name) {
					env.Digest = a.Digest
					if !slices.Contains(chosen, a) {
						chosen = append(chosen, a)
					}
				}
			}
			f.envs = append(f.envs, env)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Created.After(all[j].Created) })
	for _, a := range all {
		if len(chosen) >= MaxArtifacts {
			break
		}
		if !slices.Contains(chosen, a) {
			chosen = append(chosen, a)
		}
	}
	for _, a := range chosen {
		ref, err := name.NewDigest(s.Host+"/"+repo+"@"+a.Digest, name.Insecure)
		if err != nil {
			return nil, err
		}
		a.Set = evidence.Collect(ctx, ref, s.Trust, sign.Options{Remote: append(slices.Clone(s.Remote), remote.WithContext(ctx))})
		if s.Locks != nil {
			if l, err := s.Locks.GetLock(ctx, repo, digest.Digest(a.Digest)); err == nil {
				a.Lock = &l
			} else if !errors.Is(err, retention.ErrNotFound) {
				return nil, err
			}
		}
	}
	f.arts = chosen
	if s.Audit != nil && srv.AuditLog {
		leaves, err := s.Audit.Search(ctx, tlog.Query{Repo: repo, Limit: MaxAuditEntries})
		if err != nil {
			return nil, err
		}
		for _, l := range leaves {
			var e struct {
				Action string `json:"action"`
				Result string `json:"result"`
			}
			if json.Unmarshal(l.Entry, &e) == nil && e.Result == "ok" {
				f.audit[e.Action]++
			}
		}
		f.auditTotal = len(leaves)
	}
	return f, nil
}

// assess evaluates every criterion for the repository and each of its
// environments.
func (f *facts) assess() Repository {
	r := Repository{Environments: []Assessment{}}
	if f.project != nil {
		r.Project = f.project.Title()
	}
	r.Assessment = f.rate(subject{facts: f, arts: f.arts})
	for _, e := range f.envs {
		sub := subject{facts: f, env: &e}
		if a := f.artifact(e.Digest); a != nil {
			sub.arts = []*artifact{a}
		}
		r.Environments = append(r.Environments, f.rate(sub))
	}
	return r
}

func (f *facts) artifact(d string) *artifact {
	for _, a := range f.arts {
		if a.Digest == d {
			return a
		}
	}
	return nil
}

// subject is what one Assessment rates: the repository's examined
// artifacts (env nil), or one environment and what it runs.
type subject struct {
	*facts
	env  *environment
	arts []*artifact
}

// rate runs the criteria over a subject and derives stage and level.
func (f *facts) rate(s subject) Assessment {
	a := Assessment{Repository: f.repo, Artifacts: len(s.arts), Tagged: f.tagged, Criteria: []Result{}, NextStage: []string{}, NextLevel: []string{}}
	if s.env != nil {
		a.Environment, a.Digest, a.Tagged = s.env.Env.Name, s.env.Digest, min(len(s.arts), 1)
	}
	fail := map[string]map[int][]string{Maturity: {}, SLSA: {}}
	for _, c := range Criteria {
		res := c.check(s)
		res.ID, res.Model, res.Rank, res.Title = c.ID, c.Model, c.Rank, c.Title
		if res.Pass {
			res.Command, res.Setting = "", ""
		} else {
			fail[c.Model][c.Rank] = append(fail[c.Model][c.Rank], c.ID)
		}
		a.Criteria = append(a.Criteria, res)
	}
	// A stage (level) is reached when every criterion of it and of every
	// stage (level) below passes.
	a.Stage = 1
	for st := 2; st <= len(StageNames); st++ {
		if len(fail[Maturity][st]) > 0 {
			a.NextStage = fail[Maturity][st]
			break
		}
		a.Stage = st
	}
	a.StageName = StageNames[a.Stage-1]
	for lv := 1; lv <= 3; lv++ {
		if len(fail[SLSA][lv]) > 0 {
			a.NextLevel = fail[SLSA][lv]
			break
		}
		a.SLSALevel = lv
	}
	return a
}

// ref is the reference of digest d in the report's commands.
func (s subject) ref(d string) string {
	if d == "" {
		d = "sha256:..."
	}
	return s.host + "/" + s.repo + "@" + d
}

// each applies ok to every examined artifact and summarises: the count
// that passes, an example (the first failing digest, else the first), and
// the detail ok gave for the example.
func (s subject) each(ok func(a *artifact) (bool, string)) (Evidence, bool) {
	ev := Evidence{Total: len(s.arts)}
	var failDetail, passDetail, failDigest, passDigest string
	for _, a := range s.arts {
		good, detail := ok(a)
		if good {
			ev.Count++
			if passDigest == "" {
				passDigest, passDetail = a.Digest, detail
			}
		} else if failDigest == "" {
			failDigest, failDetail = a.Digest, detail
		}
	}
	pass := ev.Total > 0 && ev.Count == ev.Total
	if pass {
		ev.Example, ev.Summary = passDigest, passDetail
	} else {
		ev.Example, ev.Summary = failDigest, failDetail
	}
	ev.Summary = fmt.Sprintf("%d of %d artifact(s)", ev.Count, ev.Total) + suffix(ev.Summary)
	if ev.Total == 0 {
		ev.Summary = "no artifact to examine"
	}
	return ev, pass
}

func suffix(detail string) string {
	if detail == "" {
		return ""
	}
	return "; e.g. " + detail
}

// envTag reports whether tag is an environment of the repository's project.
func (s subject) envTag(tag string) bool {
	return s.project != nil && slices.ContainsFunc(s.project.Environments, func(e promotion.Environment) bool { return e.Name == tag })
}

// versionTags are an artifact's tags that name a version: not an
// environment, not "latest".
func (s subject) versionTags(a *artifact) []string {
	var out []string
	for _, t := range a.Tags {
		if t != "latest" && !s.envTag(t) {
			out = append(out, t)
		}
	}
	return out
}

// environments returns the environments the subject covers: its own, or
// every environment of the project.
func (s subject) environments() []environment {
	if s.env != nil {
		return []environment{*s.env}
	}
	return s.envs
}

// promotionInto returns the newest counting promotion record of
// repo@a into env.
func promotionInto(a *artifact, repo, env string) *evidence.Record {
	if a == nil {
		return nil
	}
	var last *evidence.Record
	recs := a.Set.PromotionsOf(repo)
	for i := range recs {
		if recs[i].Environment == env {
			last = &recs[i]
		}
	}
	return last
}
