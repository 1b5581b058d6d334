// Package fs implements blob.Store on a local filesystem.
//
// Layout under the root directory:
//
//	blobs/<alg>/<first two hex digits>/<hex>   committed blobs
//	uploads/<id>                               upload sessions
//	uploads/.put-<random>                      in-flight Put calls
//
// Content is always written to a file under uploads/, fsync'd and verified
// before it is renamed into blobs/ and the directory fsync'd, so a blob is
// never visible before it is complete and correct. Hashing runs in its own
// goroutine, overlapped with reading and writing. An upload session's file
// is fsync'd only then, by CommitUpload: its creation and its appends are
// not (see blob.Store: a crash of the machine may lose an upload, never a
// blob). Syncs counts the fsyncs.
//
// Temporary files left under uploads/ by a Put interrupted by a crash have
// names starting with ".put-", are never reported by Uploads, and are
// removed by PurgeTemp (the server calls it with the upload purge).
package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/opencontainers/go-digest"
)

const (
	dirPerm  = 0o700
	filePerm = 0o600

	// maxIDLen is the longest upload ID accepted.
	maxIDLen = blob.MaxUploadIDLen
	// putPrefix starts the names of Put's temporary files. It cannot begin
	// a valid upload ID, so the two never collide.
	putPrefix = ".put-"
)

// ErrInvalidID is returned (wrapped) for upload IDs that are empty, longer
// than 128 bytes or contain anything but ASCII letters, digits, '_' and '-'.
// Except from CreateUpload it is joined with blob.ErrUploadNotFound.
var ErrInvalidID = errors.New("invalid upload id")

// Store is a blob.Store keeping blobs and uploads in a directory tree.
// It is safe for concurrent use.
type Store struct {
	root    string
	blobs   string
	uploads string

	// copy streams content to disk while hashing it.
	copy copyFunc
	// writeback starts writing content to disk while it is still arriving.
	writeback bool

	mu       sync.Mutex
	ups      map[string]*upload       // guarded by mu
	verified map[digest.Digest]fileID // guarded by mu; see Verify

	syncs atomic.Uint64 // see Syncs
}

// Syncs returns how many fsyncs (of files and directories) s made since
// New: what its writes cost in flushes, for tests and measurements.
func (s *Store) Syncs() uint64 { return s.syncs.Load() }

// upload is the in-memory state of one upload session. It serialises
// operations on the session and caches the running sha256 state so chunked
// uploads are hashed once.
type upload struct {
	refs int // operations holding or waiting for mu; guarded by Store.mu

	mu  sync.Mutex
	h   hash.Hash // sha256 of the first off bytes of the file, or nil
	off int64
}

var _ blob.Store = (*Store)(nil)

