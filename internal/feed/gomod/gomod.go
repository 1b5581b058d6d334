// Package gomod serves hosted Go module feeds in the GOPROXY protocol
// (go help goproxy), at /go/<feed>/, so the go command downloads modules
// from custody unchanged (GOPROXY=https://<host>/go/<feed>):
//
//	GET /go/<feed>/<module>/@v/list              the published versions
//	GET /go/<feed>/<module>/@v/<version>.info    {"Version", "Time"}
//	GET /go/<feed>/<module>/@v/<version>.mod     the version's go.mod
//	GET /go/<feed>/<module>/@v/<version>.zip     the module zip
//	GET /go/<feed>/<module>/@latest              the latest version's .info
//	PUT /go/<feed>/<module>/@v/<version>.zip     publish a version
//
// <module> and <version> are case-encoded as the go command writes them
// ('!' and the lowercase letter for an uppercase one). Go has no publish
// protocol: a version is published by PUTting its module zip (as
// golang.org/x/mod/zip builds it); the zip is checked as the go command
// checks a download (CheckModule), its go.mod becomes the .mod and its
// go.sum hash ("h1:") is computed and kept.
//
// Each version is a package version of internal/feed: repository
// <feed>/<module path mapped by ModuleRepository>, tag the version,
// artifactType application/vnd.custody.feed.go.v1, the .info as config and
// two layers, <version>.mod and <version>.zip, annotated with their go.sum
// hashes (dev.custody.feed.h1). Versions are immutable: publishing the
// same module content again (the same h1: hash) answers 200 and changes
// nothing, so a publish retried after a lost answer succeeds; other
// content for a published version is refused (409).
//
// A virtual feed's requests are handed to its members' URLs by
// feed.Router (the first member holding the package answers, writes go to
// the first hosted member; docs/feeds.md).
//
// Access is the registry's: reading a module needs pull on its
// repository, publishing push. The go command sends .netrc credentials
// (Basic, a custody API token as the password) over https only.
// Errors are plain text, 404 for anything not published so the go command
// falls back along GOPROXY; a 500 names only the request ID.
package gomod

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/reqbody"
)

// Prefix is the path the handler is mounted at.
const Prefix = "/go/"

// Media types of a Go module version's config and files.
const (
	InfoMediaType = "application/vnd.custody.feed.go.info.v1+json"
	ModMediaType  = "application/vnd.custody.feed.go.mod.v1"
	ZipMediaType  = "application/vnd.custody.feed.go.zip.v1+zip"
)

// AnnotationH1 is the layer annotation holding a file's go.sum hash
// ("h1:<base64>").
const AnnotationH1 = "dev.custody.feed.h1"

// ArtifactType is the artifactType of Go module versions.
var ArtifactType = feed.ArtifactType(feed.EcosystemGo)

// Info is a version's .info document.
type Info struct {
	Version string
	Time    time.Time
}

// Handler is the http.Handler for /go/.
type Handler struct {
	feed.Protocol
	router feed.Router
}

// New returns the handler of the Go module feeds among feeds, storing in
// blobs and md with the registry's options (its Authorizer, Auditor,
// Policy, BlobLocks, Verifier, Log and Now).
func New(feeds []config.Feed, blobs blob.Store, md meta.Store, opts registry.Options) *Handler {
	h := &Handler{Protocol: feed.NewProtocol(feed.EcosystemGo, feeds, blobs, md, opts)}
	h.router = feed.Router{Protocol: &h.Protocol, Prefix: Prefix, Member: h, Error: writeText, WriteAction: "go.publish",
		NotFound: "not found", NoFeed: func(name string) string { return "not found: no Go module feed called " + quote(name) },
		Package: packageSegments}
	return h
}

// request is a routed /go/ request.
type request struct {
	feed string
	path string // module path
	repo string
	file string // "list", "latest", or "<version>.<ext>" case-encoded
}

