// Package retention implements retention locks and legal holds on
// artifacts, modelled on S3 Object Lock (see docs/retention.md).
//
// A lock is kept per artifact: a repository and a manifest digest. It
// covers the manifest, every child manifest of an index and every blob
// they reference. Enforcement happens in two places, so no code path can
// bypass it:
//
//   - Checker is a registry.Policy: it refuses /v2/ deletions of locked
//     manifests and of blobs they reference, and applies a repository's
//     default retention when a manifest is created. The server chains it
//     after the policy engine with registry.Policies.
//   - GuardBlobs wraps the blob store: its Delete refuses any blob a locked
//     or held artifact in any repository references. The server builds only
//     the guarded store, so garbage collection goes through it too.
//
// Time comes from the server's clock only.
package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/veto"
)

// Retention modes.
const (
	Governance = policy.ModeGovernance
	Compliance = policy.ModeCompliance
)

// BypassHeader carries the reason for a governance bypass on a request.
const BypassHeader = "X-Custody-Bypass-Governance"

var (
	// ErrLocked: the change is refused by a retention lock or legal hold.
	// It is always wrapped together with veto.ErrDenied.
	ErrLocked = errors.New("retention locked")
	// ErrNotFound: no lock is recorded for the artifact.
	ErrNotFound = errors.New("no retention recorded")
	// ErrInvalid: the requested lock is malformed.
	ErrInvalid = errors.New("invalid retention")
)

// Lock is the retention state of one artifact.
type Lock struct {
	Repo   string        `json:"repository"`
	Digest digest.Digest `json:"digest"`
	// Mode is governance, compliance, or "" when no retention period is set.
	Mode        string    `json:"mode,omitempty"`
	RetainUntil time.Time `json:"retainUntil,omitzero"`
	LegalHold   bool      `json:"legalHold"`
	Updated     time.Time `json:"updated,omitzero"`
}

// Retained reports whether the retention period is running at now.
func (l Lock) Retained(now time.Time) bool {
	return l.Mode != "" && now.Before(l.RetainUntil)
}

// Store keeps locks. It is implemented by the metadata backend
// (internal/meta/sqlite).
type Store interface {
	// GetLock returns the lock of an artifact or an error wrapping ErrNotFound.
	GetLock(ctx context.Context, repo string, d digest.Digest) (Lock, error)
	// SetLock records the lock fn returns for the artifact. fn runs inside
	// the same transaction with the current lock (nil when none) and may
	// refuse; its error is returned unchanged and nothing is written.
	SetLock(ctx context.Context, repo string, d digest.Digest, fn func(current *Lock) (Lock, error)) error
	// ListLocks returns the locks of repo's artifacts, ordered by digest.
	ListLocks(ctx context.Context, repo string) ([]Lock, error)
	// Protecting returns the locks of the artifacts whose manifest is d or
	// references d (as a blob, or through child manifests), in repo, or in
	// every repository when repo is "".
	Protecting(ctx context.Context, d digest.Digest, repo string) ([]Lock, error)
}

// Permissions is the seam for who may bypass governance retention. With
// authentication on, auth.Service decides (the governance-bypass role);
// with it off, ConfigPermissions decides from the configuration.
type Permissions interface {
	// CanBypassGovernance reports whether the request in ctx holds the
	// permission to bypass governance-mode retention.
	CanBypassGovernance(ctx context.Context) bool
}

// ConfigPermissions grants the governance bypass permission to every
// request when AllowGovernanceBypass is set (config
// retention.allowGovernanceBypass), and to none otherwise.
type ConfigPermissions struct{ AllowGovernanceBypass bool }

func (p ConfigPermissions) CanBypassGovernance(context.Context) bool {
	return p.AllowGovernanceBypass
}

type ctxKey struct{}

// WithBypass returns ctx carrying an explicit governance bypass with its
// reason (from the X-Custody-Bypass-Governance header).
func WithBypass(ctx context.Context, reason string) context.Context {
	return context.WithValue(ctx, ctxKey{}, reason)
}

// BypassReason returns the governance bypass reason ctx carries, or "".
func BypassReason(ctx context.Context) string {
	s, _ := ctx.Value(ctxKey{}).(string)
	return s
}

// Checker enforces locks and holds.
type Checker struct {
	Store       Store
	Meta        meta.Store
	Permissions Permissions
	// Audit records an event (action, repository, digest, result
	// "ok"/"denied", reason); the server sends it to the registry's auditor.
	Audit func(ctx context.Context, e Event)
	// Defaults returns a repository's default retention, or nil.
	Defaults func(repo string) *policy.DefaultRetention
	// Now is the clock; the server uses time.Now.
	Now func() time.Time
	// Stored, when set, is told of every lock stored (default retention,
	// retention changes, holds); the server mirrors them onto an Object
	// Lock bucket. It must not block.
	Stored func(l Lock)
}

func (c *Checker) stored(l Lock) {
	if c.Stored != nil {
		c.Stored(l)
	}
}

