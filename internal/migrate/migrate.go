// Package migrate copies a whole custody store to another one: the
// embedded store (SQLite and files) to PostgreSQL and S3 for replicas, and
// back. It copies every blob, every repository's blob links, manifest
// records (references, subjects, annotations), tags with their history,
// retention locks and legal holds, policy versions, accounts (users with
// their second factors, grants, API tokens), the audit log's leaves, tree nodes and latest
// checkpoint verbatim, and the data directory's key files, so the audit
// log stays verifiable with the same key and existing tokens keep working.
//
// It uses only the store interfaces (blob.Store, meta.Store and the
// concept stores the metadata backends implement), never a backend's
// tables. A copy is resumable: running it again skips what the target
// already holds (blobs by Stat, links by BlobSize, manifests by
// GetManifest, audit leaves by the target's size, after checking that the
// target's leaves are the source's).
//
// Sessions, started sign-in ceremonies and pending TOTP re-enrolments
// (account.Challenges) are not copied: they live minutes, and a browser
// whose ceremony the new store does not know starts it again.
package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/scrub"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/opencontainers/go-digest"
)

// ErrTargetNotEmpty is returned when the target already holds data and
// Options.Resume is not set.
var ErrTargetNotEmpty = errors.New("the target store is not empty")

// ErrDiverged is returned when the target holds data that contradicts the
// source (a different audit log, policy history or key file): resuming
// would mix two stores.
var ErrDiverged = errors.New("the target store holds different data than the source")

// Meta is every metadata interface a migration reads and writes. The
// SQLite and PostgreSQL backends implement it (store.Meta).
type Meta interface {
	meta.Store
	retention.Store
	policy.Store
	builds.Index
	tlog.Store
	account.Store
}

// Store is one side of a migration.
type Store struct {
	// Meta is the metadata backend.
	Meta Meta
	// Scrub lists every blob link, manifest record and tag (the bulk
	// listings meta.Store lacks).
	Scrub scrub.Store
	// Blobs is the blob backend.
	Blobs blob.Store
	// Data is the data directory holding the key files (log-key,
	// log-key.pub, token-key, admin-password, keys/); empty skips them.
	Data string
}

// Reporter receives progress. Phase starts a phase of total units (bytes
// when bytes is true, else items); Add reports n more units done. Add may
// be called from several goroutines.
type Reporter interface {
	Phase(name string, total int64, bytes bool)
	Add(n int64)
}

// Options configure Run.
type Options struct {
	// Resume allows a non-empty target and copies only what it lacks.
	Resume bool
	// Workers is how many blobs are copied at once (default 4).
	Workers int
	// Progress, if not nil, receives progress.
	Progress Reporter
	// Log receives warnings (default slog.Default()).
	Log *slog.Logger
}

// Count is what one kind of object came to: copied now, or already in
// the target (skipped).
type Count struct {
	Copied  int64 `json:"copied"`
	Skipped int64 `json:"skipped"`
}

// Summary is the outcome of a migration.
type Summary struct {
	Blobs     Count `json:"blobs"`
	BlobBytes int64 `json:"blobBytes"` // bytes copied
	Links     Count `json:"links"`
	Manifests Count `json:"manifests"`
	Tags      Count `json:"tags"`
	TagMoves  int64 `json:"tagMoves"` // history entries replayed
	Locks     Count `json:"locks"`
	Policies  Count `json:"policyVersions"`
	Users     Count `json:"users"`
	Grants    Count `json:"grants"`
	Tokens    Count `json:"tokens"`
	// Factors counts users whose second factors (TOTP with its recovery
	// codes, security keys) were copied.
	Factors     Count `json:"secondFactors"`
	AuditLeaves Count `json:"auditLeaves"`
	Checkpoint  bool  `json:"checkpointCopied"`
	KeyFiles    Count `json:"keyFiles"`
	// Warnings are things that could not be carried over exactly.
	Warnings []string      `json:"warnings,omitempty"`
	Duration time.Duration `json:"durationNs"`
}

type run struct {
	from, to Store
	opts     Options
	sum      *Summary
	mu       sync.Mutex // guards sum.Warnings
}

