// Package pullthrough serves OCI proxy feeds: repositories named
// <feed>/<upstream repository> under a feed of ecosystem oci and kind
// proxy are filled from the feed's upstream registry on first read.
//
// Handler.Front runs inside the /v2/ registry (registry.Options.Front)
// once a request is authorized. For a GET or HEAD of a manifest, blob or
// referrers list in such a repository, asked by a reader of it (the
// registry's Authorizer decided), it makes sure the content is stored and
// then lets the registry answer, so a proxied image
// is served, verified, retained, held, collected and audited exactly as a
// pushed one. Content is fetched with go-containerregistry's remote
// client (its token flow, so Docker Hub style registries work, anonymous
// unless the feed has upstreamAuth) and written through the server's
// internal registry over the same stores: the one storage path, which
// hashes every blob while writing and keeps nothing that does not match
// its digest. With an image come its cosign signature, attestation and
// SBOM tags (sha256-<hex>.sig/.att/.sbom) and its OCI 1.1 referrers.
//
// Tags: a tag read asks upstream for the tag's digest (HEAD) each time it
// is reachable and moves the local tag when upstream moved it; the
// registry's tag history records the first digest and every move, and
// nothing is deleted when upstream drops a tag. When upstream cannot be
// reached, or no longer has the tag, the stored tag is served: a warm
// proxy works air-gapped. Manifests and blobs by digest are never fetched
// again once stored.
//
// Writes (push, delete) into a proxy feed's repositories are refused with
// 403 DENIED; concurrent first reads of one reference share one fetch.
// See docs/pullthrough.md.
package pullthrough

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/registry"
)

// Audit actions: a fetch from upstream, a refused write into a proxy feed.
const (
	ActionFetch = "pullthrough.fetch"
	ActionWrite = "pullthrough.write"
)

// Timeouts of upstream calls: a tag resolution is short (a warm proxy must
// answer promptly when upstream is unreachable); a whole image with its
// signatures and referrers may be large.
const (
	resolveTimeout = 15 * time.Second
	fetchTimeout   = 30 * time.Minute
	// unreachableFor is how long an upstream that could not be reached
	// is not asked to resolve tags or list referrers (stored ones are
	// served): a warm proxy on a network that drops packets answers
	// promptly instead of waiting resolveTimeout on every read.
	unreachableFor = 30 * time.Second
)

// cosignSuffixes are the tag suffixes of cosign's tag scheme copied with
// an image: signatures, attestations, SBOMs.
var cosignSuffixes = []string{".sig", ".att", ".sbom"}

// Options build a Handler.
type Options struct {
	// Feeds is the configuration's feeds; those of ecosystem oci and kind
	// proxy are served.
	Feeds []config.Feed
	// Local reaches the server's internal registry over the same stores
	// (its in-process transport), named Host in references.
	Local   http.RoundTripper
	Host    string
	Auditor audit.Auditor
	Log     *slog.Logger
	// Transport reaches upstream registries (nil: remote.DefaultTransport).
	Transport http.RoundTripper
	// UserAgent is sent upstream.
	UserAgent string
	// Getenv reads the upstream credentials' environment variables (nil:
	// os.Getenv).
	Getenv func(string) string
}

// upstream is a proxy feed's upstream registry.
type upstream struct {
	feed string
	url  string
	reg  name.Registry
	opts []remote.Option
	// downUntil (Unix nanoseconds) is when the upstream may be asked
	// again after it could not be reached.
	downUntil atomic.Int64
}

// errUnreachable: the upstream failed to answer recently and is not asked.
var errUnreachable = errors.New("upstream unreachable a moment ago; not asked again yet")

// reachable reports whether up may be asked to resolve a tag or list
// referrers now.
func (up *upstream) reachable() bool { return time.Now().UnixNano() >= up.downUntil.Load() }

// note records the outcome of a call to up: an error that is not an
// HTTP answer (refused or dropped connection, timeout) marks it
// unreachable for a while.
func (up *upstream) note(err error) {
	var te *transport.Error
	if err != nil && !errors.As(err, &te) {
		up.downUntil.Store(time.Now().Add(unreachableFor).UnixNano())
	}
}

// Handler serves the proxy feeds.
type Handler struct {
	feeds map[string]*upstream
	local []remote.Option
	tr    http.RoundTripper
	host  string
	audit audit.Auditor
	log   *slog.Logger
	group singleflight.Group
	// repoLocks serialise this process's fetches into one repository, so
	// the blobs one fetch undoes on failure are none another relies on.
	repoLocks sync.Map // repository -> *sync.Mutex
}

