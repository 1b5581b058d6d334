// Package maven serves hosted Maven feeds in the Maven repository layout,
// at /maven/<feed>/, so mvn deploys (maven-deploy-plugin) and resolves
// unchanged:
//
//	PUT /maven/<feed>/<group path>/<artifact>/<version>/<file>   deploy a file (jar, pom, classifiers)
//	PUT .../<file>.sha1 (.md5, .sha256, .sha512)                 checked against the stored file, not stored
//	PUT .../maven-metadata.xml[.<alg>]                           accepted (checked, not stored)
//	GET the same paths                                           the file; its checksums and the
//	                                                             metadata generated from the stored files
//
// Each deployed file is one package version of internal/feed (as PyPI's
// files are): repository <feed>/<groupId as path>/<artifactId>, tag the
// file name (mapped as feed.VersionTag maps versions), artifactType
// application/vnd.custody.feed.maven.v1, the empty config and the file as
// the one layer, annotated with its sha1, md5, sha256 and sha512 computed
// while it was stored; the manifest names the package (groupId:artifactId)
// and the version directory. Files are sealed: the same name again with the
// same bytes succeeds without changing anything (mvn retries), other bytes
// are refused, 409 Conflict. SNAPSHOT versions are deployed with unique
// timestamped names (<base>-yyyyMMdd.HHmmss-<build>), which are sealed the
// same way; the plain -SNAPSHOT name cannot be deployed and is served as
// the newest timestamped file of its classifier and extension.
// maven-metadata.xml is generated from the stored files, at the artifact
// level (versions, latest, release, lastUpdated) and at the version level
// of SNAPSHOTs (snapshot, snapshotVersions), so the repository has one
// source of truth; what clients upload of it is checked and dropped.
//
// Access is the registry's: resolving needs pull on the artifact's
// repository, deploying push. mvn sends Basic credentials (settings.xml
// <server>), an API token as the password. Errors are a status and a short
// plain text; a 500 names only the request ID.
package maven

import (
	"bytes"
	"context"
	"crypto/md5"  //nolint:gosec // Maven's .md5 checksum files
	"crypto/sha1" //nolint:gosec // Maven's .sha1 checksum files
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

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
const Prefix = "/maven/"

// MaxUpload caps a deployed file: 1 GiB.
const MaxUpload = 1 << 30

// maxChecksum caps a checksum file's body.
const maxChecksum = 1024

// Manifest annotations of a file besides package and version.
const (
	annotationSnapshot   = "dev.custody.feed.maven.snapshot"
	annotationClassifier = "dev.custody.feed.maven.classifier"
	annotationExtension  = "dev.custody.feed.maven.extension"
)

// ArtifactType is the artifactType of Maven files.
var ArtifactType = feed.ArtifactType(config.FeedEcosystemMaven)

// Handler is the http.Handler for /maven/.
type Handler struct {
	feed.Protocol
	router feed.Router
}

// New returns the handler of the maven feeds among feeds (hosted, proxy
// and virtual), storing in blobs and md with the registry's options (its
// Authorizer, Auditor, Policy, BlobLocks, Verifier, Log and Now).
func New(feeds []config.Feed, blobs blob.Store, md meta.Store, opts registry.Options) *Handler {
	h := &Handler{Protocol: feed.NewProtocol(config.FeedEcosystemMaven, feeds, blobs, md, opts)}
	// mvn sends its <server> credentials when challenged.
	h.Challenge = feed.BasicChallenge
	h.router = feed.Router{Protocol: &h.Protocol, Prefix: Prefix, Member: h, Error: writeError, WriteAction: "maven.deploy",
		NotFound: "no such path", NoFeed: func(name string) string { return "no Maven feed called " + name },
		Package: packageSegments}
	return h
}

// packageSegments are the segments of the artifact a request's path
// names under its feed (group segments and artifactId), nil when it names
// none.
func packageSegments(rest string) []string {
	p, err := ParsePath(rest)
	if err != nil {
		return nil
	}
	return append(append([]string{}, p.Group...), p.Artifact)
}

// ServeHTTP routes a /maven/ request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, rest, ok := h.router.Route(w, r)
	if !ok {
		return
	}
	feedName := f.Name
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if !read && r.Method != http.MethodPut {
		w.Header().Set("Allow", "GET, HEAD, PUT")
		writeError(w, http.StatusMethodNotAllowed, "a Maven repository answers GET, HEAD and PUT")
		return
	}
	if !read && h.IsProxy(feedName) {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, feed.ProxyReadOnly)
		return
	}
	p, err := ParsePath(rest)
	if err != nil {
		if read {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		h.Audit.Record(r.Context(), audit.Event{Action: "maven.deploy", Result: "invalid", Reason: err.Error(), Request: r})
		writeError(w, http.StatusBadRequest, err.Error()+"; nothing was stored")
		return
	}
	repo, err := p.Repository(feedName)
	if err != nil {
		if read {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		h.Audit.Record(r.Context(), audit.Event{Action: "maven.deploy", Result: "invalid", Reason: err.Error(), Request: r})
		writeError(w, http.StatusBadRequest, err.Error()+"; nothing was stored")
		return
	}
	ar, ok := h.Authorize(w, r, repo, !read, writeError)
	if !ok {
		return
	}
	r = ar
	switch {
	case read && p.Metadata:
		h.getMetadata(w, r, feedName, repo, p)
	case read:
		h.getFile(w, r, feedName, repo, p)
	case p.Metadata:
		h.putMetadata(w, r, repo, p)
	case p.Checksum != "":
		h.putChecksum(w, r, repo, p)
	default:
		h.putFile(w, r, repo, p)
	}
}

// fail answers a 500 naming only the request ID, and logs err with it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.Fail(w, r, what, err, writeError)
}

