package s3

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob"
)

// objectID identifies one stored object version: any overwrite changes the
// version ID (versioned buckets) or the ETag or modification time.
type objectID struct {
	etag    string
	version string
	size    int64
	mtime   int64 // Unix seconds, as HEAD reports it
}

func identify(info minio.ObjectInfo) objectID {
	return objectID{etag: info.ETag, version: info.VersionID, size: info.Size, mtime: info.LastModified.Unix()}
}

// maxVerified bounds the verification cache (about 200 bytes an entry).
const maxVerified = 1 << 18

// Verify checks that blob d's stored bytes hash to d, returning an error
// wrapping blob.ErrDigestMismatch when they do not, blob.ErrNotFound when
// the blob is missing. It implements registry.Verifier (with OpenVerified).
//
// It costs one HEAD request when this process has already seen the
// object's current version (ETag, version ID, size, modification time)
// verified: written by Put or CommitUpload (whose content was hashed on its
// way in), or hashed by an earlier Verify; or when the object carries the
// verified marker Put and CommitUpload create it with (so a restart does
// not force every blob to be read twice on its first download). Otherwise
// it streams the object
// through the digest's hash, a full GET. S3 cannot vouch for the digest
// itself: custody digests may be sha512, which S3 has no checksum for, and
// S3's x-amz-checksum-sha256 of a multipart object is a checksum of the
// parts' checksums, not of the content (S3 offers full-object checksums of
// multipart uploads only for CRC32, CRC32C and CRC64NVME). Corruption at
// rest inside the server, which keeps the object's metadata, is the
// server's to detect (MinIO checks its bitrot hashes on every read) and
// scrub's.
func (s *Store) Verify(ctx context.Context, d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	info, err := s.c.StatObject(ctx, s.bucket, s.blobKey(d), minio.StatObjectOptions{})
	if err != nil {
		return notFound(d, err)
	}
	return s.verifyVersion(ctx, d, info)
}

