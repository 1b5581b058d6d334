package fs

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob"
)

// fileID identifies one version of a blob file: any rewrite, truncation or
// replacement changes at least one field.
type fileID struct {
	ino   uint64
	dev   uint64
	size  int64
	mtime time.Time
	ctime int64
}

func identify(fi os.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino, id.dev = uint64(st.Ino), uint64(st.Dev)
		id.ctime = statCtime(st)
	}
	return id
}

// Verify re-hashes blob d unless this version of its file (inode, size,
// mtime, ctime) was verified before by this process, and returns an error
// wrapping blob.ErrDigestMismatch if the stored bytes do not match d. The
// registry calls it before serving a blob, so damaged bytes are never sent
// while the response itself still goes out with sendfile(2). The cache is in
// memory, backed by an extended attribute on the file (user.custody.verified:
// digest, size, mtime) written when the content was hashed on its way in or
// by a later Verify, so a restart does not force a re-hash either. Any
// rewrite or truncation of the file changes its mtime or size, and a file
// moved to another blob's path names the wrong digest, so each forces a
// re-hash. Corruption that leaves the file's metadata alone (media bit rot)
// is found by scrub; without xattr support, also by the first read after a
// restart.
func (s *Store) Verify(ctx context.Context, d digest.Digest) error {
	f, _, err := s.OpenVerified(ctx, d)
	if err != nil {
		return err
	}
	return f.Close()
}

// OpenVerified opens blob d and verifies the file it opened, as Verify
// does: the returned file is the one whose content was checked, so a file
// renamed into d's path between a Verify and an Open cannot be served
// unchecked. It implements registry.Verifier.
func (s *Store) OpenVerified(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	f, fi, err := s.openFile(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	if err := s.verifyFile(f, fi, d); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// verifyFile verifies the open file f (whose stat is fi) as blob d, from
// the cache or the verified attribute when this version of the file is
// known, else by hashing it. It leaves f's offset at 0.
func (s *Store) verifyFile(f *os.File, fi os.FileInfo, d digest.Digest) error {
	id := identify(fi)
	s.mu.Lock()
	ok := s.verified[d] == id
	s.mu.Unlock()
	if ok {
		return nil
	}
	if v, ok := getAttr(f.Name()); ok && v == attrValue(d, fi) {
		s.remember(d, id)
		return nil
	}
	h := d.Algorithm().Hash()
	if err := hashFile(h, f, 0, fi.Size()); err != nil {
		return fmt.Errorf("verify %s: %w", d, err)
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		s.mu.Lock()
		delete(s.verified, d)
		s.mu.Unlock()
		return fmt.Errorf("verify %s: %w: stored content is %s", d, blob.ErrDigestMismatch, got)
	}
	s.remember(d, id)
	setAttr(f.Name(), attrValue(d, fi))
	return nil
}

// remember records id as the verified version of d's file.
func (s *Store) remember(d digest.Digest, id fileID) {
	s.mu.Lock()
	if len(s.verified) >= maxVerified {
		clear(s.verified)
	}
	s.verified[d] = id
	s.mu.Unlock()
}

// attrValue is the verified-attribute value for d stored in a file with
// fi's size and modification time. Naming the digest makes a file moved
// or swapped to another blob's path fail the check; any write changes the
// modification time, any truncation the size.
func attrValue(d digest.Digest, fi os.FileInfo) string {
	return fmt.Sprintf("%s %d %d", d, fi.Size(), fi.ModTime().UnixNano())
}

// markVerifiedFile records, in the file's extended attribute, that the
// file at p holds content verified as d. It is called on the temporary
// file before it is renamed into place.
func markVerifiedFile(d digest.Digest, p string) {
	if fi, err := os.Stat(p); err == nil {
		setAttr(p, attrValue(d, fi))
	}
}

// markVerified records the file at p, whose content was just hashed to d
// on its way in, as verified: the first read does not re-hash it.
func (s *Store) markVerified(d digest.Digest, p string) {
	fi, err := os.Stat(p)
	if err != nil {
		return
	}
	s.remember(d, identify(fi))
}

// maxVerified bounds the verification cache (about 100 bytes an entry).
const maxVerified = 1 << 20
