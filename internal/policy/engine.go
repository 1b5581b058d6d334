package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/repopattern"
	"github.com/custody-dev/custody/internal/veto"
)

// Engine resolves the policy of each repository from the configured and
// stored policies and enforces it as a registry.Policy (and BlobPolicy).
//
// It caches the current stored policies and refreshes the cache after each
// Put, so one process sees its own changes at once.
type Engine struct {
	store      Store
	configured map[string]Policy
	meta       meta.Store
	now        func() time.Time

	mu      sync.RWMutex
	current map[string]Policy // pattern -> effective (stored over configured)
}

// NewEngine returns an engine over the configured policies (pattern ->
// policy) and the store of API policies. md is used to find the tags of a
// manifest being deleted.
func NewEngine(ctx context.Context, store Store, configured map[string]Policy, md meta.Store) (*Engine, error) {
	for pat, p := range configured {
		if err := repopattern.Validate(pat); err != nil {
			return nil, err
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("policy %q: %w", pat, err)
		}
	}
	e := &Engine{store: store, configured: configured, meta: md, now: time.Now}
	if err := e.recordConfiguredRetention(ctx); err != nil {
		return nil, err
	}
	return e, e.reload(ctx)
}

// recordConfiguredRetention makes retention enabled in the config file as
// permanent as retention enabled through the API: a configured policy with
// a default retention is stored as a policy version (a new one whenever
// the file changes it), so deleting it from the file leaves the stored
// version in force, and a file that drops the retention of a pattern whose
// stored policy has one is refused at start-up.
func (e *Engine) recordConfiguredRetention(ctx context.Context) error {
	pats := make([]string, 0, len(e.configured))
	for pat := range e.configured {
		pats = append(pats, pat)
	}
	slices.Sort(pats)
	for _, pat := range pats {
		p := e.configured[pat]
		rec, err := e.store.GetPolicy(ctx, pat, 0)
		switch {
		case errors.Is(err, ErrNotFound):
			if p.Retention == nil {
				continue
			}
		case err != nil:
			return fmt.Errorf("loading policy %q: %w", pat, err)
		default:
			var stored Policy
			if err := json.Unmarshal(rec.Body, &stored); err != nil {
				return fmt.Errorf("stored policy %q version %d: %w", pat, rec.Version, err)
			}
			if p.Retention == nil && stored.Retention == nil {
				continue
			}
			body, err := json.Marshal(p)
			if err != nil {
				return err
			}
			if string(body) == string(rec.Body) {
				continue
			}
		}
		if _, err := e.Put(ctx, pat, p); err != nil {
			return fmt.Errorf("configured policy %q: %w (restore its retention in the config file)", pat, err)
		}
	}
	return nil
}

// Watch reloads the stored policies every interval until ctx ends, so a
// replica sees policies another replica stored (a store shared by
// replicas; one process alone sees its own Puts at once).
func (e *Engine) Watch(ctx context.Context, every time.Duration, log func(err error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := e.reload(ctx); err != nil && ctx.Err() == nil && log != nil {
				log(err)
			}
		}
	}
}

func (e *Engine) reload(ctx context.Context) error {
	cur := make(map[string]Policy, len(e.configured))
	for k, v := range e.configured {
		cur[k] = v
	}
	recs, err := e.store.CurrentPolicies(ctx)
	if err != nil {
		return fmt.Errorf("loading policies: %w", err)
	}
	for _, r := range recs {
		var p Policy
		if err := json.Unmarshal(r.Body, &p); err != nil {
			return fmt.Errorf("stored policy %q version %d: %w", r.Pattern, r.Version, err)
		}
		cur[r.Pattern] = p
	}
	e.mu.Lock()
	e.current = cur
	e.mu.Unlock()
	return nil
}

// Effective returns the policy governing repo and its pattern ("" when no
// pattern matches and the defaults apply).
func (e *Engine) Effective(repo string) (Policy, string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	best := ""
	for pat := range e.current {
		if repopattern.Match(pat, repo) && (best == "" || moreSpecific(pat, best)) {
			best = pat
		}
	}
	if best == "" {
		return Policy{}, ""
	}
	return e.current[best], best
}

