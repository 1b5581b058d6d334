// Package blob defines custody's content-addressed blob store: the bytes of
// layers, configs, manifests and generic files, named by their digest.
//
// # The backend contract
//
// Every implementation of Store must pass the conformance suite in
// internal/blob/blobtest. The rules it checks:
//
//   - A blob becomes visible (Stat and Open succeed) only after every byte has
//     been written durably and its digest (and size, when given) verified.
//     A reader never sees a partial or corrupt blob, whatever crashes.
//   - Blobs are immutable. Writing a digest that already exists is a no-op
//     that succeeds once the new content has been verified.
//   - Writes stream. No method holds a whole blob in memory.
//   - Uploads are resumable until committed or aborted: Append at the offset
//     UploadSize reports continues them, also after a restart of the process.
//     Bytes past the offset given to Append (left by a write that was never
//     acknowledged) are discarded.
//   - An upload's bytes need to be durable only once CommitUpload makes
//     them a blob, not when Append returns: a crash of the machine (not
//     of the process) may leave an upload holding fewer bytes than Append
//     reported, other bytes, or no upload at all. Callers treat the first
//     (ErrOffset from the next Append) and the last (ErrUploadNotFound) as
//     a lost upload; CommitUpload's verification turns other bytes into
//     ErrDigestMismatch. What a crash loses is the client's upload, never
//     a blob.
//   - PurgeTemp removes what a crashed Put or CommitUpload left behind and
//     nothing else: never a blob, an upload session, or the temporary data
//     of a write started after its cut-off. It is part of the interface, so
//     no backend can lack it and silently leak storage.
//   - Errors wrap the sentinels below so callers can use errors.Is.
//
// sha256 and sha512 digests are supported; the digest algorithm is chosen by
// the digest the caller names at commit time.
package blob

import (
	"context"
	_ "crypto/sha256" // registers sha256 with go-digest
	_ "crypto/sha512" // registers sha512 with go-digest
	"errors"
	"io"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	// ErrNotFound: no blob with this digest is stored.
	ErrNotFound = errors.New("blob not found")
	// ErrUploadNotFound: no upload session with this ID exists.
	ErrUploadNotFound = errors.New("upload not found")
	// ErrDigestMismatch: the content does not hash to the digest named.
	ErrDigestMismatch = errors.New("content does not match digest")
	// ErrSizeMismatch: the content's length differs from the size named.
	ErrSizeMismatch = errors.New("content size does not match")
	// ErrOffset: an Append named an offset past the upload's size.
	ErrOffset = errors.New("upload offset mismatch")
	// ErrUnsupportedDigest: the digest algorithm is not sha256 or sha512.
	ErrUnsupportedDigest = errors.New("unsupported digest algorithm")
)

// Store is a content-addressed blob store. See the package documentation for
// the contract every implementation keeps.
type Store interface {
	// Stat returns the size of a stored blob, or ErrNotFound.
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	// Open returns a reader positioned at the start of the blob and its size.
	// Local-file backends return an *os.File so that HTTP responses can use
	// the kernel's zero-copy path.
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
	// Put stores the content of r as blob d in one call. size is the
	// expected length, or -1 when unknown. It returns the bytes written.
	Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) (int64, error)
	// Delete removes a blob. Deleting a blob that is absent returns ErrNotFound.
	Delete(ctx context.Context, d digest.Digest) error
	// Walk calls fn for every stored blob, in no particular order.
	Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error

	// CreateUpload starts an empty upload session named id (chosen by the caller).
	CreateUpload(ctx context.Context, id string) error
	// UploadSize returns how many bytes the upload holds.
	UploadSize(ctx context.Context, id string) (int64, error)
	// Append writes r at offset, which must not exceed the size of the
	// upload (ErrOffset; bytes past offset are discarded), and returns the
	// new size. The bytes need not be durable yet (see the contract).
	Append(ctx context.Context, id string, offset int64, r io.Reader) (int64, error)
	// CommitUpload verifies the upload's content against d (and size, unless
	// -1), makes it visible as blob d and removes the session. On mismatch it
	// returns ErrDigestMismatch or ErrSizeMismatch and the session stays.
	CommitUpload(ctx context.Context, id string, d digest.Digest, size int64) (int64, error)
	// AbortUpload discards an upload session.
	AbortUpload(ctx context.Context, id string) error
	// Uploads calls fn for every upload session with its last modification time.
	Uploads(ctx context.Context, fn func(id string, modified time.Time) error) error
	// PurgeTemp removes the backend's own temporary data (of Put and
	// CommitUpload calls cut off by a crash) last modified before before,
	// and returns how many objects it removed. Blobs and upload sessions
	// are never touched. Garbage collection calls it with the upload purge.
	PurgeTemp(ctx context.Context, before time.Time) (int, error)
}

// Supported reports whether d names a digest algorithm custody stores
// (sha256 or sha512) with a well-formed, lowercase hex value.
func Supported(d digest.Digest) error {
	// go-digest's Algorithm panics on a digest without a separator.
	if !strings.Contains(string(d), ":") {
		return digest.ErrDigestInvalidFormat
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
	default:
		return ErrUnsupportedDigest
	}
	return d.Validate()
}

// MaxUploadIDLen is the longest upload ID a backend accepts.
const MaxUploadIDLen = 128

// ValidUploadID reports whether id is an upload ID every backend accepts:
// 1 to MaxUploadIDLen characters of [A-Za-z0-9_-], so it can name a file or
// an object key component without escaping anything.
func ValidUploadID(id string) bool {
	if id == "" || len(id) > MaxUploadIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