// Run copies the store from into to. Without Options.Resume it refuses a
// target that holds any data (ErrTargetNotEmpty). On error or
// cancellation the target holds a consistent part of the copy and Run
// with Resume continues it.
func Run(ctx context.Context, from, to Store, opts Options) (*Summary, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Progress == nil {
		opts.Progress = nopReporter{}
	}
	r := &run{from: from, to: to, opts: opts, sum: &Summary{}}
	start := time.Now()
	defer func() { r.sum.Duration = time.Since(start) }()

	if err := r.checkKeyFiles(); err != nil {
		return r.sum, err
	}
	if !opts.Resume {
		what, err := nonEmpty(ctx, to)
		if err != nil {
			return r.sum, fmt.Errorf("checking the target is empty: %w", err)
		}
		if what != "" {
			return r.sum, fmt.Errorf("%w: it holds %s (use --resume to continue an interrupted migration into it)", ErrTargetNotEmpty, what)
		}
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"key files", r.keyFiles},
		// The audit log first: a target whose log is not the source's
		// (ErrDiverged) is refused before anything else is written.
		{"audit log", r.auditLog},
		{"blobs", r.blobs},
		{"blob links", r.links},
		{"manifests", r.manifests},
		{"tags", r.tags},
		{"retention", r.locks},
		{"policies", r.policies},
		{"accounts", r.accounts},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return r.sum, err
		}
		if err := s.fn(ctx); err != nil {
			return r.sum, fmt.Errorf("migrating %s: %w", s.name, err)
		}
	}
	return r.sum, nil
}

func (r *run) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.opts.Log.Warn("migrate: " + msg)
	r.mu.Lock()
	r.sum.Warnings = append(r.sum.Warnings, msg)
	r.mu.Unlock()
}

type nopReporter struct{}

func (nopReporter) Phase(string, int64, bool) {}
func (nopReporter) Add(int64)                 {}

var errStop = errors.New("stop walking")

// nonEmpty names what the target holds, or returns "" when it is empty.
func nonEmpty(ctx context.Context, s Store) (string, error) {
	repos, err := s.Meta.Repositories(ctx, "", 1)
	if err != nil {
		return "", err
	}
	if len(repos) > 0 {
		return fmt.Sprintf("repository %q", repos[0]), nil
	}
	var found digest.Digest
	err = s.Blobs.Walk(ctx, func(d digest.Digest, _ int64) error {
		found = d
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return "", err
	}
	if found != "" {
		return "blob " + found.String(), nil
	}
	n, err := s.Meta.TlogSize(ctx)
	if err != nil {
		return "", err
	}
	if n > 0 {
		return fmt.Sprintf("an audit log of %d entries", n), nil
	}
	st, err := s.Meta.AuthState(ctx)
	if err != nil {
		return "", err
	}
	if len(st.Users)+len(st.Grants)+len(st.Tokens) > 0 {
		return "accounts", nil
	}
	ps, err := s.Meta.CurrentPolicies(ctx)
	if err != nil {
		return "", err
	}
	if len(ps) > 0 {
		return fmt.Sprintf("policy %q", ps[0].Pattern), nil
	}
	return "", nil
}

// blobs copies every blob the target lacks, Workers at a time. The target
// verifies each blob's digest and size while it streams in (the
// blob.Store contract), so a damaged source blob fails the copy.
func (r *run) blobs(ctx context.Context) error {
	type item struct {
		d    digest.Digest
		size int64
	}
	var (
		items []item
		total int64
	)
	if err := r.from.Blobs.Walk(ctx, func(d digest.Digest, size int64) error {
		items = append(items, item{d, size})
		total += size
		return nil
	}); err != nil {
		return fmt.Errorf("listing source blobs: %w", err)
	}
	r.opts.Progress.Phase("blobs", total, true)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan item)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		copied   atomic.Int64
		skipped  atomic.Int64
		bytesN   atomic.Int64
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range r.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				did, err := r.copyBlob(ctx, it.d, it.size)
				if err != nil {
					fail(err)
					continue
				}
				if did {
					copied.Add(1)
					bytesN.Add(it.size)
				} else {
					skipped.Add(1)
					r.opts.Progress.Add(it.size)
				}
			}
		}()
	}
