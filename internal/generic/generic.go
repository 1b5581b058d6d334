// Package generic serves plain files over HTTP under /generic/, the way
// curl, CI scripts and Artifactory-style clients expect:
//
//	PUT  /generic/<repo>/<name>/<version>/<filename>   upload (streamed)
//	GET  /generic/<repo>/<name>/<version>/<filename>   download (Range, HEAD)
//	GET  /generic/<repo>/                              names (JSON)
//	GET  /generic/<repo>/<name>/                       versions (JSON)
//	GET  /generic/<repo>/<name>/<version>/             files (JSON)
//
// Every version is stored as an ordinary OCI artifact, so /v2/ serves it and
// signatures and attestations attach to it like to any image: OCI
// repository <repo>/<name>, tag <version>, an image manifest with
// artifactType application/vnd.custody.generic.v1, the empty config and
// one layer per file titled (org.opencontainers.image.title) with its name.
//
// Versions are immutable: a version is created, with its one file, by the
// first PUT, and is sealed from then on. Repeating that PUT with the same
// bytes succeeds (200); any other PUT into the version is refused (409).
// Versions with several files are pushed as one OCI artifact (custody push
// or oras), which this API lists and serves as well. docs/generic.md says
// why.
package generic

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/reqbody"
)

// ArtifactType is the artifactType of the manifests generic PUTs create.
const ArtifactType = "application/vnd.custody.generic.v1"

// Prefix is the path the handler is mounted at.
const Prefix = "/generic/"

// Build metadata request headers and the annotations they become.
var metadataHeaders = []struct{ header, annotation string }{
	{"X-Custody-Revision", builds.AnnotationRevision},
	{"X-Custody-Source", builds.AnnotationSource},
	{"X-Custody-Created", builds.AnnotationCreated},
	{"X-Custody-Build-Number", builds.AnnotationBuildNumber},
	{"X-Custody-Pipeline-Run", builds.AnnotationPipelineRun},
}

// Options configure a Handler: the registry's options, so the two
// endpoints over the same stores are given one set and cannot drift. Zero
// values select the same defaults as the registry's. Generic files use
// Log, Authorizer, Auditor, Policy, BlobLocks (held from storing bytes
// until the manifest naming them is recorded), Verifier (a file's stored
// bytes are checked before they are served, as the registry does) and Now;
// the registry's limits and blob redirects do not apply to them.
type Options = registry.Options

// Handler is the http.Handler for /generic/.
type Handler struct {
	store *feed.Store
	log   *slog.Logger
	authz registry.Authorizer
	audit audit.Auditor
}

// New returns a handler storing files in blobs and versions in md.
func New(blobs blob.Store, md meta.Store, opts Options) *Handler {
	h := &Handler{store: feed.NewStore(blobs, md, opts), log: opts.Log, authz: opts.Authorizer, audit: opts.Auditor}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.authz == nil {
		h.authz = registry.AllowAll{}
	}
	if h.audit == nil {
		h.audit = registry.LogAuditor{Log: h.log}
	}
	return h
}

// location is a parsed /generic/ path. Empty trailing fields mean a
// listing of the last non-empty one.
type location struct {
	repo, name, version, file string
}

// oci is the OCI repository holding the location's versions.
func (l location) oci() string { return l.repo + "/" + l.name }

func (l location) String() string {
	return strings.TrimSuffix(Prefix+l.repo+"/"+l.name+"/"+l.version+"/"+l.file, "/")
}

