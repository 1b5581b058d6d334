package feed

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/reqbody"
)

// KindVirtual is the kind of a feed that merges its members under one URL.
const KindVirtual = config.FeedKindVirtual

// Hosted reports whether f is a hosted feed (the kind packages are
// published to).
func Hosted(f config.Feed) bool { return f.Kind == "" || f.Kind == KindHosted }

type virtualKey struct{}

// WithVirtual returns ctx marked as serving a request the client addressed
// to the virtual feed called name (Router sets it on the request it hands
// to a member): Protocol.Admit then asks the firewall about the virtual
// feed too, and documents name the virtual feed in their URLs (Addressed).
func WithVirtual(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, virtualKey{}, name)
}

// VirtualFrom returns the virtual feed a request came through, if any.
func VirtualFrom(ctx context.Context) (string, bool) {
	v, ok := ctx.Value(virtualKey{}).(string)
	return v, ok && v != ""
}

// Addressed is the feed name the client used for a request that a
// protocol serves from feed feedName: the virtual feed it came through,
// or feedName itself. Every URL a protocol writes into a document (an npm
// packument's tarball URLs, a redirect) names Addressed, so clients of a
// virtual feed keep talking to the virtual feed.
func Addressed(ctx context.Context, feedName string) string {
	if v, ok := VirtualFrom(ctx); ok {
		return v
	}
	return feedName
}

// Router routes a protocol's requests to its feeds (Route) and serves the
// requests addressed to its virtual feeds (Serve).
//
// Serve answers the requests addressed to a protocol's virtual feeds,
// /<ecosystem>/<virtual>/<rest>, by handing each to a member as the
// request /<ecosystem>/<member>/<rest>, served by the protocol's own
// handler (Member), so a member of any kind (hosted, proxy) is served as
// it is served at its own URL, with the caller's credentials and the
// member's grants, and the context marked WithVirtual.
//
// Writes go to the first hosted member; without one they are refused
// (405). Reads ask the members in order and the first that has the
// package answers, whatever it answers:
//
//   - a member whose repository of the package holds any tag has the
//     package. Its answer is final, even a refusal (401/403) or a 404 for
//     a version it lacks, so a name held by an earlier member shadows the
//     same name in later ones (the dependency-confusion defence: a hosted
//     package is never replaced by a public one of the same name, not even
//     for a caller who may not read the hosted one);
//   - any other member is asked too (a proxy member has what its upstream
//     has): its answer is final unless it is "not found" (404, 410) or a
//     refusal (401, 403), which passes the request on to the next member.
//
// When no member answers, the client gets the last member's answer,
// unless one of them asked for credentials (401), which it then gets so
// that it authenticates and asks again.
type Router struct {
	Protocol *Protocol
	// Prefix is the protocol's mount point, "/npm/".
	Prefix string
	// Member serves the request of a member feed (the protocol's handler).
	Member http.Handler
	// Error writes an error in the protocol's native form.
	Error func(w http.ResponseWriter, status int, msg string)
	// WriteAction is the audit action of the protocol's writes
	// ("npm.publish"), recorded when a write is refused.
	WriteAction string
	// NotFound is the text of the 404 to a path outside Prefix, and
	// NoFeed that of the 404 to a path naming no feed of the protocol.
	NotFound string
	NoFeed   func(feedName string) string
	// Package returns the segments of the package an escaped path under a
	// feed names (see Serve), nil when it names none.
	Package func(rest string) []string
	// Own, when set, reports whether the protocol's handler answers a
	// request to a virtual feed itself rather than Serve (PyPI's project
	// list, merged from the members').
	Own func(r *http.Request, rest string) bool
}

// Route starts serving r, a request to the protocol's handler: it marks
// the errors of r's body as the client's (reqbody.Wrap), finds the feed
// of the protocol r's path, <Prefix><feed>/<rest>, names, and serves a
// request to a virtual feed (Serve, with Package(rest)) unless Own says
// the handler does. It returns the feed and rest, still escaped, for the
// handler to serve, or false when it has answered: with Serve, or 404 in
// the protocol's own form (Error), NotFound to a path outside Prefix,
// NoFeed to a name that is no feed of the protocol.
func (x Router) Route(w http.ResponseWriter, r *http.Request) (config.Feed, string, bool) {
	reqbody.Wrap(r)
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), x.Prefix)
	if !ok {
		x.Error(w, http.StatusNotFound, x.NotFound)
		return config.Feed{}, "", false
	}
	feedName, rest, _ := strings.Cut(rest, "/")
	f, ok := x.Protocol.Feeds[feedName]
	if !ok {
		x.Error(w, http.StatusNotFound, x.NoFeed(feedName))
		return config.Feed{}, "", false
	}
	if f.Kind == KindVirtual && (x.Own == nil || !x.Own(r, rest)) {
		x.Serve(w, r, f, rest, x.Package(rest))
		return config.Feed{}, "", false
	}
	return f, rest, true
}

// maxHeld caps the body of a member's answer that is held back while the
// next member is asked (a short error text).
const maxHeld = 64 << 10

