// Package s3 implements blob.Store on an S3-compatible object store
// (AWS S3, MinIO, ...) with minio-go.
//
// Layout under the configured key prefix:
//
//	blobs/<alg>/<hex>                    committed blobs
//	touched/<alg>/<hex>                  zero-byte marker of the blob's last
//	                                     re-upload (see ModTime)
//	uploads/<id>/session                 marker of upload session <id>
//	uploads/<id>/<offset>                one object per Append, <offset> its
//	                                     start as 16 zero-padded decimal digits
//	uploads/.put-<random>                in-flight Put and CommitUpload content
//
// Every object but the re-upload marker is written once and never
// rewritten in place, so the store works on buckets with versioning and
// Object Lock (WORM): a rewrite would only add a version, and the store
// never relies on one. Deleting an object deletes each of its versions by
// version ID: a plain DELETE on a versioned bucket only adds a delete
// marker and keeps the bytes (and the bill).
//
// Put of content of known size streams it to its final key while hashing
// it (up to a part in one PUT request, the rest as a multipart upload
// buffering one part of PartSize bytes at a time, so memory stays flat
// whatever the blob's size; every request carries a CRC32C checksum the
// server verifies). The reader feeding the upload checks size and digest
// before it hands out the last bytes, so on a mismatch the PUT or the
// multipart upload fails before it completes and S3 never creates the
// object: a blob is visible only at its final key, which exists only once
// the content has been verified; S3 creates objects atomically. Content of
// unknown size goes to a temporary object first, is verified, then copied
// server-side to its final key. An upload cut off by a crash leaves an
// incomplete multipart upload (no object), as it always did; a bucket
// lifecycle rule (AbortIncompleteMultipartUpload) clears those. Storing a blob that exists already writes no bytes; it
// rewrites the blob's re-upload marker instead, whose time ModTime reports
// (what refreshing a file's mtime is for the filesystem store). Content of
// at most 1 MiB (manifests, configs, small layers) is read into memory,
// its size and digest checked, and only then written in one PUT: three
// requests (HEAD, PUT, HEAD) where a temporary object and a copy took six.
//
// Resumable uploads keep each Append as its own part object. The size of an
// upload is the end of its last part. An Append at an offset below that size
// (resuming after an unacknowledged write) deletes the parts starting at or
// past the offset; a part that straddles the offset is cut logically: the
// next part's start bounds the bytes read from it, so no part is rewritten.
// CommitUpload streams the parts in order through the hash to the blob's
// final key, like Put with a known size: committing costs one read and one
// write of the upload's bytes through this process (S3's ComposeObject
// cannot join parts under 5 MiB, which Appends often are).
//
// # Beyond blob.Store
//
// The server finds these methods by type assertion:
//
//   - ModTime (gc.Ager): the later of the blob object's LastModified and
//     its re-upload marker's, to the second.
//   - Verify (registry.Verifier): re-hashes the blob by streaming it (a full
//     GET), unless this process verified the same object version before
//     (same ETag, version ID, size and LastModified) or the object carries
//     the verified marker it was created with (user metadata
//     Custody-Verified: digest and size, set only once the content was
//     checked, as fs.Store's verified attribute): one HEAD. S3's own checksums cannot stand in for the digest: sha512 has
//     none, and S3 (MinIO likewise) keeps a full-object SHA-256 only for
//     single-request uploads; for multipart uploads its full-object
//     checksums are CRC32, CRC32C and CRC64NVME only, SHA-256 is a
//     checksum of part checksums.
//   - OpenVerified (registry.Verifier): Open and Verify of the version
//     opened in one GET, whose response carries what the HEAD would (the
//     version, the marker); what a blob download costs with verification
//     on read.
//   - PresignGet: a time-limited URL that reads the blob straight from S3,
//     for redirecting clients.
//   - Object Lock, applied to the current version of a blob's object:
//     ObjectLockEnabled, SetRetention (only ever extends), SetLegalHold,
//     BucketLock (what the bucket enforces, for scrub to compare with
//     custody's record) and DeleteBypassGovernance.
//
// Object Lock is the bucket's own enforcement, underneath custody's
// retention package: when the bucket refuses to delete a locked or held
// blob, Delete changes nothing and returns an error wrapping
// ErrObjectLocked and veto.ErrDenied. Do not give the bucket a default
// retention rule: it would lock upload parts and temporary objects too, which
// the store must be able to delete; custody sets retention per blob.
//
// The store relies on S3's strong read-after-write and list consistency.
// Operations on one upload session are serialised within the process; the
// registry must not run concurrent Appends to one session from several
// processes.
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/deadline"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/opencontainers/go-digest"
)

