package feed

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
)

// Protocol is what every package protocol's handler is built on: the
// feeds of its ecosystem, the Store, and the registry's Authorizer,
// Auditor and Log, so each protocol asks the same authorizer and writes
// to the same audit log as /v2/ and generic files do.
type Protocol struct {
	Feeds map[string]config.Feed
	Store *Store
	Authz registry.Authorizer
	Audit audit.Auditor
	Log   *slog.Logger
	// Gate is the dependency firewall, asked before any version's file is
	// served (see Admit); nil serves everything.
	Gate Gate
	// Upstreams are the proxy feeds' upstream clients by feed name (see
	// Upstreams); the server sets them.
	Upstreams map[string]*Upstream
}

// NewProtocol returns the Protocol of ecosystem's feeds among feeds,
// storing in blobs and md with the registry's options (its Authorizer,
// Auditor, Policy, BlobLocks, Verifier, Log and Now). Without an
// Authorizer everything is allowed (authentication off); without an
// Auditor, audit events go to the log.
func NewProtocol(ecosystem string, feeds []config.Feed, blobs blob.Store, md meta.Store, opts registry.Options) Protocol {
	p := Protocol{Feeds: Feeds(feeds, ecosystem), Store: NewStore(blobs, md, opts),
		Authz: opts.Authorizer, Audit: opts.Auditor, Log: opts.Log}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	if p.Authz == nil {
		p.Authz = registry.AllowAll{}
	}
	if p.Audit == nil {
		p.Audit = registry.LogAuditor{Log: p.Log}
	}
	return p
}

// ServeFile answers a GET or HEAD of one stored file's content rc (from
// Store.Open) with its digest as Docker-Content-Digest and ETag, Range
// and conditional requests as http.ServeContent handles them, and
// contentType.
func ServeFile(w http.ResponseWriter, r *http.Request, rc io.ReadSeeker, d digest.Digest, created time.Time, contentType string) {
	hd := w.Header()
	hd.Set("Content-Type", contentType)
	hd.Set("Docker-Content-Digest", d.String())
	hd.Set("Etag", `"`+d.String()+`"`)
	http.ServeContent(w, r, "", created, rc)
}

// ServeStored answers a GET or HEAD of file f of version v in repo with
// its content, read through Store.Open (the repository's link and the
// Verifier checked), or in the protocol's own error form (native): 500
// when the stored bytes no longer match their digest (they are never
// served; an administrator runs custody scrub), 404 when the content is
// missing. Other failures go to fail.
func (p Protocol) ServeStored(w http.ResponseWriter, r *http.Request, repo string, v Version, f File, contentType string,
	native func(w http.ResponseWriter, status int, msg string), fail func(w http.ResponseWriter, r *http.Request, what string, err error)) {
	rc, err := p.Store.Open(r.Context(), repo, f.Digest)
	switch {
	case errors.Is(err, ErrDamaged):
		native(w, http.StatusInternalServerError, "the stored file "+f.Name+" does not match its digest; it is not served (an administrator runs custody scrub)")
		return
	case errors.Is(err, meta.ErrNotFound), errors.Is(err, blob.ErrNotFound):
		native(w, http.StatusNotFound, "the content of "+f.Name+" is missing")
		return
	case err != nil:
		fail(w, r, "open "+f.Name, err)
		return
	}
	defer rc.Close()
	ServeFile(w, r, rc, f.Digest, v.Manifest.Created, contentType)
}

// WriteText answers status with msg as plain text (nosniff, so no browser
// takes it for anything else): the error form of the protocols whose
// clients show a status and a short text (PyPI, Maven, GOPROXY).
func WriteText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// Fail answers a failure of the server in the protocol's own error form
// (native) naming only the request ID, and logs err with it: a 500 never
// carries internal text.
func (p Protocol) Fail(w http.ResponseWriter, r *http.Request, what string, err error, native func(w http.ResponseWriter, status int, msg string)) {
	id := problem.RequestID(w)
	p.Log.ErrorContext(r.Context(), what, "err", err, "request_id", id)
	native(w, http.StatusInternalServerError, problem.InternalDetail(id))
}