// ServeHTTP routes a /go/ request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if !read && r.Method != http.MethodPut {
		w.Header().Set("Allow", "GET, HEAD, PUT")
		writeText(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here")
		return
	}
	// bad answers bad input: 404 to reads (the go command then falls
	// back or reports "not found"), 400 to publishes.
	bad := func(msg string) {
		if read {
			writeText(w, http.StatusNotFound, "not found: "+msg)
			return
		}
		h.invalid(w, r, "", msg)
	}
	f, rest, ok := h.router.Route(w, r)
	if !ok {
		return
	}
	feedName := f.Name
	if h.IsProxy(feedName) && !read {
		h.Audit.Record(r.Context(), audit.Event{Action: "go.publish", Repo: feedName, Result: "invalid", Reason: feed.ProxyReadOnly, Request: r})
		w.Header().Set("Allow", "GET, HEAD")
		writeText(w, http.StatusMethodNotAllowed, feed.ProxyReadOnly)
		return
	}
	if strings.Contains(rest, "%") {
		bad("percent-escapes are not used in module paths or versions")
		return
	}
	q := request{feed: feedName}
	var escPath string
	if i := strings.LastIndex(rest, "/@v/"); i >= 0 {
		escPath, q.file = rest[:i], rest[i+len("/@v/"):]
	} else if p, ok := strings.CutSuffix(rest, "/@latest"); ok {
		escPath, q.file = p, "latest"
	} else {
		writeText(w, http.StatusNotFound, "not found")
		return
	}
	path, err := module.UnescapePath(escPath)
	if err != nil {
		bad("invalid module path: " + err.Error())
		return
	}
	q.path = path
	if q.repo, err = ModuleRepository(feedName, path); err != nil {
		bad(err.Error())
		return
	}
	if q.file == "list" || q.file == "latest" {
		if !read {
			w.Header().Set("Allow", "GET, HEAD")
			writeText(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here")
			return
		}
		if h.IsProxy(feedName) {
			h.authorized(w, r, q, false, h.proxyList)
			return
		}
		h.authorized(w, r, q, false, h.list)
		return
	}
	dot := strings.LastIndexByte(q.file, '.')
	if dot < 0 {
		bad("unknown file " + quote(q.file))
		return
	}
	ext := q.file[dot+1:]
	version, err := module.UnescapeVersion(q.file[:dot])
	if err != nil || module.Check(path, version) != nil || module.CanonicalVersion(version) != version {
		bad("invalid version " + quote(q.file[:dot]) + " of " + path)
		return
	}
	switch {
	case read && (ext == "info" || ext == "mod" || ext == "zip"):
		h.authorized(w, r, q, false, func(w http.ResponseWriter, r *http.Request, q request) { h.serveFile(w, r, q, version, ext) })
	case !read && ext == "zip":
		h.authorized(w, r, q, true, func(w http.ResponseWriter, r *http.Request, q request) { h.publish(w, r, q, version) })
	case !read:
		h.invalid(w, r, q.repo, "publish a version by PUTting its module zip to <module>/@v/<version>.zip")
	default:
		writeText(w, http.StatusNotFound, "not found: unknown file "+quote(q.file))
	}
}

// packageSegments are the repository path segments of the module an
// escaped path under a feed names ("example.test/mod/@v/list"), nil when
// it names none (the member's handler answers that).
func packageSegments(rest string) []string {
	escPath, ok := strings.CutSuffix(rest, "/@latest")
	if i := strings.LastIndex(rest, "/@v/"); i >= 0 {
		escPath, ok = rest[:i], true
	}
	if !ok {
		return nil
	}
	path, err := module.UnescapePath(escPath)
	if err != nil {
		return nil
	}
	segs, err := moduleSegments(path)
	if err != nil {
		return nil
	}
	return segs
}

// authorized asks the registry's Authorizer for pull (and, when write,
// push) on the module's repository, then calls fn with the request that
// names the caller.
func (h *Handler) authorized(w http.ResponseWriter, r *http.Request, q request, write bool,
	fn func(http.ResponseWriter, *http.Request, request)) {
	if ar, ok := h.Authorize(w, r, q.repo, write, writeText); ok {
		fn(w, ar, q)
	}
}

// invalid refuses bad input to a publish (400), auditing it.
func (h *Handler) invalid(w http.ResponseWriter, r *http.Request, repo, detail string) {
	h.Audit.Record(r.Context(), audit.Event{Action: "go.publish", Repo: repo, Result: "invalid", Reason: detail, Request: r})
	writeText(w, http.StatusBadRequest, detail+"; nothing was stored")
}

// fail answers a 500 naming only the request ID, and logs err with it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.Fail(w, r, what, err, writeText)
}

func writeText(w http.ResponseWriter, status int, msg string) { feed.WriteText(w, status, msg) }

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// versions lists the module's published versions with their manifests;
// meta.ErrNotFound when none.
func (h *Handler) versions(r *http.Request, q request) (map[string]feed.Tagged, error) {
	tagged, err := h.Store.Tagged(r.Context(), q.repo)
	if err != nil {
		return nil, err
	}
	out := map[string]feed.Tagged{}
	for _, t := range tagged {
		v, ok := feed.TagVersion(t.Tag)
		if ok && t.Manifest.ArtifactType == ArtifactType && module.Check(q.path, v) == nil {
			out[v] = t
		}
	}
	if len(out) == 0 {
		return nil, meta.ErrNotFound
	}
	return out, nil
}

