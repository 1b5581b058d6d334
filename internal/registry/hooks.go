package registry

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/meta"
)

// The registry leaves three seams for what sits around the OCI core:
// authorization (who may do what), audit (a record of every state change
// and every refusal) and policy (rules that may veto a change).
// Authorizer and Policy are small interfaces declared here, where they are
// consumed; the audit vocabulary (audit.Event, audit.Auditor) and the
// identity an Authorizer establishes (identity.Identity) are leaf packages
// shared with the other endpoints. The defaults allow everything and log
// events.

// Action is what a request does to a repository, in the Docker token
// scope vocabulary ("pull", "push", "delete") plus finer actions the
// registry distinguishes.
type Action string

const (
	ActionPull   Action = "pull"
	ActionPush   Action = "push"
	ActionDelete Action = "delete"
	// ActionCatalog lists every repository name (/v2/_catalog).
	ActionCatalog Action = "catalog"
)

// Access is one permission a request needs: Action on Repo. A
// cross-repository mount needs pull on the source and push on the target.
type Access struct {
	Repo   string
	Action Action
}

// Authorizer decides whether a request may perform every access it needs.
// It returns the request to continue with (for example with the identity
// in its context, identity.With), or an error wrapping ErrUnauthenticated
// (401), ErrDenied (403) or ErrTooManyRequests (429). With an error it may still
// return a request carrying the refused identity, which the audit entry of
// the refusal then names. Authorizers may set response headers such as
// WWW-Authenticate on w.
type Authorizer interface {
	Authorize(w http.ResponseWriter, r *http.Request, need []Access) (*http.Request, error)
}

// Policy may veto changes. Every method returns nil to allow, or an error
// wrapping ErrDenied whose text names the rule.
type Policy interface {
	// CheckManifest runs before a manifest is stored.
	CheckManifest(ctx context.Context, m meta.Manifest) error
	// CheckTag runs inside the metadata transaction that moves tag from
	// current (empty when new) to next, so a check cannot race.
	CheckTag(ctx context.Context, repo, tag string, current, next digest.Digest) error
	// CheckDeleteManifest runs before manifest d is deleted from repo.
	CheckDeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	// CheckDeleteTag runs before tag is removed from repo.
	CheckDeleteTag(ctx context.Context, repo, tag string, current digest.Digest) error
	// CheckDeleteBlob runs before blob d is unlinked from repo.
	CheckDeleteBlob(ctx context.Context, repo string, d digest.Digest) error
}

// BlobPolicy is an optional extension of Policy: a Policy that implements
// it also sees the config and layer descriptors (media type, size) of an
// image manifest, after CheckManifest and before the manifest is stored.
type BlobPolicy interface {
	CheckBlobs(ctx context.Context, m meta.Manifest, blobs []meta.Descriptor) error
}

// Policies chains policies: each check asks every policy in order and
// returns the first refusal. Put side-effect-free policies first: a later
// policy's check runs only once the earlier ones allowed the change.
type Policies []Policy

var (
	_ Policy     = Policies(nil)
	_ BlobPolicy = Policies(nil)
)

func (ps Policies) each(fn func(Policy) error) error {
	for _, p := range ps {
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

func (ps Policies) CheckManifest(ctx context.Context, m meta.Manifest) error {
	return ps.each(func(p Policy) error { return p.CheckManifest(ctx, m) })
}

func (ps Policies) CheckBlobs(ctx context.Context, m meta.Manifest, blobs []meta.Descriptor) error {
	return ps.each(func(p Policy) error {
		if bp, ok := p.(BlobPolicy); ok {
			return bp.CheckBlobs(ctx, m, blobs)
		}
		return nil
	})
}

func (ps Policies) CheckTag(ctx context.Context, repo, tag string, current, next digest.Digest) error {
	return ps.each(func(p Policy) error { return p.CheckTag(ctx, repo, tag, current, next) })
}

func (ps Policies) CheckDeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return ps.each(func(p Policy) error { return p.CheckDeleteManifest(ctx, repo, d) })
}

func (ps Policies) CheckDeleteTag(ctx context.Context, repo, tag string, current digest.Digest) error {
	return ps.each(func(p Policy) error { return p.CheckDeleteTag(ctx, repo, tag, current) })
}

func (ps Policies) CheckDeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	return ps.each(func(p Policy) error { return p.CheckDeleteBlob(ctx, repo, d) })
}

// AllowAll is the Authorizer and Policy that allow everything.
type AllowAll struct{}

func (AllowAll) Authorize(_ http.ResponseWriter, r *http.Request, _ []Access) (*http.Request, error) {
	return r, nil
}
func (AllowAll) CheckManifest(context.Context, meta.Manifest) error { return nil }
func (AllowAll) CheckTag(context.Context, string, string, digest.Digest, digest.Digest) error {
	return nil
}
func (AllowAll) CheckDeleteManifest(context.Context, string, digest.Digest) error { return nil }
func (AllowAll) CheckDeleteTag(context.Context, string, string, digest.Digest) error {
	return nil
}
func (AllowAll) CheckDeleteBlob(context.Context, string, digest.Digest) error { return nil }

// LogAuditor writes events to a structured log. It is the default until
// the tamper-evident audit log is configured.
type LogAuditor struct{ Log *slog.Logger }

// Record implements audit.Auditor.
func (a LogAuditor) Record(ctx context.Context, e audit.Event) {
	attrs := []slog.Attr{
		slog.String("action", e.Action),
		slog.String("result", e.Result),
	}
	if e.Repo != "" {
		attrs = append(attrs, slog.String("repo", e.Repo))
	}
	if e.Digest != "" {
		attrs = append(attrs, slog.String("digest", e.Digest.String()))
	}
	if e.Tag != "" {
		attrs = append(attrs, slog.String("tag", e.Tag))
	}
	if e.Reason != "" {
		attrs = append(attrs, slog.String("reason", e.Reason))
	}
	if e.Request != nil {
		attrs = append(attrs, slog.String("client", e.Request.RemoteAddr),
			slog.String("request_id", RequestID(e.Request.Context())))
	}
	level := slog.LevelInfo
	if e.Result != "ok" {
		level = slog.LevelWarn
	}
	a.Log.LogAttrs(ctx, level, "audit", attrs...)
}

type ctxKey int

const requestIDKey ctxKey = iota

// WithRequestID returns ctx carrying a request ID.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request ID carried by ctx, or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}