// parse splits and validates a /generic/ path. It reports a problem
// message when the path is malformed or names something invalid.
func parse(path string) (location, string) {
	rest, ok := strings.CutPrefix(path, Prefix)
	if !ok {
		return location{}, "not a /generic/ path"
	}
	parts := strings.Split(rest, "/")
	// Every segment but the last must be non-empty; the last is empty
	// for a listing.
	n := len(parts)
	if n < 2 || n > 4 || (n < 4 && parts[n-1] != "") {
		return location{}, "use /generic/<repo>/<name>/<version>/<filename>, or a prefix of it ending in '/' to list"
	}
	l := location{repo: parts[0]}
	if !validComponent(l.repo) {
		return l, "invalid repository: one lowercase path component of the OCI name grammar"
	}
	if n >= 3 {
		l.name = parts[1]
		if !validComponent(l.name) || !registry.ValidName(l.oci()) {
			return l, "invalid name: one lowercase path component of the OCI name grammar"
		}
	}
	if n == 4 {
		l.version, l.file = parts[2], parts[3]
		if !registry.ValidTag(l.version) {
			return l, "invalid version: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
		}
		if l.file != "" && !ValidFilename(l.file) {
			return l, "invalid filename: at most 255 bytes, no '/', '\\', NUL or control characters, no '..', not starting with '.'"
		}
	}
	return l, ""
}

// validComponent reports whether s is one component of an OCI repository
// name.
func validComponent(s string) bool {
	return !strings.Contains(s, "/") && registry.ValidName(s)
}

// ValidFilename reports whether name may be stored as a file name (see
// feed.ValidFilename, the one rule).
func ValidFilename(name string) bool { return feed.ValidFilename(name) }

// ServeHTTP routes a /generic/ request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The path is checked and served exactly as the client wrote it:
	// percent-escapes would decode into something other than what it shows
	// ("%2e%2e", "%2f"), so every one is refused, as is any character that
	// would need one (EscapedPath shows both as '%').
	reqbody.Wrap(r)
	if strings.Contains(r.URL.EscapedPath(), "%") {
		h.refuse(w, r, location{}, problem.InvalidPath,
			"percent-escapes (and characters that need them, such as spaces) are not allowed in the path")
		return
	}
	l, msg := parse(r.URL.Path)
	if msg != "" {
		h.refuse(w, r, l, problem.InvalidPath, msg)
		return
	}
	var (
		fn   func(http.ResponseWriter, *http.Request, location)
		need []registry.Access
	)
	pull := []registry.Access{{Repo: l.oci(), Action: registry.ActionPull}}
	switch {
	case l.file != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		fn, need = h.get, pull
	case l.file != "" && r.Method == http.MethodPut:
		fn, need = h.put, append(pull, registry.Access{Repo: l.oci(), Action: registry.ActionPush})
	case l.file == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		switch {
		case l.name == "":
			fn, need = h.listNames, []registry.Access{{Repo: l.repo, Action: registry.ActionPull}}
		case l.version == "":
			fn, need = h.listVersions, pull
		default:
			fn, need = h.listFiles, pull
		}
	default:
		if l.file != "" {
			w.Header().Set("Allow", "GET, HEAD, PUT")
		} else {
			w.Header().Set("Allow", "GET, HEAD")
		}
		problem.Write(w, problem.MethodNotAllowed, "method "+r.Method+" is not allowed here")
		return
	}
	ar, err := h.authz.Authorize(w, r, need)
	if err != nil {
		if ar != nil {
			r = ar // names the refused identity in the audit entry
		}
		k, refused := problem.From(err)
		if !refused { // not a refusal: the Authorizer failed
			h.audit.Record(r.Context(), audit.Event{Action: "authorize", Repo: l.oci(), Result: "error", Reason: err.Error(), Request: r})
			h.internal(w, r, "authorize", err)
			return
		}
		h.audit.Record(r.Context(), audit.Event{Action: "authorize", Repo: l.oci(), Result: "denied", Reason: err.Error(), Request: r})
		problem.Write(w, k, err.Error())
		return
	}
	fn(w, ar, l)
}

// refuse answers a problem for a request refused before it reached a handler.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, l location, k problem.Kind, detail string) {
	if r.Method == http.MethodPut {
		h.audit.Record(r.Context(), audit.Event{Action: "generic.put", Repo: l.repo, Result: "invalid", Reason: detail, Request: r})
	}
	problem.Write(w, k, detail)
}

func (h *Handler) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	problem.Fail(w, r, h.log, what, err)
}

// File is one file of a version.
type File struct {
	Name   string        `json:"name"`
	Size   int64         `json:"size"`
	SHA256 string        `json:"sha256,omitempty"`
	Digest digest.Digest `json:"digest"`
}

