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
	// Challenge, when set, is the WWW-Authenticate of the protocol's 401s
	// in place of the Authorizer's (BasicChallenge, for clients that send
	// their credentials only when challenged with Basic).
	Challenge string
}

// BasicChallenge asks for Basic credentials (an API token as the
// password); see Protocol.Challenge.
const BasicChallenge = `Basic realm="custody"`

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

// Authorize asks the registry's Authorizer for pull (and, when write,
// push) on repo and returns the request that names the caller. On a
// refusal it answers (AuthError, naming the refused identity) and returns
// false.
func (p Protocol) Authorize(w http.ResponseWriter, r *http.Request, repo string, write bool, native func(w http.ResponseWriter, status int, msg string)) (*http.Request, bool) {
	need := []registry.Access{{Repo: repo, Action: registry.ActionPull}}
	if write {
		need = append(need, registry.Access{Repo: repo, Action: registry.ActionPush})
	}
	ar, err := p.Authz.Authorize(w, r, need)
	if err == nil {
		return ar, true
	}
	if ar != nil {
		r = ar // names the refused identity in the audit entry
	}
	p.AuthError(w, r, repo, err, native)
	return nil, false
}

// AuthError answers err, the Authorizer's error for a request to repo: a
// refusal is audited as denied and answered with its status and text in
// the protocol's own error form (native), a 401 with Challenge when the
// protocol sets one; any other error (the Authorizer failed) is audited
// as an error and answered 500 (Fail).
func (p Protocol) AuthError(w http.ResponseWriter, r *http.Request, repo string, err error, native func(w http.ResponseWriter, status int, msg string)) {
	k, refused := problem.From(err)
	if !refused { // not a refusal: the Authorizer failed
		p.Audit.Record(r.Context(), audit.Event{Action: "authorize", Repo: repo, Result: "error", Reason: err.Error(), Request: r})
		p.Fail(w, r, "authorize", err, native)
		return
	}
	p.Audit.Record(r.Context(), audit.Event{Action: "authorize", Repo: repo, Result: "denied", Reason: err.Error(), Request: r})
	if p.Challenge != "" && k.Status() == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", p.Challenge)
	}
	native(w, k.Status(), err.Error())
}

// AnswerBlocked answers err, the dependency firewall's answer about a
// version of repo (Admit, AdmitUnpinned): a refusal (a *Blocked) is
// audited as feed.blocked, with tag when the caller knows it, and
// answered 403 with its reason and waiver in the protocol's own error
// form (native); any other error (the firewall could not judge) 500.
func (p Protocol) AnswerBlocked(w http.ResponseWriter, r *http.Request, repo, tag string, err error, native func(w http.ResponseWriter, status int, msg string)) {
	var b *Blocked
	if !errors.As(err, &b) {
		p.Fail(w, r, "ask the dependency firewall", err, native)
		return
	}
	p.Audit.Record(r.Context(), audit.Event{Action: "feed.blocked", Repo: repo, Tag: tag, Result: "denied", Reason: b.Reason, Request: r})
	native(w, http.StatusForbidden, b.Error())
}

// RecordFailed answers err, a failure to record a version or label
// (Store.Seal, SetLabel and the like): 503 with retry when content it
// referenced was garbage-collected meanwhile (the client sends it again),
// a refusal of the registry's policies (a problem kind other than not
// found) with its status and text, anything else 500 (Fail, logging
// what).
func (p Protocol) RecordFailed(w http.ResponseWriter, r *http.Request, what string, err error, retry string, native func(w http.ResponseWriter, status int, msg string)) {
	if errors.Is(err, meta.ErrReferenceGone) {
		native(w, http.StatusServiceUnavailable, retry)
		return
	}
	if k, ok := problem.From(err); ok && !errors.Is(err, meta.ErrNotFound) {
		native(w, k.Status(), err.Error())
		return
	}
	p.Fail(w, r, what, err, native)
}