// DefaultRetention returns the default retention of repo: that of the most
// specific matching policy that sets one, or nil.
func (e *Engine) DefaultRetention(repo string) *DefaultRetention {
	e.mu.RLock()
	defer e.mu.RUnlock()
	best := ""
	for pat, p := range e.current {
		if p.Retention != nil && repopattern.Match(pat, repo) && (best == "" || moreSpecific(pat, best)) {
			best = pat
		}
	}
	if best == "" {
		return nil
	}
	r := *e.current[best].Retention
	return &r
}

// Get returns the current policy of pattern with its version (0 for a
// configured policy never changed through the API).
func (e *Engine) Get(ctx context.Context, pattern string, version int) (Policy, Record, error) {
	rec, err := e.store.GetPolicy(ctx, pattern, version)
	if errors.Is(err, ErrNotFound) && version == 0 {
		if p, ok := e.configured[pattern]; ok {
			return p, Record{Pattern: pattern}, nil
		}
	}
	if err != nil {
		return Policy{}, Record{}, err
	}
	var p Policy
	if err := json.Unmarshal(rec.Body, &p); err != nil {
		return Policy{}, Record{}, err
	}
	return p, rec, nil
}

// Put stores p as the next version of pattern's policy. It refuses, with
// an error wrapping ErrConflict, a policy that drops the default retention
// of a pattern that had one: retention cannot be switched off.
func (e *Engine) Put(ctx context.Context, pattern string, p Policy) (Record, error) {
	if err := repopattern.Validate(pattern); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := p.Validate(); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return Record{}, err
	}
	now := e.now().UTC()
	check := func(current []byte) error {
		var had *DefaultRetention
		if current != nil {
			var old Policy
			if err := json.Unmarshal(current, &old); err != nil {
				return err
			}
			had = old.Retention
		} else if c, ok := e.configured[pattern]; ok {
			had = c.Retention
		}
		if had != nil && p.Retention == nil {
			return fmt.Errorf("%w: repositories matching %q have retention enabled (%s, %s); it cannot be switched off",
				ErrConflict, pattern, had.Mode, time.Duration(had.Period))
		}
		return nil
	}
	v, err := e.store.PutPolicy(ctx, pattern, body, now, check)
	if err != nil {
		return Record{}, err
	}
	if err := e.reload(ctx); err != nil {
		return Record{}, err
	}
	return Record{Pattern: pattern, Version: v, Created: now, Body: body}, nil
}

// ImmutableRule returns the name of the rule that makes tag immutable in
// repo, or "".
func (e *Engine) ImmutableRule(repo, tag string) string {
	p, pat := e.Effective(repo)
	if p.ImmutableTags == nil {
		if versionTag().MatchString(tag) {
			return DefaultRuleName
		}
		return ""
	}
	for _, t := range p.ImmutableTags {
		r, err := compileTag(t)
		if err == nil && r.match(tag) {
			return fmt.Sprintf("policy %q immutableTags %q", pat, t)
		}
	}
	return ""
}

func denied(format string, args ...any) error {
	return fmt.Errorf("%w: %s", veto.ErrDenied, fmt.Sprintf(format, args...))
}

// CheckManifest enforces the allowed manifest media types.
func (e *Engine) CheckManifest(_ context.Context, m meta.Manifest) error {
	p, pat := e.Effective(m.Repo)
	if len(p.AllowedMediaTypes) > 0 && !slices.Contains(p.AllowedMediaTypes, m.MediaType) {
		return denied("manifest media type %q is not allowed in %s (rule: policy %q allowedMediaTypes)", m.MediaType, m.Repo, pat)
	}
	return nil
}

