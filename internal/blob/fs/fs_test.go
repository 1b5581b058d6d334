package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/blob/blobtest"
	"github.com/opencontainers/go-digest"
)

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t) })
}

// TestConformancePlainCopy runs the suite with the unpipelined copy, so both
// copy strategies the benchmark compares are known to be correct.
func TestConformancePlainCopy(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s := newStore(t)
		s.copy = plainCopy
		return s
	})
}

// plainCopy is the straightforward copyFunc: hash and write in turn.
func plainCopy(_ context.Context, w io.Writer, h hash.Hash, r io.Reader) (int64, error) {
	return io.Copy(io.MultiWriter(w, h), r)
}

// plainCopyBig is plainCopy with the pipeline's 1 MiB buffer size.
func plainCopyBig(_ context.Context, w io.Writer, h hash.Hash, r io.Reader) (int64, error) {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	return io.CopyBuffer(io.MultiWriter(w, h), r, *buf)
}

// listFiles returns the paths of all regular files under dir, relative to it.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestLayout(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	data := []byte("layout")
	d := digest.SHA256.FromBytes(data)
	if _, err := s.Put(ctx, d, -1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join("blobs", "sha256", d.Encoded()[:2], d.Encoded())
	if got := listFiles(t, s.Root()); len(got) != 1 || got[0] != want {
		t.Fatalf("files after Put = %v, want [%s]", got, want)
	}
	for _, dir := range []string{"blobs", "uploads", "blobs/sha256", "blobs/sha512", filepath.Dir(want)} {
		fi, err := os.Stat(filepath.Join(s.Root(), dir))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&^0o700 != 0 {
			t.Errorf("%s has mode %v, want at most 0700", dir, perm)
		}
	}
	rc, _, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(*os.File); !ok {
		t.Errorf("Open returned %T, want *os.File for sendfile", rc)
	}
}

