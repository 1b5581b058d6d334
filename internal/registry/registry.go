// Package registry serves the OCI distribution-spec v1.1 API (/v2/) over a
// blob.Store and a meta.Store: pull, push (monolithic, single-request and
// chunked, with cross-repository mounts), content discovery (tags, catalog,
// referrers) and content management.
//
// A push flows like this: an upload session is recorded in the metadata
// store and streamed into the blob store, which hashes while it writes and
// makes the blob visible only once its digest matches; the blob is then
// linked into the repository. A manifest PUT is parsed and validated (media
// type, references present, size limit), its bytes stored as a blob, and its
// record, references and tags written in one metadata transaction, during
// which the Policy may veto the tag move.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/reqbody"
)

// Options configure a Registry. Zero values select safe defaults.
type Options struct {
	Log        *slog.Logger
	Authorizer Authorizer
	Auditor    audit.Auditor
	Policy     Policy
	// MaxManifestSize caps manifest bodies (default 4 MiB); larger ones are
	// refused with 413 before they are read.
	MaxManifestSize int64
	// MaxPageSize caps `n` on tag and catalog listings (default 10,000).
	MaxPageSize int
	// MaxReferrersPage caps the descriptors of one referrers response
	// (default DefaultReferrersPage); more are paged with a Link header.
	MaxReferrersPage int
	// Now returns the current time (tests may replace it).
	Now func() time.Time
	// BlobLocks, shared with garbage collection on the same stores, is
	// held from storing a blob's bytes until the metadata naming it
	// commits (see docs/maintenance.md). Nil locks nothing.
	BlobLocks *blob.Locks
	// Verifier, when set, checks a blob's stored bytes against its digest
	// before they are served (see fs.Store.Verify).
	Verifier Verifier
	// BlobRedirect, when set, answers blob GETs with a 307 to the URL it
	// returns (an object store's presigned URL) instead of streaming the
	// bytes through the registry; on error the blob is served directly.
	BlobRedirect func(ctx context.Context, d digest.Digest) (*url.URL, error)
	// Front, when set, sees every request to a repository once it is
	// authorized, before the registry serves it, with the route's kind
	// ("manifest", "blob", "upload", "uploads", "tags", "referrers"),
	// repository and reference. It returns false when it answered the
	// request itself (a refusal); otherwise the registry serves it (the
	// OCI proxy feeds store upstream content here first).
	Front func(w http.ResponseWriter, r *http.Request, kind, repo, ref string) bool
}

// DefaultReferrersPage is the default size of a referrers page. It stays
// above what custody's own signature lookup examines (sign.MaxReferrers),
// because go-containerregistry reads only the first page: a subject with
// too many referrers must show more than that limit there, so the lookup
// refuses it rather than judging on a truncated list.
const DefaultReferrersPage = 2000

