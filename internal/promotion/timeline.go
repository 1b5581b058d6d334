package promotion

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/repopattern"
	"github.com/custody-dev/custody/internal/tlog"
)

// TagHistories lists every digest a tag pointed at, and the repositories
// where a tag ever pointed at something (builds.Index, which the metadata
// stores implement): the candidates of a point-in-time answer. The
// answer itself comes from the signed records.
type TagHistories interface {
	TagHistory(ctx context.Context, repo, tag string) ([]builds.TagEvent, error)
	TaggedRepositories(ctx context.Context, tag string) ([]string, error)
}

// AuditSearch finds audit-log entries (tlog.Log).
type AuditSearch interface {
	Search(ctx context.Context, q tlog.Query) ([]tlog.Leaf, error)
}

// ErrWhichProject: several projects are configured and the request did
// not name one.
var ErrWhichProject = errors.New("several projects: name one")

// Deployment is what one repository ran in one environment at an instant,
// and the signed record that proves it.
type Deployment struct {
	Repository  string           `json:"repository"`
	Environment string           `json:"environment"`
	Digest      string           `json:"digest,omitempty"` // "" when nothing ran then
	Since       time.Time        `json:"since,omitzero"`   // the proving record's At
	Record      *evidence.Record `json:"record,omitempty"` // the promotion/rollback record (signed predicate)
	AuditIndex  *uint64          `json:"auditIndex,omitempty"`
}

// At returns what repo ran in env at instant t: the digest of the
// promotion or rollback record into env with the latest At not after t,
// among the records that count (evidence.Collect: signed by a recording
// key of the trust root) on the digests env's tag ever pointed at. The
// tag and its history only name the candidates; without a record that
// counts nothing ran. AuditIndex is the audit-log entry of that
// promotion or rollback, when the service can search the log.
func (s *Service) At(ctx context.Context, repo, env string, t time.Time) (Deployment, error) {
	if _, i, err := s.Lookup(repo, env); err != nil || i < 0 {
		return Deployment{}, err
	}
	recs, err := s.records(ctx, repo, env, t)
	if err != nil {
		return Deployment{}, err
	}
	dep := Deployment{Repository: repo, Environment: env}
	for i := len(recs) - 1; i >= 0; i-- {
		if r := recs[i]; !r.At.After(t) {
			dep.Digest, dep.Since, dep.Record = r.Digest, r.At, &r
			break
		}
	}
	if dep.Record != nil && s.Audit != nil {
		idx, err := s.auditIndex(ctx, repo, *dep.Record)
		if err != nil {
			return Deployment{}, err
		}
		dep.AuditIndex = idx
	}
	return dep, nil
}

// moveSkew bounds how much later than the environment tag's move to a
// digest the record of that move may say it was made: the record is made
// first (its At), then attached, then the tag moves, in one request of one
// server process, whose clock stamps both; the margin covers the request
// and a clock stepped back.
const moveSkew = 5 * time.Minute

