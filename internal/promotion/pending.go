package promotion

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/custody-dev/custody/internal/tlog"
)

// Pending is a promotion waiting for approvals: the gate passed and some,
// not enough, distinct promoters approved it.
type Pending struct {
	Repository  string    `json:"repository"`
	Digest      string    `json:"digest"`
	Environment string    `json:"environment"`
	Approvers   []string  `json:"approvers"`
	Needed      int       `json:"approvalsNeeded"`
	Since       time.Time `json:"since"`
}

// pendingCandidates bounds how many recently approved digests Pending
// reads the evidence of.
const pendingCandidates = 20

// Pending lists the promotions of repo into env that wait for approvals,
// newest first. The audit log names the candidates (the digests with a
// recorded approval for env); each candidate's signed records decide:
// its approvals since the latest rejection, fewer than env needs, and no
// promotion of it into env since. Without an audit log there are no
// candidates.
func (s *Service) Pending(ctx context.Context, repo, env string) ([]Pending, error) {
	p, i, err := s.Lookup(repo, env)
	if err != nil {
		return nil, err
	}
	e := p.Environments[i]
	out := []Pending{}
	if e.Approvals < 2 || s.Audit == nil {
		return out, nil
	}
	leaves, err := s.Audit.Search(ctx, tlog.Query{Repo: repo})
	if err != nil {
		return nil, fmt.Errorf("searching the audit log: %w", err)
	}
	var digests []string
	for j := len(leaves) - 1; j >= 0 && len(digests) < pendingCandidates; j-- {
		ev, err := tlog.ParseEntry(leaves[j].Entry)
		if err != nil || ev.Action != "promote" || ev.Result != "ok" || ev.Tag != env || !Approval(ev.Reason) {
			continue
		}
		if d := ev.Digest; d != "" && !slices.Contains(digests, d) {
			digests = append(digests, d)
		}
	}
	for _, d := range digests {
		f, err := s.Gather(ctx, repo, d)
		if err != nil {
			return nil, err
		}
		approvers := f.Approvers(env)
		if len(approvers) == 0 || len(approvers) >= e.Approvals || f.Revoked != nil {
			continue
		}
		var since, last time.Time
		for _, a := range f.Approvals {
			if a.Environment == env && slices.Contains(approvers, a.By) && (since.IsZero() || a.At.Before(since)) {
				since = a.At
			}
		}
		for _, r := range f.Promotions {
			if r.Environment == env && r.Digest == d && r.At.After(last) {
				last = r.At
			}
		}
		if !last.IsZero() && !last.Before(since) {
			continue // promoted since
		}
		out = append(out, Pending{Repository: repo, Digest: d, Environment: env, Approvers: approvers, Needed: e.Approvals, Since: since})
	}
	return out, nil
}

// pendingScan bounds how many of the audit log's newest promote entries
// ProjectPending reads for candidates.
const pendingScan = 5000

// ProjectPending lists the promotions into env of every repository of
// project (see ProjectNamed) that wait for approvals, by repository and
// newest first within one. The audit log's newest promote entries that
// record an approval into env name the candidate repositories; each
// one's Pending (its signed records) decides.
func (s *Service) ProjectPending(ctx context.Context, project, env string) ([]Pending, error) {
	p, err := s.ProjectNamed(project)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(p.Environments, func(e Environment) bool { return e.Name == env })
	out := []Pending{}
	if i < 0 || p.Environments[i].Approvals < 2 || s.Audit == nil {
		return out, nil
	}
	leaves, err := s.Audit.Search(ctx, tlog.Query{Action: "promote", Newest: true, Limit: pendingScan})
	if err != nil {
		return nil, fmt.Errorf("searching the audit log: %w", err)
	}
	var repos []string
	for _, l := range leaves {
		ev, err := tlog.ParseEntry(l.Entry)
		if err != nil || ev.Result != "ok" || ev.Tag != env || !Approval(ev.Reason) || slices.Contains(repos, ev.Repo) {
			continue
		}
		if q, _, _ := s.Lookup(ev.Repo, env); q != p {
			continue // another project's, or none
		}
		repos = append(repos, ev.Repo)
	}
	slices.Sort(repos)
	for _, repo := range repos {
		ps, err := s.Pending(ctx, repo, env)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}
