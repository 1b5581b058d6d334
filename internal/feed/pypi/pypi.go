// Package pypi serves hosted Python package feeds in PyPI's protocols, at
// /pypi/<feed>/, so pip installs and twine uploads unchanged:
//
//	POST /pypi/<feed>/ (or /pypi/<feed>/legacy/)   upload one file (twine upload)
//	GET  /pypi/<feed>/simple/                      project list (PEP 503 HTML, PEP 691 JSON)
//	GET  /pypi/<feed>/simple/<project>/            a project's files, with #sha256= and
//	                                               data-requires-python (HTML) or hashes (JSON)
//	GET  /pypi/<feed>/files/<project>/<file>       a file
//
// Projects are named by their PEP 503 normalised names; a request for any
// other spelling of a name is redirected (301) to the normalised one, as
// PyPI does. Each uploaded file (an sdist or a wheel) is one package
// version of internal/feed: repository <feed>/<normalised name>, tag the
// file name (mapped as feed.VersionTag maps versions), artifactType
// application/vnd.custody.feed.pypi.v1, the upload's metadata fields as
// config and the file as the one layer, whose digest is its sha256 and
// which is annotated with its md5 and blake2b-256. A release is the set of
// files whose manifests name its version, so wheels may be added to a
// release after its sdist, while each file is sealed once uploaded: the
// same file name again with the same bytes succeeds without changing
// anything (as PyPI does; twine --skip-existing relies on it), with other
// bytes it is refused, 400 "File already exists".
//
// A virtual feed's requests are handed to its members' URLs by
// feed.Router (the first member holding the package answers, writes go to
// the first hosted member; docs/feeds.md).
//
// Access is the registry's: reading a project needs pull on its
// repository, uploading push. pip and twine send Basic credentials, an API
// token as the password. Errors are PyPI's: a status and a short plain
// text; a 500 names only the request ID.
package pypi

