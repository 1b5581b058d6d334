// Package npm serves hosted npm feeds in npm's registry protocol, at
// /npm/<feed>/, so the npm CLI publishes and installs unchanged:
//
//	PUT    /npm/<feed>/<package>                      publish one version (npm publish)
//	GET    /npm/<feed>/<package>                      packument, full or abbreviated
//	GET    /npm/<feed>/<package>/<version|dist-tag>   one version's document
//	GET    /npm/<feed>/<package>/-/<base>-<v>.tgz     tarball
//	GET    /npm/<feed>/-/package/<package>/dist-tags  dist-tags (npm dist-tag ls)
//	PUT    /npm/<feed>/-/package/<package>/dist-tags/<tag>  (npm dist-tag add)
//	DELETE /npm/<feed>/-/package/<package>/dist-tags/<tag>  (npm dist-tag rm)
//	GET    /npm/<feed>/-/whoami, /npm/<feed>/-/ping
//
// <package> is "name" or "@scope/name", its '/' written as is or as %2f.
// Each version is a package version of internal/feed: repository
// <feed>/<name> or <feed>/<scope>/<name>, tag the version, artifactType
// application/vnd.custody.feed.npm.v1, the version document as config and
// the tarball as the one layer, annotated with its sha512 and sha1; the
// packument is generated from them. Versions are immutable: publishing an
// existing version is refused (403, as npm's public registry does), even
// with the same bytes. dist-tags are feed labels.
//
// A virtual feed's requests are handed to its members' URLs by
// feed.Router (the first member holding the package answers, writes go to
// the first hosted member; docs/feeds.md).
//
// Access is the registry's: reading a package needs pull on its
// repository, publishing and changing dist-tags push. npm's _authToken is
// sent as a Bearer token, which internal/auth takes as an API token.
// Errors are npm's JSON {"error": "..."}; a 500 names only the request ID.
package npm

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/reqbody"
)

// Prefix is the path the handler is mounted at.
const Prefix = "/npm/"

// Media types of an npm version's config and tarball.
const (
	ConfigMediaType  = "application/vnd.custody.feed.npm.version.v1+json"
	TarballMediaType = "application/vnd.custody.feed.npm.tarball.v1.tar+gzip"
	// AbbreviatedType is the Accept type of npm's abbreviated metadata.
	AbbreviatedType = "application/vnd.npm.install-v1+json"
)

// ArtifactType is the artifactType of npm versions.
var ArtifactType = feed.ArtifactType(feed.EcosystemNPM)

// Handler is the http.Handler for /npm/.
type Handler struct {
	feed.Protocol
	router feed.Router
}

// New returns the handler of the npm feeds among feeds, storing in blobs
// and md with the registry's options (its Authorizer, Auditor, Policy,
// BlobLocks, Verifier, Log and Now).
func New(feeds []config.Feed, blobs blob.Store, md meta.Store, opts registry.Options) *Handler {
	h := &Handler{Protocol: feed.NewProtocol(feed.EcosystemNPM, feeds, blobs, md, opts)}
	h.router = feed.Router{Protocol: &h.Protocol, Prefix: Prefix, Member: h, Error: writeError, WriteAction: "npm.publish",
		NotFound: "not found", NoFeed: func(name string) string { return "no npm feed called " + quote(name) },
		Package: packageSegments}
	return h
}

// unescape turns the escapes npm writes in package paths ("@scope%2fname")
// back into their characters; any other escape is left for the caller to
// refuse.
var unescape = sync.OnceValue(func() *strings.Replacer { return strings.NewReplacer("%2f", "/", "%2F", "/", "%40", "@") })

// request is a routed /npm/ request.
type request struct {
	feed string
	name Name
	repo string
}