const (
	// DefaultPartSize is the multipart part size used when Options.PartSize
	// is 0. Each Put and Append buffers one part in memory. With unknown
	// sizes it bounds an object to 10,000 parts (80 GB); Put with a known
	// size raises it as needed.
	DefaultPartSize = 8 << 20
	// minPartSize is S3's smallest multipart part.
	minPartSize = 5 << 20
	// maxParts is S3's largest number of parts in a multipart upload.
	maxParts = 10000

	// maxIDLen is the longest upload ID accepted.
	maxIDLen = blob.MaxUploadIDLen
	// putPrefix starts the names of temporary objects under uploads/. It
	// cannot begin a valid upload ID, so the two never collide.
	putPrefix = ".put-"
	// sessionName is the marker object of an upload session.
	sessionName = "session"
	// offsetDigits is the width of a part object's zero-padded offset.
	offsetDigits = 16
)

// ErrInvalidID is returned (wrapped) for upload IDs that are empty, longer
// than 128 bytes or contain anything but ASCII letters, digits, '_' and '-'.
// Except from CreateUpload it is joined with blob.ErrUploadNotFound.
var ErrInvalidID = errors.New("invalid upload id")

// Options configures a Store.
type Options struct {
	// Endpoint is the S3 server's host[:port], e.g. s3.amazonaws.com.
	Endpoint string
	// Secure selects HTTPS.
	Secure bool
	// AccessKey and SecretKey are static credentials.
	AccessKey, SecretKey string
	// Region is the bucket's region; "" lets the client look it up.
	Region string
	// Transport replaces the HTTP transport, e.g. for custom TLS; nil
	// keeps minio-go's default.
	Transport http.RoundTripper

	// Bucket holds the store's objects. It must exist.
	Bucket string
	// Prefix is prepended to every key; "" or a string ending in "/".
	Prefix string
	// PartSize is the multipart part size in bytes (at least 5 MiB);
	// 0 means DefaultPartSize.
	PartSize uint64
	// Timeout, when positive and Transport is nil, bounds how long a
	// connection to the server may go without progress (dialing, each read
	// and write, waiting for response headers), and a request is then tried
	// at most twice: a frozen server fails calls within about twice the
	// timeout instead of hanging them. Transfers that keep moving are
	// never cut.
	Timeout time.Duration
}

// attemptsWithTimeout is how many times a request is tried when
// Options.Timeout is set (minio-go's default is 10).
const attemptsWithTimeout = 2

// Store is a blob.Store keeping blobs and uploads in an S3 bucket.
// It is safe for concurrent use.
type Store struct {
	c        *minio.Client
	bucket   string
	prefix   string
	partSize uint64

	mu  sync.Mutex
	ups map[string]*sessionLock // guarded by mu

	vmu      sync.Mutex
	verified map[digest.Digest]objectID // guarded by vmu; see Verify
}

type sessionLock struct {
	refs int // guarded by Store.mu
	mu   sync.Mutex
}

var _ blob.Store = (*Store)(nil)

// New returns a Store on the bucket and prefix opts names. It does not
// contact the server.
func New(opts Options) (*Store, error) {
	if opts.Bucket == "" {
		return nil, errors.New("s3 blob store: no bucket")
	}
	if opts.Prefix != "" && !strings.HasSuffix(opts.Prefix, "/") {
		return nil, fmt.Errorf("s3 blob store: prefix %q must end in /", opts.Prefix)
	}
	ps := opts.PartSize
	if ps == 0 {
		ps = DefaultPartSize
	}
	if ps < minPartSize {
		return nil, fmt.Errorf("s3 blob store: part size %d is below S3's minimum of 5 MiB", ps)
	}
	mo := &minio.Options{
		Creds:     credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, ""),
		Secure:    opts.Secure,
		Region:    opts.Region,
		Transport: opts.Transport,
		// Uploads carry CRC32C checksums in trailers, see write.
		TrailingHeaders: true,
	}
	if opts.Transport == nil && opts.Timeout > 0 {
		tr, err := minio.DefaultTransport(opts.Secure)
		if err != nil {
			return nil, fmt.Errorf("s3 blob store: %w", err)
		}
		tr.DialContext = deadline.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}.DialContext
		tr.ResponseHeaderTimeout = opts.Timeout
		tr.TLSHandshakeTimeout = opts.Timeout
		// Close idle connections before their read deadline does.
		tr.IdleConnTimeout = opts.Timeout / 2
		mo.Transport, mo.MaxRetries = tr, attemptsWithTimeout
	}
	c, err := minio.New(opts.Endpoint, mo)
	if err != nil {
		return nil, fmt.Errorf("s3 blob store: %w", err)
	}
	return &Store{
		c:        c,
		bucket:   opts.Bucket,
		prefix:   opts.Prefix,
		partSize: ps,
		ups:      make(map[string]*sessionLock),
	}, nil
}

// Ping checks that the bucket answers (for readiness probes; bound ctx).
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3: bucket %s: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("s3: bucket %s does not exist", s.bucket)
	}
	return nil
}

func (s *Store) blobKey(d digest.Digest) string {
	return s.prefix + "blobs/" + string(d.Algorithm()) + "/" + d.Encoded()
}

func (s *Store) uploadsPrefix() string { return s.prefix + "uploads/" }