// writeError answers as Maven repositories do: the status and a short
// plain text (mvn shows the status and reason).
func writeError(w http.ResponseWriter, status int, msg string) {
	feed.WriteText(w, status, http.StatusText(status)+": "+msg)
}

func writeText(w http.ResponseWriter, status int, msg string) { feed.WriteText(w, status, msg) }

// hashes computes a file's Maven checksums while it streams.
type hashes struct{ sha1, md5, sha512 hash.Hash }

func newHashes() *hashes {
	return &hashes{sha1: sha1.New(), md5: md5.New(), sha512: sha512.New()} //nolint:gosec // Maven's checksum files
}

func (x *hashes) writers() []io.Writer { return []io.Writer{x.sha1, x.md5, x.sha512} }

func (x *hashes) annotations(d digest.Digest) map[string]string {
	return map[string]string{
		feed.AnnotationSHA1:   hex.EncodeToString(x.sha1.Sum(nil)),
		feed.AnnotationMD5:    hex.EncodeToString(x.md5.Sum(nil)),
		feed.AnnotationSHA256: d.Encoded(),
		feed.AnnotationSHA512: hex.EncodeToString(x.sha512.Sum(nil)),
	}
}

// checksumOf returns a stored file's checksum in alg, lowercase hex.
func checksumOf(f feed.File, alg string) string {
	switch alg {
	case "sha1":
		return f.Annotations[feed.AnnotationSHA1]
	case "md5":
		return f.Annotations[feed.AnnotationMD5]
	case "sha256":
		return f.Digest.Encoded()
	case "sha512":
		return f.Annotations[feed.AnnotationSHA512]
	}
	return ""
}

// mediaType is a file's layer media type, by extension.
func mediaType(ext string) string {
	switch ext {
	case "jar", "war", "ear":
		return "application/java-archive"
	case "pom":
		return "application/xml"
	}
	return "application/octet-stream"
}