// version reads the files of manifest d in repo.
func (h *Handler) version(ctx context.Context, repo string, d digest.Digest) (meta.Manifest, []File, error) {
	v, err := h.store.VersionAt(ctx, repo, d)
	if err != nil {
		return v.Manifest, nil, err
	}
	files := []File{}
	for _, f := range v.Files {
		files = append(files, fileOf(f.Name, f.Digest, f.Size))
	}
	return v.Manifest, files, nil
}

func findFile(files []File, name string) (File, bool) {
	for _, f := range files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// loadVersion resolves the version named by l and reads its files. When it
// cannot, it answers the request itself (404 or 500) and returns false.
func (h *Handler) loadVersion(w http.ResponseWriter, r *http.Request, l location) (meta.Manifest, []File, bool) {
	ctx := r.Context()
	d, err := h.store.Resolve(ctx, l.oci(), l.version)
	if errors.Is(err, meta.ErrNotFound) {
		problem.Write(w, problem.NotFound, "no such version")
		return meta.Manifest{}, nil, false
	} else if err != nil {
		h.internal(w, r, "resolve version", err)
		return meta.Manifest{}, nil, false
	}
	m, files, err := h.version(ctx, l.oci(), d)
	if err != nil {
		h.internal(w, r, "read version", err)
		return meta.Manifest{}, nil, false
	}
	return m, files, true
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, l location) {
	ctx := r.Context()
	m, files, ok := h.loadVersion(w, r, l)
	if !ok {
		return
	}
	f, ok := findFile(files, l.file)
	if !ok {
		problem.Write(w, problem.NotFound, "no such file in this version")
		return
	}
	rc, err := h.store.Open(ctx, l.oci(), f.Digest)
	switch {
	case errors.Is(err, meta.ErrNotFound):
		problem.Write(w, problem.NotFound, "file content is not in this repository")
		return
	case errors.Is(err, feed.ErrDamaged):
		problem.Write(w, problem.ContentDamaged, "the stored bytes do not match their digest")
		return
	case errors.Is(err, blob.ErrNotFound):
		problem.Write(w, problem.NotFound, "file content is missing from the store")
		return
	case err != nil:
		h.internal(w, r, "open file", err)
		return
	}
	defer rc.Close()
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
	hd.Set("Docker-Content-Digest", f.Digest.String())
	hd.Set("Etag", `"`+f.Digest.String()+`"`)
	if f.SHA256 != "" {
		hd.Set("X-Checksum-Sha256", f.SHA256)
	}
	// An *os.File from the filesystem store lets net/http use sendfile(2),
	// for whole files and ranges alike.
	http.ServeContent(w, r, "", m.Created, rc)
}

// expectedDigest reads the SHA-256 the client expects from X-Checksum-Sha256
// (hex) or Digest (RFC 3230, sha-256=<base64>). It returns "" when neither
// is sent.
func expectedDigest(hd http.Header) (digest.Digest, error) {
	var want digest.Digest
	if v := hd.Get("X-Checksum-Sha256"); v != "" {
		v = strings.ToLower(strings.TrimSpace(v))
		if len(v) != 64 {
			return "", errors.New("X-Checksum-Sha256 must be 64 hex digits")
		}
		if _, err := hex.DecodeString(v); err != nil {
			return "", errors.New("X-Checksum-Sha256 must be 64 hex digits")
		}
		want = digest.NewDigestFromEncoded(digest.SHA256, v)
	}
	for _, field := range hd.Values("Digest") {
		for item := range strings.SplitSeq(field, ",") {
			alg, val, ok := strings.Cut(strings.TrimSpace(item), "=")
			if !ok || !strings.EqualFold(alg, "sha-256") {
				continue // other algorithms are not checked
			}
			raw, err := base64.StdEncoding.DecodeString(val)
			if err != nil || len(raw) != sha256.Size {
				return "", errors.New("the Digest header's sha-256 must be the base64 of 32 bytes")
			}
			d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(raw))
			if want != "" && want != d {
				return "", errors.New("X-Checksum-Sha256 and Digest disagree")
			}
			want = d
		}
	}
	return want, nil
}