import (
	"context"
	"crypto/md5" //nolint:gosec // PyPI's md5_digest is checked, never trusted alone
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/blake2b"

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
const Prefix = "/pypi/"

// MaxUpload caps an upload's body: 1 GiB.
const MaxUpload = 1 << 30

// Media types of a file's config and of the files.
const (
	ConfigMediaType    = "application/vnd.custody.feed.pypi.file.v1+json"
	WheelMediaType     = "application/vnd.custody.feed.pypi.wheel.v1+zip"
	SdistMediaType     = "application/vnd.custody.feed.pypi.sdist.v1.tar+gzip"
	SdistZipMediaType  = "application/vnd.custody.feed.pypi.sdist.v1+zip"
	annotationFiletype = "dev.custody.feed.pypi.filetype"
	// annotationRequiresPython keeps requires_python on the manifest,
	// so indexes are generated from manifest records and layers alone.
	annotationRequiresPython = "dev.custody.feed.pypi.requires-python"
)

// ArtifactType is the artifactType of PyPI files.
var ArtifactType = feed.ArtifactType(feed.EcosystemPyPI)

// Handler is the http.Handler for /pypi/.
type Handler struct {
	feed.Protocol
	canRead func(context.Context, string) bool
	router  feed.Router
}

// New returns the handler of the pypi feeds among feeds, storing in
// blobs and md with the registry's options (its Authorizer, Auditor,
// Policy, BlobLocks, Verifier, Log and Now). canRead says whether the
// caller (named by the context the Authorizer returned) may pull a
// repository; the project list shows only those.
func New(feeds []config.Feed, blobs blob.Store, md meta.Store, opts registry.Options, canRead func(context.Context, string) bool) *Handler {
	h := &Handler{Protocol: feed.NewProtocol(feed.EcosystemPyPI, feeds, blobs, md, opts), canRead: canRead}
	if h.canRead == nil {
		h.canRead = func(context.Context, string) bool { return true }
	}
	// pip and twine answer a Basic challenge with their credentials.
	h.Challenge = feed.BasicChallenge
	h.router = feed.Router{Protocol: &h.Protocol, Prefix: Prefix, Member: h, Error: writeError, WriteAction: "pypi.upload",
		NotFound: "Not Found", NoFeed: func(name string) string { return "Not Found: no PyPI feed called " + name },
		Package: packageSegments, Own: ownsVirtual}
	return h
}

// ownsVirtual reports whether a request to a virtual feed is answered by
// the handler itself rather than by a member: its project list, which
// merges the members' (projects), and a path refused for its escapes.
func ownsVirtual(r *http.Request, rest string) bool {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	return strings.Contains(rest, "%") || read && (rest == "simple" || rest == "simple/")
}

// packageSegments are the segments of the project an escaped path under
// a feed names (simple/<project>/, files/<project>/<file>), nil when it
// names none.
func packageSegments(rest string) []string {
	parts := strings.Split(rest, "/")
	if len(parts) >= 2 && (parts[0] == "simple" || parts[0] == "files") {
		if project, err := ParseName(parts[1]); err == nil {
			return []string{project}
		}
	}
	return nil
}

// ServeHTTP routes a /pypi/ request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, rest, ok := h.router.Route(w, r)
	if !ok {
		return
	}
	feedName := f.Name
	if strings.Contains(rest, "%") {
		writeError(w, http.StatusBadRequest, "percent-escapes are not allowed in project and file names")
		return
	}
	parts := strings.Split(rest, "/")
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	// Redirects name the feed the client addressed (a virtual feed, when
	// the request came through one).
	base := Prefix + feed.Addressed(r.Context(), feedName) + "/"
	switch {
	case h.IsProxy(feedName) && !read:
		h.Audit.Record(r.Context(), audit.Event{Action: "pypi.upload", Repo: feedName, Result: "invalid", Reason: feed.ProxyReadOnly, Request: r})
		writeError(w, http.StatusMethodNotAllowed, feed.ProxyReadOnly)
	case (rest == "" || rest == "legacy" || rest == "legacy/") && r.Method == http.MethodPost:
		h.upload(w, r, feedName)
	case rest == "simple" && read:
		http.Redirect(w, r, base+"simple/", http.StatusMovedPermanently)
	case rest == "simple/" && read:
		h.projects(w, r, feedName)
	case len(parts) == 2 && parts[0] == "simple" && read:
		http.Redirect(w, r, base+"simple/"+parts[1]+"/", http.StatusMovedPermanently)
	case len(parts) == 3 && parts[0] == "simple" && parts[2] == "" && read:
		project, err := ParseName(parts[1])
		if err != nil {
			writeError(w, http.StatusNotFound, "Not Found: "+err.Error())
			return
		}
		if project != parts[1] {
			http.Redirect(w, r, base+"simple/"+project+"/", http.StatusMovedPermanently)
			return
		}
		if h.IsProxy(feedName) {
			h.authorized(w, r, feedName, project, false, h.proxyProject)
			return
		}
		h.authorized(w, r, feedName, project, false, h.project)
	case len(parts) == 3 && parts[0] == "files" && read:
		project, err := ParseName(parts[1])
		if err != nil || project != parts[1] || !feed.ValidFilename(parts[2]) {
			writeError(w, http.StatusNotFound, "Not Found")
			return
		}
		file := parts[2]
		h.authorized(w, r, feedName, project, false, func(w http.ResponseWriter, r *http.Request, repo string) { h.download(w, r, feedName, repo, file) })
	case rest == "" || rest == "legacy" || rest == "legacy/" || (len(parts) <= 3 && (parts[0] == "simple" || parts[0] == "files")):
		writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	default:
		writeError(w, http.StatusNotFound, "Not Found")
	}
}

// authorized asks the registry's Authorizer for pull (and, when write,
// push) on the project's repository, then calls fn with the request that
// names the caller.
func (h *Handler) authorized(w http.ResponseWriter, r *http.Request, feedName, project string, write bool,
	fn func(http.ResponseWriter, *http.Request, string)) {
	repo, err := feed.Repository(feedName, project)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if ar, ok := h.Authorize(w, r, repo, write, writeError); ok {
		fn(w, ar, repo)
	}
}