// sessionPrefix returns the prefix of upload id's objects, or an error
// wrapping ErrInvalidID.
func (s *Store) sessionPrefix(id string) (string, error) {
	if !blob.ValidUploadID(id) {
		return "", fmt.Errorf("%w %q", ErrInvalidID, id)
	}
	return s.uploadsPrefix() + id + "/", nil
}

func checkDigest(d digest.Digest) error {
	if err := blob.Supported(d); err != nil {
		return fmt.Errorf("digest %q: %w", d, err)
	}
	return nil
}

// isNotFound reports whether err is S3's answer for a missing object.
func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusNotFound || r.Code == minio.NoSuchKey
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	info, err := s.c.StatObject(ctx, s.bucket, s.blobKey(d), minio.StatObjectOptions{})
	if err != nil {
		return 0, notFound(d, err)
	}
	return info.Size, nil
}

func notFound(d digest.Digest, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%w: %s", blob.ErrNotFound, d)
	}
	return fmt.Errorf("blob %s: %w", d, err)
}

// Open implements blob.Store with one GET request: the response carries
// the object's size, and its body is what the first Reads return. Reads
// after a Seek elsewhere issue a ranged GET of the same object version
// (see object).
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	o, _, err := s.open(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	return o, o.size, nil
}

// open GETs blob d's object and returns it opened at offset 0 with the
// response's description of the version it reads.
func (s *Store) open(ctx context.Context, d digest.Digest) (*object, minio.ObjectInfo, error) {
	if err := checkDigest(d); err != nil {
		return nil, minio.ObjectInfo{}, err
	}
	key := s.blobKey(d)
	body, info, _, err := minio.Core{Client: s.c}.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, minio.ObjectInfo{}, notFound(d, err)
	}
	return &object{s: s, ctx: ctx, d: d, key: key, id: identify(info), size: info.Size, body: body}, info, nil
}

// object is an opened blob. It reads the response body of a GET directly
// (no goroutine between the caller and the connection, which a
// *minio.Object puts behind every Read), each Read filling the caller's
// buffer, and keeps its position itself: a Seek costs nothing, and only a
// Read at an offset other than where the current body stands issues a
// new, ranged GET. Every GET after the first names the version the first
// one read (its version ID, or its ETag as If-Match), so an object
// replaced meanwhile fails the Read instead of mixing two versions' bytes.
type object struct {
	s    *Store
	ctx  context.Context
	d    digest.Digest
	key  string
	id   objectID
	size int64

	body   io.ReadCloser // nil once closed, or after a failed ranged GET
	at     int64         // offset of body's next byte
	pos    int64         // offset of the next Read
	closed bool
}

var errClosed = errors.New("s3: read of a closed blob")

func (o *object) Read(p []byte) (int, error) {
	if o.closed {
		return 0, errClosed
	}
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if o.body == nil || o.at != o.pos {
		if err := o.reopen(); err != nil {
			return 0, err
		}
	}
	if rest := o.size - o.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	// Fill p (the rest of the blob bounds it): a reader's large buffer
	// goes out as one write to the client, not as the pieces that were
	// on the S3 connection at the time.
	n, err := io.ReadFull(o.body, p)
	o.at += int64(n)
	o.pos = o.at
	switch {
	case err == nil:
	case (err == io.EOF || err == io.ErrUnexpectedEOF) && o.pos < o.size:
		err = fmt.Errorf("blob %s: %w at offset %d of %d", o.d, io.ErrUnexpectedEOF, o.pos, o.size)
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		err = nil
	}
	return n, err
}

// reopen replaces the body with a GET of the same version from o.pos.
func (o *object) reopen() error {
	if o.body != nil {
		o.body.Close()
		o.body = nil
	}
	opts := minio.GetObjectOptions{VersionID: o.id.version}
	if o.id.version == "" {
		if err := opts.SetMatchETag(o.id.etag); err != nil {
			return fmt.Errorf("blob %s: %w", o.d, err)
		}
	}
	if o.pos > 0 { // SetRange(0, 0) would ask for the first byte only
		if err := opts.SetRange(o.pos, 0); err != nil {
			return fmt.Errorf("blob %s: %w", o.d, err)
		}
	}
	body, _, _, err := minio.Core{Client: o.s.c}.GetObject(o.ctx, o.s.bucket, o.key, opts)
	if err != nil {
		return notFound(o.d, err)
	}
	o.body, o.at = body, o.pos
	return nil
}

// Seek only moves the position; the next Read fetches from there.
func (o *object) Seek(offset int64, whence int) (int64, error) {
	if o.closed {
		return 0, errClosed
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += o.pos
	case io.SeekEnd:
		offset += o.size
	default:
		return 0, fmt.Errorf("blob %s: seek: invalid whence %d", o.d, whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("blob %s: seek to negative offset %d", o.d, offset)
	}
	o.pos = offset
	return offset, nil
}

func (o *object) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	if o.body == nil {
		return nil
	}
	err := o.body.Close()
	o.body = nil
	return err
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	return s.put(ctx, d, size, r)
}