feed:
	for _, it := range items {
		select {
		case work <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	r.sum.Blobs.Copied += copied.Load()
	r.sum.Blobs.Skipped += skipped.Load()
	r.sum.BlobBytes += bytesN.Load()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// copyBlob copies one blob unless the target has it; it reports whether
// it copied.
func (r *run) copyBlob(ctx context.Context, d digest.Digest, size int64) (bool, error) {
	if n, err := r.to.Blobs.Stat(ctx, d); err == nil {
		if n != size {
			return false, fmt.Errorf("%w: blob %s is %d bytes in the target, %d in the source", ErrDiverged, d, n, size)
		}
		return false, nil
	} else if !errors.Is(err, blob.ErrNotFound) {
		return false, fmt.Errorf("target blob %s: %w", d, err)
	}
	rc, n, err := r.from.Blobs.Open(ctx, d)
	if err != nil {
		return false, fmt.Errorf("reading source blob %s: %w", d, err)
	}
	defer rc.Close()
	pr := &progressReader{r: rc, rep: r.opts.Progress}
	if _, err := r.to.Blobs.Put(ctx, d, n, pr); err != nil {
		if errors.Is(err, blob.ErrDigestMismatch) || errors.Is(err, blob.ErrSizeMismatch) {
			return false, fmt.Errorf("source blob %s is damaged (%w); run `custody scrub` on the source and restore it before migrating", d, err)
		}
		return false, fmt.Errorf("writing blob %s to the target: %w", d, err)
	}
	return true, nil
}

type progressReader struct {
	r   io.Reader
	rep Reporter
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.rep.Add(int64(n))
	}
	return n, err
}

// links copies every repository's blob links.
func (r *run) links(ctx context.Context) error {
	type link struct {
		repo string
		d    digest.Digest
		size int64
	}
	var all []link
	if err := r.from.Scrub.ScrubLinks(ctx, func(repo string, d digest.Digest, size int64) error {
		all = append(all, link{repo, d, size})
		return nil
	}); err != nil {
		return fmt.Errorf("listing source links: %w", err)
	}
	r.opts.Progress.Phase("blob links", int64(len(all)), false)
	for _, l := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := r.to.Meta.BlobSize(ctx, l.repo, l.d); err == nil {
			r.sum.Links.Skipped++
		} else if !errors.Is(err, meta.ErrNotFound) {
			return fmt.Errorf("target link %s in %s: %w", l.d, l.repo, err)
		} else {
			if err := r.to.Meta.LinkBlob(ctx, l.repo, l.d, l.size); err != nil {
				return fmt.Errorf("linking %s into %s: %w", l.d, l.repo, err)
			}
			r.sum.Links.Copied++
		}
		r.opts.Progress.Add(1)
	}
	return nil
}

// manifests copies every manifest record, child manifests before the
// indexes that reference them.
func (r *run) manifests(ctx context.Context) error {
	type key struct {
		repo string
		d    digest.Digest
	}
	var (
		order    []key
		listed   = map[key]bool{}
		children = map[key][]digest.Digest{}
	)
	if err := r.from.Scrub.ScrubManifests(ctx, func(m meta.Manifest) error {
		k := key{m.Repo, m.Digest}
		order = append(order, k)
		listed[k] = true
		if len(m.Manifests) > 0 {
			children[k] = m.Manifests
		}
		return nil
	}); err != nil {
		return fmt.Errorf("listing source manifests: %w", err)
	}
	r.opts.Progress.Phase("manifests", int64(len(order)), false)
	done := make(map[key]bool, len(order))
	var visit func(k key, depth int) error
	visit = func(k key, depth int) error {
		if done[k] {
			return nil
		}
		if depth > 64 {
			return fmt.Errorf("manifest %s in %s: index nesting deeper than 64", k.d, k.repo)
		}
		done[k] = true
		for _, c := range children[k] {
			ck := key{k.repo, c}
			if listed[ck] {
				if err := visit(ck, depth+1); err != nil {
					return err
				}
			}
		}
		return r.copyManifest(ctx, k.repo, k.d)
	}
	for _, k := range order {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := visit(k, 0); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) copyManifest(ctx context.Context, repo string, d digest.Digest) error {
	defer r.opts.Progress.Add(1)
	if _, err := r.to.Meta.GetManifest(ctx, repo, d); err == nil {
		r.sum.Manifests.Skipped++
		return nil
	} else if !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("target manifest %s in %s: %w", d, repo, err)
	}
	m, err := r.from.Meta.GetManifest(ctx, repo, d)
	if err != nil {
		return fmt.Errorf("reading source manifest %s in %s: %w", d, repo, err)
	}
	if err := r.to.Meta.PutManifest(ctx, m, nil, nil); err != nil {
		return fmt.Errorf("writing manifest %s in %s: %w", d, repo, err)
	}
	r.sum.Manifests.Copied++
	return nil
}