// fail answers a 500 naming only the request ID, and logs err with it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.Fail(w, r, what, err, writeError)
}

// writeError answers as PyPI does: the status and a short plain text.
func writeError(w http.ResponseWriter, status int, msg string) {
	feed.WriteText(w, status, http.StatusText(status)+": "+msg)
}

// fileExists is PyPI's answer to a file name that is taken by other bytes.
func fileExists(w http.ResponseWriter, file string) {
	writeError(w, http.StatusBadRequest, "File already exists ('"+file+"'); a file, once uploaded, cannot be replaced. Upload a new version.")
}

// verifier computes the optional digests of an upload while it streams,
// keeps a copy in a temporary file and, at the end, checks the digests
// and the archive's entries: a reader that fails instead of ending when
// the content is refused, so the blob store keeps nothing.
type verifier struct {
	r      io.Reader
	md5    hash.Hash
	blake  hash.Hash
	u      *Upload
	tmp    *os.File
	size   int64
	done   bool
	reason string // why the content is refused; empty when it is not
}

var errRefused = errors.New("the uploaded content is refused")

func newVerifier(r io.Reader, u *Upload) (*verifier, error) {
	b, _ := blake2b.New256(nil)
	tmp, err := os.CreateTemp("", "custody-pypi-")
	if err != nil {
		return nil, err
	}
	return &verifier{r: r, md5: md5.New(), blake: b, u: u, tmp: tmp}, nil //nolint:gosec // md5_digest
}

// Close removes the temporary copy.
func (x *verifier) Close() {
	_ = x.tmp.Close()
	_ = os.Remove(x.tmp.Name())
}

func (x *verifier) Read(p []byte) (int, error) {
	if x.done {
		if x.reason != "" {
			return 0, errRefused
		}
		return 0, io.EOF
	}
	n, err := x.r.Read(p)
	x.md5.Write(p[:n])
	x.blake.Write(p[:n])
	if _, werr := x.tmp.Write(p[:n]); werr != nil {
		return n, werr
	}
	x.size += int64(n)
	if !errors.Is(err, io.EOF) {
		return n, err
	}
	x.done = true
	switch {
	case x.u.MD5 != "" && x.u.MD5 != hex.EncodeToString(x.md5.Sum(nil)):
		x.reason = "The digest supplied does not match a digest calculated from the uploaded file (md5_digest)"
	case x.u.Blake2b256 != "" && x.u.Blake2b256 != hex.EncodeToString(x.blake.Sum(nil)):
		x.reason = "The digest supplied does not match a digest calculated from the uploaded file (blake2_256_digest)"
	default:
		if cerr := checkArchive(x.tmp, x.size, x.u.Filename); cerr != nil {
			x.reason = cerr.Error()
		}
	}
	if x.reason != "" {
		return n, errRefused
	}
	return n, io.EOF
}