// Event is an audit record of a retention change, refusal or bypass.
type Event struct {
	Action string // retention.set, retention.default, retention.bypass, hold.set, hold.clear
	Repo   string
	Digest digest.Digest
	Result string // "ok" or "denied"
	Reason string
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func locked(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", veto.ErrDenied, ErrLocked, fmt.Sprintf(format, args...))
}

// allowDelete decides whether something the locks protect may be deleted.
// what names it in refusals.
func (c *Checker) allowDelete(ctx context.Context, locks []Lock, what string) error {
	now := c.now()
	var bypassed []Lock
	for _, l := range locks {
		subject := fmt.Sprintf("%s is protected by %s@%s", what, l.Repo, l.Digest)
		switch {
		case l.LegalHold:
			return locked("%s: legal hold (a governance bypass never lifts a hold)", subject)
		case !l.Retained(now):
		case l.Mode == Compliance:
			return locked("%s: compliance retention until %s", subject, l.RetainUntil.UTC().Format(time.RFC3339))
		case BypassReason(ctx) == "":
			return locked("%s: governance retention until %s (send %s: <reason> with the bypass permission)",
				subject, l.RetainUntil.UTC().Format(time.RFC3339), BypassHeader)
		case c.Permissions == nil || !c.Permissions.CanBypassGovernance(ctx):
			return locked("%s: governance retention until %s, and the request lacks the bypass permission",
				subject, l.RetainUntil.UTC().Format(time.RFC3339))
		default:
			bypassed = append(bypassed, l)
		}
	}
	for _, l := range bypassed {
		c.audit(ctx, Event{Action: "retention.bypass", Repo: l.Repo, Digest: l.Digest, Result: "ok",
			Reason: fmt.Sprintf("governance bypass for deleting %s: %s", what, BypassReason(ctx))})
	}
	return nil
}

func (c *Checker) audit(ctx context.Context, e Event) {
	if c.Audit != nil {
		c.Audit(ctx, e)
	}
}

// BlobDeletable returns nil when no lock or hold in any repository
// protects blob d.
func (c *Checker) BlobDeletable(ctx context.Context, d digest.Digest) error {
	locks, err := c.Store.Protecting(ctx, d, "")
	if err != nil {
		return err
	}
	return c.allowDelete(ctx, locks, "blob "+d.String())
}

// CheckManifest applies the repository's default retention to a manifest
// being created (retainUntil = created + period). An existing manifest, or
// one that already has a running lock, is left unchanged.
func (c *Checker) CheckManifest(ctx context.Context, m meta.Manifest) error {
	if c.Defaults == nil {
		return nil
	}
	def := c.Defaults(m.Repo)
	if def == nil {
		return nil
	}
	if _, err := c.Meta.GetManifest(ctx, m.Repo, m.Digest); err == nil {
		return nil
	} else if !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	created := m.Created
	if created.IsZero() {
		created = c.now()
	}
	now := c.now()
	until, err := meta.Instant(created.Add(time.Duration(def.Period)))
	if err != nil {
		return fmt.Errorf("%w: default retention of %s (%s from %s): %w", ErrInvalid, m.Repo,
			time.Duration(def.Period), created.UTC().Format(time.RFC3339), err)
	}
	updated, err := meta.Instant(now)
	if err != nil {
		return err
	}
	l := Lock{Repo: m.Repo, Digest: m.Digest, Mode: def.Mode, RetainUntil: until, Updated: updated}
	errKeep := errors.New("keep")
	err = c.Store.SetLock(ctx, m.Repo, m.Digest, func(cur *Lock) (Lock, error) {
		if cur != nil && (cur.Retained(now) || cur.LegalHold) {
			return Lock{}, errKeep
		}
		return l, nil
	})
	if errors.Is(err, errKeep) {
		return nil
	}
	if err == nil {
		c.stored(l)
		c.audit(ctx, Event{Action: "retention.default", Repo: m.Repo, Digest: m.Digest, Result: "ok",
			Reason: fmt.Sprintf("%s until %s", l.Mode, l.RetainUntil.Format(time.RFC3339Nano))})
	}
	return err
}

// CheckTag allows every tag move: tags are names, the lock protects content.
func (c *Checker) CheckTag(context.Context, string, string, digest.Digest, digest.Digest) error {
	return nil
}

// CheckDeleteTag allows removing a tag (like an S3 delete marker: the
// locked manifest and its bytes stay). Immutable-tag rules are the policy
// engine's.
func (c *Checker) CheckDeleteTag(context.Context, string, string, digest.Digest) error { return nil }

// CheckDeleteManifest refuses deleting a manifest that is locked or held,
// or that a locked or held index in the repository references.
func (c *Checker) CheckDeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	locks, err := c.Store.Protecting(ctx, d, repo)
	if err != nil {
		return err
	}
	return c.allowDelete(ctx, locks, "manifest "+repo+"@"+d.String())
}