// Verifier is verification on read: it checks that the stored bytes of a
// blob hash to its digest. Both blob backends implement it
// (internal/blob/fs, internal/blob/s3); it is the one place where a
// backend decides that content may be served.
type Verifier interface {
	// Verify returns an error wrapping blob.ErrDigestMismatch when the
	// stored bytes of d do not hash to d (blob.ErrNotFound when d is
	// missing).
	Verify(ctx context.Context, d digest.Digest) error
	// OpenVerified opens d and verifies the very content it opened (the
	// file or object version the reader reads), with Verify's errors;
	// it returns no reader unless that content is verified.
	OpenVerified(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
}

// Registry is an http.Handler for the /v2/ API.
type Registry struct {
	blobs  blob.Store
	meta   meta.Store
	log    *slog.Logger
	authz  Authorizer
	audit  audit.Auditor
	policy Policy

	maxManifest  int64
	maxPage      int
	maxReferrers int
	now          func() time.Time
	locks        *blob.Locks
	verifier     Verifier
	redirect     func(ctx context.Context, d digest.Digest) (*url.URL, error)
	front        func(w http.ResponseWriter, r *http.Request, kind, repo, ref string) bool

	// flushLater: the Auditor's commits flush meta's database (see
	// changeContext).
	flushLater bool

	// uploadLocks serializes requests on one upload session in this process.
	uploadLocks sync.Map // id -> *sync.Mutex
}

// New returns a registry serving blobs and metadata from the given stores.
func New(blobs blob.Store, md meta.Store, opts Options) *Registry {
	r := &Registry{
		blobs:        blobs,
		meta:         md,
		log:          opts.Log,
		authz:        opts.Authorizer,
		audit:        opts.Auditor,
		policy:       opts.Policy,
		maxManifest:  opts.MaxManifestSize,
		maxPage:      opts.MaxPageSize,
		maxReferrers: opts.MaxReferrersPage,
		now:          opts.Now,
		locks:        opts.BlobLocks,
		verifier:     opts.Verifier,
		redirect:     opts.BlobRedirect,
		front:        opts.Front,
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.authz == nil {
		r.authz = AllowAll{}
	}
	if r.audit == nil {
		r.audit = LogAuditor{Log: r.log}
	}
	r.flushLater = audit.Flushes(r.audit, md)
	if r.policy == nil {
		r.policy = AllowAll{}
	}
	if r.maxManifest <= 0 {
		r.maxManifest = 4 << 20
	}
	if r.maxPage <= 0 {
		r.maxPage = 10000
	}
	if r.maxReferrers <= 0 {
		r.maxReferrers = DefaultReferrersPage
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// ServeHTTP routes a /v2/ request.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	reqbody.Wrap(r)
	// Escaped characters (%2e, %2f, ...) never appear in valid names,
	// digests or tags: refuse them rather than decode them into a path.
	if r.URL.RawPath != "" {
		writeError(w, r, errorf(http.StatusBadRequest, codeNameInvalid, "escaped characters are not allowed in the path"))
		return
	}
	rt, ok := parseRoute(r.URL.Path)
	if !ok {
		writeError(w, r, errorf(http.StatusNotFound, codeNameUnknown, "no such endpoint: %s", r.URL.Path))
		return
	}
	if rt.kind != "base" && rt.kind != "catalog" && !ValidName(rt.repo) {
		writeError(w, r, errorf(http.StatusBadRequest, codeNameInvalid, "invalid repository name"))
		return
	}
	h, need := reg.handler(rt, r)
	if h == nil {
		w.Header().Set("Allow", allowed(rt.kind))
		writeError(w, r, errorf(http.StatusMethodNotAllowed, codeUnsupported, "method %s is not allowed here", r.Method))
		return
	}
	ar, err := reg.authz.Authorize(w, r, need)
	if err != nil {
		if ar != nil {
			r = ar // carries the identity that was refused, for the audit entry
		}
		reg.audit.Record(r.Context(), audit.Event{Action: "authorize", Repo: rt.repo, Result: "denied", Reason: err.Error(), Request: r})
		writeError(w, r, err)
		return
	}
	if reg.front != nil && rt.repo != "" && !reg.front(w, ar, rt.kind, rt.repo, rt.ref) {
		return
	}
	h(w, ar, rt)
}

type handlerFunc func(http.ResponseWriter, *http.Request, route)

// handler picks the handler for a route and method and the accesses it needs.
func (reg *Registry) handler(rt route, r *http.Request) (handlerFunc, []Access) {
	pull := []Access{{Repo: rt.repo, Action: ActionPull}}
	push := []Access{{Repo: rt.repo, Action: ActionPull}, {Repo: rt.repo, Action: ActionPush}}
	del := []Access{{Repo: rt.repo, Action: ActionDelete}}
	m := r.Method
	switch rt.kind {
	case "base":
		if m == http.MethodGet || m == http.MethodHead {
			return reg.base, nil
		}
	case "catalog":
		if m == http.MethodGet || m == http.MethodHead {
			return reg.catalog, []Access{{Action: ActionCatalog}}
		}
	case "tags":
		if m == http.MethodGet || m == http.MethodHead {
			return reg.tags, pull
		}
	case "referrers":
		if m == http.MethodGet || m == http.MethodHead {
			return reg.referrers, pull
		}
	case "manifest":
		switch m {
		case http.MethodGet, http.MethodHead:
			return reg.getManifest, pull
		case http.MethodPut:
			return reg.putManifest, push
		case http.MethodDelete:
			return reg.deleteManifest, del
		}
	case "blob":
		switch m {
		case http.MethodGet, http.MethodHead:
			return reg.getBlob, pull
		case http.MethodDelete:
			return reg.deleteBlob, del
		}
	case "uploads":
		if m == http.MethodPost {
			if from := r.URL.Query().Get("from"); from != "" && r.URL.Query().Get("mount") != "" {
				return reg.startUpload, append(push, Access{Repo: from, Action: ActionPull})
			}
			return reg.startUpload, push
		}
	case "upload":
		switch m {
		case http.MethodGet:
			return reg.uploadStatus, push
		case http.MethodPatch:
			return reg.patchUpload, push
		case http.MethodPut:
			return reg.putUpload, push
		case http.MethodDelete:
			return reg.cancelUpload, push
		}
	}
	return nil, nil
}

func allowed(kind string) string {
	switch kind {
	case "base", "catalog", "tags", "referrers":
		return "GET, HEAD"
	case "manifest":
		return "GET, HEAD, PUT, DELETE"
	case "blob":
		return "GET, HEAD, DELETE"
	case "uploads":
		return "POST"
	case "upload":
		return "GET, PATCH, PUT, DELETE"
	}
	return ""
}

func (reg *Registry) base(w http.ResponseWriter, r *http.Request, _ route) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("{}"))
	}
}