// annotations builds the manifest annotations from the build metadata
// headers.
func (h *Handler) annotations(hd http.Header, version string) (map[string]string, error) {
	ann := map[string]string{builds.AnnotationVersion: version}
	if v := hd.Get("X-Custody-Version"); v != "" && v != version {
		return nil, fmt.Errorf("X-Custody-Version %q differs from the version in the path", v)
	}
	for _, mh := range metadataHeaders {
		v := hd.Get(mh.header)
		if v == "" {
			continue
		}
		if len(v) > 1024 || !printable(v) {
			return nil, fmt.Errorf("%s must be at most 1024 printable ASCII characters", mh.header)
		}
		ann[mh.annotation] = v
	}
	if v, ok := ann[builds.AnnotationCreated]; ok {
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			return nil, errors.New("X-Custody-Created must be an RFC 3339 date-time")
		}
	} else {
		ann[builds.AnnotationCreated] = h.store.Now().UTC().Format(time.RFC3339)
	}
	return ann, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// PutResult is the body of a successful PUT.
type PutResult struct {
	Repo     string        `json:"repo"`
	Name     string        `json:"name"`
	Version  string        `json:"version"`
	File     File          `json:"file"`
	Manifest digest.Digest `json:"manifest"`
	Created  bool          `json:"created"`
}

func (h *Handler) put(w http.ResponseWriter, r *http.Request, l location) {
	ctx := r.Context()
	record := func(action string, d digest.Digest, result, reason string) {
		h.audit.Record(ctx, audit.Event{Action: action, Repo: l.oci(), Digest: d, Tag: l.version, Result: result, Reason: reason, Request: r})
	}
	want, err := expectedDigest(r.Header)
	if err != nil {
		record("generic.put", "", "invalid", err.Error())
		problem.Write(w, problem.InvalidChecksum, err.Error())
		return
	}
	ann, err := h.annotations(r.Header, l.version)
	if err != nil {
		record("generic.put", "", "invalid", err.Error())
		problem.Write(w, problem.InvalidMetadata, err.Error())
		return
	}
	cur, err := h.store.Resolve(ctx, l.oci(), l.version)
	if err == nil {
		h.putExisting(w, r, l, cur, want)
		return
	}
	if !errors.Is(err, meta.ErrNotFound) {
		h.internal(w, r, "resolve version", err)
		return
	}

	fb, unlock, err := h.store.PutBlob(ctx, r.Body, r.ContentLength, want)
	defer unlock()
	if err != nil {
		switch {
		case errors.Is(err, feed.ErrChecksum):
			record("generic.put", want, "invalid", "checksum mismatch")
			problem.Write(w, problem.ChecksumMismatch, "the uploaded content does not match the SHA-256 sent; nothing was stored")
		case errors.Is(err, blob.ErrSizeMismatch), errors.Is(err, io.ErrUnexpectedEOF):
			record("generic.put", want, "invalid", err.Error())
			problem.Write(w, problem.IncompleteBody, "the body ended before Content-Length bytes")
		case reqbody.Failed(r, err) != nil:
			be := reqbody.Failed(r, err)
			h.log.WarnContext(ctx, "request body unreadable", "err", be, "request_id", registry.RequestID(ctx))
			record("generic.put", want, "invalid", be.Error())
			k, _ := problem.From(be)
			problem.Write(w, k, be.Error()+"; nothing was stored")
		default:
			h.internal(w, r, "store file", err)
		}
		return
	}
	fd, size := fb.Digest, fb.Size
	record("blob.upload", fd, "ok", "")

	md, err := h.store.Seal(ctx, r, feed.Spec{
		Repo:         l.oci(),
		Tag:          l.version,
		ArtifactType: ArtifactType,
		Files:        []feed.File{{Name: l.file, MediaType: "application/octet-stream", Digest: fd, Size: size}},
		Annotations:  ann,
	})
	if err != nil {
		var exists *feed.ExistsError
		switch {
		case errors.Is(err, meta.ErrReferenceGone):
			problem.Write(w, problem.Retry, "content was garbage-collected while the version was being recorded; retry the upload")
		case errors.As(err, &exists):
			// A concurrent PUT created the version first.
			h.answerExisting(w, r, l, exists.Current, fd)
		default:
			problem.Error(w, r, h.log, "record version", err)
		}
		return
	}
	w.Header().Set("Location", l.String())
	w.Header().Set("Docker-Content-Digest", fd.String())
	problem.JSON(w, http.StatusCreated, PutResult{Repo: l.repo, Name: l.name, Version: l.version,
		File: fileOf(l.file, fd, size), Manifest: md, Created: true})
}