// CheckDeleteBlob refuses unlinking a blob a locked or held artifact in
// the repository references.
func (c *Checker) CheckDeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	locks, err := c.Store.Protecting(ctx, d, repo)
	if err != nil {
		return err
	}
	return c.allowDelete(ctx, locks, "blob "+d.String()+" in "+repo)
}

// SetRetention sets the retention period of an existing artifact. Against
// a running lock: compliance may only be extended (same mode, later
// date); governance may be extended, and shortened or changed in mode only
// with a bypass and the bypass permission.
func (c *Checker) SetRetention(ctx context.Context, repo string, d digest.Digest, mode string, until time.Time) (Lock, error) {
	if mode != Governance && mode != Compliance {
		return Lock{}, fmt.Errorf("%w: mode %q: use governance or compliance", ErrInvalid, mode)
	}
	now := c.now()
	if !until.After(now) {
		return Lock{}, fmt.Errorf("%w: retainUntil %s is not in the future (server time %s)", ErrInvalid,
			until.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	// until and the update time as the store keeps them, so the lock
	// returned and audited is exactly the lock stored.
	until, err := meta.Instant(until)
	if err != nil {
		return Lock{}, fmt.Errorf("%w: retainUntil: %w", ErrInvalid, err)
	}
	updated, err := meta.Instant(now)
	if err != nil {
		return Lock{}, err
	}
	if _, err := c.Meta.GetManifest(ctx, repo, d); err != nil {
		return Lock{}, err
	}
	next := Lock{Repo: repo, Digest: d, Mode: mode, RetainUntil: until, Updated: updated}
	var bypass bool
	err = c.Store.SetLock(ctx, repo, d, func(cur *Lock) (Lock, error) {
		if cur != nil {
			next.LegalHold = cur.LegalHold
		}
		if cur == nil || !cur.Retained(now) {
			return next, nil
		}
		shorten := until.Before(cur.RetainUntil)
		change := mode != cur.Mode
		if !shorten && !change {
			return next, nil
		}
		what := "shorten"
		if change {
			what = fmt.Sprintf("change the mode (%s to %s) of", cur.Mode, mode)
		}
		if cur.Mode == Compliance {
			return Lock{}, locked("cannot %s compliance retention of %s@%s until %s", what, repo, d, cur.RetainUntil.UTC().Format(time.RFC3339))
		}
		if BypassReason(ctx) == "" {
			return Lock{}, locked("cannot %s governance retention of %s@%s without %s: <reason>", what, repo, d, BypassHeader)
		}
		if c.Permissions == nil || !c.Permissions.CanBypassGovernance(ctx) {
			return Lock{}, locked("cannot %s governance retention of %s@%s: the request lacks the bypass permission", what, repo, d)
		}
		bypass = true
		return next, nil
	})
	if err != nil {
		c.audit(ctx, Event{Action: "retention.set", Repo: repo, Digest: d, Result: "denied", Reason: err.Error()})
		return Lock{}, err
	}
	reason := fmt.Sprintf("%s until %s", mode, next.RetainUntil.Format(time.RFC3339Nano))
	if bypass {
		reason += "; governance bypass: " + BypassReason(ctx)
	}
	c.stored(next)
	c.audit(ctx, Event{Action: "retention.set", Repo: repo, Digest: d, Result: "ok", Reason: reason})
	return next, nil
}

// SetHold places (on) or removes a legal hold on an existing artifact.
// Holds are independent of retention; anyone who can reach the API may
// change them until authentication provides a dedicated permission.
func (c *Checker) SetHold(ctx context.Context, repo string, d digest.Digest, on bool) (Lock, error) {
	if _, err := c.Meta.GetManifest(ctx, repo, d); err != nil {
		return Lock{}, err
	}
	now, err := meta.Instant(c.now())
	if err != nil {
		return Lock{}, err
	}
	next := Lock{Repo: repo, Digest: d, LegalHold: on, Updated: now}
	err = c.Store.SetLock(ctx, repo, d, func(cur *Lock) (Lock, error) {
		if cur != nil {
			next.Mode, next.RetainUntil = cur.Mode, cur.RetainUntil
		}
		return next, nil
	})
	if err != nil {
		return Lock{}, err
	}
	action := "hold.clear"
	if on {
		action = "hold.set"
	}
	c.stored(next)
	c.audit(ctx, Event{Action: action, Repo: repo, Digest: d, Result: "ok"})
	return next, nil
}

// Protected reports whether a running lock or a legal hold in any
// repository covers d. It implements gc.Protector: garbage collection never
// bypasses governance retention, so any running lock protects.
func (c *Checker) Protected(ctx context.Context, d digest.Digest) (bool, error) {
	locks, err := c.Store.Protecting(ctx, d, "")
	if err != nil {
		return false, err
	}
	now := c.now()
	for _, l := range locks {
		if l.LegalHold || l.Retained(now) {
			return true, nil
		}
	}
	return false, nil
}