// ServeHTTP routes an /npm/ request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, rest, ok := h.router.Route(w, r)
	if !ok {
		return
	}
	feedName := f.Name
	if h.IsProxy(feedName) && r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.refuse(w, r, feedName, http.StatusMethodNotAllowed, feed.ProxyReadOnly)
		return
	}
	path := unescape().Replace(rest)
	if strings.Contains(path, "%") {
		h.invalid(w, r, "", "percent-escapes other than %2f and %40 (and characters that need them) are not allowed in package paths")
		return
	}
	parts := strings.Split(path, "/")
	if parts[0] == "-" {
		h.serveSpecial(w, r, feedName, parts[1:])
		return
	}
	name, rest2, err := splitName(parts)
	if err != nil {
		h.invalid(w, r, "", err.Error())
		return
	}
	q, err := h.locate(feedName, name)
	if err != nil {
		h.invalid(w, r, "", err.Error())
		return
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case len(rest2) == 0 && read && h.IsProxy(feedName):
		h.authorized(w, r, q, false, h.proxyPackument)
	case len(rest2) == 0 && read:
		h.authorized(w, r, q, false, h.packument)
	case len(rest2) == 0 && r.Method == http.MethodPut:
		h.authorized(w, r, q, true, h.publish)
	case len(rest2) == 2 && rest2[0] == "-" && read:
		file := rest2[1]
		h.authorized(w, r, q, false, func(w http.ResponseWriter, r *http.Request, q request) { h.tarball(w, r, q, file) })
	case len(rest2) == 1 && rest2[0] != "" && read:
		ref := rest2[0]
		h.authorized(w, r, q, false, func(w http.ResponseWriter, r *http.Request, q request) { h.versionDoc(w, r, q, ref) })
	case len(rest2) <= 2:
		if len(rest2) == 0 {
			w.Header().Set("Allow", "GET, HEAD, PUT")
		} else {
			w.Header().Set("Allow", "GET, HEAD")
		}
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here")
	default:
		writeError(w, http.StatusNotFound, "not found")
	}
}

// splitName takes the package name off the front of a path's parts:
// "name" or "@scope", "name".
func splitName(parts []string) (string, []string, error) {
	if strings.HasPrefix(parts[0], "@") {
		if len(parts) < 2 {
			return "", nil, errors.New("scoped package name must be @scope/name")
		}
		return parts[0] + "/" + parts[1], parts[2:], nil
	}
	return parts[0], parts[1:], nil
}

// packageSegments are the segments of the package an escaped path under
// a feed names ("@scope/name/-/name-1.0.0.tgz": scope, name), nil when it
// names none or is not valid (the member's handler refuses that).
func packageSegments(rest string) []string {
	path := unescape().Replace(rest)
	if strings.Contains(path, "%") {
		return nil
	}
	parts := strings.Split(path, "/")
	if parts[0] == "-" {
		if len(parts) < 3 || parts[1] != "package" {
			return nil
		}
		parts = parts[2:]
	}
	s, _, err := splitName(parts)
	if err != nil {
		return nil
	}
	n, err := ParseName(s)
	if err != nil {
		return nil
	}
	if n.Scope == "" {
		return []string{n.Base}
	}
	return []string{n.Scope, n.Base}
}

func (h *Handler) locate(feedName, s string) (request, error) {
	n, err := ParseName(s)
	if err != nil {
		return request{}, err
	}
	repo, err := n.Repository(feedName)
	if err != nil {
		return request{}, err
	}
	return request{feed: feedName, name: n, repo: repo}, nil
}