// putFile stores a deployed file as a sealed version.
func (h *Handler) putFile(w http.ResponseWriter, r *http.Request, repo string, p Path) {
	ctx := r.Context()
	record := func(d digest.Digest, tag, result, reason string) {
		h.Audit.Record(ctx, audit.Event{Action: "maven.deploy", Repo: repo, Digest: d, Tag: tag, Result: result, Reason: reason, Request: r})
	}
	invalid := func(status int, msg string) {
		record("", "", "invalid", msg)
		writeError(w, status, msg+"; nothing was stored")
	}
	if p.Plain {
		invalid(http.StatusBadRequest, "deploy SNAPSHOT versions with unique (timestamped) file names, as Maven 3 does: "+
			p.File+" is served as the newest timestamped file of "+p.Version)
		return
	}
	tag, err := feed.VersionTag(p.File)
	if err != nil {
		invalid(http.StatusBadRequest, "the file name "+p.File+" is too long to be stored (its tag would exceed 128 characters)")
		return
	}
	body := http.MaxBytesReader(w, r.Body, MaxUpload)
	bodyError := func(err error) bool {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			invalid(http.StatusRequestEntityTooLarge, "the file is larger than 1 GiB")
		case reqbody.Failed(r, err) != nil:
			be := reqbody.Failed(r, err)
			k, _ := problem.From(be)
			invalid(k.Status(), be.Error())
		case errors.Is(err, blob.ErrSizeMismatch):
			invalid(http.StatusBadRequest, "the body is shorter than its Content-Length")
		default:
			return false
		}
		return true
	}
	// A file of that name exists: the same bytes are a success that
	// changes nothing (mvn retries a deploy), other bytes are refused.
	same := func(cur feed.Version, content io.Reader) {
		f, ok := cur.File(p.File)
		s := sha256.New()
		if _, err := io.Copy(s, content); err != nil {
			if !bodyError(err) {
				h.fail(w, r, "read body", err)
			}
			return
		}
		if !ok || cur.Manifest.ArtifactType != ArtifactType || f.Digest != digest.NewDigest(digest.SHA256, s) {
			record("", tag, "denied", "file exists with other content")
			writeError(w, http.StatusConflict, p.File+" exists in "+p.Package()+" "+p.Version+
				" with other content; a deployed file cannot be replaced: deploy a new version. Nothing was changed")
			return
		}
		record(f.Digest, tag, "ok", "file exists with the same content; nothing changed")
		writeText(w, http.StatusOK, "OK: "+p.File+" exists with the same content; nothing changed")
	}
	if cur, err := h.Store.Version(ctx, repo, tag); err == nil {
		same(cur, body)
		return
	} else if !errors.Is(err, meta.ErrNotFound) {
		h.fail(w, r, "read file", err)
		return
	}
	sums := newHashes()
	size := r.ContentLength
	b, unlock, err := h.Store.PutBlob(ctx, body, size, "", sums.writers()...)
	defer unlock()
	switch {
	case err != nil && bodyError(err):
		return
	case err != nil:
		h.fail(w, r, "store file", err)
		return
	}
	ann := map[string]string{
		feed.AnnotationPackage:   p.Package(),
		feed.AnnotationVersion:   p.Version,
		annotationExtension:      p.Extension,
		builds.AnnotationVersion: p.Version,
		builds.AnnotationCreated: h.Store.Now().UTC().Format(time.RFC3339),
	}
	if p.Snapshot != "" {
		ann[annotationSnapshot] = p.Snapshot
	}
	if p.Classifier != "" {
		ann[annotationClassifier] = p.Classifier
	}
	_, err = h.Store.Seal(ctx, r, feed.Spec{
		Repo:         repo,
		Tag:          tag,
		ArtifactType: ArtifactType,
		Files: []feed.File{{Name: p.File, MediaType: mediaType(p.Extension), Digest: b.Digest, Size: b.Size,
			Annotations: sums.annotations(b.Digest)}},
		Annotations: ann,
	})
	var exists *feed.ExistsError
	switch {
	case errors.As(err, &exists): // a concurrent deploy of the same name won
		if v, err := h.Store.VersionAt(ctx, repo, exists.Current); err == nil {
			if f, ok := v.File(p.File); ok && f.Digest == b.Digest {
				writeText(w, http.StatusOK, "OK: "+p.File+" exists with the same content; nothing changed")
				return
			}
		}
		record("", tag, "denied", "file exists with other content")
		writeError(w, http.StatusConflict, p.File+" exists with other content; a deployed file cannot be replaced. Nothing was changed")
		return
	case err != nil:
		h.RecordFailed(w, r, "record file", err, "content was garbage-collected while the file was being recorded; deploy again", writeError)
		return
	}
	record(b.Digest, tag, "ok", "file stored")
	writeText(w, http.StatusCreated, "Created: "+p.File)
}

// putChecksum checks a deployed checksum file against the stored file's
// hash. Nothing is stored: the checksum files served are generated from
// the hashes recorded when the file was stored.
func (h *Handler) putChecksum(w http.ResponseWriter, r *http.Request, repo string, p Path) {
	ctx := r.Context()
	invalid := func(status int, msg string) {
		h.Audit.Record(ctx, audit.Event{Action: "maven.checksum", Repo: repo, Tag: p.File, Result: "invalid", Reason: msg, Request: r})
		writeError(w, status, msg+"; nothing was stored")
	}
	if p.Plain {
		invalid(http.StatusBadRequest, "deploy SNAPSHOT versions with unique (timestamped) file names, as Maven 3 does")
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxChecksum+1))
	if err != nil {
		if be := reqbody.Failed(r, err); be != nil {
			k, _ := problem.From(be)
			invalid(k.Status(), be.Error())
			return
		}
		h.fail(w, r, "read body", err)
		return
	}
	sent, ok := parseChecksum(b, p.Checksum)
	if !ok {
		invalid(http.StatusBadRequest, "the body of "+p.File+"."+p.Checksum+" is not a "+p.Checksum+" checksum")
		return
	}
	f, found, err := h.file(ctx, repo, p.File)
	switch {
	case err != nil:
		h.fail(w, r, "read file", err)
		return
	case !found:
		invalid(http.StatusBadRequest, "there is no file "+p.File+" to check this checksum against: deploy the file first")
		return
	}
	if want := checksumOf(f, p.Checksum); sent != want {
		invalid(http.StatusBadRequest, "the "+p.Checksum+" checksum sent for "+p.File+" ("+sent+") does not match the stored file's ("+want+")")
		return
	}
	writeText(w, http.StatusCreated, "Created: "+p.File+"."+p.Checksum+" matches the stored file")
}