// directMax is the largest content put writes straight to its final key:
// it is read into memory and verified first, so the digest is known to
// match before the one PUT request that creates the object. Manifests,
// configs and small layers take this path; it bounds the memory of a put
// as the multipart buffer (PartSize) does for larger content.
const directMax = 1 << 20

// put stores r as blob d through a verified temporary object, or, for
// content of at most directMax bytes, verified in memory and written to
// its final key in one request.
func (s *Store) put(ctx context.Context, d digest.Digest, size int64, r io.Reader) (int64, error) {
	var prefix []byte
	if size <= directMax {
		// Read one byte past the limit to tell small content from large
		// content of unknown size.
		buf := make([]byte, directMax+1)
		n, err := fill(r, buf)
		switch {
		case err == io.EOF:
			return s.putDirect(ctx, d, size, buf[:n])
		case err != nil:
			return 0, fmt.Errorf("put %s: reading content: %w", d, err)
		case size >= 0:
			return 0, fmt.Errorf("put %s: %w: more than %d bytes", d, blob.ErrSizeMismatch, size)
		}
		prefix = buf
	}
	if prefix != nil {
		r = io.MultiReader(bytes.NewReader(prefix), r)
	}
	if size > directMax {
		return s.putStreamed(ctx, d, size, r)
	}
	// Content of unknown size: through a temporary object, whose size is
	// only known once it is written.
	tmp, err := s.tempKey()
	if err != nil {
		return 0, err
	}
	h := d.Algorithm().Hash()
	n, err := s.write(ctx, tmp, io.TeeReader(r, h), size)
	if err != nil {
		s.remove(tmp)
		return 0, fmt.Errorf("put %s: %w", d, err)
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		s.remove(tmp)
		return 0, fmt.Errorf("put %s: %w: content is %s", d, blob.ErrDigestMismatch, got)
	}
	if err := s.install(ctx, tmp, d, n); err != nil {
		s.remove(tmp)
		return 0, err
	}
	s.remove(tmp)
	return n, nil
}

// putStreamed stores size bytes from r as blob d at its final key, in one
// PUT or a multipart upload, created with its verified marker. r is read
// through a verifyingReader, which checks length and digest before it
// hands out the last bytes: on a mismatch the request or multipart upload
// fails before S3 has the whole object, so S3 never creates it. This saves
// the temporary object, the server-side copy of every byte and the
// temporary object's removal. If d is stored already, the content is only
// hashed and the re-upload recorded.
func (s *Store) putStreamed(ctx context.Context, d digest.Digest, size int64, r io.Reader) (int64, error) {
	key := s.blobKey(d)
	vr := &verifyingReader{r: r, d: d, h: d.Algorithm().Hash(), want: size, left: size}
	if _, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err == nil {
		if _, err := io.Copy(io.Discard, vr); err != nil {
			return 0, fmt.Errorf("put %s: %w", d, err)
		}
		if err := s.touch(ctx, d); err != nil {
			return 0, fmt.Errorf("put %s: recording the re-upload: %w", d, err)
		}
		return size, nil
	} else if !isNotFound(err) {
		return 0, fmt.Errorf("put %s: %w", d, err)
	}
	n, err := s.write(ctx, key, vr, size, verifiedMeta(d, size))
	if err == nil && !vr.ok {
		// Cannot happen (write checks the length, and the last bytes
		// pass the digest check first); never leave such an object.
		s.remove(key)
		err = fmt.Errorf("%w: upload completed without the content check", blob.ErrDigestMismatch)
	}
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", d, err)
	}
	if info, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err == nil {
		s.remember(d, identify(info))
	}
	return n, nil
}

// verifyingReader reads want bytes from r, hashing them. When a read
// reaches the end, it first checks that r holds no more bytes and that
// the content hashes to d, and returns an error instead of the last bytes
// if not.
type verifyingReader struct {
	r          io.Reader
	d          digest.Digest
	h          hash.Hash
	want, left int64
	ok         bool  // the whole content was read and matched d
	err        error // sticky
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.left -= int64(n)
	if v.left == 0 {
		var b [1]byte
		m, rerr := io.ReadFull(v.r, b[:])
		switch {
		case m > 0:
			v.err = fmt.Errorf("%w: more than %d bytes", blob.ErrSizeMismatch, v.want)
		case rerr != io.EOF:
			v.err = fmt.Errorf("reading content: %w", rerr)
		default:
			if got := digest.NewDigest(v.d.Algorithm(), v.h); got != v.d {
				v.err = fmt.Errorf("%w: content is %s", blob.ErrDigestMismatch, got)
			}
		}
		if v.err != nil {
			return 0, v.err
		}
		v.ok = true
		return n, nil
	}
	switch {
	case err == io.EOF:
		v.err = fmt.Errorf("%w: got %d bytes, want %d", blob.ErrSizeMismatch, v.want-v.left, v.want)
		return 0, v.err
	case err != nil:
		v.err = err
		return n, err
	}
	return n, nil
}