// list serves @v/list (releases and pre-releases, not pseudo-versions, as
// the protocol asks) and @latest (the highest release, else the highest
// pre-release, else the highest pseudo-version: the go command's order).
func (h *Handler) list(w http.ResponseWriter, r *http.Request, q request) {
	// Both ask for "some version" rather than one: a feed whose policy
	// blocks unpinned requests refuses them (go get module@vX.Y.Z asks
	// for that version's files alone).
	query := "@latest"
	if q.file == "list" {
		query = "@v/list"
	}
	if err := h.AdmitUnpinned(r.Context(), q.feed, q.path, query); err != nil {
		h.blocked(w, r, q, err)
		return
	}
	vs, err := h.versions(r, q)
	if errors.Is(err, meta.ErrNotFound) {
		writeText(w, http.StatusNotFound, "not found: module "+q.path+": no versions published in this feed")
		return
	} else if err != nil {
		h.fail(w, r, "list versions", err)
		return
	}
	sorted := make([]string, 0, len(vs))
	for v := range vs {
		sorted = append(sorted, v)
	}
	sort.Slice(sorted, func(i, j int) bool { return semver.Compare(sorted[i], sorted[j]) < 0 })
	if q.file == "list" {
		var b strings.Builder
		for _, v := range sorted {
			if !module.IsPseudoVersion(v) {
				b.WriteString(v + "\n")
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, b.String())
		return
	}
	latest := ""
	rank := func(v string) int {
		switch {
		case module.IsPseudoVersion(v):
			return 0
		case semver.Prerelease(v) != "":
			return 1
		}
		return 2
	}
	for _, v := range sorted { // ascending: the last of the best rank wins
		if latest == "" || rank(v) >= rank(latest) {
			latest = v
		}
	}
	h.serveFile(w, r, q, latest, "info")
}

// serveFile serves a version's .info, .mod or .zip.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, q request, version, ext string) {
	ctx := r.Context()
	tag, err := feed.VersionTag(version)
	if err != nil {
		writeText(w, http.StatusNotFound, "not found: "+q.path+"@"+version)
		return
	}
	v, err := h.Store.Version(ctx, q.repo, tag)
	if errors.Is(err, meta.ErrNotFound) && h.IsProxy(q.feed) {
		// Pull-through; the firewall judges a zip before it is fetched.
		if ext == "zip" {
			if err := h.Admit(ctx, q.feed, q.path, version); err != nil {
				h.blocked(w, r, q, err)
				return
			}
		}
		if err := h.pull(ctx, r, q, version, tag); err != nil {
			h.pullError(w, r, q, version, err)
			return
		}
		v, err = h.Store.Version(ctx, q.repo, tag)
	}
	if errors.Is(err, meta.ErrNotFound) || (err == nil && v.Manifest.ArtifactType != ArtifactType) {
		writeText(w, http.StatusNotFound, "not found: "+q.path+"@"+version+" is not published in this feed")
		return
	} else if err != nil {
		h.fail(w, r, "read version", err)
		return
	}
	if ext == "info" {
		b, err := h.Store.ReadConfig(ctx, v)
		if err != nil {
			h.fail(w, r, "read .info", err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return
	}
	f, ok := v.File(version + "." + ext)
	if !ok {
		writeText(w, http.StatusNotFound, "not found: "+q.path+"@"+version+" has no ."+ext)
		return
	}
	// The firewall judges the code (.zip); .mod files stay readable so
	// module graphs that merely mention a blocked version still resolve.
	if ext == "zip" {
		if err := h.Admit(ctx, q.feed, q.path, version); err != nil {
			h.blocked(w, r, q, err)
			return
		}
	}
	ctype := "text/plain; charset=utf-8"
	if ext == "zip" {
		ctype = "application/zip"
	}
	h.ServeStored(w, r, q.repo, v, f, ctype, writeText, h.fail)
}

// blocked answers a download the dependency firewall refused (403 with
// its reason and waiver) or could not judge (500).
func (h *Handler) blocked(w http.ResponseWriter, r *http.Request, q request, err error) {
	h.AnswerBlocked(w, r, q.repo, "", err, writeText)
}

// publish stores the module zip in the body as version of the module.
func (h *Handler) publish(w http.ResponseWriter, r *http.Request, q request, version string) {
	ctx := r.Context()
	tag, err := feed.VersionTag(version)
	if err != nil {
		h.invalid(w, r, q.repo, err.Error())
		return
	}
	record := func(d digest.Digest, result, reason string) {
		h.Audit.Record(ctx, audit.Event{Action: "go.publish", Repo: q.repo, Digest: d, Tag: tag, Result: result, Reason: reason, Request: r})
	}
	// The zip is spooled to a temporary file: checking it needs random
	// access, and nothing reaches the stores before it passed.
	tmp, err := os.CreateTemp("", "custody-gomod-*.zip")
	if err != nil {
		h.fail(w, r, "spool module zip", err)
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	hs := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, hs), http.MaxBytesReader(w, r.Body, MaxZip))
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch be := reqbody.Failed(r, err); {
		case errors.As(err, &tooLarge):
			record("", "invalid", "body too large")
			writeText(w, http.StatusRequestEntityTooLarge, "the module zip is larger than 500 MiB; nothing was stored")
		case be != nil:
			record("", "invalid", be.Error())
			k, _ := problem.From(be)
			writeText(w, k.Status(), be.Error()+"; nothing was stored")
		default:
			record("", "invalid", "body unreadable")
			writeText(w, http.StatusBadRequest, "reading the body failed; nothing was stored")
		}
		return
	}
	m, err := CheckModule(q.path, version, tmp.Name())
	if err != nil {
		h.invalid(w, r, q.repo, err.Error())
		return
	}
	// An existing version: the same content is success, other content a
	// conflict; either way nothing is stored.
	if h.published(w, r, q, tag, m, record) {
		return
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		h.fail(w, r, "spool module zip", err)
		return
	}
	zb, unlockZip, err := h.Store.PutBlob(ctx, tmp, n, digest.NewDigest(digest.SHA256, hs))
	defer unlockZip()
	if err != nil {
		h.fail(w, r, "store module zip", err)
		return
	}
	mb, unlockMod, err := h.Store.PutBlob(ctx, strings.NewReader(string(m.Mod)), int64(len(m.Mod)), digest.FromBytes(m.Mod))
	defer unlockMod()
	if err != nil {
		h.fail(w, r, "store go.mod", err)
		return
	}
	now := h.Store.Now().UTC()
	info, _ := json.Marshal(Info{Version: version, Time: now})
	_, err = h.Store.Seal(ctx, r, feed.Spec{
		Repo:         q.repo,
		Tag:          tag,
		ArtifactType: ArtifactType,
		Config:       &feed.Config{MediaType: InfoMediaType, Data: info},
		Files: []feed.File{
			{Name: version + ".mod", MediaType: ModMediaType, Digest: mb.Digest, Size: mb.Size, Annotations: map[string]string{AnnotationH1: m.ModHash}},
			{Name: version + ".zip", MediaType: ZipMediaType, Digest: zb.Digest, Size: zb.Size, Annotations: map[string]string{AnnotationH1: m.ZipHash}},
		},
		Annotations: map[string]string{
			feed.AnnotationPackage:   q.path,
			feed.AnnotationVersion:   version,
			builds.AnnotationVersion: version,
			builds.AnnotationCreated: now.Format(time.RFC3339),
		},
	})
	var exists *feed.ExistsError
	switch {
	case errors.As(err, &exists): // a concurrent publish won
		if !h.published(w, r, q, tag, m, record) {
			h.fail(w, r, "record version", err)
		}
		return
	case err != nil:
		h.RecordFailed(w, r, "record version", err, "content was garbage-collected while the version was being recorded; publish again", writeText)
		return
	}
	writeText(w, http.StatusCreated, "published "+q.path+"@"+version+" "+m.ZipHash)
}

// published answers a publish of a version that exists already and
// reports true, or reports false when it does not exist.
func (h *Handler) published(w http.ResponseWriter, r *http.Request, q request, tag string, m *Module,
	record func(digest.Digest, string, string)) bool {
	v, err := h.Store.Version(r.Context(), q.repo, tag)
	if errors.Is(err, meta.ErrNotFound) {
		return false
	} else if err != nil {
		h.fail(w, r, "read version", err)
		return true
	}
	f, ok := v.File(m.Version.Version + ".zip")
	if v.Manifest.ArtifactType == ArtifactType && ok && f.Annotations[AnnotationH1] == m.ZipHash {
		record(v.Manifest.Digest, "ok", "already published with the same content")
		writeText(w, http.StatusOK, "already published: "+q.path+"@"+m.Version.Version+" "+m.ZipHash)
		return true
	}
	record(v.Manifest.Digest, "denied", "version exists with other content")
	writeText(w, http.StatusConflict, q.path+"@"+m.Version.Version+" is published already with other content; versions are immutable, publish a new version")
	return true
}
