package fs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob"
)

func TestVerify(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("custody"), 1000)
	d := digest.FromBytes(content)
	if _, err := s.Put(ctx, d, int64(len(content)), bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, d); err != nil {
		t.Fatal(err)
	}
	// A fresh store (a restart) trusts the verified attribute.
	s1, _ := New(s.Root())
	if err := s1.Verify(ctx, d); err != nil {
		t.Fatal(err)
	}
	// A rewrite in place (same inode, new mtime/ctime) is re-hashed.
	time.Sleep(20 * time.Millisecond) // timestamps are coarse
	bad := bytes.Clone(content)
	bad[10] ^= 1
	if err := os.WriteFile(s.blobPath(d), bad, filePerm); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, d); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("Verify of a rewritten blob: %v", err)
	}
	// A fresh store (a restart) re-hashes what it has not seen.
	s2, _ := New(s.Root())
	if err := s2.Verify(ctx, d); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("Verify after restart: %v", err)
	}
	if err := s.Verify(ctx, digest.FromString("absent")); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Verify of an absent blob: %v", err)
	}
}

// TestVerifySwapped: a blob file moved to another blob's path carries its
// own digest in the verified attribute and is re-hashed, not trusted.
func TestVerifySwapped(t *testing.T) {
	ctx := context.Background()
	s, a, b := twoBlobs(t)
	da, db := digest.FromBytes(a), digest.FromBytes(b)
	if err := os.Rename(s.blobPath(da), s.blobPath(db)); err != nil {
		t.Fatal(err)
	}
	s2, _ := New(s.Root())
	if err := s2.Verify(ctx, db); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("Verify of a swapped file: %v", err)
	}
}

// BenchmarkVerifyCold measures the first read of a blob this process did
// not write (after a restart): one sequential sha256 pass over the file.
func BenchmarkVerifyCold(b *testing.B) {
	ctx := context.Background()
	s, err := New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	content := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 64<<20/8)
	d := digest.FromBytes(content)
	if _, err := s.Put(ctx, d, int64(len(content)), bytes.NewReader(content)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		b.StopTimer()
		clear(s.verified)
		_ = os.WriteFile(s.blobPath(d), content, filePerm) // drop the attribute
		b.StartTimer()
		if err := s.Verify(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpenVerifiedReadsWhatItChecked: the reader OpenVerified returns is
// the file it verified. A file moved into the blob's path after the call
// is not what the reader reads, and one moved there before it is
// re-hashed and refused.
func TestOpenVerifiedReadsWhatItChecked(t *testing.T) {
	ctx := context.Background()
	s, a, b := twoBlobs(t)
	da, db := digest.FromBytes(a), digest.FromBytes(b)
	f, n, err := s.OpenVerified(ctx, db)
	if err != nil || n != int64(len(b)) {
		t.Fatalf("OpenVerified = %d, %v", n, err)
	}
	// Another blob's file renamed over b's path after the check.
	if err := os.Rename(s.blobPath(da), s.blobPath(db)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("reader of the verified file read %q, %v; want %q", got, err, b)
	}
	// Now the swapped file is at b's path: refused, also by a fresh store.
	for _, st := range []*Store{s, mustNew(t, s.Root())} {
		if f, _, err := st.OpenVerified(ctx, db); !errors.Is(err, blob.ErrDigestMismatch) {
			if f != nil {
				f.Close()
			}
			t.Fatalf("OpenVerified of a swapped file: %v", err)
		}
	}
	if _, _, err := s.OpenVerified(ctx, da); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("OpenVerified of a missing blob: %v", err)
	}
}

func mustNew(t *testing.T, root string) *Store {
	t.Helper()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// twoBlobs returns a fresh store holding two small blobs, and their
// contents.
func twoBlobs(t *testing.T) (s *Store, a, b []byte) {
	t.Helper()
	s = mustNew(t, t.TempDir())
	a, b = []byte("content a"), []byte("content b")
	for _, c := range [][]byte{a, b} {
		if _, err := s.Put(context.Background(), digest.FromBytes(c), int64(len(c)), bytes.NewReader(c)); err != nil {
			t.Fatal(err)
		}
	}
	return s, a, b
}