func TestWalkSkipsStrayFiles(t *testing.T) {
	s := newStore(t)
	data := []byte("real")
	d := digest.SHA256.FromBytes(data)
	if _, err := s.Put(t.Context(), d, -1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	enc := d.Encoded()
	other := digest.SHA256.FromString("other").Encoded()
	strays := []string{
		filepath.Join("blobs", "sha256", enc[:2], ".put-0123"),
		filepath.Join("blobs", "sha256", enc[:2], "junk"),
		filepath.Join("blobs", "sha256", enc[:2], strings.ToUpper(enc)),
		filepath.Join("blobs", "sha256", enc[:2], enc+".tmp"),
		filepath.Join("blobs", "sha256", other[:2]+"x", other),                     // bad fan-out dir
		filepath.Join("blobs", "sha256", "zz", other),                              // wrong fan-out dir
		filepath.Join("blobs", "sha384", "ab", "ab"+strings.Repeat("0", 94)),       // unsupported
		filepath.Join("blobs", "sha512", enc[:2], enc),                             // sha256 length
		filepath.Join("blobs", "stray"),                                            // file at alg level
		filepath.Join("blobs", "sha256", "stray"),                                  // file at fan-out level
		filepath.Join("blobs", "sha256", enc[:2], enc[:2]+strings.Repeat("0", 60)), // too short
	}
	for _, p := range strays {
		p = filepath.Join(s.Root(), p)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("stray"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	var got []digest.Digest
	err := s.Walk(t.Context(), func(d digest.Digest, size int64) error {
		got = append(got, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != d {
		t.Fatalf("Walk = %v, want [%s]", got, d)
	}
}

func TestHostileUploadIDs(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// Files a path escape would hit.
	victim := filepath.Join(parent, "x")
	if err := os.WriteFile(victim, []byte("victim"), 0o640); err != nil {
		t.Fatal(err)
	}
	put := filepath.Join(s.uploads, ".put-0000")
	if err := os.WriteFile(put, []byte("put"), 0o640); err != nil {
		t.Fatal(err)
	}

	for _, id := range []string{
		"../x", "../../x", "a/b", "", "a\x00b", "\x00", ".", "..", "/x", "a\\b",
		" x", "x ", "é", ".put-0000", strings.Repeat("a", maxIDLen+1), "uploads/../x",
	} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			if err := s.CreateUpload(ctx, id); !errors.Is(err, ErrInvalidID) {
				t.Errorf("CreateUpload = %v, want ErrInvalidID", err)
			}
			if _, err := s.UploadSize(ctx, id); !errors.Is(err, blob.ErrUploadNotFound) || !errors.Is(err, ErrInvalidID) {
				t.Errorf("UploadSize = %v, want ErrUploadNotFound and ErrInvalidID", err)
			}
			if _, err := s.Append(ctx, id, 0, strings.NewReader("pwned")); !errors.Is(err, blob.ErrUploadNotFound) {
				t.Errorf("Append = %v, want ErrUploadNotFound", err)
			}
			if _, err := s.CommitUpload(ctx, id, digest.SHA256.FromString("victim"), -1); !errors.Is(err, blob.ErrUploadNotFound) {
				t.Errorf("CommitUpload = %v, want ErrUploadNotFound", err)
			}
			if err := s.AbortUpload(ctx, id); !errors.Is(err, blob.ErrUploadNotFound) {
				t.Errorf("AbortUpload = %v, want ErrUploadNotFound", err)
			}
		})
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "victim" {
		t.Errorf("victim file: %q, %v", b, err)
	}
	if b, err := os.ReadFile(put); err != nil || string(b) != "put" {
		t.Errorf("Put temp file: %q, %v", b, err)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("parent of root holds %d entries, want root and x", len(entries))
	}
	if got := listFiles(t, root); len(got) != 1 || got[0] != filepath.Join("uploads", ".put-0000") {
		t.Errorf("files under root = %v", got)
	}

	// The longest valid ID works.
	long := strings.Repeat("Az09_-", maxIDLen/6+1)[:maxIDLen]
	if err := s.CreateUpload(ctx, long); err != nil {
		t.Fatalf("CreateUpload of %d-byte ID: %v", len(long), err)
	}
	if err := s.AbortUpload(ctx, long); err != nil {
		t.Fatal(err)
	}
}

func TestCreateUploadTwice(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if err := s.CreateUpload(ctx, "twice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "twice", 0, strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUpload(ctx, "twice"); err == nil {
		t.Fatal("second CreateUpload succeeded")
	}
	if n, err := s.UploadSize(ctx, "twice"); err != nil || n != 4 {
		t.Fatalf("UploadSize = %d, %v; want 4", n, err)
	}
}

// blockingReader returns head, then blocks until release is closed, then
// returns tail.
type blockingReader struct {
	head, tail []byte
	blocked    chan struct{}
	release    chan struct{}
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	if r.blocked != nil {
		close(r.blocked)
		r.blocked = nil
		<-r.release
	}
	if len(r.tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.tail)
	r.tail = r.tail[n:]
	return n, nil
}

func TestPutInvisibleUntilVerified(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	data := blobtest.Content(1, 5<<20)
	d := digest.SHA256.FromBytes(data)
	cut := 3<<20 + 5
	blocked, release := make(chan struct{}), make(chan struct{})
	r := &blockingReader{head: data[:cut], tail: data[cut:], blocked: blocked, release: release}
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, d, int64(len(data)), r)
		done <- err
	}()
	<-blocked

	// Wait until the first megabytes reached the temporary file, so the
	// checks below look at a Put that is really under way.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var size int64
		for _, p := range listFiles(t, s.uploads) {
			if fi, err := os.Stat(filepath.Join(s.uploads, p)); err == nil && strings.HasPrefix(p, putPrefix) {
				size = fi.Size()
			}
		}
		if size >= 3<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("temporary file holds %d bytes, want 3 MiB", size)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := listFiles(t, s.blobs); len(got) != 0 {
		t.Errorf("files under blobs/ during Put: %v", got)
	}
	if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat during Put = %v, want ErrNotFound", err)
	}
	walked := 0
	if err := s.Walk(ctx, func(digest.Digest, int64) error { walked++; return nil }); err != nil || walked != 0 {
		t.Errorf("Walk during Put: %d blobs, %v", walked, err)
	}
	uploads := 0
	if err := s.Uploads(ctx, func(string, time.Time) error { uploads++; return nil }); err != nil || uploads != 0 {
		t.Errorf("Uploads during Put: %d, %v; want none", uploads, err)
	}

	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Put: %v", err)
	}
	if n, err := s.Stat(ctx, d); err != nil || n != int64(len(data)) {
		t.Fatalf("Stat after Put = %d, %v", n, err)
	}
	if got := listFiles(t, s.uploads); len(got) != 0 {
		t.Fatalf("uploads/ after Put: %v", got)
	}
}