// New returns a Handler for the OCI proxy feeds among o.Feeds. A feed
// whose upstream credentials name an unset environment variable is an
// error: anonymous access in their place would fail later and obscurely.
func New(o Options) (*Handler, error) {
	h := &Handler{feeds: map[string]*upstream{}, local: []remote.Option{remote.WithTransport(o.Local)}, tr: o.Local, host: o.Host, audit: o.Auditor, log: o.Log}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.audit == nil {
		h.audit = registry.LogAuditor{Log: h.log}
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	tr := o.Transport
	if tr == nil {
		tr = remote.DefaultTransport
	}
	for _, f := range o.Feeds {
		if f.Ecosystem != config.FeedEcosystemOCI || f.Kind != config.FeedKindProxy {
			continue
		}
		u, err := url.Parse(f.Upstream)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("feed %s: upstream %q is not an http(s) URL", f.Name, f.Upstream)
		}
		if p := strings.Trim(u.Path, "/"); p != "" && p != "v2" {
			return nil, fmt.Errorf("feed %s: upstream %q: an OCI upstream is a registry's base URL, without a path", f.Name, f.Upstream)
		}
		nopts := []name.Option{name.StrictValidation}
		if u.Scheme == "http" {
			nopts = append(nopts, name.Insecure)
		}
		reg, err := name.NewRegistry(u.Host, nopts...)
		if err != nil {
			return nil, fmt.Errorf("feed %s: upstream %q: %w", f.Name, f.Upstream, err)
		}
		auth, err := credentials(f, getenv)
		if err != nil {
			return nil, err
		}
		ropts := []remote.Option{remote.WithTransport(tr), remote.WithAuth(auth)}
		if o.UserAgent != "" {
			ropts = append(ropts, remote.WithUserAgent(o.UserAgent))
		}
		h.feeds[f.Name] = &upstream{feed: f.Name, url: f.Upstream, reg: reg, opts: ropts}
	}
	return h, nil
}

// credentials are a feed's upstream credentials, read from the
// environment: Basic, Bearer, or anonymous.
func credentials(f config.Feed, getenv func(string) string) (authn.Authenticator, error) {
	a := f.UpstreamAuth
	switch {
	case a.TokenEnv != "":
		t := getenv(a.TokenEnv)
		if t == "" {
			return nil, fmt.Errorf("feed %s: upstreamAuth.tokenEnv names %s, which is not set", f.Name, a.TokenEnv)
		}
		return &authn.Bearer{Token: t}, nil
	case a.Username != "":
		p := getenv(a.PasswordEnv)
		if p == "" {
			return nil, fmt.Errorf("feed %s: upstreamAuth.passwordEnv names %s, which is not set", f.Name, a.PasswordEnv)
		}
		return &authn.Basic{Username: a.Username, Password: p}, nil
	}
	return authn.Anonymous, nil
}

// Split returns the proxy feed and the upstream repository a repository
// name addresses: repo is <feed>/<upstream repository>. ok is false when
// repo is not under a proxy feed; rest is empty for the feed's bare name.
func (h *Handler) Split(repo string) (feed, rest string, ok bool) {
	feed, rest, _ = strings.Cut(repo, "/")
	_, ok = h.feeds[feed]
	return feed, rest, ok
}

// Front is the registry's Options.Front: it sees every authorized request
// to a repository. Reads of a manifest, blob or referrers list under a
// proxy feed make sure the content is stored first (the registry has
// already checked that the caller may read the repository, so only
// readers cause fetches); writes there are refused with DENIED.
func (h *Handler) Front(w http.ResponseWriter, r *http.Request, kind, repo, ref string) bool {
	feed, rest, proxied := h.Split(repo)
	if !proxied || kind == "tags" {
		return true
	}
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || kind == "upload" || kind == "uploads" {
		h.audit.Record(r.Context(), audit.Event{Action: ActionWrite, Repo: repo, Result: "denied",
			Reason: "proxy feed is read-only", Request: r})
		registry.WriteError(w, r, &registry.Error{Status: http.StatusForbidden, Code: registry.CodeDenied,
			Message: fmt.Sprintf("%s is a proxy feed of %s and is read-only; push to a repository outside it", feed, h.feeds[feed].url)})
		return false
	}
	if rest == "" {
		return true
	}
	if err := h.ensure(r, kind, feed, rest, ref); err != nil {
		h.refuse(w, r, kind, err)
		return false
	}
	return true
}