// parseChecksum reads a checksum file: the hex digest, optionally
// followed by white space and a file name (as sha1sum writes it).
func parseChecksum(b []byte, alg string) (string, bool) {
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return "", false
	}
	s := strings.ToLower(fields[0])
	n := map[string]int{"sha1": 20, "md5": 16, "sha256": 32, "sha512": 64}[alg]
	if len(s) != 2*n {
		return "", false
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", false
	}
	return s, true
}

// putMetadata accepts an uploaded maven-metadata.xml (or its checksum)
// without storing it: the metadata served is generated from the stored
// files. A document for another artifact is refused.
func (h *Handler) putMetadata(w http.ResponseWriter, r *http.Request, repo string, p Path) {
	ctx := r.Context()
	invalid := func(status int, msg string) {
		h.Audit.Record(ctx, audit.Event{Action: "maven.metadata", Repo: repo, Result: "invalid", Reason: msg, Request: r})
		writeError(w, status, msg+"; nothing was stored")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxMetadata+1))
	if err != nil {
		if be := reqbody.Failed(r, err); be != nil {
			k, _ := problem.From(be)
			invalid(k.Status(), be.Error())
			return
		}
		h.fail(w, r, "read body", err)
		return
	}
	if p.Checksum != "" {
		if _, ok := parseChecksum(b, p.Checksum); !ok {
			invalid(http.StatusBadRequest, "the body is not a "+p.Checksum+" checksum")
			return
		}
		writeText(w, http.StatusCreated, "Created: accepted; custody serves checksums of the metadata it generates")
		return
	}
	m, err := ParseMetadata(b)
	if err != nil {
		invalid(http.StatusBadRequest, err.Error())
		return
	}
	if m.GroupID != p.GroupID() || m.ArtifactID != p.Artifact || (p.Version != "" && m.Version != "" && m.Version != p.Version) {
		invalid(http.StatusBadRequest, "maven-metadata.xml names "+m.GroupID+":"+m.ArtifactID+", not "+p.Package())
		return
	}
	writeText(w, http.StatusCreated, "Created: accepted; custody serves maven-metadata.xml generated from the stored files")
}

// file returns the stored file called name in repo.
func (h *Handler) file(ctx context.Context, repo, name string) (feed.File, bool, error) {
	tag, err := feed.VersionTag(name)
	if err != nil {
		return feed.File{}, false, nil
	}
	v, err := h.Store.Version(ctx, repo, tag)
	if errors.Is(err, meta.ErrNotFound) {
		return feed.File{}, false, nil
	} else if err != nil {
		return feed.File{}, false, err
	}
	f, ok := v.File(name)
	if !ok || v.Manifest.ArtifactType != ArtifactType {
		return feed.File{}, false, nil
	}
	return f, true, nil
}

// stored lists the files stored in repo, as metadata is generated from.
func (h *Handler) stored(ctx context.Context, repo string) ([]Stored, error) {
	tagged, err := h.Store.Tagged(ctx, repo)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []Stored
	for _, t := range tagged {
		a := t.Manifest.Annotations
		if t.Manifest.ArtifactType != ArtifactType || a[feed.AnnotationVersion] == "" {
			continue
		}
		if _, ok := feed.TagVersion(t.Tag); !ok {
			continue
		}
		out = append(out, Stored{Version: a[feed.AnnotationVersion], Snapshot: a[annotationSnapshot],
			Classifier: a[annotationClassifier], Extension: a[annotationExtension], Created: t.Manifest.Created})
	}
	return out, nil
}