// putDirect stores b, already read in full, as blob d: it checks size and
// digest, then creates the final key with one PUT (unless d is stored
// already). S3 creates an object atomically, so the key appears only with
// the verified content, as through a temporary object and a copy, without
// the copy and the temporary object's removal.
func (s *Store) putDirect(ctx context.Context, d digest.Digest, size int64, b []byte) (int64, error) {
	n := int64(len(b))
	if size >= 0 && n != size {
		return 0, fmt.Errorf("put %s: %w: got %d bytes, want %d", d, blob.ErrSizeMismatch, n, size)
	}
	h := d.Algorithm().Hash()
	h.Write(b)
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		return 0, fmt.Errorf("put %s: %w: content is %s", d, blob.ErrDigestMismatch, got)
	}
	key := s.blobKey(d)
	if _, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err == nil {
		if err := s.touch(ctx, d); err != nil {
			return 0, fmt.Errorf("put %s: recording the re-upload: %w", d, err)
		}
		return n, nil
	} else if !isNotFound(err) {
		return 0, fmt.Errorf("put %s: %w", d, err)
	}
	if _, err := s.write(ctx, key, bytes.NewReader(b), n, verifiedMeta(d, n)); err != nil {
		return 0, fmt.Errorf("put %s: %w", d, err)
	}
	// The content was hashed before it was sent: the first Verify need
	// not read it again. (A PUT's response carries no Last-Modified.)
	if info, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err == nil {
		s.remember(d, identify(info))
	}
	return n, nil
}

// peekSize is how much of a stream of unknown size write reads ahead to
// find out whether it fits in a single PUT request.
const peekSize = 64 << 10

// write stores the content of r as object key and returns its length. size
// is the length expected, or -1; a different length fails with
// blob.ErrSizeMismatch. Errors of r are returned as they are. Content of
// known size up to a part, and short streams, go in one PUT request; the
// rest in a multipart upload, one part buffered at a time. S3 creates the
// object only if the whole request or upload succeeds.
func (s *Store) write(ctx context.Context, key string, r io.Reader, size int64, meta ...map[string]string) (int64, error) {
	cr := &checkedReader{r: r, limit: size}
	var src io.Reader = cr
	objSize := size
	if size < 0 {
		buf := make([]byte, peekSize)
		n, err := fill(cr, buf)
		switch {
		case err == io.EOF:
			src, objSize = bytes.NewReader(buf[:n]), int64(n)
		case err != nil:
			return 0, cr.err
		default:
			src = io.MultiReader(bytes.NewReader(buf), cr)
		}
	}
	single := objSize >= 0 && objSize <= int64(s.partSize)
	if !single {
		objSize = -1
	}
	_, err := s.c.PutObject(ctx, s.bucket, key, src, objSize, minio.PutObjectOptions{
		PartSize:    s.partSizeFor(size),
		ContentType: "application/octet-stream",
		// A CRC32C checksum (per part, or trailing a single PUT) lets the
		// server verify what it stores, instead of a payload signature
		// (over plain HTTP, minio-go signs every 64 KiB chunk, which
		// allocates several MiB per 64 MiB).
		DisableContentSha256: true,
		Checksum:             minio.ChecksumCRC32C,
		UserMetadata:         firstMeta(meta),
	})
	switch {
	case cr.err != nil:
		// The source's error is the cause, whatever minio-go made of it.
	case err != nil && single && cr.eof && cr.n < objSize:
		cr.err = fmt.Errorf("%w: got %d bytes, want %d", blob.ErrSizeMismatch, cr.n, size)
	case err == nil && single:
		// The request took objSize bytes: any more is a size mismatch.
		var b [1]byte
		io.ReadFull(src, b[:])
	}
	if cr.err != nil {
		return 0, cr.err
	}
	if err != nil {
		return 0, err
	}
	if size >= 0 && cr.n != size {
		return 0, fmt.Errorf("%w: got %d bytes, want %d", blob.ErrSizeMismatch, cr.n, size)
	}
	return cr.n, nil
}