func fileOf(name string, d digest.Digest, size int64) File {
	f := File{Name: name, Size: size, Digest: d}
	if d.Algorithm() == digest.SHA256 {
		f.SHA256 = d.Encoded()
	}
	return f
}

// putExisting answers a PUT into a version that exists: 200 when the file
// is there with the same bytes, 409 otherwise. Nothing is stored.
func (h *Handler) putExisting(w http.ResponseWriter, r *http.Request, l location, cur digest.Digest, want digest.Digest) {
	ctx := r.Context()
	_, files, err := h.version(ctx, l.oci(), cur)
	if err != nil {
		h.internal(w, r, "read version", err)
		return
	}
	f, ok := findFile(files, l.file)
	if !ok {
		h.conflict(w, r, l, cur, "version "+l.version+" is sealed: it was created with other files and cannot gain new ones; publish a new version")
		return
	}
	// Hash the body without storing it, in the existing file's algorithm
	// and, if it differs, in that of the client's checksum.
	alg := f.Digest.Algorithm()
	fileHash := alg.Hash()
	var sentHash hash.Hash
	dst := io.Writer(fileHash)
	if want != "" && want.Algorithm() != alg {
		sentHash = want.Algorithm().Hash()
		dst = io.MultiWriter(fileHash, sentHash)
	}
	if _, err := io.Copy(dst, r.Body); err != nil {
		problem.Write(w, problem.IncompleteBody, "reading the body failed")
		return
	}
	got := digest.NewDigest(alg, fileHash)
	if want != "" {
		sent := got
		if sentHash != nil {
			sent = digest.NewDigest(want.Algorithm(), sentHash)
		}
		if sent != want {
			h.audit.Record(ctx, audit.Event{Action: "generic.put", Repo: l.oci(), Tag: l.version, Result: "invalid", Reason: "checksum mismatch", Request: r})
			problem.Write(w, problem.ChecksumMismatch, "the uploaded content does not match the SHA-256 sent; nothing was stored")
			return
		}
	}
	h.answerExisting(w, r, l, cur, got)
}

// answerExisting answers 200 when version cur holds the file with content
// got, and 409 otherwise.
func (h *Handler) answerExisting(w http.ResponseWriter, r *http.Request, l location, cur, got digest.Digest) {
	_, files, err := h.version(r.Context(), l.oci(), cur)
	if err != nil {
		h.internal(w, r, "read version", err)
		return
	}
	f, ok := findFile(files, l.file)
	switch {
	case !ok:
		h.conflict(w, r, l, cur, "version "+l.version+" is sealed: it was created with other files and cannot gain new ones; publish a new version")
	case f.Digest != got:
		h.conflict(w, r, l, cur, "version "+l.version+" already holds "+l.file+" with other content ("+f.Digest.String()+"); versions are immutable")
	default:
		w.Header().Set("Location", l.String())
		w.Header().Set("Docker-Content-Digest", f.Digest.String())
		problem.JSON(w, http.StatusOK, PutResult{Repo: l.repo, Name: l.name, Version: l.version, File: f, Manifest: cur})
	}
}

func (h *Handler) conflict(w http.ResponseWriter, r *http.Request, l location, cur digest.Digest, detail string) {
	h.audit.Record(r.Context(), audit.Event{Action: "tag.move", Repo: l.oci(), Digest: cur, Tag: l.version, Result: "denied", Reason: detail, Request: r})
	problem.Write(w, problem.VersionImmutable, detail)
}