// serveSpecial serves /npm/<feed>/-/...: ping, whoami and dist-tags.
func (h *Handler) serveSpecial(w http.ResponseWriter, r *http.Request, feedName string, parts []string) {
	switch {
	case len(parts) == 1 && parts[0] == "ping":
		writeJSON(w, http.StatusOK, struct{}{})
		return
	case len(parts) == 1 && parts[0] == "whoami" && r.Method == http.MethodGet:
		ar, err := h.Authz.Authorize(w, r, nil)
		if err != nil {
			h.AuthError(w, r, "", err, writeError)
			return
		}
		id, _ := identity.From(ar.Context())
		if id.Subject == "" {
			id.Subject = "anonymous"
		}
		writeJSON(w, http.StatusOK, map[string]string{"username": id.Subject})
		return
	case len(parts) >= 3 && parts[0] == "package":
		name, rest, err := splitName(parts[1:])
		if err != nil {
			h.invalid(w, r, "", err.Error())
			return
		}
		q, err := h.locate(feedName, name)
		if err != nil {
			h.invalid(w, r, "", err.Error())
			return
		}
		if len(rest) == 0 || rest[0] != "dist-tags" || len(rest) > 2 {
			break
		}
		switch {
		case len(rest) == 1 && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			h.authorized(w, r, q, false, h.listDistTags)
		case len(rest) == 2 && (r.Method == http.MethodPut || r.Method == http.MethodPost):
			tag := rest[1]
			h.authorized(w, r, q, true, func(w http.ResponseWriter, r *http.Request, q request) { h.addDistTag(w, r, q, tag) })
		case len(rest) == 2 && r.Method == http.MethodDelete:
			tag := rest[1]
			h.authorized(w, r, q, true, func(w http.ResponseWriter, r *http.Request, q request) { h.removeDistTag(w, r, q, tag) })
		default:
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here")
		}
		return
	}
	writeError(w, http.StatusNotFound, "not found")
}

// authorized asks the registry's Authorizer for pull (and, when write,
// push) on the package's repository, then calls fn with the request that
// names the caller.
func (h *Handler) authorized(w http.ResponseWriter, r *http.Request, q request, write bool,
	fn func(http.ResponseWriter, *http.Request, request)) {
	if ar, ok := h.Authorize(w, r, q.repo, write, writeError); ok {
		fn(w, ar, q)
	}
}

// invalid refuses bad input (400), auditing refused writes.
func (h *Handler) invalid(w http.ResponseWriter, r *http.Request, repo, detail string) {
	h.refuse(w, r, repo, http.StatusBadRequest, detail)
}

// refuse answers a request naming something wrong with status, auditing
// refused writes (as invalid).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, repo string, status int, detail string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		action := "npm.publish"
		if strings.Contains(r.URL.Path, "/-/package/") {
			action = "npm.dist-tag"
		}
		h.Audit.Record(r.Context(), audit.Event{Action: action, Repo: repo, Result: "invalid", Reason: detail, Request: r})
	}
	writeError(w, status, detail)
}

// blocked answers a download the dependency firewall refused (a
// *feed.Blocked, 403 with its reason and waiver) or could not judge (500).
func (h *Handler) blocked(w http.ResponseWriter, r *http.Request, repo string, err error) {
	h.AnswerBlocked(w, r, repo, "", err, writeError)
}

// fail answers a 500 naming only the request ID, and logs err with it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.Fail(w, r, what, err, writeError)
}