// tags points every tag at the source's digest, replaying the tag's
// history first so that the target's history lists the same digests in
// the same order (the times of the replayed moves are the migration's:
// the store interface records a move at the time it happens).
func (r *run) tags(ctx context.Context) error {
	type tag struct {
		repo, name string
		d          digest.Digest
	}
	var all []tag
	if err := r.from.Scrub.ScrubTags(ctx, func(repo, name string, d digest.Digest) error {
		all = append(all, tag{repo, name, d})
		return nil
	}); err != nil {
		return fmt.Errorf("listing source tags: %w", err)
	}
	r.opts.Progress.Phase("tags", int64(len(all)), false)
	for _, t := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.copyTag(ctx, t.repo, t.name, t.d); err != nil {
			return err
		}
		r.opts.Progress.Add(1)
	}
	return nil
}

func (r *run) copyTag(ctx context.Context, repo, name string, current digest.Digest) error {
	hist, err := r.from.Meta.TagHistory(ctx, repo, name)
	if err != nil {
		return fmt.Errorf("source history of %s:%s: %w", repo, name, err)
	}
	// The moves to replay: history entries whose manifest still exists
	// (a deleted manifest cannot be pointed at again), without repeats
	// (moving a tag to where it points records nothing), ending at the
	// tag's current digest.
	var want []digest.Digest
	records := map[digest.Digest]meta.Manifest{}
	dropped := 0
	for _, e := range append(hist, builds.TagEvent{Digest: current}) {
		if len(want) > 0 && want[len(want)-1] == e.Digest {
			continue
		}
		if _, ok := records[e.Digest]; !ok {
			m, err := r.to.Meta.GetManifest(ctx, repo, e.Digest)
			if errors.Is(err, meta.ErrNotFound) {
				dropped++
				continue
			} else if err != nil {
				return fmt.Errorf("target manifest %s in %s: %w", e.Digest, repo, err)
			}
			records[e.Digest] = m
		}
		want = append(want, e.Digest)
	}
	if len(want) == 0 || want[len(want)-1] != current {
		return fmt.Errorf("tag %s:%s points at %s, which is missing from the target", repo, name, current)
	}
	if dropped > 0 {
		r.warn("tag %s:%s: %d history entries name deleted manifests and were not replayed", repo, name, dropped)
	}
	got, err := r.to.Meta.TagHistory(ctx, repo, name)
	if err != nil {
		return fmt.Errorf("target history of %s:%s: %w", repo, name, err)
	}
	var have []digest.Digest
	for _, e := range got {
		if len(have) == 0 || have[len(have)-1] != e.Digest {
			have = append(have, e.Digest)
		}
	}
	next := 0
	switch {
	case isPrefix(have, want):
		next = len(have)
	default:
		// The target's history went its own way (a server ran on it):
		// only point the tag at the source's digest.
		r.warn("tag %s:%s: the target's history differs from the source's; only its current digest was set", repo, name)
		want = []digest.Digest{current}
		if at, err := r.to.Meta.ResolveTag(ctx, repo, name); err == nil && at == current {
			next = 1
		}
	}
	if next == len(want) {
		r.sum.Tags.Skipped++
		return nil
	}
	for _, d := range want[next:] {
		if err := r.to.Meta.PutManifest(ctx, records[d], []string{name}, nil); err != nil {
			return fmt.Errorf("moving tag %s:%s to %s: %w", repo, name, d, err)
		}
		r.sum.TagMoves++
	}
	r.sum.Tags.Copied++
	return nil
}

func isPrefix(p, s []digest.Digest) bool {
	if len(p) > len(s) {
		return false
	}
	for i := range p {
		if p[i] != s[i] {
			return false
		}
	}
	return true
}