// New returns a Store rooted at root, creating its directories (mode 0700)
// as needed. It removes nothing.
func New(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("blob store root: %w", err)
	}
	s := &Store{
		root:      abs,
		blobs:     filepath.Join(abs, "blobs"),
		uploads:   filepath.Join(abs, "uploads"),
		copy:      pipelinedCopy,
		writeback: true,
		ups:       make(map[string]*upload),
		verified:  make(map[digest.Digest]fileID),
	}
	for _, dir := range []string{
		s.uploads,
		filepath.Join(s.blobs, string(digest.SHA256)),
		filepath.Join(s.blobs, string(digest.SHA512)),
	} {
		if err := os.MkdirAll(dir, dirPerm); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	for _, dir := range []string{abs, s.blobs} {
		if err := s.syncDir(dir); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	return s, nil
}

// Root returns the absolute path of the store's root directory.
func (s *Store) Root() string { return s.root }

// blobPath returns where blob d lives. d must have passed blob.Supported.
func (s *Store) blobPath(d digest.Digest) string {
	enc := d.Encoded()
	return filepath.Join(s.blobs, string(d.Algorithm()), enc[:2], enc)
}

// uploadPath returns the file of upload id, or an error wrapping
// ErrInvalidID if id could name anything but a file directly in uploads/.
func (s *Store) uploadPath(id string) (string, error) {
	if !blob.ValidUploadID(id) {
		return "", fmt.Errorf("%w %q", ErrInvalidID, id)
	}
	return filepath.Join(s.uploads, id), nil
}

func checkDigest(d digest.Digest) error {
	if err := blob.Supported(d); err != nil {
		return fmt.Errorf("digest %q: %w", d, err)
	}
	return nil
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		return 0, notFound(d, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("blob %s: not a regular file", d)
	}
	return fi.Size(), nil
}

// Open implements blob.Store. The reader is the blob's *os.File.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	f, fi, err := s.openFile(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// openFile opens blob d's file, which must be a regular file.
func (s *Store) openFile(ctx context.Context, d digest.Digest) (*os.File, os.FileInfo, error) {
	if err := checkDigest(d); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, nil, notFound(d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("blob %s: not a regular file", d)
	}
	return f, fi, nil
}

// Put implements blob.Store. The content goes to a temporary file under
// uploads/ and is renamed into place once durable and verified.
func (s *Store) Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f, err := s.createTemp()
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()

	src := r
	if size >= 0 && size < math.MaxInt64 {
		// Read at most one byte past the expected size: enough to tell
		// that the content is too long without storing all of it.
		src = io.LimitReader(r, size+1)
	}
	h := d.Algorithm().Hash()
	n, err := s.copy(ctx, s.writer(f, 0), h, src)
	if err != nil {
		return n, fmt.Errorf("put %s: %w", d, err)
	}
	if size >= 0 && n != size {
		return n, fmt.Errorf("put %s: %w: got %d bytes or more, want %d", d, blob.ErrSizeMismatch, n, size)
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		return n, fmt.Errorf("put %s: %w: content is %s", d, blob.ErrDigestMismatch, got)
	}
	if err := s.sync(f); err != nil {
		return n, fmt.Errorf("put %s: %w", d, err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("put %s: %w", d, err)
	}
	committed = true
	markVerifiedFile(d, tmp)
	if err := s.install(tmp, d); err != nil {
		return n, fmt.Errorf("put %s: %w", d, err)
	}
	return n, nil
}

// writer returns the writer content for f goes through, starting at off.
func (s *Store) writer(f *os.File, off int64) io.Writer {
	if s.writeback {
		return newWritebackWriter(f, off)
	}
	return f
}

// createTemp creates a new, empty file for Put under uploads/.
func (s *Store) createTemp() (*os.File, error) {
	for range 100 {
		name := filepath.Join(s.uploads, fmt.Sprintf("%s%016x", putPrefix, rand.Uint64()))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, errors.New("blob store: cannot create a temporary file")
}

// install moves the durable, verified file tmp into place as blob d. If the
// blob exists already, tmp is removed instead: blobs are content-addressed,
// so the existing file holds the same bytes.
func (s *Store) install(tmp string, d digest.Digest) error {
	dst := s.blobPath(d)
	if _, err := os.Stat(dst); err == nil {
		// Same bytes already stored. Refresh the modification time so the
		// blob counts as just written for garbage collection's grace period.
		now := time.Now()
		_ = os.Chtimes(dst, now, now)
		return os.Remove(tmp)
	}
	dir := filepath.Dir(dst)
	if err := s.ensureDir(dir); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := s.syncDir(dir); err != nil {
		return err
	}
	s.markVerified(d, dst)
	return nil
}

// ensureDir creates the fan-out directory dir (one level below an
// algorithm directory) if needed and makes its entry durable.
func (s *Store) ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return err
	}
	return s.syncDir(filepath.Dir(dir))
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := s.blobPath(d)
	if err := os.Remove(p); err != nil {
		return notFound(d, err)
	}
	return s.syncDir(filepath.Dir(p))
}