// OpenVerified opens blob d like Open and verifies the object version it
// opened like Verify, returning Verify's errors. When that version is known
// verified (this process saw it verified, or it carries the verified
// marker) this is the one GET Open costs: the GET's response describes the
// version its body holds, so no HEAD is needed, and what is served is
// exactly the version verified. Otherwise that version is hashed first
// (a second GET), before any of its bytes are returned; the first GET's
// response is dropped meanwhile (it would sit unread while a large blob
// is hashed), and the first Read fetches the version again. It implements
// registry.Verifier.
func (s *Store) OpenVerified(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	o, info, err := s.open(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	if !s.knownVerified(d, info) {
		o.body.Close()
		o.body = nil
		if err := s.hashVersion(ctx, d, info); err != nil {
			o.Close()
			return nil, 0, err
		}
	}
	return o, o.size, nil
}

// verifyVersion verifies the object version info describes (from a HEAD or
// a GET of blob d's key): from the cache or the verified marker, else by
// hashing exactly that version.
func (s *Store) verifyVersion(ctx context.Context, d digest.Digest, info minio.ObjectInfo) error {
	if s.knownVerified(d, info) {
		return nil
	}
	return s.hashVersion(ctx, d, info)
}

// knownVerified reports whether the object version info describes is
// verified without reading it: this process verified it, or it carries the
// verified marker (then it is remembered).
func (s *Store) knownVerified(d digest.Digest, info minio.ObjectInfo) bool {
	id := identify(info)
	s.vmu.Lock()
	ok := s.verified[d] == id
	s.vmu.Unlock()
	if ok {
		return true
	}
	if info.Metadata.Get(verifiedHeader) == verifiedValue(d, info.Size) {
		s.remember(d, id)
		return true
	}
	return false
}

// hashVersion hashes the object version info describes and remembers it
// as verified when it matches d.
func (s *Store) hashVersion(ctx context.Context, d digest.Digest, info minio.ObjectInfo) error {
	id := identify(info)
	// Read exactly the version examined.
	opts := minio.GetObjectOptions{VersionID: info.VersionID}
	if info.VersionID == "" {
		if err := opts.SetMatchETag(info.ETag); err != nil {
			return fmt.Errorf("verify %s: %w", d, err)
		}
	}
	obj, err := s.c.GetObject(ctx, s.bucket, s.blobKey(d), opts)
	if err != nil {
		return notFound(d, err)
	}
	defer obj.Close()
	h := d.Algorithm().Hash()
	n, err := io.Copy(h, obj)
	if err != nil {
		return fmt.Errorf("verify %s: %w", d, notFound(d, err))
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d || n != info.Size {
		s.forget(d)
		return fmt.Errorf("verify %s: %w: stored content (%d bytes) is %s", d, blob.ErrDigestMismatch, n, got)
	}
	s.remember(d, id)
	return nil
}

// verifiedKey is the user metadata a blob's object is created with once
// its content was verified (Put, CommitUpload): the digest and the size,
// as fs.Store's verified attribute records them. S3 sets an object's
// metadata in the request that creates it, and any rewrite creates a new
// object whose metadata is its own: an object written behind the store's
// back lacks the marker (or names another size) and is re-hashed.
const verifiedKey = "Custody-Verified"

// verifiedHeader is verifiedKey as a HEAD response carries it.
const verifiedHeader = "X-Amz-Meta-" + verifiedKey

func verifiedValue(d digest.Digest, size int64) string {
	return fmt.Sprintf("%s %d", d, size)
}

// verifiedMeta is the user metadata of blob d's object of size bytes.
func verifiedMeta(d digest.Digest, size int64) map[string]string {
	return map[string]string{verifiedKey: verifiedValue(d, size)}
}

// remember records id as a verified version of blob d.
func (s *Store) remember(d digest.Digest, id objectID) {
	s.vmu.Lock()
	defer s.vmu.Unlock()
	if s.verified == nil || len(s.verified) >= maxVerified {
		s.verified = make(map[digest.Digest]objectID)
	}
	s.verified[d] = id
}

// forget drops blob d from the verification cache.
func (s *Store) forget(d digest.Digest) {
	s.vmu.Lock()
	delete(s.verified, d)
	s.vmu.Unlock()
}

// touchKey names the marker object whose modification time records the
// last re-upload of blob d, which left the blob's own object untouched.
func (s *Store) touchKey(d digest.Digest) string {
	return s.prefix + "touched/" + string(d.Algorithm()) + "/" + d.Encoded()
}

// touch records that blob d was just stored again. On a versioned bucket
// it then deletes the marker's older versions, so markers do not pile up.
func (s *Store) touch(ctx context.Context, d digest.Digest) error {
	key := s.touchKey(d)
	info, err := s.c.PutObject(ctx, s.bucket, key, eofReader{}, 0,
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil || info.VersionID == "" {
		return err
	}
	vs, err := s.versions(ctx, key)
	if err != nil {
		return nil // best effort: old markers are harmless
	}
	for _, v := range vs {
		if v.VersionID != info.VersionID {
			_ = s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		}
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// ModTime returns when blob d was last written: the later of its object's
// LastModified and that of its re-upload marker (a Put or CommitUpload of
// a blob already stored rewrites no bytes, it writes the zero-byte marker
// touched/<alg>/<hex>). It returns an error wrapping blob.ErrNotFound for
// a missing blob. It implements gc.Ager. S3 reports times to the second.
func (s *Store) ModTime(ctx context.Context, d digest.Digest) (time.Time, error) {
	if err := checkDigest(d); err != nil {
		return time.Time{}, err
	}
	info, err := s.c.StatObject(ctx, s.bucket, s.blobKey(d), minio.StatObjectOptions{})
	if err != nil {
		return time.Time{}, notFound(d, err)
	}
	t := info.LastModified
	m, err := s.c.StatObject(ctx, s.bucket, s.touchKey(d), minio.StatObjectOptions{})
	switch {
	case err == nil:
		if m.LastModified.After(t) {
			t = m.LastModified
		}
	case !isNotFound(err):
		return time.Time{}, fmt.Errorf("blob %s: re-upload marker: %w", d, err)
	}
	return t, nil
}

// Bounds of a presigned URL's lifetime (SigV4 allows up to 7 days).
const (
	MinPresignExpiry = time.Second
	MaxPresignExpiry = 7 * 24 * time.Hour
)

// PresignGet returns a URL that fetches blob d's bytes straight from the S3
// server without credentials for expiry (between MinPresignExpiry and
// MaxPresignExpiry), for redirecting clients. Anyone holding the URL can
// read the blob until it expires, so keep expiry short (minutes). The URL
// is signed locally and names the endpoint in Options as the client sees
// it; it does not check that the blob exists (fetching a missing blob
// answers 404). The response has Content-Type application/octet-stream.
func (s *Store) PresignGet(ctx context.Context, d digest.Digest, expiry time.Duration) (*url.URL, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	if expiry < MinPresignExpiry || expiry > MaxPresignExpiry {
		return nil, fmt.Errorf("presign %s: expiry %s is outside [%s, %s]", d, expiry, MinPresignExpiry, MaxPresignExpiry)
	}
	params := url.Values{"response-content-type": {"application/octet-stream"}}
	u, err := s.c.PresignedGetObject(ctx, s.bucket, s.blobKey(d), expiry, params)
	if err != nil {
		return nil, fmt.Errorf("presign %s: %w", d, err)
	}
	return u, nil
}