// refuse answers a read whose content could not be fetched: 502, with
// the detail in the log only (it may name internal addresses).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, kind string, err error) {
	code := "MANIFEST_UNKNOWN"
	if kind == "blob" {
		code = "BLOB_UNKNOWN"
	}
	id := registry.RequestID(r.Context())
	h.log.WarnContext(r.Context(), "pull-through fetch failed", "path", r.URL.Path, "err", err, "request_id", id)
	registry.WriteError(w, r, &registry.Error{Status: http.StatusBadGateway, Code: code,
		Message: fmt.Sprintf("not stored here, and fetching it from the upstream registry failed; nothing was stored (request id %s)", id)})
}

// ensure makes the content a read addresses present, when upstream has
// it. A nil error means: let the registry answer from what is stored.
func (h *Handler) ensure(r *http.Request, kind, feed, rest, ref string) error {
	up := h.feeds[feed]
	local, err := name.NewRepository(h.host+"/"+feed+"/"+rest, name.StrictValidation)
	if err != nil {
		return nil // the registry refuses the name
	}
	remoteRepo := up.reg.Repo(rest)
	switch kind {
	case "manifest":
		if d, err := digest.Parse(ref); err == nil {
			return h.byDigest(r, up, local, remoteRepo, d)
		}
		if !registry.ValidTag(ref) {
			return nil
		}
		return h.byTag(r, up, local, remoteRepo, ref)
	case "blob":
		d, err := digest.Parse(ref)
		if err != nil {
			return nil
		}
		return h.blob(r, up, local, remoteRepo, d)
	case "referrers":
		d, err := digest.Parse(ref)
		if err != nil {
			return nil
		}
		// The list grows upstream: ask it each time it is reachable,
		// serve what is stored when it is not.
		_, _, _ = h.group.Do("referrers "+local.String()+"@"+d.String(), func() (any, error) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), fetchTimeout)
			defer cancel()
			defer h.lock(local)()
			if err := h.referrers(ctx, r, up, local, remoteRepo, d); err != nil {
				h.log.WarnContext(ctx, "pull-through: referrers from upstream", "repo", local.RepositoryStr(), "digest", d, "err", err)
			}
			return nil, nil
		})
	}
	return nil
}

// present reports whether the internal registry has the manifest ref.
func (h *Handler) present(ctx context.Context, ref name.Reference) (*v1.Descriptor, bool) {
	d, err := remote.Head(ref, append(h.local[:len(h.local):len(h.local)], remote.WithContext(ctx))...)
	return d, err == nil
}

// notFound reports whether upstream answered that it has no such thing.
func notFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && (te.StatusCode == http.StatusNotFound)
}

func (h *Handler) byDigest(r *http.Request, up *upstream, local name.Repository, remoteRepo name.Repository, d digest.Digest) error {
	ctx := r.Context()
	if _, ok := h.present(ctx, local.Digest(d.String())); ok {
		return nil
	}
	_, err, _ := h.group.Do("manifest "+local.String()+"@"+d.String(), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		defer h.lock(local)()
		return nil, h.fetch(ctx, r, up, remoteRepo.Digest(d.String()), local.Digest(d.String()))
	})
	if err != nil && notFound(err) {
		return nil // the registry answers 404
	}
	return err
}

func (h *Handler) byTag(r *http.Request, up *upstream, local name.Repository, remoteRepo name.Repository, tag string) error {
	_, err, _ := h.group.Do("tag "+local.String()+":"+tag, func() (any, error) {
		desc, err := (*v1.Descriptor)(nil), errUnreachable
		if up.reachable() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), resolveTimeout)
			desc, err = remote.Head(remoteRepo.Tag(tag), append(up.opts[:len(up.opts):len(up.opts)], remote.WithContext(ctx))...)
			cancel()
			up.note(err)
		}
		// The first caller's request may end; the shared work does not.
		cur, have := h.present(context.WithoutCancel(r.Context()), local.Tag(tag))
		if err != nil {
			if have {
				// Unreachable, or upstream no longer has the tag: serve
				// the stored one (air-gapped once warm; never deleted).
				h.log.InfoContext(r.Context(), "pull-through: upstream tag not resolved; serving the stored tag",
					"repo", local.RepositoryStr(), "tag", tag, "err", err)
				return nil, nil
			}
			return nil, err
		}
		if have && cur.Digest == desc.Digest {
			return nil, nil
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), fetchTimeout)
		defer cancel()
		defer h.lock(local)()
		// Fetch by the digest just resolved, so what is stored is what
		// the tag named, then point the local tag at it.
		err = h.fetch(ctx, r, up, remoteRepo.Digest(desc.Digest.String()), local.Tag(tag))
		if err != nil && have {
			// The move failed (a tag policy refused it, the upstream
			// failed part way): the stored tag stays and is served.
			h.log.WarnContext(r.Context(), "pull-through: upstream moved the tag and following it failed; serving the stored tag",
				"repo", local.RepositoryStr(), "tag", tag, "stored", cur.Digest, "upstream", desc.Digest, "err", err)
			return nil, nil
		}
		return nil, err
	})
	if err != nil && notFound(err) {
		return nil
	}
	return err
}