// CheckBlobs enforces the allowed config and layer media types and the
// maximum artifact size.
func (e *Engine) CheckBlobs(_ context.Context, m meta.Manifest, blobs []meta.Descriptor) error {
	p, pat := e.Effective(m.Repo)
	var total int64
	for _, b := range blobs {
		if len(p.AllowedMediaTypes) > 0 && !slices.Contains(p.AllowedMediaTypes, b.MediaType) {
			return denied("media type %q of %s is not allowed in %s (rule: policy %q allowedMediaTypes)", b.MediaType, b.Digest, m.Repo, pat)
		}
		total += b.Size
	}
	if p.MaxArtifactSize > 0 && total > p.MaxArtifactSize {
		return denied("artifact of %d bytes exceeds %d (rule: policy %q maxArtifactSize)", total, p.MaxArtifactSize, pat)
	}
	return nil
}

// CheckTag refuses moving an immutable tag to another digest. It runs
// inside the metadata transaction, so of two pushes racing to create the
// same immutable tag exactly one wins.
func (e *Engine) CheckTag(_ context.Context, repo, tag string, current, next digest.Digest) error {
	if current == "" || current == next {
		return nil
	}
	if rule := e.ImmutableRule(repo, tag); rule != "" {
		return denied("tag %q is immutable (rule: %s)", tag, rule)
	}
	return nil
}

// CheckDeleteTag refuses deleting an immutable tag, or any tag under noDelete.
func (e *Engine) CheckDeleteTag(_ context.Context, repo, tag string, _ digest.Digest) error {
	if p, pat := e.Effective(repo); p.NoDelete {
		return denied("deletion is disabled in %s (rule: policy %q noDelete)", repo, pat)
	}
	if rule := e.ImmutableRule(repo, tag); rule != "" {
		return denied("tag %q is immutable (rule: %s)", tag, rule)
	}
	return nil
}

// CheckDeleteManifest refuses under noDelete, and refuses deleting a
// manifest an immutable tag points at (the delete would remove the tag).
// Finding those tags walks the repository's tag list.
func (e *Engine) CheckDeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	if p, pat := e.Effective(repo); p.NoDelete {
		return denied("deletion is disabled in %s (rule: policy %q noDelete)", repo, pat)
	}
	last := ""
	for {
		tags, err := e.meta.Tags(ctx, repo, last, 1000)
		if errors.Is(err, meta.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, t := range tags {
			rule := e.ImmutableRule(repo, t)
			if rule == "" {
				continue
			}
			if cur, err := e.meta.ResolveTag(ctx, repo, t); err == nil && cur == d {
				return denied("manifest %s carries tag %q, which is immutable (rule: %s)", d, t, rule)
			}
		}
		if len(tags) < 1000 {
			return nil
		}
		last = tags[len(tags)-1]
	}
}

// CheckDeleteBlob refuses under noDelete.
func (e *Engine) CheckDeleteBlob(_ context.Context, repo string, _ digest.Digest) error {
	if p, pat := e.Effective(repo); p.NoDelete {
		return denied("deletion is disabled in %s (rule: policy %q noDelete)", repo, pat)
	}
	return nil
}

// Listed is a current policy with its record (Version 0: from the
// configuration file).
type Listed struct {
	Policy Policy
	Record Record
}

// List returns the current policy of every pattern, configured or stored.
func (e *Engine) List(ctx context.Context) ([]Listed, error) {
	recs, err := e.store.CurrentPolicies(ctx)
	if err != nil {
		return nil, err
	}
	var out []Listed
	stored := map[string]bool{}
	for _, r := range recs {
		var p Policy
		if err := json.Unmarshal(r.Body, &p); err != nil {
			return nil, err
		}
		stored[r.Pattern] = true
		out = append(out, Listed{Policy: p, Record: r})
	}
	for pat, p := range e.configured {
		if !stored[pat] {
			out = append(out, Listed{Policy: p, Record: Record{Pattern: pat}})
		}
	}
	slices.SortFunc(out, func(a, b Listed) int { return strings.Compare(a.Record.Pattern, b.Record.Pattern) })
	return out, nil
}
