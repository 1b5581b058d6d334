package feed

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/registry"
)

// MaxManifest caps the manifests and config documents read back to
// describe a version.
const MaxManifest = 4 << 20

// pageSize is how many tags or repositories are asked for at once.
const pageSize = 1000

// Store keeps versions as OCI artifacts in the registry's stores: one
// repository per package, one tag per version, an image manifest whose
// artifactType names the ecosystem, whose config is the empty descriptor
// or an ecosystem's metadata document, and one layer per file, titled
// (org.opencontainers.image.title) with the file's name. Every endpoint
// writing versions (generic files, each package protocol) stores through
// it, so policies, locks, garbage collection and the audit log see them
// exactly as they see a push to /v2/.
type Store struct {
	blobs  blob.Store
	meta   meta.Store
	log    *slog.Logger
	audit  audit.Auditor
	policy registry.Policy
	locks  *blob.Locks
	verify registry.Verifier
	now    func() time.Time
}

// NewStore returns a Store over blobs and md. Of the registry's options
// it uses Log, Auditor, Policy, BlobLocks, Verifier and Now, with the
// registry's defaults for zero values; authorisation is the caller's (the
// protocol handler asks its Authorizer before calling the Store).
func NewStore(blobs blob.Store, md meta.Store, opts registry.Options) *Store {
	s := &Store{blobs: blobs, meta: md, log: opts.Log, audit: opts.Auditor, policy: opts.Policy,
		locks: opts.BlobLocks, verify: opts.Verifier, now: opts.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.audit == nil {
		s.audit = registry.LogAuditor{Log: s.log}
	}
	if s.policy == nil {
		s.policy = registry.AllowAll{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Now is the Store's clock.
func (s *Store) Now() time.Time { return s.now() }

// Audit records an event in the audit log the Store writes to.
func (s *Store) Audit(ctx context.Context, e audit.Event) { s.audit.Record(ctx, e) }

// File is one file of a version: a layer of its manifest.
type File struct {
	// Name is the layer's title; a valid file name (ValidFilename).
	Name      string
	MediaType string
	Digest    digest.Digest
	Size      int64
	// Annotations are the layer's annotations besides the title: where
	// ecosystems keep their own hashes of the file (AnnotationSHA512,
	// AnnotationSHA1, ...), computed when it was stored.
	Annotations map[string]string
}

// Layer annotations holding ecosystem hashes of a file (lowercase hex),
// computed while the file is stored, so metadata documents are generated
// without reading the file again.
const (
	AnnotationSHA1       = "dev.custody.feed.sha1"
	AnnotationSHA512     = "dev.custody.feed.sha512"
	AnnotationSHA256     = "dev.custody.feed.sha256"
	AnnotationMD5        = "dev.custody.feed.md5"
	AnnotationBlake2b256 = "dev.custody.feed.blake2b_256"
)

// Manifest annotations naming what a version is, in its ecosystem's own
// spelling (repository names and tags are mappings of them; see
// Repository and VersionTag).
const (
	AnnotationPackage = "dev.custody.feed.package"
	AnnotationVersion = "dev.custody.feed.version"
)

// Blob is content put in the blob store.
type Blob struct {
	Digest digest.Digest
	Size   int64
}

// ErrChecksum: the content does not match the digest its sender named.
var ErrChecksum = errors.New("content does not match the checksum sent")

// PutBlob streams r (size bytes, or -1 when unknown) into the blob store
// and returns its digest and size, with the digest's lock held until
// unlock is called (unlock is never nil; call it once the manifest naming
// the blob is sealed, or on failure). Every byte stored is also written to
// each of also (ecosystem hashes computed on the way in). With want set
// the store verifies the bytes against it while writing and keeps nothing
// on mismatch (ErrChecksum); without it the body goes through an upload
// session hashed on the way in. A short body is blob.ErrSizeMismatch.
func (s *Store) PutBlob(ctx context.Context, r io.Reader, size int64, want digest.Digest, also ...io.Writer) (b Blob, unlock func(), err error) {
	unlock = func() {}
	if size < 0 {
		size = -1
	}
	if len(also) > 0 {
		r = io.TeeReader(r, io.MultiWriter(also...))
	}
	if want != "" {
		unlock = s.locks.Lock(want)
		n, err := s.blobs.Put(ctx, want, size, r)
		if errors.Is(err, blob.ErrDigestMismatch) {
			return Blob{}, unlock, ErrChecksum
		}
		return Blob{Digest: want, Size: n}, unlock, err
	}
	st, err := s.StageBlob(ctx, r, size)
	if err != nil {
		return Blob{}, unlock, err
	}
	defer st.Abort(ctx)
	return st.Commit(ctx)
}

// Staged is content held in an upload session of the blob store, hashed
// on the way in, that is not a blob yet: nothing can name it until
// Commit. A caller that decides only after the content was read whether
// to keep it (a publish whose checks need the rest of the request) stages
// it, then commits or aborts.
type Staged struct {
	s         *Store
	id        string
	Digest    digest.Digest
	Size      int64
	committed bool
}

// StageBlob streams r (size bytes, or -1 when unknown) into a new upload
// session, computing its sha256 on the way. On error the session is gone.
// Call Abort (a no-op after Commit) in every case.
func (s *Store) StageBlob(ctx context.Context, r io.Reader, size int64) (*Staged, error) {
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	st := &Staged{s: s, id: "feed-" + hex.EncodeToString(rnd[:])}
	if err := s.blobs.CreateUpload(ctx, st.id); err != nil {
		return nil, err
	}
	hs := sha256.New()
	n, err := s.blobs.Append(ctx, st.id, 0, io.TeeReader(r, hs))
	if err == nil && size >= 0 && n != size {
		err = blob.ErrSizeMismatch
	}
	if err != nil {
		st.Abort(ctx)
		return nil, err
	}
	st.Digest, st.Size = digest.NewDigest(digest.SHA256, hs), n
	return st, nil
}

// Commit makes the staged content a blob and returns it, with the
// digest's lock held until unlock is called (unlock is never nil; call it
// once the manifest naming the blob is sealed, or on failure).
func (st *Staged) Commit(ctx context.Context) (b Blob, unlock func(), err error) {
	unlock = st.s.locks.Lock(st.Digest)
	if _, err := st.s.blobs.CommitUpload(ctx, st.id, st.Digest, st.Size); err != nil {
		return Blob{}, unlock, err
	}
	st.committed = true
	return Blob{Digest: st.Digest, Size: st.Size}, unlock, nil
}

// Abort discards the staged content unless it was committed.
func (st *Staged) Abort(ctx context.Context) {
	if st == nil || st.committed {
		return
	}
	st.committed = true // once
	_ = st.s.blobs.AbortUpload(context.WithoutCancel(ctx), st.id)
}

// Config is a version's config document: its ecosystem's metadata of the
// version (npm's version document, for example).
type Config struct {
	MediaType string
	Data      []byte
}

// Spec is a version to seal.
type Spec struct {
	// Repo and Tag name the version (see Repository and VersionTag).
	Repo, Tag string
	// ArtifactType names the ecosystem (ArtifactType(ecosystem)).
	ArtifactType string
	// Config, when set, is stored as the manifest's config; nil stores
	// the empty descriptor.
	Config *Config
	// Files are the layers, in order; their bytes are stored already
	// (PutBlob), with their locks held by the caller.
	Files []File
	// Annotations are the manifest's annotations.
	Annotations map[string]string
}

// ExistsError: the version's tag names another manifest already; the
// version is sealed and nothing was changed.
type ExistsError struct{ Current digest.Digest }

func (e *ExistsError) Error() string { return "version exists as " + e.Current.String() }

// Seal records sp as a new version: it stores the manifest, links its
// blobs to the repository and creates the tag, after the registry's
// policies allowed the manifest, its blobs and the tag, and records the
// change in the audit log (durably, before it returns) on behalf of r.
// A tag that names another manifest already is *ExistsError and nothing
// is changed; the same manifest again succeeds. Other errors: the
// policies' refusals (registry.ErrDenied and the errors problem.From
// reads), meta.ErrReferenceGone (garbage collection raced; retry), and
// failures of the stores. Seal never moves a tag.
func (s *Store) Seal(ctx context.Context, r *http.Request, sp Spec) (digest.Digest, error) {
	record := func(action string, d digest.Digest, result, reason string) {
		s.audit.Record(ctx, audit.Event{Action: action, Repo: sp.Repo, Digest: d, Tag: sp.Tag, Result: result, Reason: reason, Request: r})
	}
	cfg := v1.DescriptorEmptyJSON
	cfg.Data = nil
	cfgData := []byte("{}")
	if sp.Config != nil {
		cfgData = sp.Config.Data
		cfg = v1.Descriptor{MediaType: sp.Config.MediaType, Digest: digest.FromBytes(cfgData), Size: int64(len(cfgData))}
	}
	doc := v1.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    v1.MediaTypeImageManifest,
		ArtifactType: sp.ArtifactType,
		Config:       cfg,
		Annotations:  sp.Annotations,
	}
	descs := []meta.Descriptor{{MediaType: cfg.MediaType, Digest: cfg.Digest, Size: cfg.Size}}
	blobs := []digest.Digest{cfg.Digest}
	for _, f := range sp.Files {
		ann := map[string]string{v1.AnnotationTitle: f.Name}
		for k, v := range f.Annotations {
			if k != v1.AnnotationTitle {
				ann[k] = v
			}
		}
		doc.Layers = append(doc.Layers, v1.Descriptor{MediaType: f.MediaType, Digest: f.Digest, Size: f.Size, Annotations: ann})
		descs = append(descs, meta.Descriptor{MediaType: f.MediaType, Digest: f.Digest, Size: f.Size})
		blobs = append(blobs, f.Digest)
	}
	if len(doc.Layers) == 0 {
		// A manifest without files (a label's tombstone) has the empty
		// descriptor as its one layer, as OCI 1.1 asks of artifacts.
		if sp.Config != nil {
			return "", errors.New("a version with a config needs files")
		}
		doc.Layers = []v1.Descriptor{cfg}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("encode manifest: %w", err)
	}
	md := digest.FromBytes(body)
	m := meta.Manifest{
		Repo:         sp.Repo,
		Digest:       md,
		MediaType:    v1.MediaTypeImageManifest,
		Size:         int64(len(body)),
		ArtifactType: sp.ArtifactType,
		Annotations:  sp.Annotations,
		Blobs:        blobs,
		Created:      s.now().UTC(),
	}
	err = s.policy.CheckManifest(ctx, m)
	if bp, ok := s.policy.(registry.BlobPolicy); ok && err == nil {
		err = bp.CheckBlobs(ctx, m, descs)
	}
	if err != nil {
		record("manifest.put", md, "denied", err.Error())
		return "", err
	}
	// A new version: ask the tag policy before anything becomes visible,
	// so a refusal leaves no repository, link or record behind (only
	// bytes no record names, which GC collects). The check runs again
	// inside the transaction below, against a concurrent writer.
	cur, err := s.meta.ResolveTag(ctx, sp.Repo, sp.Tag)
	switch {
	case err == nil && cur != md:
		return "", &ExistsError{Current: cur}
	case err != nil && !errors.Is(err, meta.ErrNotFound):
		return "", fmt.Errorf("resolve version: %w", err)
	case err != nil:
		if err := s.policy.CheckTag(ctx, sp.Repo, sp.Tag, "", md); err != nil {
			record("tag.move", md, "denied", err.Error())
			return "", err
		}
	}
	// Locks are taken in the order files (held by the caller), config,
	// manifest; each is held until the manifest record naming the bytes
	// commits.
	defer s.locks.Lock(cfg.Digest)()
	if _, err := s.blobs.Put(ctx, cfg.Digest, cfg.Size, bytes.NewReader(cfgData)); err != nil {
		return "", fmt.Errorf("store config: %w", err)
	}
	if err := s.meta.LinkBlob(ctx, sp.Repo, cfg.Digest, cfg.Size); err != nil {
		return "", fmt.Errorf("link blob: %w", err)
	}
	for _, f := range sp.Files {
		if err := s.meta.LinkBlob(ctx, sp.Repo, f.Digest, f.Size); err != nil {
			return "", fmt.Errorf("link blob: %w", err)
		}
	}
	// Bytes first, then the record, as the registry does.
	defer s.locks.Lock(md)()
	if _, err := s.blobs.Put(ctx, md, m.Size, bytes.NewReader(body)); err != nil {
		return "", fmt.Errorf("store manifest: %w", err)
	}
	check := func(tag string, current, next digest.Digest) error {
		if current != "" && current != next {
			return &ExistsError{Current: current}
		}
		if current == next {
			return nil
		}
		return s.policy.CheckTag(ctx, sp.Repo, tag, current, next)
	}
	// Verified against garbage collection, like the registry's puts.
	if err := s.meta.PutManifestVerified(ctx, m, []string{sp.Tag}, check); err != nil {
		if errors.Is(err, registry.ErrDenied) {
			record("tag.move", md, "denied", err.Error())
		}
		return "", err
	}
	// The acknowledged change is recorded durably before the answer (see
	// audit.DurableAuditor).
	if err := audit.RecordChange(ctx, s.audit,
		audit.Event{Action: "manifest.put", Repo: sp.Repo, Digest: md, Tag: sp.Tag, Result: "ok", Request: r},
		audit.Event{Action: "tag.set", Repo: sp.Repo, Digest: md, Tag: sp.Tag, Result: "ok", Reason: "created", Request: r},
	); err != nil {
		return "", fmt.Errorf("audit record of the version: %w", err)
	}
	return md, nil
}

// Version is a stored version as read back.
type Version struct {
	Repo, Tag string
	// Manifest is the manifest's record: its digest, creation time and
	// annotations.
	Manifest meta.Manifest
	// Config is the manifest's config descriptor (zero for manifests
	// that are not OCI image manifests).
	Config v1.Descriptor
	// Files are the layers with a valid title, in order.
	Files []File
}

// File returns the version's file called name.
func (v Version) File(name string) (File, bool) {
	for _, f := range v.Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// Resolve returns the manifest digest tag names in repo, or an error
// wrapping meta.ErrNotFound.
func (s *Store) Resolve(ctx context.Context, repo, tag string) (digest.Digest, error) {
	return s.meta.ResolveTag(ctx, repo, tag)
}

// Version reads the version tag of repo; meta.ErrNotFound when there is
// none.
func (s *Store) Version(ctx context.Context, repo, tag string) (Version, error) {
	d, err := s.meta.ResolveTag(ctx, repo, tag)
	if err != nil {
		return Version{}, err
	}
	v, err := s.VersionAt(ctx, repo, d)
	v.Tag = tag
	return v, err
}

// VersionAt reads manifest d of repo as a version: the layers of an OCI
// image manifest that carry a valid title are its files. Any other
// manifest is a version without files. A manifest whose stored bytes no
// longer hash to d is ErrDamaged: its files and their recorded hashes
// are not read from it.
func (s *Store) VersionAt(ctx context.Context, repo string, d digest.Digest) (Version, error) {
	m, err := s.meta.GetManifest(ctx, repo, d)
	if err != nil {
		return Version{}, err
	}
	v := Version{Repo: repo, Manifest: m, Files: []File{}}
	if m.MediaType != v1.MediaTypeImageManifest || m.Size > MaxManifest {
		return v, nil
	}
	rc, _, err := s.blobs.Open(ctx, d)
	if err != nil {
		return v, fmt.Errorf("manifest %s: %w", d, err)
	}
	defer rc.Close()
	// The manifest names the files and their recorded hashes: read it
	// only if its bytes still hash to d.
	b, err := io.ReadAll(io.LimitReader(rc, MaxManifest+1))
	if err != nil {
		return v, fmt.Errorf("manifest %s: %w", d, err)
	}
	if !d.Algorithm().Available() || d.Algorithm().FromBytes(b) != d {
		s.log.ErrorContext(ctx, "stored manifest does not match its digest; not reading it (run custody scrub)",
			"digest", d, "request_id", registry.RequestID(ctx))
		return v, fmt.Errorf("manifest %s: %w", d, ErrDamaged)
	}
	var doc v1.Manifest
	if err := json.Unmarshal(b, &doc); err != nil {
		return v, fmt.Errorf("manifest %s: %w", d, err)
	}
	v.Config = doc.Config
	for _, l := range doc.Layers {
		name := l.Annotations[v1.AnnotationTitle]
		if !ValidFilename(name) {
			continue
		}
		var ann map[string]string
		for k, val := range l.Annotations {
			if k == v1.AnnotationTitle {
				continue
			}
			if ann == nil {
				ann = map[string]string{}
			}
			ann[k] = val
		}
		v.Files = append(v.Files, File{Name: name, MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, Annotations: ann})
	}
	return v, nil
}

// ReadConfig returns the version's config document, at most MaxManifest
// bytes, checked against its digest.
func (s *Store) ReadConfig(ctx context.Context, v Version) ([]byte, error) {
	if v.Config.Digest == "" {
		return nil, errors.New("version has no config")
	}
	if err := v.Config.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("config of %s: %w", v.Manifest.Digest, err)
	}
	if v.Config.Size > MaxManifest {
		return nil, fmt.Errorf("config of %s is %d bytes, more than %d", v.Manifest.Digest, v.Config.Size, MaxManifest)
	}
	rc, _, err := s.blobs.Open(ctx, v.Config.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxManifest+1))
	if err != nil {
		return nil, err
	}
	if v.Config.Digest.Algorithm().FromBytes(b) != v.Config.Digest {
		return nil, fmt.Errorf("config %s: %w", v.Config.Digest, blob.ErrDigestMismatch)
	}
	return b, nil
}

// Tags lists every tag of repo, in order; an error wrapping
// meta.ErrNotFound when the repository does not exist.
func (s *Store) Tags(ctx context.Context, repo string) ([]string, error) {
	var out []string
	last := ""
	for {
		page, err := s.meta.Tags(ctx, repo, last, pageSize)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < pageSize {
			return out, nil
		}
		last = page[len(page)-1]
	}
}

// Holds reports whether repo holds any tag.
func (s *Store) Holds(ctx context.Context, repo string) (bool, error) {
	tags, err := s.meta.Tags(ctx, repo, "", 1)
	if errors.Is(err, meta.ErrNotFound) {
		return false, nil
	}
	return len(tags) > 0, err
}

// Repositories lists the repositories directly under prefix (a
// repository name): "<prefix>/<x>" with no further '/', as x.
func (s *Store) Repositories(ctx context.Context, prefix string) ([]string, error) {
	prefix += "/"
	names := []string{}
	last := prefix
	for {
		page, err := s.meta.Repositories(ctx, last, pageSize)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return names, nil
		}
		for _, repo := range page {
			rest, ok := strings.CutPrefix(repo, prefix)
			if !ok {
				return names, nil
			}
			if !strings.Contains(rest, "/") {
				names = append(names, rest)
			}
			last = repo
		}
		if len(page) < pageSize {
			return names, nil
		}
	}
}

// ErrDamaged: stored bytes no longer match their digest; they are not
// served (custody scrub finds and reports them).
var ErrDamaged = errors.New("the stored bytes do not match their digest")

// Open opens file content d of repo for reading, after checking that d
// belongs to repo and, with a Verifier, that its stored bytes still hash
// to d. Errors: meta.ErrNotFound (not in this repository),
// blob.ErrNotFound (missing from the store), ErrDamaged.
func (s *Store) Open(ctx context.Context, repo string, d digest.Digest) (io.ReadSeekCloser, error) {
	if _, err := s.meta.BlobSize(ctx, repo, d); err != nil {
		return nil, err
	}
	if s.verify == nil {
		rc, _, err := s.blobs.Open(ctx, d)
		return rc, err
	}
	rc, _, err := s.verify.OpenVerified(ctx, d)
	switch {
	case errors.Is(err, blob.ErrDigestMismatch):
		s.log.ErrorContext(ctx, "stored content does not match its digest; not serving it (run custody scrub)",
			"digest", d, "err", err, "request_id", registry.RequestID(ctx))
		return nil, ErrDamaged
	case err != nil && !errors.Is(err, blob.ErrNotFound):
		return nil, fmt.Errorf("verify %s: %w", d, err)
	}
	return rc, err
}

// Tagged is one tag of a repository and the manifest it names.
type Tagged struct {
	Tag      string
	Manifest meta.Manifest
}

// Tagged lists the tags of repo with their manifests' records, in tag
// order, skipping tags deleted while it reads; an error wrapping
// meta.ErrNotFound when the repository does not exist.
func (s *Store) Tagged(ctx context.Context, repo string) ([]Tagged, error) {
	tags, err := s.Tags(ctx, repo)
	if err != nil {
		return nil, err
	}
	out := make([]Tagged, 0, len(tags))
	for _, t := range tags {
		d, err := s.meta.ResolveTag(ctx, repo, t)
		if errors.Is(err, meta.ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", t, err)
		}
		m, err := s.meta.GetManifest(ctx, repo, d)
		if errors.Is(err, meta.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("read %s: %w", t, err)
		}
		out = append(out, Tagged{Tag: t, Manifest: m})
	}
	return out, nil
}