// fetch copies the manifest from (an image or an index with all its
// children, and their blobs) to the internal registry as to, then the
// cosign tags and referrers of its digest. Blobs already stored are not
// fetched again (the registry answers the existence check).
func (h *Handler) fetch(ctx context.Context, r *http.Request, up *upstream, from name.Digest, to name.Reference) (err error) {
	var dig digest.Digest
	defer func() {
		e := audit.Event{Action: ActionFetch, Repo: to.Context().RepositoryStr(), Digest: dig, Result: "ok",
			Reason: "from " + up.url + " " + from.Context().RepositoryStr() + "@" + from.DigestStr(), Request: r}
		if t, ok := to.(name.Tag); ok {
			e.Tag = t.TagStr()
		}
		if err != nil {
			e.Result, e.Reason = "error", e.Reason+": "+err.Error()
			if notFound(err) {
				return // nothing to record: upstream has no such thing
			}
		}
		h.audit.Record(ctx, e)
	}()
	dig, err = h.copyManifest(ctx, up, from, to)
	if err != nil {
		return err
	}
	// Signatures and referrers are copied with the image; failing to
	// copy them does not fail the image (they are asked for again when
	// read: a cosign tag read is a tag read, a referrers read asks too).
	h.companions(ctx, r, up, to.Context(), from.Context(), dig)
	return nil
}

// copyManifest copies one manifest (by digest) with what it references.
// When it fails part way, what it stored (blobs verified so far, the
// children of an index) is removed again, so a refused fetch leaves the
// repository as it was.
func (h *Handler) copyManifest(ctx context.Context, up *upstream, from name.Digest, to name.Reference) (_ digest.Digest, err error) {
	src := append(up.opts[:len(up.opts):len(up.opts)], remote.WithContext(ctx))
	rec := &recorder{next: h.tr}
	dst := []remote.Option{remote.WithTransport(rec), remote.WithContext(ctx)}
	defer func() {
		if err != nil {
			h.undo(context.WithoutCancel(ctx), to.Context(), rec)
		}
	}()
	desc, err := remote.Get(from, src...)
	if err != nil {
		return "", err
	}
	d := digest.Digest(desc.Digest.String())
	if d.String() != from.DigestStr() {
		return "", fmt.Errorf("upstream served %s for %s", d, from.DigestStr())
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return "", err
		}
		return d, remote.WriteIndex(to, idx, dst...)
	case desc.MediaType.IsImage(), desc.MediaType == types.OCIManifestSchema1 || desc.MediaType == "":
		img, err := desc.Image()
		if err != nil {
			return "", err
		}
		return d, remote.Write(to, img, dst...)
	}
	return "", fmt.Errorf("upstream manifest %s has media type %s, which custody does not store", d, desc.MediaType)
}

// companions copies the cosign tags and the referrers of digest d.
func (h *Handler) companions(ctx context.Context, r *http.Request, up *upstream, local, remoteRepo name.Repository, d digest.Digest) {
	src := append(up.opts[:len(up.opts):len(up.opts)], remote.WithContext(ctx))
	base := d.Algorithm().String() + "-" + d.Encoded()
	for _, suffix := range cosignSuffixes {
		tag := base + suffix
		desc, err := remote.Head(remoteRepo.Tag(tag), src...)
		if err != nil {
			continue
		}
		if cur, ok := h.present(ctx, local.Tag(tag)); ok && cur.Digest == desc.Digest {
			continue
		}
		if _, err := h.copyManifest(ctx, up, remoteRepo.Digest(desc.Digest.String()), local.Tag(tag)); err != nil {
			h.log.WarnContext(ctx, "pull-through: copying a cosign tag", "repo", local.RepositoryStr(), "tag", tag, "err", err)
		}
	}
	if err := h.referrers(ctx, r, up, local, remoteRepo, d); err != nil {
		h.log.WarnContext(ctx, "pull-through: referrers from upstream", "repo", local.RepositoryStr(), "digest", d, "err", err)
	}
}