// locks copies retention locks and legal holds of every repository.
func (r *run) locks(ctx context.Context) error {
	var repos []string
	for last := ""; ; {
		page, err := r.from.Meta.Repositories(ctx, last, 1000)
		if err != nil {
			return fmt.Errorf("listing source repositories: %w", err)
		}
		repos = append(repos, page...)
		if len(page) < 1000 {
			break
		}
		last = page[len(page)-1]
	}
	r.opts.Progress.Phase("retention", int64(len(repos)), false)
	errSame := errors.New("unchanged")
	for _, repo := range repos {
		locks, err := r.from.Meta.ListLocks(ctx, repo)
		if err != nil {
			return fmt.Errorf("source locks of %s: %w", repo, err)
		}
		for _, l := range locks {
			err := r.to.Meta.SetLock(ctx, repo, l.Digest, func(cur *retention.Lock) (retention.Lock, error) {
				if cur != nil && sameLock(*cur, l) {
					return retention.Lock{}, errSame
				}
				return l, nil
			})
			switch {
			case errors.Is(err, errSame):
				r.sum.Locks.Skipped++
			case err != nil:
				return fmt.Errorf("setting retention of %s in %s: %w", l.Digest, repo, err)
			default:
				r.sum.Locks.Copied++
			}
		}
		r.opts.Progress.Add(1)
	}
	return nil
}

func sameLock(a, b retention.Lock) bool {
	return a.Mode == b.Mode && a.RetainUntil.Equal(b.RetainUntil) && a.LegalHold == b.LegalHold
}

// policies copies every version of every policy, in order.
func (r *run) policies(ctx context.Context) error {
	cur, err := r.from.Meta.CurrentPolicies(ctx)
	if err != nil {
		return fmt.Errorf("listing source policies: %w", err)
	}
	r.opts.Progress.Phase("policies", int64(len(cur)), false)
	for _, p := range cur {
		have := 0
		if t, err := r.to.Meta.GetPolicy(ctx, p.Pattern, 0); err == nil {
			have = t.Version
			if have > p.Version {
				return fmt.Errorf("%w: policy %q is at version %d in the target, %d in the source", ErrDiverged, p.Pattern, have, p.Version)
			}
			s, err := r.from.Meta.GetPolicy(ctx, p.Pattern, have)
			if err != nil {
				return fmt.Errorf("source policy %q version %d: %w", p.Pattern, have, err)
			}
			if !bytes.Equal(s.Body, t.Body) {
				return fmt.Errorf("%w: policy %q version %d differs", ErrDiverged, p.Pattern, have)
			}
		} else if !errors.Is(err, policy.ErrNotFound) {
			return fmt.Errorf("target policy %q: %w", p.Pattern, err)
		}
		r.sum.Policies.Skipped += int64(have)
		for v := have + 1; v <= p.Version; v++ {
			rec, err := r.from.Meta.GetPolicy(ctx, p.Pattern, v)
			if err != nil {
				return fmt.Errorf("source policy %q version %d: %w", p.Pattern, v, err)
			}
			got, err := r.to.Meta.PutPolicy(ctx, p.Pattern, rec.Body, rec.Created, nil)
			if err != nil {
				return fmt.Errorf("writing policy %q version %d: %w", p.Pattern, v, err)
			}
			if got != v {
				return fmt.Errorf("%w: policy %q version %d became version %d in the target", ErrDiverged, p.Pattern, v, got)
			}
			r.sum.Policies.Copied++
		}
		r.opts.Progress.Add(1)
	}
	return nil
}