// records returns the promotion and rollback records into env of repo
// that count, oldest first, from the evidence of the digests env's tag
// pointed at: enough of them that the latest record at or before t is
// among them. The digests are read newest move first, a few at a time
// (reading is mostly waiting on the store), and reading stops once the
// latest record at or before t found is later than every remaining
// digest's last move (plus moveSkew): none of their records can be
// later. "What runs now" reads a digest or two, not the environment's
// whole past.
func (s *Service) records(ctx context.Context, repo, env string, t time.Time) ([]evidence.Record, error) {
	if s.Tags == nil {
		return nil, errors.New("promotion: no tag history to read the environment's digests from")
	}
	hist, err := s.Tags.TagHistory(ctx, repo, env)
	if err != nil {
		return nil, fmt.Errorf("tag history of %s:%s: %w", repo, env, err)
	}
	// Each digest once, at its last move, newest first.
	type candidate struct {
		digest   string
		lastMove time.Time
	}
	var cands []candidate
	at := map[string]int{}
	for _, h := range hist {
		dgst := h.Digest.String()
		if i, ok := at[dgst]; ok {
			cands[i].lastMove = later(cands[i].lastMove, h.At)
			continue
		}
		at[dgst] = len(cands)
		cands = append(cands, candidate{dgst, h.At})
	}
	slices.SortStableFunc(cands, func(a, b candidate) int { return b.lastMove.Compare(a.lastMove) })
	const batch = 4
	var (
		recs []evidence.Record
		best *evidence.Record // the latest record at or before t so far
	)
	for start := 0; start < len(cands); start += batch {
		if best != nil && cands[start].lastMove.Add(moveSkew).Before(best.At) {
			break
		}
		part := cands[start:min(start+batch, len(cands))]
		found := make([][]evidence.Record, len(part))
		errs := make([]error, len(part))
		var wg sync.WaitGroup
		for i, c := range part {
			wg.Add(1)
			go func() {
				defer wg.Done()
				found[i], errs[i] = s.recordsOn(ctx, repo, env, c.digest)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		for _, rs := range found {
			for i := range rs {
				if !rs[i].At.After(t) && (best == nil || rs[i].At.After(best.At)) {
					best = &rs[i]
				}
			}
			recs = append(recs, rs...)
		}
	}
	slices.SortStableFunc(recs, chronological)
	return recs, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// chronological orders records by At; of two with the same At (a clock
// that did not tick between them), the one that names the other's digest
// as its previous one came after it, and a rollback came after the
// promotion it undid.
func chronological(a, b evidence.Record) int {
	if c := a.At.Compare(b.At); c != 0 {
		return c
	}
	after := func(x, y evidence.Record) bool {
		return x.Previous == y.Digest && (y.Previous != x.Digest || x.Rollback && !y.Rollback)
	}
	switch {
	case after(a, b):
		return 1
	case after(b, a):
		return -1
	}
	return 0
}

// recordsOn returns the promotion and rollback records into env of
// repo@dgst that count.
func (s *Service) recordsOn(ctx context.Context, repo, env, dgst string) ([]evidence.Record, error) {
	d, err := s.ref(repo, dgst)
	if err != nil {
		return nil, err
	}
	// Records are attestations: the digest's signatures are not read.
	set := evidence.CollectAttestations(ctx, d, s.Trust, s.opts(ctx))
	if set.AttestationErr != nil {
		return nil, fmt.Errorf("records of %s@%s: %w", repo, dgst, set.AttestationErr)
	}
	var recs []evidence.Record
	for _, r := range set.PromotionsOf(repo) {
		if r.Environment == env {
			recs = append(recs, r)
		}
	}
	return recs, nil
}

// auditIndex finds the audit-log entry of rec: the first successful
// promote (or rollback) entry of its repository, digest and environment
// recorded at or after rec.At (the server records the entry once the
// record is attached, so a digest that entered the environment again
// later pairs with its own later entry). nil when the log holds none
// (audit disabled). Only the entries from rec.At on are read, at most
// MaxHistoryEvents of them: the entry follows its record within the
// request, while a running digest gathers admission entries without end.
func (s *Service) auditIndex(ctx context.Context, repo string, rec evidence.Record) (*uint64, error) {
	leaves, err := s.Audit.Search(ctx, tlog.Query{Repo: repo, Digest: rec.Digest, Since: rec.At, Limit: MaxHistoryEvents})
	if err != nil {
		return nil, fmt.Errorf("searching the audit log: %w", err)
	}
	action := "promote"
	if rec.Rollback {
		action = "rollback"
	}
	for _, l := range leaves {
		e, err := tlog.ParseEntry(l.Entry)
		if err != nil || e.Action != action || e.Result != "ok" || e.Tag != rec.Environment {
			continue
		}
		if action == "promote" && Approval(e.Reason) {
			continue // an approval, not the promotion
		}
		at, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil || at.Before(rec.At) {
			continue
		}
		idx := l.Index
		return &idx, nil
	}
	return nil, nil
}

// ProjectNamed returns the project called name (its name, or its
// repositories pattern); "" names the only project.
func (s *Service) ProjectNamed(project string) (*Project, error) {
	var names []string
	for i := range s.Projects {
		p := &s.Projects[i]
		if project != "" && (p.Name == project || p.Repositories == project) {
			return p, nil
		}
		names = append(names, p.Title())
	}
	if project == "" && len(s.Projects) == 1 {
		return &s.Projects[0], nil
	}
	if project == "" {
		return nil, fmt.Errorf("%w (projects: %s)", ErrWhichProject, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("%w named %q (projects: %s)", ErrNoProject, project, strings.Join(names, ", "))
}

// Title is the project's name, or its repositories pattern when it has
// none.
func (p *Project) Title() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Repositories
}

// EnvironmentAt returns what every repository of project ran in env at t
// (see At), sorted by repository: project is a project's name or
// repositories pattern, "" the only one. The repositories are those
// Repositories lists; a Deployment with no Digest says one ran nothing in
// env at t.
func (s *Service) EnvironmentAt(ctx context.Context, project, env string, t time.Time) ([]Deployment, error) {
	_, repos, err := s.Repositories(ctx, project, env)
	if err != nil {
		return nil, err
	}
	out := []Deployment{}
	for _, repo := range repos {
		dep, err := s.At(ctx, repo, env, t)
		if err != nil {
			return nil, err
		}
		out = append(out, dep)
	}
	return out, nil
}

// Repositories returns project (see ProjectNamed) and its repositories
// that env ever held something of, sorted: the registry's repositories
// the project's pattern matches (and no earlier project claims) whose env
// tag ever moved.
func (s *Service) Repositories(ctx context.Context, project, env string) (*Project, []string, error) {
	p, err := s.ProjectNamed(project)
	if err != nil {
		return nil, nil, err
	}
	if !slices.ContainsFunc(p.Environments, func(e Environment) bool { return e.Name == env }) {
		names := make([]string, len(p.Environments))
		for j, e := range p.Environments {
			names[j] = e.Name
		}
		return nil, nil, fmt.Errorf("%w %q in project %s (environments: %s)", ErrNoEnv, env, p.Title(), strings.Join(names, " -> "))
	}
	if s.Tags == nil {
		return nil, nil, errors.New("promotion: no tag history to read the environment's digests from")
	}
	// The candidates: the repositories whose environment tag has a
	// history (one index query, not one history per repository). What
	// each ran, and when, is still decided from its signed records (At).
	all, err := s.Tags.TaggedRepositories(ctx, env)
	if err != nil {
		return nil, nil, fmt.Errorf("repositories with a %s history: %w", env, err)
	}
	repos := []string{}
	for _, repo := range all {
		if !repopattern.Match(p.Repositories, repo) {
			continue
		}
		if q, _, _ := s.Lookup(repo, env); q != p {
			continue // an earlier project claims it
		}
		repos = append(repos, repo)
	}
	return p, repos, nil
}

// ParseTime reads an instant as custody env --at and the environments
// API take it: RFC 3339 (2026-03-03T14:00:00Z, 2026-03-03T15:00:00+01:00),
// or "2026-03-03 14:00", "2026-03-03 14:00:05" or "2026-03-03" in UTC.
// The result is in UTC.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02 15:04:05", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	if len(s) > 40 {
		s = s[:40] + "..." // keep the error short
	}
	return time.Time{}, fmt.Errorf("time %q: use RFC 3339 (2026-03-03T14:00:00Z) or \"2026-03-03 14:00\" (UTC)", s)
}