// fill reads into buf until it is full or r ends, returning io.EOF (with
// the bytes read) in the latter case.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// partSizeFor returns the part size for an object of size bytes (-1:
// unknown), large enough to stay within S3's part count.
func (s *Store) partSizeFor(size int64) uint64 {
	ps := s.partSize
	if size > 0 {
		if need := uint64(size+maxParts-1) / maxParts; need > ps {
			ps = (need + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB
		}
	}
	return ps
}

// install makes verified temporary object tmp, of size bytes, visible as
// blob d with a server-side copy, unless d is stored already.
func (s *Store) install(ctx context.Context, tmp string, d digest.Digest, size int64) error {
	key := s.blobKey(d)
	if _, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err == nil {
		// Immutable: the existing copy has the same content. Record the
		// re-upload for garbage collection's grace period (see ModTime).
		if err := s.touch(ctx, d); err != nil {
			return fmt.Errorf("put %s: recording the re-upload: %w", d, err)
		}
		return nil
	} else if !isNotFound(err) {
		return fmt.Errorf("put %s: %w", d, err)
	}
	dst := minio.CopyDestOptions{Bucket: s.bucket, Object: key, ReplaceMetadata: true, UserMetadata: verifiedMeta(d, size)}
	src := minio.CopySrcOptions{Bucket: s.bucket, Object: tmp}
	var err error
	if size <= 5<<30 {
		_, err = s.c.CopyObject(ctx, dst, src)
	} else {
		// A single CopyObject is limited to 5 GiB; ComposeObject copies in parts.
		_, err = s.c.ComposeObject(ctx, dst, src)
	}
	if err != nil {
		return fmt.Errorf("put %s: install: %w", d, err)
	}
	// The content was hashed on its way in: the first Verify need not
	// read it again.
	if info, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err == nil {
		s.remember(d, identify(info))
	}
	return nil
}

// firstMeta returns the first of ms, or nil.
func firstMeta(ms []map[string]string) map[string]string {
	if len(ms) == 0 {
		return nil
	}
	return ms[0]
}

// tempKey returns a fresh key for a temporary object.
func (s *Store) tempKey() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return s.uploadsPrefix() + putPrefix + hex.EncodeToString(b[:]), nil
}

// remove deletes every version of key on a best-effort basis, also when the
// caller's context is done: a leftover temporary object is garbage, purged
// by PurgeTemp.
func (s *Store) remove(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.removeVersions(ctx, key)
}

// removeVersions deletes every version and delete marker of key, so that
// on a versioned bucket no bytes stay behind a delete marker (a plain
// DELETE only adds one). On an unversioned bucket it deletes the object.
func (s *Store) removeVersions(ctx context.Context, key string) error {
	vs, err := s.versions(ctx, key)
	if err != nil {
		return err
	}
	for _, v := range vs {
		err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		if err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// checkedReader counts the bytes read, fails once more than limit (unless
// negative) arrive and keeps the source's error.
type checkedReader struct {
	r     io.Reader
	limit int64
	n     int64
	eof   bool  // the source reported io.EOF
	err   error // the source's error, other than io.EOF, or the size error
}

func (c *checkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.limit >= 0 && c.n > c.limit {
		c.err = fmt.Errorf("%w: more than %d bytes", blob.ErrSizeMismatch, c.limit)
		return n, c.err
	}
	switch {
	case err == io.EOF:
		c.eof = true
	case err != nil:
		c.err = err
		// minio-go takes io.ErrUnexpectedEOF for a short last part:
		// make sure a failing source aborts the upload.
		return n, fmt.Errorf("reading content: %w", err)
	}
	return n, err
}

// Walk implements blob.Store. Objects under blobs/ whose keys do not name a
// supported digest are skipped.
func (s *Store) Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pre := s.prefix + "blobs/"
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: pre, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("walk blobs: %w", obj.Err)
		}
		alg, enc, ok := strings.Cut(strings.TrimPrefix(obj.Key, pre), "/")
		if !ok {
			continue
		}
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
		if blob.Supported(d) != nil || s.blobKey(d) != obj.Key {
			continue
		}
		if err := fn(d, obj.Size); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// lock serialises the operations on upload id within the process.
func (s *Store) lock(id string) (unlock func()) {
	s.mu.Lock()
	l := s.ups[id]
	if l == nil {
		l = &sessionLock{}
		s.ups[id] = l
	}
	l.refs++
	s.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.ups, id)
		}
		s.mu.Unlock()
	}
}

// part is one Append's object.
type part struct {
	key   string
	start int64
	size  int64 // of the object; the bytes used may be fewer, see layout
}

// session lists the objects of upload id: whether its marker exists and its
// parts ordered by start.
func (s *Store) session(ctx context.Context, pre string) (exists bool, parts []part, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: pre, Recursive: true}) {
		if obj.Err != nil {
			return false, nil, obj.Err
		}
		name := strings.TrimPrefix(obj.Key, pre)
		if name == sessionName {
			exists = true
			continue
		}
		if start, ok := parseOffset(name); ok {
			parts = append(parts, part{key: obj.Key, start: start, size: obj.Size})
		}
	}
	// Keys list in byte order, which the zero padding makes numeric order.
	slices.SortFunc(parts, func(a, b part) int { return int(min(max(a.start-b.start, -1), 1)) })
	return exists, parts, nil
}