// referrers copies the upstream referrers of d that are not stored yet.
func (h *Handler) referrers(ctx context.Context, r *http.Request, up *upstream, local, remoteRepo name.Repository, d digest.Digest) error {
	if !up.reachable() {
		return errUnreachable
	}
	lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	idx, err := remote.Referrers(remoteRepo.Digest(d.String()), append(up.opts[:len(up.opts):len(up.opts)], remote.WithContext(lctx))...)
	up.note(err)
	if err != nil {
		cancel()
		return err
	}
	im, err := idx.IndexManifest()
	cancel()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range im.Manifests {
		if _, ok := h.present(ctx, local.Digest(m.Digest.String())); ok {
			continue
		}
		if _, err := h.copyManifest(ctx, up, remoteRepo.Digest(m.Digest.String()), local.Digest(m.Digest.String())); err != nil {
			errs = append(errs, fmt.Errorf("referrer %s: %w", m.Digest, err))
			continue
		}
		h.audit.Record(ctx, audit.Event{Action: ActionFetch, Repo: local.RepositoryStr(), Digest: digest.Digest(m.Digest.String()), Result: "ok",
			Reason: "referrer of " + d.String() + " from " + up.url, Request: r})
	}
	return errors.Join(errs...)
}

// blob fetches a blob asked for by digest that is not stored (clients ask
// for the manifest first, which brings its blobs; this serves those that
// did not).
func (h *Handler) blob(r *http.Request, up *upstream, local, remoteRepo name.Repository, d digest.Digest) error {
	ctx := r.Context()
	dst := append(h.local[:len(h.local):len(h.local)], remote.WithContext(ctx))
	if l, err := remote.Layer(local.Digest(d.String()), dst...); err == nil {
		if _, err := l.Size(); err == nil {
			return nil
		}
	}
	_, err, _ := h.group.Do("blob "+local.String()+"@"+d.String(), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		defer h.lock(local)()
		l, err := remote.Layer(remoteRepo.Digest(d.String()), append(up.opts[:len(up.opts):len(up.opts)], remote.WithContext(ctx))...)
		if err != nil {
			return nil, err
		}
		err = remote.WriteLayer(local, l, append(h.local[:len(h.local):len(h.local)], remote.WithContext(ctx))...)
		res := "ok"
		if err != nil {
			res = "error"
		}
		h.audit.Record(ctx, audit.Event{Action: ActionFetch, Repo: local.RepositoryStr(), Digest: d, Result: res,
			Reason: "blob from " + up.url, Request: r})
		return nil, err
	})
	if err != nil && notFound(err) {
		return nil
	}
	return err
}

// lock holds the fetch lock of repository repo; it returns the unlock.
func (h *Handler) lock(repo name.Repository) func() {
	m, _ := h.repoLocks.LoadOrStore(repo.RepositoryStr(), &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// recorder is a transport to the internal registry that notes the blobs
// and manifests a copy stored (201 Created).
type recorder struct {
	next      http.RoundTripper
	mu        sync.Mutex
	blobs     []string
	manifests []string
}

func (t *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		return resp, err
	}
	kind, _, ref, ok := registry.ParseRoute(req.URL.Path)
	if !ok {
		return resp, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case kind == "upload" && req.Method == http.MethodPut:
		t.blobs = append(t.blobs, req.URL.Query().Get("digest"))
	case kind == "uploads" && req.Method == http.MethodPost && req.URL.Query().Get("mount") != "":
		t.blobs = append(t.blobs, req.URL.Query().Get("mount"))
	case kind == "manifest" && req.Method == http.MethodPut:
		if d := resp.Header.Get("Docker-Content-Digest"); d != "" {
			ref = d
		}
		t.manifests = append(t.manifests, ref)
	}
	return resp, err
}

// undo removes what a failed copy stored in repo, manifests first (an
// index's children), then blobs. It is best effort: what stays is
// logged (garbage collection reclaims blobs no manifest references).
func (h *Handler) undo(ctx context.Context, repo name.Repository, rec *recorder) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	del := func(path string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, repo.Scheme()+"://"+repo.RegistryStr()+"/v2/"+repo.RepositoryStr()+path, nil)
		if err != nil {
			return
		}
		resp, err := h.tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusNotFound {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		h.log.WarnContext(ctx, "pull-through: removing what a failed fetch stored", "repo", repo.RepositoryStr(), "path", path, "err", err)
	}
	for i := len(rec.manifests) - 1; i >= 0; i-- {
		if _, err := digest.Parse(rec.manifests[i]); err == nil {
			del("/manifests/" + rec.manifests[i])
		}
	}
	for _, b := range rec.blobs {
		if _, err := digest.Parse(b); err == nil {
			del("/blobs/" + b)
		}
	}
}