func (h *Handler) upload(w http.ResponseWriter, r *http.Request, feedName string) {
	ctx := r.Context()
	repo := ""
	record := func(d digest.Digest, tag, result, reason string) {
		h.Audit.Record(ctx, audit.Event{Action: "pypi.upload", Repo: repo, Digest: d, Tag: tag, Result: result, Reason: reason, Request: r})
	}
	invalid := func(status int, msg string) {
		record("", "", "invalid", msg)
		writeError(w, status, msg+"; nothing was stored")
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		invalid(http.StatusBadRequest, "an upload is a multipart/form-data form")
		return
	}
	body := http.MaxBytesReader(w, r.Body, MaxUpload)
	bodyError := func(err error) bool {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			invalid(http.StatusRequestEntityTooLarge, "the upload is larger than 1 GiB")
		case reqbody.Failed(r, err) != nil:
			be := reqbody.Failed(r, err)
			k, _ := problem.From(be)
			invalid(k.Status(), be.Error())
		default:
			return false
		}
		return true
	}
	u, content, err := ParseUpload(multipart.NewReader(body, params["boundary"]))
	if err != nil {
		if !bodyError(err) {
			invalid(http.StatusBadRequest, err.Error())
		}
		return
	}
	if repo, err = feed.Repository(feedName, u.Project); err != nil {
		invalid(http.StatusBadRequest, err.Error())
		return
	}
	tag, err := feed.VersionTag(u.Filename)
	if err != nil {
		invalid(http.StatusBadRequest, "the file name "+u.Filename+" is too long to be stored (its tag would exceed 128 characters)")
		return
	}
	ar, ok := h.Authorize(w, r, repo, true, writeError)
	if !ok {
		return
	}
	r = ar
	want := digest.NewDigestFromEncoded(digest.SHA256, u.SHA256)
	// A file of that name exists: the same bytes are a success that
	// changes nothing, other bytes are refused.
	if cur, err := h.Store.Version(ctx, repo, tag); err == nil {
		h.existing(w, r, u, content, cur, want, record, tag)
		return
	} else if !errors.Is(err, meta.ErrNotFound) {
		h.fail(w, r, "read file", err)
		return
	}
	var shadow *localShadowError
	if other, err := h.shadowing(ctx, repo, u); errors.As(err, &shadow) {
		invalid(http.StatusBadRequest, err.Error())
		return
	} else if err != nil {
		h.fail(w, r, "read release", err)
		return
	} else if other != "" {
		record("", tag, "denied", "release has "+other+" already")
		writeError(w, http.StatusBadRequest, "File already exists ('"+other+"' is this release's "+fileRole(u.Filetype, u.Filename)+
			" file, and "+u.Filename+" names the same release); a file, once uploaded, cannot be replaced. Upload a new version.")
		return
	}
	hs, err := newVerifier(content, u)
	if err != nil {
		h.fail(w, r, "temporary file", err)
		return
	}
	defer hs.Close()
	b, unlock, err := h.Store.PutBlob(ctx, hs, -1, want)
	defer unlock()
	if err == nil && !hs.done {
		// The store had the bytes already and stopped reading: verify
		// the rest all the same (the blob is not this upload's to keep).
		_, err = io.Copy(io.Discard, hs)
	}
	switch {
	case errors.Is(err, feed.ErrChecksum):
		invalid(http.StatusBadRequest, "The digest supplied does not match a digest calculated from the uploaded file (sha256_digest)")
		return
	case hs.reason != "":
		invalid(http.StatusBadRequest, hs.reason)
		return
	case err != nil && bodyError(err):
		return
	case err != nil:
		h.fail(w, r, "store file", err)
		return
	}
	record(b.Digest, "", "ok", "file stored")
	cfg, err := json.Marshal(metadataDoc(u))
	if err != nil || len(cfg) > feed.MaxManifest {
		invalid(http.StatusBadRequest, "the metadata fields are too large")
		return
	}
	mediaType := WheelMediaType
	if u.Filetype == "sdist" {
		mediaType = SdistMediaType
		if strings.HasSuffix(u.Filename, ".zip") {
			mediaType = SdistZipMediaType
		}
	}
	ann := map[string]string{
		feed.AnnotationPackage:   u.Name,
		feed.AnnotationVersion:   u.Version,
		annotationFiletype:       u.Filetype,
		builds.AnnotationVersion: u.Version,
		builds.AnnotationCreated: h.Store.Now().UTC().Format(time.RFC3339),
	}
	if u.RequiresPython != "" {
		ann[annotationRequiresPython] = u.RequiresPython
	}
	_, err = h.Store.Seal(ctx, r, feed.Spec{
		Repo:         repo,
		Tag:          tag,
		ArtifactType: ArtifactType,
		Config:       &feed.Config{MediaType: ConfigMediaType, Data: cfg},
		Files: []feed.File{{Name: u.Filename, MediaType: mediaType, Digest: b.Digest, Size: b.Size,
			Annotations: map[string]string{feed.AnnotationMD5: hex.EncodeToString(hs.md5.Sum(nil)),
				feed.AnnotationBlake2b256: hex.EncodeToString(hs.blake.Sum(nil))}}},
		Annotations: ann,
	})
	var exists *feed.ExistsError
	switch {
	case errors.As(err, &exists): // a concurrent upload of the same name won
		if v, err := h.Store.VersionAt(ctx, repo, exists.Current); err == nil {
			if f, ok := v.File(u.Filename); ok && f.Digest == b.Digest {
				writeOK(w)
				return
			}
		}
		record("", tag, "denied", "file exists")
		fileExists(w, u.Filename)
		return
	case err != nil:
		h.RecordFailed(w, r, "record file", err, "content was garbage-collected while the file was being recorded; upload again", writeError)
		return
	}
	writeOK(w)
}

