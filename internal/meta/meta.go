// Package meta defines custody's metadata store: repositories, the blobs
// linked into each repository, manifests and what they reference, tags,
// referrers, annotations and upload sessions.
//
// # The backend contract
//
// Every implementation of Store must pass the conformance suite in
// internal/meta/metatest. The rules it checks:
//
//   - Every method is atomic: a failed call changes nothing.
//   - PutManifest records a manifest, its references and its tags in one
//     transaction; TagCheck runs inside that transaction against the tag's
//     current value, so a check cannot race with a concurrent writer.
//   - PutManifestVerified also checks, inside that transaction, that what
//     the manifest references is still in its repository, and serialises
//     with garbage collection's deletions: it is what keeps a push from
//     recording a manifest whose blobs GC removed after the registry
//     validated them. It is part of the interface, so no backend can lack
//     it and silently lose the guarantee.
//   - Listings (Tags, Repositories, Referrers) are in lexical (byte) order,
//     start after `last` and return at most n entries.
//   - A repository exists while it has at least one manifest or linked blob.
//   - Every instant is kept as Instant returns it (UTC, to the microsecond)
//     for any time from MinTime to MaxTime; a write with any other time is
//     refused with an error wrapping ErrTimeRange (see time.go).
//   - Errors wrap the sentinels below so callers can use errors.Is.
package meta

import (
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	// ErrNotFound: the repository, manifest, tag, blob link or upload is absent.
	ErrNotFound = errors.New("not found")
	// ErrReferenceGone: a blob or child manifest a manifest references
	// left the repository (deleted, or garbage-collected) between the
	// registry's validation and the transaction recording the manifest.
	ErrReferenceGone = errors.New("referenced content is no longer in the repository")
)

// Manifest is the stored record of a manifest (image manifest, index,
// Docker manifest or list, or artifact) within one repository. The bytes
// themselves live in the blob store under Digest.
type Manifest struct {
	Repo         string
	Digest       digest.Digest
	MediaType    string
	Size         int64
	ArtifactType string // the manifest's artifactType, or its config media type
	// Subject is the digest of the manifest this one refers to (OCI 1.1
	// referrers), or empty.
	Subject     digest.Digest
	Annotations map[string]string
	// Blobs are the config and layers an image manifest references.
	Blobs []digest.Digest
	// Manifests are the child manifests an index references.
	Manifests []digest.Digest
	Created   time.Time
}

// Descriptor is an entry of a referrers listing.
type Descriptor struct {
	MediaType    string
	Digest       digest.Digest
	Size         int64
	ArtifactType string
	Annotations  map[string]string
}

// Upload is a blob upload session.
type Upload struct {
	ID      string
	Repo    string
	Offset  int64 // bytes acknowledged to the client
	Created time.Time
	Updated time.Time
}

// TagCheck is called inside the transaction that moves tag, with the digest
// it currently points at (empty when the tag is new) and the digest it is
// about to point at. A non-nil error aborts the whole transaction and is
// returned unchanged.
type TagCheck func(tag string, current, next digest.Digest) error

// Store is the metadata store. See the package documentation for the
// contract every implementation keeps.
type Store interface {
	// LinkBlob records that blob d (of size bytes) belongs to repo,
	// creating the repository if needed. Linking twice is a no-op.
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
	// BlobSize returns the size of blob d if it is linked into repo.
	BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error)
	// UnlinkBlob removes the link of blob d from repo.
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error
	// BlobLinked reports whether any repository links blob d or any
	// manifest record names it (used before deleting the bytes).
	BlobLinked(ctx context.Context, d digest.Digest) (bool, error)

	// PutManifest records m and points tags at it, atomically. Recording a
	// manifest that exists is a no-op for the manifest and still moves tags.
	// check, if not nil, is called for each tag before it moves.
	PutManifest(ctx context.Context, m Manifest, tags []string, check TagCheck) error
	// PutManifestVerified is PutManifest, except that inside the same
	// transaction it first checks that every blob m references is linked
	// into m.Repo and every child manifest is recorded there; otherwise it
	// fails with an error wrapping ErrReferenceGone and writes nothing.
	// The check and garbage collection's re-checks before deleting
	// (internal/gc) serialise, so a manifest is never recorded pointing at
	// content collected after the registry validated it. The registry and
	// the generic-package endpoints record manifests only through it.
	PutManifestVerified(ctx context.Context, m Manifest, tags []string, check TagCheck) error
	// GetManifest returns the record of manifest d in repo.
	GetManifest(ctx context.Context, repo string, d digest.Digest) (Manifest, error)
	// DeleteManifest removes manifest d from repo with every tag pointing at
	// it and its referrer entry. It returns the tags it removed.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) ([]string, error)

	// ResolveTag returns the digest tag points at.
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
	// DeleteTag removes a tag, leaving the manifest in place.
	DeleteTag(ctx context.Context, repo, tag string) error
	// Tags lists the tags of repo in lexical order after last, at most n.
	// It returns ErrNotFound when the repository does not exist.
	Tags(ctx context.Context, repo, last string, n int) ([]string, error)
	// Repositories lists repository names in lexical order after last, at most n.
	Repositories(ctx context.Context, last string, n int) ([]string, error)
	// Referrers lists the manifests in repo whose subject is d, optionally
	// only those of artifactType, in lexical order of their digests after
	// last (empty: from the first), at most n (n > 0).
	Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string, last digest.Digest, n int) ([]Descriptor, error)

	// CreateUpload records a new upload session.
	CreateUpload(ctx context.Context, u Upload) error
	// GetUpload returns an upload session.
	GetUpload(ctx context.Context, id string) (Upload, error)
	// UpdateUpload records the acknowledged offset of an upload session.
	UpdateUpload(ctx context.Context, id string, offset int64) error
	// DeleteUpload removes an upload session.
	DeleteUpload(ctx context.Context, id string) error
	// StaleUploads lists upload sessions last updated before t.
	StaleUploads(ctx context.Context, before time.Time) ([]Upload, error)

	// Ping reports whether the store can serve requests (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}