// refusedOrFail answers a refusal of the registry's policies with its
// status and text, anything else as a 500.
func (h *Handler) refusedOrFail(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.RecordFailed(w, r, what, err, "content was garbage-collected while the version was being recorded; publish again", writeError)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// cannotPublishOver is npm's answer to publishing a version that exists.
func cannotPublishOver(w http.ResponseWriter, version string) {
	writeError(w, http.StatusForbidden, "You cannot publish over the previously published versions: "+version+".")
}

func (h *Handler) publish(w http.ResponseWriter, r *http.Request, q request) {
	ctx := r.Context()
	record := func(d digest.Digest, tag, result, reason string) {
		h.Audit.Record(ctx, audit.Event{Action: "npm.publish", Repo: q.repo, Digest: d, Tag: tag, Result: result, Reason: reason, Request: r})
	}
	// The tarball is staged as it is read, hashed and checked on the
	// way; it becomes a blob only once the whole document was read and
	// every check passed, so a refused publish leaves nothing behind.
	var staged *feed.Staged
	defer func() { staged.Abort(ctx) }()
	p, err := ReadPublish(http.MaxBytesReader(w, r.Body, MaxPublish), q.name, func(tgz io.Reader) error {
		st, err := h.Store.StageBlob(ctx, tgz, -1)
		staged = st
		return err
	})
	var tooLarge *http.MaxBytesError
	var bodyErr *BodyError
	var storeErr *StoreError
	switch {
	case err == nil:
	case errors.As(err, &tooLarge):
		record("", "", "invalid", "body too large")
		writeError(w, http.StatusRequestEntityTooLarge, "the publish is larger than 128 MiB; nothing was stored")
		return
	case errors.Is(err, ErrDocumentTooLarge):
		h.refuse(w, r, q.repo, http.StatusRequestEntityTooLarge, err.Error())
		return
	case errors.As(err, &bodyErr) && reqbody.Failed(r, bodyErr.Err) != nil:
		be := reqbody.Failed(r, bodyErr.Err)
		record("", "", "invalid", be.Error())
		k, _ := problem.From(be)
		writeError(w, k.Status(), be.Error()+"; nothing was stored")
		return
	case errors.As(err, &bodyErr):
		record("", "", "invalid", "body unreadable")
		writeError(w, http.StatusBadRequest, "reading the body failed; nothing was stored")
		return
	case errors.As(err, &storeErr):
		h.fail(w, r, "store tarball", storeErr.Err)
		return
	default:
		h.invalid(w, r, q.repo, err.Error())
		return
	}
	tag, err := feed.VersionTag(p.Version)
	if err != nil {
		h.invalid(w, r, q.repo, err.Error())
		return
	}
	if _, err := h.Store.Resolve(ctx, q.repo, tag); err == nil {
		record("", tag, "denied", "version exists")
		cannotPublishOver(w, p.Version)
		return
	} else if !errors.Is(err, meta.ErrNotFound) {
		h.fail(w, r, "resolve version", err)
		return
	}
	b, unlock, err := staged.Commit(ctx)
	defer unlock()
	if err != nil {
		h.fail(w, r, "store tarball", err)
		return
	}
	record(b.Digest, "", "ok", "tarball stored")
	now := h.Store.Now().UTC().Format(time.RFC3339)
	md, err := h.Store.Seal(ctx, r, feed.Spec{
		Repo:         q.repo,
		Tag:          tag,
		ArtifactType: ArtifactType,
		Config:       &feed.Config{MediaType: ConfigMediaType, Data: p.Doc},
		Files: []feed.File{{Name: p.Filename, MediaType: TarballMediaType, Digest: b.Digest, Size: b.Size,
			Annotations: map[string]string{feed.AnnotationSHA512: p.SHA512, feed.AnnotationSHA1: p.SHA1}}},
		Annotations: map[string]string{
			feed.AnnotationPackage:   q.name.String(),
			feed.AnnotationVersion:   p.Version,
			builds.AnnotationVersion: p.Version,
			builds.AnnotationCreated: now,
		},
	})
	var exists *feed.ExistsError
	switch {
	case errors.As(err, &exists): // a concurrent publish won
		record("", tag, "denied", "version exists")
		cannotPublishOver(w, p.Version)
		return
	case err != nil:
		h.refusedOrFail(w, r, "record version", err)
		return
	}
	tags := p.DistTags
	if len(tags) == 0 {
		tags = []string{"latest"}
	}
	for _, t := range tags {
		if err := h.Store.SetLabel(ctx, r, q.repo, t, md); err != nil {
			h.refusedOrFail(w, r, "set dist-tag", err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "id": q.name.String(), "version": p.Version})
}

// tarball serves a version's tarball, <base>-<version>.tgz.
func (h *Handler) tarball(w http.ResponseWriter, r *http.Request, q request, file string) {
	ctx := r.Context()
	version, ok := strings.CutPrefix(file, q.name.Base+"-")
	version, ok2 := strings.CutSuffix(version, ".tgz")
	if !ok || !ok2 || !ValidVersion(version) || !feed.ValidFilename(file) {
		writeError(w, http.StatusNotFound, "no such tarball: tarballs are called "+q.name.Base+"-<version>.tgz")
		return
	}
	tag, err := feed.VersionTag(version)
	if err != nil {
		writeError(w, http.StatusNotFound, "no such version")
		return
	}
	v, err := h.Store.Version(ctx, q.repo, tag)
	if errors.Is(err, meta.ErrNotFound) && h.IsProxy(q.feed) {
		// Pull-through: the firewall judges before anything is fetched.
		if err := h.Admit(ctx, q.feed, q.name.String(), version); err != nil {
			h.blocked(w, r, q.repo, err)
			return
		}
		if err := h.pull(ctx, r, q, version, tag); err != nil {
			h.pullError(w, r, q, version, err)
			return
		}
		v, err = h.Store.Version(ctx, q.repo, tag)
	}
	if errors.Is(err, meta.ErrNotFound) || (err == nil && v.Manifest.ArtifactType != ArtifactType) {
		writeError(w, http.StatusNotFound, "no such version: "+q.name.String()+"@"+version)
		return
	} else if err != nil {
		h.fail(w, r, "read version", err)
		return
	}
	f, ok := v.File(file)
	if !ok {
		writeError(w, http.StatusNotFound, "no such tarball in "+q.name.String()+"@"+version)
		return
	}
	if err := h.Admit(ctx, q.feed, q.name.String(), version); err != nil {
		h.blocked(w, r, q.repo, err)
		return
	}
	h.ServeStored(w, r, q.repo, v, f, "application/octet-stream", writeError, h.fail)
}

func (h *Handler) listDistTags(w http.ResponseWriter, r *http.Request, q request) {
	pk, err := h.load(r.Context(), q)
	if err != nil {
		h.loadError(w, r, q, err)
		return
	}
	writeJSON(w, http.StatusOK, pk.distTags)
}

// maxDistTagBody caps the body of a dist-tag change: a JSON string.
const maxDistTagBody = 1024

func (h *Handler) addDistTag(w http.ResponseWriter, r *http.Request, q request, tag string) {
	ctx := r.Context()
	if !ValidDistTag(tag) {
		h.invalid(w, r, q.repo, "invalid dist-tag "+quote(tag)+": letters, digits, '.' and '-', not starting with a digit or 'v' and a digit")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDistTagBody+1))
	var version string
	if err != nil || len(body) > maxDistTagBody || json.Unmarshal(body, &version) != nil {
		h.invalid(w, r, q.repo, "the body must be the version, as a JSON string")
		return
	}
	vtag, err := feed.VersionTag(version)
	if !ValidVersion(version) || err != nil {
		h.invalid(w, r, q.repo, "version "+quote(version)+" is not a semantic version")
		return
	}
	d, err := h.Store.Resolve(ctx, q.repo, vtag)
	if errors.Is(err, meta.ErrNotFound) {
		h.refuse(w, r, q.repo, http.StatusNotFound, "no such version: "+q.name.String()+"@"+version)
		return
	} else if err != nil {
		h.fail(w, r, "resolve version", err)
		return
	}
	if err := h.Store.SetLabel(ctx, r, q.repo, tag, d); err != nil {
		h.refusedOrFail(w, r, "set dist-tag", err)
		return
	}
	h.listDistTags(w, r, q)
}

func (h *Handler) removeDistTag(w http.ResponseWriter, r *http.Request, q request, tag string) {
	if !ValidDistTag(tag) {
		h.invalid(w, r, q.repo, "invalid dist-tag "+quote(tag))
		return
	}
	removed, err := h.Store.RemoveLabel(r.Context(), r, q.repo, tag)
	if errors.Is(err, meta.ErrNotFound) { // no such package: nothing is set on it
		removed, err = false, nil
	}
	if err != nil {
		h.refusedOrFail(w, r, "remove dist-tag", err)
		return
	}
	if !removed {
		h.refuse(w, r, q.repo, http.StatusNotFound, "dist-tag "+quote(tag)+" is not set on "+q.name.String())
		return
	}
	h.listDistTags(w, r, q)
}

// loadError answers a failure to read a package.
func (h *Handler) loadError(w http.ResponseWriter, r *http.Request, q request, err error) {
	if errors.Is(err, meta.ErrNotFound) {
		writeError(w, http.StatusNotFound, "Not found: no package "+q.name.String()+" in this feed")
		return
	}
	h.fail(w, r, "read package", err)
}