func parseOffset(name string) (int64, bool) {
	if len(name) != offsetDigits {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(name, 10, 64)
	return n, err == nil
}

func partKey(pre string, offset int64) string {
	return fmt.Sprintf("%s%0*d", pre, offsetDigits, offset)
}

// layout returns how many bytes of each part belong to the upload and the
// upload's size: a part ends where the next one starts. It reports an
// error if the parts leave a gap, which no sequence of Appends produces.
func layout(parts []part) (used []int64, size int64, err error) {
	used = make([]int64, len(parts))
	for i, p := range parts {
		if p.start > size {
			return nil, 0, fmt.Errorf("upload parts leave a gap at %d", size)
		}
		if p.start < size { // cut the previous part
			used[i-1] -= size - p.start
		}
		used[i] = p.size
		size = p.start + p.size
	}
	return used, size, nil
}

// openSession lists upload id's parts, returning ErrUploadNotFound for a
// missing or invalid session.
func (s *Store) openSession(ctx context.Context, id string) (pre string, parts []part, err error) {
	pre, err = s.sessionPrefix(id)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", blob.ErrUploadNotFound, err)
	}
	exists, parts, err := s.session(ctx, pre)
	if err != nil {
		return "", nil, fmt.Errorf("upload %s: %w", id, err)
	}
	if !exists {
		return "", nil, fmt.Errorf("%w: %s", blob.ErrUploadNotFound, id)
	}
	return pre, parts, nil
}

// CreateUpload implements blob.Store. It fails if the upload exists.
func (s *Store) CreateUpload(ctx context.Context, id string) error {
	pre, err := s.sessionPrefix(id)
	if err != nil {
		return err
	}
	defer s.lock(id)()
	exists, parts, err := s.session(ctx, pre)
	if err != nil {
		return fmt.Errorf("create upload %s: %w", id, err)
	}
	if exists {
		return fmt.Errorf("create upload %s: already exists", id)
	}
	// Parts without a marker are left by an interrupted commit or abort.
	if err := s.removeParts(ctx, parts); err != nil {
		return fmt.Errorf("create upload %s: %w", id, err)
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	opts.SetMatchETagExcept("*") // If-None-Match: *, where supported
	if _, err := s.c.PutObject(ctx, s.bucket, pre+sessionName, bytes.NewReader(nil), 0, opts); err != nil {
		return fmt.Errorf("create upload %s: %w", id, err)
	}
	return nil
}

// removeParts deletes parts, last first, so that an interruption leaves a
// consistent prefix of the upload.
func (s *Store) removeParts(ctx context.Context, parts []part) error {
	for _, p := range slices.Backward(parts) {
		if err := s.removeVersions(ctx, p.key); err != nil {
			return err
		}
	}
	return nil
}

// UploadSize implements blob.Store.
func (s *Store) UploadSize(ctx context.Context, id string) (int64, error) {
	_, parts, err := s.openSession(ctx, id)
	if err != nil {
		return 0, err
	}
	_, size, err := layout(parts)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", id, err)
	}
	return size, nil
}

// Append implements blob.Store. The bytes become one new part object;
// parts starting at or past offset are deleted first.
func (s *Store) Append(ctx context.Context, id string, offset int64, r io.Reader) (int64, error) {
	if !blob.ValidUploadID(id) {
		return 0, fmt.Errorf("%w: %w %q", blob.ErrUploadNotFound, ErrInvalidID, id)
	}
	defer s.lock(id)()
	pre, parts, err := s.openSession(ctx, id)
	if err != nil {
		return 0, err
	}
	_, size, err := layout(parts)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", id, err)
	}
	if offset < 0 || offset > size {
		return 0, fmt.Errorf("%w: upload %s holds %d bytes, append at %d", blob.ErrOffset, id, size, offset)
	}
	// Peek, so that an empty Append writes nothing.
	var first [1]byte
	n, err := io.ReadFull(r, first[:])
	if err == io.EOF {
		if err := s.truncate(ctx, id, parts, offset); err != nil {
			return 0, err
		}
		return offset, nil
	}
	if err != nil {
		return 0, fmt.Errorf("append to upload %s: %w", id, err)
	}
	if err := s.truncate(ctx, id, parts, offset); err != nil {
		return 0, err
	}
	m, err := s.write(ctx, partKey(pre, offset), io.MultiReader(bytes.NewReader(first[:n]), r), -1)
	if err != nil {
		return 0, fmt.Errorf("append to upload %s: %w", id, err)
	}
	return offset + m, nil
}

// truncate deletes the parts starting at or past offset.
func (s *Store) truncate(ctx context.Context, id string, parts []part, offset int64) error {
	i := slices.IndexFunc(parts, func(p part) bool { return p.start >= offset })
	if i < 0 {
		return nil
	}
	if err := s.removeParts(ctx, parts[i:]); err != nil {
		return fmt.Errorf("append to upload %s: discarding unacknowledged bytes: %w", id, err)
	}
	return nil
}