// getMetadata serves generated maven-metadata.xml or its checksum.
func (h *Handler) getMetadata(w http.ResponseWriter, r *http.Request, feedName, repo string, p Path) {
	files, err := h.stored(r.Context(), repo)
	if err != nil {
		h.fail(w, r, "list files", err)
		return
	}
	var m *Metadata
	if h.IsProxy(feedName) {
		m = h.upstreamMetadata(r.Context(), feedName, p, files)
	}
	switch {
	case m != nil:
	case p.Version == "":
		m = ArtifactMetadata(p.GroupID(), p.Artifact, files)
	default:
		m = SnapshotMetadata(p.GroupID(), p.Artifact, p.Version, files)
	}
	if m == nil {
		writeError(w, http.StatusNotFound, "no maven-metadata.xml: nothing is stored for "+p.Package()+" "+p.Version)
		return
	}
	doc := m.Encode()
	w.Header().Set("Cache-Control", "no-cache")
	if p.Checksum != "" {
		serveChecksum(w, r, checksumOfBytes(doc, p.Checksum))
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(doc))
}

func checksumOfBytes(b []byte, alg string) string {
	var h hash.Hash
	switch alg {
	case "sha1":
		h = sha1.New() //nolint:gosec // Maven's checksum files
	case "md5":
		h = md5.New() //nolint:gosec // Maven's checksum files
	case "sha256":
		h = sha256.New()
	default:
		h = sha512.New()
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func serveChecksum(w http.ResponseWriter, r *http.Request, sum string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(sum))
}

// getFile serves a stored file or its checksum; the plain -SNAPSHOT name
// is the newest timestamped file of its classifier and extension.
func (h *Handler) getFile(w http.ResponseWriter, r *http.Request, feedName, repo string, p Path) {
	ctx := r.Context()
	name := p.File
	if p.Plain {
		files, err := h.stored(ctx, repo)
		if err != nil {
			h.fail(w, r, "list files", err)
			return
		}
		m := SnapshotMetadata(p.GroupID(), p.Artifact, p.Version, files)
		name = ""
		if m != nil {
			for _, sv := range m.Versioning.SnapshotVersions {
				if sv.Classifier == p.Classifier && sv.Extension == p.Extension {
					name = p.Artifact + "-" + sv.Value
					if sv.Classifier != "" {
						name += "-" + sv.Classifier
					}
					name += "." + sv.Extension
				}
			}
		}
		if name == "" {
			writeError(w, http.StatusNotFound, "no timestamped file of "+p.Package()+" "+p.Version+" stands for "+p.File)
			return
		}
	}
	tag, err := feed.VersionTag(name)
	if err != nil {
		writeError(w, http.StatusNotFound, "no file "+name)
		return
	}
	// admit asks the dependency firewall before a file's bytes are served
	// (or fetched); on refusal it answers and returns false.
	admit := func(pkg, version string) bool {
		err := h.Admit(ctx, feedName, pkg, version)
		if err == nil {
			return true
		}
		h.AnswerBlocked(w, r, repo, tag, err, writeError)
		return false
	}
	v, err := h.Store.Version(ctx, repo, tag)
	pulled := false
	if errors.Is(err, meta.ErrNotFound) && h.IsProxy(feedName) && !p.Plain {
		// Pull-through: fetched from upstream once, then served from here.
		if p.Checksum == "" && !admit(p.Package(), p.Version) {
			return
		}
		if err := h.pull(ctx, r, feedName, repo, p); err != nil {
			h.pullError(w, r, feedName, repo, p, err)
			return
		}
		pulled = true
		v, err = h.Store.Version(ctx, repo, tag)
	}
	if errors.Is(err, meta.ErrNotFound) || (err == nil && v.Manifest.ArtifactType != ArtifactType) {
		writeError(w, http.StatusNotFound, "no file "+name)
		return
	} else if err != nil {
		h.fail(w, r, "read file", err)
		return
	}
	f, ok := v.File(name)
	if !ok {
		writeError(w, http.StatusNotFound, "no file "+name)
		return
	}
	if p.Checksum != "" {
		sum := checksumOf(f, p.Checksum)
		if sum == "" {
			writeError(w, http.StatusNotFound, "no "+p.Checksum+" recorded for "+name)
			return
		}
		if !pulled && h.IsProxy(feedName) {
			h.checkRecorded(ctx, r, feedName, repo, tag, p, sum)
		}
		serveChecksum(w, r, sum)
		return
	}
	pkg, version := v.Manifest.Annotations[feed.AnnotationPackage], v.Manifest.Annotations[feed.AnnotationVersion]
	if !pulled && !admit(pkg, version) {
		return
	}
	h.ServeStored(w, r, repo, v, f, mediaType(p.Extension), writeError, h.fail)
}