// Walk implements blob.Store. Files whose names do not form a valid digest
// in the right fan-out directory are skipped.
func (s *Store) Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
	algs, err := os.ReadDir(s.blobs)
	if err != nil {
		return err
	}
	for _, alg := range algs {
		if !alg.IsDir() {
			continue
		}
		algDir := filepath.Join(s.blobs, alg.Name())
		prefixes, err := os.ReadDir(algDir)
		if err != nil {
			return err
		}
		for _, prefix := range prefixes {
			if !prefix.IsDir() {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			entries, err := os.ReadDir(filepath.Join(algDir, prefix.Name()))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return err
			}
			for _, e := range entries {
				if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix.Name()) {
					continue
				}
				d := digest.NewDigestFromEncoded(digest.Algorithm(alg.Name()), e.Name())
				if blob.Supported(d) != nil || len(prefix.Name()) != 2 {
					continue
				}
				fi, err := e.Info()
				if errors.Is(err, fs.ErrNotExist) {
					continue // deleted meanwhile
				}
				if err != nil {
					return err
				}
				if err := fn(d, fi.Size()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// acquire returns the locked in-memory state of upload id.
func (s *Store) acquire(id string) *upload {
	s.mu.Lock()
	u := s.ups[id]
	if u == nil {
		u = &upload{}
		s.ups[id] = u
	}
	u.refs++
	s.mu.Unlock()
	u.mu.Lock()
	return u
}

// release unlocks u, forgetting it once nobody uses it and it caches nothing.
func (s *Store) release(id string, u *upload) {
	s.mu.Lock() // lock order: upload.mu, then Store.mu
	u.refs--
	if u.refs == 0 && u.h == nil {
		delete(s.ups, id)
	}
	s.mu.Unlock()
	u.mu.Unlock()
}

// CreateUpload implements blob.Store. It fails if the upload exists.
func (s *Store) CreateUpload(ctx context.Context, id string) error {
	p, err := s.uploadPath(id)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	u := s.acquire(id)
	defer s.release(id, u)
	// Not fsync'd, nor its directory: a session a crash of the machine
	// loses is unknown to the next Append (blob.ErrUploadNotFound).
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return fmt.Errorf("create upload %s: %w", id, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(p)
		return fmt.Errorf("create upload %s: %w", id, err)
	}
	u.h, u.off = sha256.New(), 0
	return nil
}

// openUpload opens the file of upload id for reading and writing.
func (s *Store) openUpload(id string) (*os.File, error) {
	p, err := s.uploadPath(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", blob.ErrUploadNotFound, err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", blob.ErrUploadNotFound, id)
	}
	return f, err
}

// UploadSize implements blob.Store: it returns the size of the upload's file.
func (s *Store) UploadSize(ctx context.Context, id string) (int64, error) {
	p, err := s.uploadPath(id)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", blob.ErrUploadNotFound, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s", blob.ErrUploadNotFound, id)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Append implements blob.Store. offset may be less than the size of the
// upload's file: the bytes past offset were never acknowledged (a crash or a
// failed Append left them) and are truncated away. An offset past the end of
// the file fails with blob.ErrOffset. If Append fails the file is cut back to
// offset. The new bytes are not fsync'd: CommitUpload does that before the
// blob becomes visible, and until then a crash of the machine costs the
// client its upload (blob.Store), which a file shorter than the offset the
// caller recorded (blob.ErrOffset), or holding other bytes (a digest
// mismatch at commit, hashed from the file after a restart), shows.
func (s *Store) Append(ctx context.Context, id string, offset int64, r io.Reader) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if _, err := s.uploadPath(id); err != nil {
		return 0, fmt.Errorf("%w: %w", blob.ErrUploadNotFound, err)
	}
	u := s.acquire(id)
	defer s.release(id, u)
	f, err := s.openUpload(id)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if offset < 0 || offset > fi.Size() {
		return 0, fmt.Errorf("append to %s: %w: offset %d, upload holds %d bytes", id, blob.ErrOffset, offset, fi.Size())
	}
	if offset < fi.Size() {
		if err := f.Truncate(offset); err != nil {
			return 0, err
		}
	}
	if err := u.catchUp(f, offset); err != nil {
		return 0, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}

	// Keep the state for offset so a failed append can fall back to it
	// (without it, the next operation re-hashes the file).
	var saved hash.Hash
	if c, ok := u.h.(hash.Cloner); ok {
		if clone, err := c.Clone(); err == nil {
			saved = clone
		}
	}
	n, err := s.copy(ctx, s.writer(f, offset), u.h, r)
	if err != nil {
		u.h, u.off = saved, offset
		if terr := f.Truncate(offset); terr != nil {
			u.h = nil // the file's length is unknown
		}
		return offset, fmt.Errorf("append to %s: %w", id, err)
	}
	u.off = offset + n
	return u.off, nil
}

// catchUp makes u.h the sha256 of the first offset bytes of f, reusing the
// cached state when it covers a prefix of them and re-hashing from the file
// otherwise (after a restart, or a truncation below the cached offset).
func (u *upload) catchUp(f *os.File, offset int64) error {
	if u.h == nil || u.off > offset {
		u.h, u.off = sha256.New(), 0
	}
	if u.off == offset {
		return nil
	}
	if err := hashFile(u.h, f, u.off, offset-u.off); err != nil {
		u.h = nil
		return err
	}
	u.off = offset
	return nil
}

// hashFile feeds n bytes of f from off into h.
func hashFile(h hash.Hash, f *os.File, off, n int64) error {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	got, err := io.CopyBuffer(h, io.NewSectionReader(f, off, n), *buf)
	if err == nil && got != n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// CommitUpload implements blob.Store. sha256 digests are checked against the
// hash state kept while appending; sha512 digests, and sha256 after a
// restart, hash the upload file from disk.
func (s *Store) CommitUpload(ctx context.Context, id string, d digest.Digest, size int64) (int64, error) {
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if _, err := s.uploadPath(id); err != nil {
		return 0, fmt.Errorf("%w: %w", blob.ErrUploadNotFound, err)
	}
	u := s.acquire(id)
	defer s.release(id, u)
	f, err := s.openUpload(id)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	n := fi.Size()
	if size >= 0 && n != size {
		return n, fmt.Errorf("commit %s as %s: %w: upload holds %d bytes, want %d", id, d, blob.ErrSizeMismatch, n, size)
	}
	var sum []byte
	if d.Algorithm() == digest.SHA256 {
		if err := u.catchUp(f, n); err != nil {
			return n, err
		}
		sum = u.h.Sum(nil)
	} else {
		h := d.Algorithm().Hash()
		if err := hashFile(h, f, 0, n); err != nil {
			return n, err
		}
		sum = h.Sum(nil)
	}
	if got := hex.EncodeToString(sum); got != d.Encoded() {
		return n, fmt.Errorf("commit %s: %w: content is %s:%s", id, blob.ErrDigestMismatch, d.Algorithm(), got)
	}
	// Appends do not fsync: every byte of the blob is made durable here,
	// before it becomes visible.
	if err := s.sync(f); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	markVerifiedFile(d, f.Name())
	if err := s.install(f.Name(), d); err != nil {
		return n, fmt.Errorf("commit %s: %w", id, err)
	}
	// The file's old name under uploads/ is not fsync'd away: if a crash
	// brings it back, a retried commit finds the blob installed and removes
	// the file, and a session nobody resumes is purged (PurgeUploads).
	u.h = nil
	return n, nil
}

// AbortUpload implements blob.Store.
func (s *Store) AbortUpload(ctx context.Context, id string) error {
	p, err := s.uploadPath(id)
	if err != nil {
		return fmt.Errorf("%w: %w", blob.ErrUploadNotFound, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	u := s.acquire(id)
	defer s.release(id, u)
	u.h = nil
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s", blob.ErrUploadNotFound, id)
		}
		return err
	}
	return nil
}

// Uploads implements blob.Store. It reports the modification time of each
// upload's file; Put's temporary files are not uploads and are skipped.
func (s *Store) Uploads(ctx context.Context, fn func(id string, modified time.Time) error) error {
	entries, err := os.ReadDir(s.uploads)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.Type().IsRegular() || !blob.ValidUploadID(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // committed or aborted meanwhile
		}
		if err != nil {
			return err
		}
		if err := fn(e.Name(), fi.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// notFound maps a missing file to blob.ErrNotFound.
func notFound(d digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", blob.ErrNotFound, d)
	}
	return err
}

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash.
func (s *Store) syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = s.sync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// sync fsyncs f, counting it (Syncs).
func (s *Store) sync(f *os.File) error {
	s.syncs.Add(1)
	return f.Sync()
}

// PurgeTemp removes Put's temporary files last modified before t: the ones
// a crash left behind. A Put in progress keeps touching its file, so a
// cut-off well past the upload TTL never removes live data. It returns how
// many files it removed.
func (s *Store) PurgeTemp(_ context.Context, t time.Time) (int, error) {
	entries, err := os.ReadDir(s.uploads)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), putPrefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(t) {
			continue
		}
		if err := os.Remove(filepath.Join(s.uploads, e.Name())); err == nil {
			n++
		}
	}
	return n, nil
}

// ModTime returns the modification time of blob d's file: when it was
// committed (garbage collection's grace period counts from it).
func (s *Store) ModTime(ctx context.Context, d digest.Digest) (time.Time, error) {
	if err := checkDigest(d); err != nil {
		return time.Time{}, err
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		return time.Time{}, notFound(d, err)
	}
	return fi.ModTime(), nil
}