// TestFailedPutLeavesNothing checks that temporary files are removed.
func TestFailedPutLeavesNothing(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	data := blobtest.Content(2, 2<<20)
	_, err := s.Put(ctx, digest.SHA256.FromString("other"), -1, bytes.NewReader(data))
	if !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatal(err)
	}
	_, err = s.Put(ctx, digest.SHA256.FromBytes(data), 10, bytes.NewReader(data))
	if !errors.Is(err, blob.ErrSizeMismatch) {
		t.Fatal(err)
	}
	_, err = s.Put(ctx, digest.SHA256.FromBytes(data), -1, iotest.TimeoutReader(bytes.NewReader(data)))
	if !errors.Is(err, iotest.ErrTimeout) {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cctx, digest.SHA256.FromBytes(data), -1, bytes.NewReader(data)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with cancelled context = %v", err)
	}
	if got := listFiles(t, s.Root()); len(got) != 0 {
		t.Fatalf("files after failed Puts: %v", got)
	}
}

// reopen simulates a restart: a new Store on the same root, without the
// in-memory hash states of the old one.
func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	s2, err := New(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	return s2
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func TestResumeAfterCrash(t *testing.T) {
	ctx := context.Background()
	a, b := blobtest.Content(10, 2<<20+3), blobtest.Content(11, 1<<20+9)

	setup := func(t *testing.T) (*Store, string) {
		s := newStore(t)
		if err := s.CreateUpload(ctx, "u"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, "u", 0, bytes.NewReader(a)); err != nil {
			t.Fatal(err)
		}
		return s, filepath.Join(s.uploads, "u")
	}
	commit := func(t *testing.T, s *Store, want []byte) {
		t.Helper()
		d := digest.SHA256.FromBytes(want)
		if _, err := s.CommitUpload(ctx, "u", d, int64(len(want))); err != nil {
			t.Fatalf("CommitUpload: %v", err)
		}
		rc, _, err := s.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got, _ := io.ReadAll(rc)
		if !bytes.Equal(got, want) {
			t.Fatal("committed content differs")
		}
	}
	appendFile := func(t *testing.T, p string, b []byte) {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("unacknowledged tail", func(t *testing.T) {
		s, p := setup(t)
		appendFile(t, p, []byte("half-written, never acknowledged"))
		s = reopen(t, s)
		if n, _ := s.UploadSize(ctx, "u"); n != int64(len(a))+32 {
			t.Fatalf("UploadSize = %d, want %d", n, len(a)+32)
		}
		if n, err := s.Append(ctx, "u", int64(len(a)), bytes.NewReader(b)); err != nil || n != int64(len(a)+len(b)) {
			t.Fatalf("Append = %d, %v", n, err)
		}
		commit(t, s, cat(a, b))
	})
	t.Run("sha512 after restart", func(t *testing.T) {
		s, _ := setup(t)
		s = reopen(t, s)
		if _, err := s.Append(ctx, "u", int64(len(a)), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		d := digest.SHA512.FromBytes(cat(a, b))
		if _, err := s.CommitUpload(ctx, "u", d, -1); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("commit right after restart", func(t *testing.T) {
		s, _ := setup(t)
		commit(t, reopen(t, s), a)
	})
	t.Run("corrupted prefix", func(t *testing.T) {
		s, p := setup(t)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{^a[1000]}, 1000); err != nil {
			t.Fatal(err)
		}
		f.Close()
		s = reopen(t, s)
		if _, err := s.Append(ctx, "u", int64(len(a)), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		// The re-hash from disk sees the corruption.
		_, err = s.CommitUpload(ctx, "u", digest.SHA256.FromBytes(cat(a, b)), -1)
		if !errors.Is(err, blob.ErrDigestMismatch) {
			t.Fatalf("CommitUpload of corrupted upload = %v, want ErrDigestMismatch", err)
		}
		bad := cat(a, b)
		bad[1000] = ^bad[1000]
		commit(t, s, bad)
	})
	t.Run("truncated below acknowledged offset", func(t *testing.T) {
		s, p := setup(t)
		half := int64(len(a) / 2)
		if err := os.Truncate(p, half); err != nil {
			t.Fatal(err)
		}
		s = reopen(t, s)
		if _, err := s.Append(ctx, "u", int64(len(a)), bytes.NewReader(b)); !errors.Is(err, blob.ErrOffset) {
			t.Fatalf("Append past the truncated end = %v, want ErrOffset", err)
		}
		if n, err := s.UploadSize(ctx, "u"); err != nil || n != half {
			t.Fatalf("UploadSize = %d, %v; want %d", n, err, half)
		}
		if _, err := s.Append(ctx, "u", half, bytes.NewReader(a[half:])); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, "u", int64(len(a)), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		commit(t, s, cat(a, b))
	})
	t.Run("truncated under a live store", func(t *testing.T) {
		// The cached hash state covers more than the file now holds.
		s, p := setup(t)
		if err := os.Truncate(p, 10); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, "u", 10, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		commit(t, s, cat(a[:10], b))
	})
	t.Run("state left behind by a failed append", func(t *testing.T) {
		s, _ := setup(t)
		_, err := s.Append(ctx, "u", int64(len(a)), iotest.TimeoutReader(bytes.NewReader(b)))
		if !errors.Is(err, iotest.ErrTimeout) {
			t.Fatalf("Append = %v", err)
		}
		if n, _ := s.UploadSize(ctx, "u"); n != int64(len(a)) {
			t.Fatalf("UploadSize after failed Append = %d, want %d", n, len(a))
		}
		commit(t, s, a)
	})
}

// TestHashStateReused checks that chunked sha256 uploads are not re-hashed:
// with the file's bytes changed behind the store's back, the commit still
// matches what was appended, proving the digest came from memory.
func TestHashStateReused(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	a, b := blobtest.Content(20, 1<<20), blobtest.Content(21, 1<<20)
	if err := s.CreateUpload(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "u", 0, bytes.NewReader(a)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "u", int64(len(a)), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.uploads, "u")
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{^a[0]}, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := s.CommitUpload(ctx, "u", digest.SHA256.FromBytes(cat(a, b)), -1); err != nil {
		t.Fatalf("CommitUpload: %v (hash state not reused?)", err)
	}
	s.mu.Lock()
	n := len(s.ups)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d upload states left after commit", n)
	}
}

func TestPipelinedCopy(t *testing.T) {
	for _, n := range []int{0, 1, bufSize - 1, bufSize, bufSize + 1, 5*bufSize + 3} {
		data := blobtest.Content(uint64(n), n)
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(data),
			"half":     iotest.HalfReader(bytes.NewReader(data)),
			"data-eof": iotest.DataErrReader(bytes.NewReader(data)),
		} {
			t.Run(fmt.Sprintf("%d/%s", n, name), func(t *testing.T) {
				var out bytes.Buffer
				h := sha256.New()
				got, err := pipelinedCopy(t.Context(), &out, h, r)
				if err != nil || got != int64(n) {
					t.Fatalf("pipelinedCopy = %d, %v; want %d", got, err, n)
				}
				if !bytes.Equal(out.Bytes(), data) {
					t.Fatal("copied bytes differ")
				}
				if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
					t.Fatal("hash differs")
				}
			})
		}
	}
	t.Run("write error", func(t *testing.T) {
		werr := errors.New("disk full")
		_, err := pipelinedCopy(t.Context(), errWriter{werr}, sha256.New(), bytes.NewReader(make([]byte, 3*bufSize)))
		if !errors.Is(err, werr) {
			t.Fatalf("pipelinedCopy = %v, want %v", err, werr)
		}
	})
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// BenchmarkPut compares the pipelined copy, with and without early
// writeback, with plain io.Copy through a MultiWriter (32 KiB and 1 MiB
// buffers). Each Put includes the fsync and rename:
//
//	go test -run '^$' -bench Put -benchtime 5x ./internal/blob/fs
func BenchmarkPut(b *testing.B) {
	for _, size := range []int64{64 << 20, 512 << 20} {
		h := sha256.New()
		if _, err := io.Copy(h, blobtest.NewGenReader(1, size)); err != nil {
			b.Fatal(err)
		}
		d := digest.NewDigest(digest.SHA256, h)
		for _, v := range []struct {
			name      string
			copy      copyFunc
			writeback bool
		}{
			{"pipelined+writeback", pipelinedCopy, true}, // the default
			{"pipelined", pipelinedCopy, false},
			{"plain", plainCopy, false},
			{"plain-1MiB", plainCopyBig, false},
		} {
			b.Run(fmt.Sprintf("%s/%dMiB", v.name, size>>20), func(b *testing.B) {
				s := newStore(b)
				s.copy, s.writeback = v.copy, v.writeback
				ctx := context.Background()
				b.SetBytes(size)
				for b.Loop() {
					if _, err := s.Put(ctx, d, size, blobtest.NewGenReader(1, size)); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if err := s.Delete(ctx, d); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}

// memSink is a writer that copies into a fixed buffer, like a write into
// the page cache, without touching the disk.
type memSink struct{ buf []byte }

func (m *memSink) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		p = p[copy(m.buf, p):]
	}
	return n, nil
}

// BenchmarkCopy isolates the CPU side of Put: the copy strategies without
// the disk (and without its noise).
//
//	go test -run '^$' -bench Copy ./internal/blob/fs
func BenchmarkCopy(b *testing.B) {
	const size = 64 << 20
	for _, v := range []struct {
		name string
		copy copyFunc
	}{
		{"pipelined", pipelinedCopy},
		{"plain", plainCopy},
		{"plain-1MiB", plainCopyBig},
	} {
		b.Run(v.name, func(b *testing.B) {
			sink := &memSink{buf: make([]byte, bufSize)}
			b.SetBytes(size)
			for b.Loop() {
				if _, err := v.copy(context.Background(), sink, sha256.New(), blobtest.NewGenReader(1, size)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPurgeTemp checks that only old temporary files of Put are removed.
func TestPurgeTemp(t *testing.T) {
	s := newStore(t)
	old := filepath.Join(s.uploads, putPrefix+"0000000000000001")
	young := filepath.Join(s.uploads, putPrefix+"0000000000000002")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, []byte("partial"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateUpload(t.Context(), "session1"); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	n, err := s.PurgeTemp(context.Background(), time.Now().Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PurgeTemp = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old temp file still there: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young temp file removed: %v", err)
	}
	if _, err := s.UploadSize(t.Context(), "session1"); err != nil {
		t.Errorf("upload session touched: %v", err)
	}
}