// Serve answers r, a request to virtual feed v; rest is the escaped path
// after "/<ecosystem>/<v>/" and pkg the segments of the package it names
// under the feed (its repository in feed m is Repository(m, pkg...)), nil
// when it names none (such requests go to the first member).
func (x Router) Serve(w http.ResponseWriter, r *http.Request, v config.Feed, rest string, pkg []string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		for _, m := range v.Members {
			if f, ok := x.Protocol.Feeds[m]; ok && Hosted(f) {
				x.Member.ServeHTTP(w, x.memberRequest(r, v, m, rest))
				return
			}
		}
		msg := "virtual feed " + v.Name + " has no hosted member to publish to; publish to a hosted feed"
		x.Protocol.Audit.Record(r.Context(), audit.Event{Action: x.WriteAction, Result: "denied", Reason: msg, Request: r})
		w.Header().Set("Allow", "GET, HEAD")
		x.Error(w, http.StatusMethodNotAllowed, msg)
		return
	}
	var held []*heldWriter
	for _, m := range v.Members {
		if f, ok := x.Protocol.Feeds[m]; !ok || f.Kind == KindVirtual {
			// config.Validate refuses both; never recurse.
			x.fail(w, r, "virtual feed member", errors.New("member "+m+" of "+v.Name+" is not a hosted or proxy feed"))
			return
		}
		mr := x.memberRequest(r, v, m, rest)
		if pkg == nil {
			x.Member.ServeHTTP(w, mr)
			return
		}
		has, err := x.holds(r.Context(), m, pkg)
		if err != nil {
			x.fail(w, r, "read virtual feed member", err)
			return
		}
		if has {
			x.Member.ServeHTTP(w, mr)
			return
		}
		hw := &heldWriter{w: w, header: w.Header().Clone()}
		x.Member.ServeHTTP(hw, mr)
		if !hw.held {
			hw.WriteHeader(http.StatusOK) // an empty answer
			return
		}
		held = append(held, hw)
	}
	if len(held) == 0 { // no members: config.Validate refuses that
		x.Error(w, http.StatusNotFound, "virtual feed "+v.Name+" has no members")
		return
	}
	final := held[len(held)-1]
	for _, hw := range held {
		if hw.status == http.StatusUnauthorized {
			final = hw
			break
		}
	}
	final.replay(w)
}

// holds reports whether member's repository of the package holds any tag:
// the member has the package, whatever the caller may read of it.
func (x Router) holds(ctx context.Context, member string, pkg []string) (bool, error) {
	repo, err := Repository(member, pkg...)
	if err != nil {
		return false, nil // no such repository can exist
	}
	return x.Protocol.Store.Holds(ctx, repo)
}

// memberRequest is r addressed to member m: the same method, headers,
// body and query, the path /<ecosystem>/<m>/<rest>, the context marked
// WithVirtual(v).
func (x Router) memberRequest(r *http.Request, v config.Feed, m, rest string) *http.Request {
	mr := r.Clone(WithVirtual(r.Context(), v.Name))
	mr.Body = r.Body
	u := *r.URL
	u.RawPath = x.Prefix + m + "/" + rest
	u.Path = x.Prefix + m + "/" + strings.TrimPrefix(r.URL.Path, x.Prefix+v.Name+"/")
	if u.EscapedPath() != u.RawPath { // rest needed no escaping
		u.RawPath = ""
	}
	mr.URL = &u
	mr.RequestURI = u.RequestURI()
	return mr
}

func (x Router) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	x.Protocol.Fail(w, r, what, err, x.Error)
}

// passes reports whether a member's answer with status passes the request
// on to the next member: the member does not have it (404, 410) or will
// not tell this caller (401, 403).
func passes(status int) bool {
	switch status {
	case http.StatusNotFound, http.StatusGone, http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	return false
}

// heldWriter is the ResponseWriter a member answers through: an answer
// that passes (see passes) is held back, status, header and (capped)
// body, while the next member is asked; any other answer goes to the
// client as it is written.
type heldWriter struct {
	w      http.ResponseWriter
	header http.Header
	wrote  bool // the answer went to the client
	held   bool // the answer is held back
	status int
	body   bytes.Buffer
}

func (h *heldWriter) Header() http.Header { return h.header }

func (h *heldWriter) WriteHeader(status int) {
	if h.wrote || h.held {
		return
	}
	if status >= 100 && status < 200 {
		return // informational answers are not forwarded
	}
	if passes(status) {
		h.held, h.status = true, status
		return
	}
	h.wrote = true
	copyHeader(h.w.Header(), h.header)
	h.w.WriteHeader(status)
}

func (h *heldWriter) Write(b []byte) (int, error) {
	if !h.wrote && !h.held {
		h.WriteHeader(http.StatusOK)
	}
	if h.held {
		if room := maxHeld - h.body.Len(); room > 0 {
			h.body.Write(b[:min(len(b), room)])
		}
		return len(b), nil
	}
	return h.w.Write(b)
}

// Unwrap lets http.ResponseController reach the client's writer.
func (h *heldWriter) Unwrap() http.ResponseWriter { return h.w }

// replay sends the held answer to w.
func (h *heldWriter) replay(w http.ResponseWriter) {
	copyHeader(w.Header(), h.header)
	w.WriteHeader(h.status)
	_, _ = w.Write(h.body.Bytes())
}

// copyHeader makes dst a copy of src.
func copyHeader(dst, src http.Header) {
	for k := range dst {
		delete(dst, k)
	}
	for k, v := range src {
		dst[k] = append([]string(nil), v...)
	}
}