// accounts copies users (with their password hashes and disabled
// state: a disabled account stays disabled), stored grants and API
// tokens (their hashes, with revocations).
func (r *run) accounts(ctx context.Context) error {
	src, err := r.from.Meta.AuthState(ctx)
	if err != nil {
		return fmt.Errorf("reading source accounts: %w", err)
	}
	dst, err := r.to.Meta.AuthState(ctx)
	if err != nil {
		return fmt.Errorf("reading target accounts: %w", err)
	}
	r.opts.Progress.Phase("accounts", int64(len(src.Users)+len(src.Grants)+len(src.Tokens)), false)
	users := map[string]account.User{}
	for _, u := range dst.Users {
		users[u.Name] = u
	}
	for _, u := range src.Users {
		t, ok := users[u.Name]
		if ok && t.PasswordHash == u.PasswordHash && equalStrings(t.Groups, u.Groups) && t.Disabled.Equal(u.Disabled) {
			r.sum.Users.Skipped++
		} else {
			// PutUser stores a new user's disabled state and keeps an
			// existing one's: that one is set on its own.
			if err := r.to.Meta.PutUser(ctx, u); err != nil {
				return fmt.Errorf("writing user %s: %w", u.Name, err)
			}
			if ok && !t.Disabled.Equal(u.Disabled) {
				if err := r.to.Meta.SetUserDisabled(ctx, u.Name, u.Disabled); err != nil {
					return fmt.Errorf("writing user %s: %w", u.Name, err)
				}
			}
			r.sum.Users.Copied++
		}
		r.opts.Progress.Add(1)
	}
	for _, u := range src.Users {
		if err := r.factors(ctx, u.Name); err != nil {
			return err
		}
	}
	grants := map[account.Grant]bool{}
	for _, g := range dst.Grants {
		g.Source = ""
		grants[g] = true
	}
	for _, g := range src.Grants {
		k := g
		k.Source = ""
		if grants[k] {
			r.sum.Grants.Skipped++
		} else {
			if err := r.to.Meta.PutGrant(ctx, g); err != nil {
				return fmt.Errorf("writing grant %s %s on %s: %w", g.Subject, g.Role, g.Repository, err)
			}
			r.sum.Grants.Copied++
		}
		r.opts.Progress.Add(1)
	}
	tokens := map[string]account.Token{}
	for _, t := range dst.Tokens {
		tokens[t.ID] = t
	}
	for _, t := range src.Tokens {
		have, ok := tokens[t.ID]
		switch {
		case ok && have.Hash != t.Hash:
			return fmt.Errorf("%w: token %s has another secret in the target", ErrDiverged, t.ID)
		case ok && (t.Revoked.IsZero() || !have.Revoked.IsZero()):
			r.sum.Tokens.Skipped++
		default:
			if !ok {
				if err := r.to.Meta.PutToken(ctx, t); err != nil {
					return fmt.Errorf("writing token %s: %w", t.ID, err)
				}
			}
			if !t.Revoked.IsZero() {
				if err := r.to.Meta.RevokeToken(ctx, t.ID, t.Revoked); err != nil {
					return fmt.Errorf("revoking token %s: %w", t.ID, err)
				}
			}
			r.sum.Tokens.Copied++
		}
		r.opts.Progress.Add(1)
	}
	return nil
}

// factors copies user's second factors: the TOTP secret with its
// recovery codes, and security keys with their signature counters. An
// enrolled user would otherwise sign in on the target with the password
// alone and could enrol a factor of the holder's choosing. Sessions and
// started ceremonies are not copied: they are started again.
func (r *run) factors(ctx context.Context, user string) error {
	copied := false
	f, err := r.from.Meta.GetFactors(ctx, user)
	switch {
	case errors.Is(err, account.ErrNotFound):
	case err != nil:
		return fmt.Errorf("reading %s's second factors: %w", user, err)
	default:
		have, err := r.to.Meta.GetFactors(ctx, user)
		if err != nil && !errors.Is(err, account.ErrNotFound) {
			return fmt.Errorf("reading %s's second factors in the target: %w", user, err)
		}
		if err != nil || have.TOTPSecret != f.TOTPSecret || have.TOTPConfirmed != f.TOTPConfirmed || !equalStrings(have.RecoveryHashes, f.RecoveryHashes) {
			if err := r.to.Meta.PutFactors(ctx, f); err != nil {
				return fmt.Errorf("writing %s's second factors: %w", user, err)
			}
			copied = true
		}
	}
	keys, err := r.from.Meta.WebAuthnKeys(ctx, user)
	if err != nil {
		return fmt.Errorf("reading %s's security keys: %w", user, err)
	}
	have, err := r.to.Meta.WebAuthnKeys(ctx, user)
	if err != nil {
		return fmt.Errorf("reading %s's security keys in the target: %w", user, err)
	}
	held := map[string]bool{}
	for _, k := range have {
		held[k.ID] = true
	}
	for _, k := range keys {
		if held[k.ID] {
			continue
		}
		if err := r.to.Meta.PutWebAuthnKey(ctx, k); err != nil {
			return fmt.Errorf("writing %s's security key %s: %w", user, k.Name, err)
		}
		copied = true
	}
	switch {
	case copied:
		r.sum.Factors.Copied++
	case len(keys) > 0 || f.TOTPSecret != "":
		r.sum.Factors.Skipped++
	}
	return nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