// existing answers an upload of a file name already stored: the bytes
// are read (not stored) and compared.
func (h *Handler) existing(w http.ResponseWriter, r *http.Request, u *Upload, content io.Reader, cur feed.Version, want digest.Digest,
	record func(digest.Digest, string, string, string), tag string) {
	f, ok := cur.File(u.Filename)
	if !ok || cur.Manifest.ArtifactType != ArtifactType || f.Digest != want {
		record("", tag, "denied", "file exists")
		fileExists(w, u.Filename)
		return
	}
	s := sha256.New()
	if _, err := io.Copy(s, content); err != nil || digest.NewDigest(digest.SHA256, s) != want {
		record("", tag, "denied", "file exists")
		fileExists(w, u.Filename)
		return
	}
	record(f.Digest, tag, "ok", "file exists with the same content; nothing changed")
	writeOK(w)
}

func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "OK\n")
}

// metadataDoc is a file's config: its metadata fields, a single value as
// a string, a repeated one as a list.
func metadataDoc(u *Upload) map[string]any {
	doc := map[string]any{}
	for k, v := range u.Metadata {
		if len(v) == 1 {
			doc[k] = v[0]
		} else {
			doc[k] = v
		}
	}
	doc["filename"] = u.Filename
	return doc
}

// download serves a file of a project; a proxy feed fetches one it has
// not stored yet.
func (h *Handler) download(w http.ResponseWriter, r *http.Request, feedName, repo, file string) {
	h.serveFile(w, r, feedName, repo, file, h.IsProxy(feedName))
}

// serveFile serves a stored file, or with pull fetches it from upstream
// first when it is not stored.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, feedName, repo, file string, pull bool) {
	ctx := r.Context()
	tag, err := feed.VersionTag(file)
	if err != nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	v, err := h.Store.Version(ctx, repo, tag)
	if errors.Is(err, meta.ErrNotFound) && pull {
		h.proxyDownload(w, r, feedName, repo, file)
		return
	}
	if errors.Is(err, meta.ErrNotFound) || (err == nil && v.Manifest.ArtifactType != ArtifactType) {
		writeError(w, http.StatusNotFound, "Not Found: no file "+file)
		return
	} else if err != nil {
		h.fail(w, r, "read file", err)
		return
	}
	f, ok := v.File(file)
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found: no file "+file)
		return
	}
	if err := h.Admit(ctx, feedName, v.Manifest.Annotations[feed.AnnotationPackage], v.Manifest.Annotations[feed.AnnotationVersion]); err != nil {
		h.blocked(w, r, repo, err)
		return
	}
	h.ServeStored(w, r, repo, v, f, "application/octet-stream", writeError, h.fail)
}

// fileURL is a file's URL relative to its project's index page
// (/pypi/<feed>/simple/<project>/), so it holds behind any proxy.
func fileURL(project, file string) string {
	return "../../files/" + project + "/" + url.PathEscape(file)
}