// changeContext returns the context for a metadata write of a change that
// the request acknowledges only after recordChange (with that context)
// succeeds. It is the only place that chooses how a change's writes and
// its audit entries are committed:
//
//   - When the Auditor can store the change's events in the metadata
//     store's own transactions (audit.InChange: the audit log lives in
//     the metadata database), the write given es, the change's last,
//     stores them in its transaction and commits durably: one commit and
//     one flush for the change and its entries, and neither without the
//     other. recordChange then does not store them again, or stores them
//     if that write committed nothing.
//   - When the Auditor's durable commit goes to the metadata database
//     (audit.Flushes), the change's other writes (es nil: those made
//     before its last), or all of them if the Auditor cannot do the
//     above, skip their own flush (meta.FlushLater): the commit of the
//     entries, made after them and before the acknowledgement, flushes
//     them. A crash before that commit may undo them; if they survive
//     without their entries, the change was not acknowledged (as when
//     the audit commit fails: the request answers 500).
//
// This and sessionContext (the bookkeeping of upload sessions) are the
// only places that choose to defer a flush.
//
// es is called inside the write's transaction, after the write, so it
// may read what the write decided (the tags a manifest put moved).
func (reg *Registry) changeContext(ctx context.Context, es func() []audit.Event) context.Context {
	if es != nil {
		if c, ok := audit.ChangeContext(ctx, reg.audit, reg.meta, es); ok {
			return c
		}
	}
	if reg.flushLater {
		return meta.FlushLater(ctx)
	}
	return ctx
}

// events returns es, for changeContext.
func events(es ...audit.Event) func() []audit.Event {
	return func() []audit.Event { return es }
}

// recordChange records the events of a change the response is about to
// acknowledge, durably when the Auditor can (see audit.DurableAuditor);
// ctx is the context of the change's last write (changeContext). If they
// cannot be recorded it answers 500 and returns false.
func (reg *Registry) recordChange(ctx context.Context, w http.ResponseWriter, r *http.Request, es ...audit.Event) bool {
	if err := audit.RecordChange(ctx, reg.audit, es...); err != nil {
		writeError(w, r, reg.internal(r, "audit record of "+es[0].Action, err))
		return false
	}
	return true
}

// internal logs an unexpected error and returns a generic 500 for the client.
func (reg *Registry) internal(r *http.Request, what string, err error) error {
	reg.log.ErrorContext(r.Context(), what, "err", err, "request_id", RequestID(r.Context()))
	return err
}

// unreadableBody answers a request whose body the client failed to
// deliver (malformed chunked encoding, a connection cut mid-body): the
// client's error, so a 4xx and a warning rather than a 500 and an error.
func (reg *Registry) unreadableBody(w http.ResponseWriter, r *http.Request, e *reqbody.Error) {
	reg.log.WarnContext(r.Context(), "request body unreadable", "err", e, "request_id", RequestID(r.Context()))
	writeError(w, r, errorf(e.Status(), codeBlobUploadInvalid, "%v", e))
}

// openVerified opens blob d for serving its bytes, verified by the
// Verifier first when one is set: damaged content is refused with 500 and
// logged, never sent; a blob missing from the store is BLOB_UNKNOWN.
func (reg *Registry) openVerified(r *http.Request, d digest.Digest) (io.ReadSeekCloser, error) {
	ctx := r.Context()
	if reg.verifier != nil {
		f, _, err := reg.verifier.OpenVerified(ctx, d)
		if err != nil {
			return nil, reg.verifyResult(r, d, err)
		}
		return f, nil
	}
	f, _, err := reg.blobs.Open(ctx, d)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return nil, errorf(http.StatusNotFound, codeBlobUnknown, "blob unknown to registry")
		}
		return nil, reg.internal(r, "blob open", err)
	}
	return f, nil
}

// verifyContent checks content already read from the store against d
// before it is served, when verification on read is on (a Verifier is
// set), with verify's outcome.
func (reg *Registry) verifyContent(r *http.Request, d digest.Digest, content []byte) error {
	if reg.verifier == nil {
		return nil
	}
	var err error
	if got := d.Algorithm().FromBytes(content); got != d {
		err = fmt.Errorf("verify %s: %w: stored content is %s", d, blob.ErrDigestMismatch, got)
	}
	return reg.verifyResult(r, d, err)
}

// verifyResult turns the outcome of verifying d into the response's error:
// damaged content is refused with 500 and logged, never sent.
func (reg *Registry) verifyResult(r *http.Request, d digest.Digest, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, blob.ErrDigestMismatch) {
		reg.log.ErrorContext(r.Context(), "stored content does not match its digest; not serving it (run custody scrub)",
			"digest", d, "err", err, "request_id", RequestID(r.Context()))
		return errorf(http.StatusInternalServerError, codeBlobUnknown, "stored content of %s is damaged", d)
	}
	if errors.Is(err, blob.ErrNotFound) {
		return errorf(http.StatusNotFound, codeBlobUnknown, "blob unknown to registry")
	}
	return reg.internal(r, "blob verify", err)
}