// CommitUpload implements blob.Store.
func (s *Store) CommitUpload(ctx context.Context, id string, d digest.Digest, size int64) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	if !blob.ValidUploadID(id) {
		return 0, fmt.Errorf("%w: %w %q", blob.ErrUploadNotFound, ErrInvalidID, id)
	}
	defer s.lock(id)()
	_, parts, err := s.openSession(ctx, id)
	if err != nil {
		return 0, err
	}
	used, total, err := layout(parts)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", id, err)
	}
	if size >= 0 && size != total {
		return 0, fmt.Errorf("commit upload %s: %w: holds %d bytes, want %d", id, blob.ErrSizeMismatch, total, size)
	}
	pr := &partsReader{ctx: ctx, s: s, parts: parts, used: used}
	defer pr.Close()
	n, err := s.put(ctx, d, total, pr)
	if err != nil {
		return 0, fmt.Errorf("commit upload %s: %w", id, err)
	}
	if err := s.removeSession(ctx, id); err != nil {
		return 0, fmt.Errorf("commit upload %s: %w", id, err)
	}
	return n, nil
}

// partsReader reads the bytes of an upload's parts in order.
type partsReader struct {
	ctx   context.Context
	s     *Store
	parts []part
	used  []int64
	cur   io.ReadCloser
}

func (r *partsReader) Read(p []byte) (int, error) {
	for {
		if r.cur != nil {
			n, err := r.cur.Read(p)
			if err == io.EOF {
				r.cur.Close()
				r.cur = nil
				if n > 0 {
					return n, nil
				}
				continue
			}
			return n, err
		}
		if len(r.parts) == 0 {
			return 0, io.EOF
		}
		pt, used := r.parts[0], r.used[0]
		r.parts, r.used = r.parts[1:], r.used[1:]
		if used == 0 {
			continue
		}
		opts := minio.GetObjectOptions{}
		if used < pt.size {
			if err := opts.SetRange(0, used-1); err != nil {
				return 0, err
			}
		}
		obj, err := r.s.c.GetObject(r.ctx, r.s.bucket, pt.key, opts)
		if err != nil {
			return 0, err
		}
		// Guard against a part shorter than listed.
		r.cur = struct {
			io.Reader
			io.Closer
		}{&exactReader{r: obj, left: used}, obj}
	}
}

func (r *partsReader) Close() {
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
}

// exactReader reads exactly left bytes from r, failing on a short read.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// removeSession deletes the parts of upload id, then its marker.
func (s *Store) removeSession(ctx context.Context, id string) error {
	pre, err := s.sessionPrefix(id)
	if err != nil {
		return err
	}
	_, parts, err := s.session(ctx, pre)
	if err != nil {
		return err
	}
	if err := s.removeParts(ctx, parts); err != nil {
		return err
	}
	return s.removeVersions(ctx, pre+sessionName)
}

// AbortUpload implements blob.Store.
func (s *Store) AbortUpload(ctx context.Context, id string) error {
	if !blob.ValidUploadID(id) {
		return fmt.Errorf("%w: %w %q", blob.ErrUploadNotFound, ErrInvalidID, id)
	}
	defer s.lock(id)()
	if _, _, err := s.openSession(ctx, id); err != nil {
		return err
	}
	if err := s.removeSession(ctx, id); err != nil {
		return fmt.Errorf("abort upload %s: %w", id, err)
	}
	return nil
}

// Uploads implements blob.Store. An upload's modification time is that of
// its newest object.
func (s *Store) Uploads(ctx context.Context, fn func(id string, modified time.Time) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pre := s.uploadsPrefix()
	var (
		id      string
		mod     time.Time
		session bool
	)
	flush := func() error {
		if id == "" || !session {
			return nil
		}
		return fn(id, mod)
	}
	// All keys of one session share a prefix, so they list consecutively.
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: pre, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("list uploads: %w", obj.Err)
		}
		oid, name, ok := strings.Cut(strings.TrimPrefix(obj.Key, pre), "/")
		if !ok || !blob.ValidUploadID(oid) {
			continue // temporary objects and strays
		}
		if oid != id {
			if err := flush(); err != nil {
				return err
			}
			id, mod, session = oid, time.Time{}, false
		}
		if name == sessionName {
			session = true
		}
		if obj.LastModified.After(mod) {
			mod = obj.LastModified
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return ctx.Err()
}

// PurgeTemp deletes the temporary objects of Put and CommitUpload calls
// last modified before t, left by crashed processes, and returns how many
// it deleted. On a versioned bucket it deletes every version (and delete
// marker) older than t, so bytes hidden by a plain DELETE go too.
func (s *Store) PurgeTemp(ctx context.Context, t time.Time) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 0
	pre := s.uploadsPrefix() + putPrefix
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: pre, WithVersions: true}) {
		if obj.Err != nil {
			return n, fmt.Errorf("list temporary objects: %w", obj.Err)
		}
		if !obj.LastModified.Before(t) {
			continue
		}
		err := s.c.RemoveObject(ctx, s.bucket, obj.Key, minio.RemoveObjectOptions{VersionID: obj.VersionID})
		if err != nil && !isNotFound(err) {
			return n, fmt.Errorf("remove temporary object: %w", err)
		}
		if !obj.IsDeleteMarker {
			n++
		}
	}
	return n, nil
}
