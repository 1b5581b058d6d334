package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/blob/blobtest"
	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"
)

// testOptions returns Options for the server CUSTODY_TEST_S3 names
// (http://ACCESS:SECRET@HOST:PORT/BUCKET; scripts/minio.sh starts one), with
// a fresh prefix. Without it the test is skipped, or fails under CI, where
// the server must be there.
func testOptions(tb testing.TB) Options {
	tb.Helper()
	raw := os.Getenv("CUSTODY_TEST_S3")
	if raw == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal("CUSTODY_TEST_S3 is not set under CI: scripts/minio.sh must start MinIO " +
				"(scripts/test.sh runs it)")
		}
		tb.Skip("CUSTODY_TEST_S3 is not set; run `eval \"$(bash scripts/minio.sh start)\"` " +
			"to test the S3 backend")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User == nil {
		tb.Fatalf("CUSTODY_TEST_S3 must be http(s)://ACCESS:SECRET@HOST:PORT/BUCKET (%v)", err)
	}
	pass, _ := u.User.Password()
	var b [8]byte
	rand.Read(b[:])
	return Options{
		Endpoint:  u.Host,
		Secure:    u.Scheme == "https",
		AccessKey: u.User.Username(),
		SecretKey: pass,
		Bucket:    strings.Trim(u.Path, "/"),
		Prefix:    "test-" + hex.EncodeToString(b[:]) + "/",
	}
}

// newStore returns a Store under a fresh prefix, emptied when tb ends.
func newStore(tb testing.TB) *Store {
	tb.Helper()
	return newStoreWith(tb, testOptions(tb))
}

// newStoreWith returns a Store with opts, its prefix emptied when tb ends.
func newStoreWith(tb testing.TB, opts Options) *Store {
	tb.Helper()
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// tb's context is cancelled before cleanups run.
		ctx := context.Background()
		objs := s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true})
		for err := range s.c.RemoveObjects(ctx, s.bucket, objs, minio.RemoveObjectsOptions{}) {
			tb.Errorf("cleaning up %s: %v", s.prefix, err.Err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t) })
}

// TestConformancePlainBucket runs the suite on a bucket without versioning
// or Object Lock, where deletions take the unversioned path.
func TestConformancePlainBucket(t *testing.T) {
	bucket := plainBucket(t)
	blobtest.Run(t, func(t *testing.T) blob.Store {
		opts := testOptions(t)
		opts.Bucket = bucket
		return newStoreWith(t, opts)
	})
}

// keys returns the keys under the store's prefix, without it.
func keys(t *testing.T, s *Store) []string {
	t.Helper()
	var ks []string
	for obj := range s.c.ListObjects(t.Context(), s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		ks = append(ks, strings.TrimPrefix(obj.Key, s.prefix))
	}
	return ks
}

func TestLayout(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	data := []byte("layout")
	d := digest.SHA256.FromBytes(data)
	if _, err := s.Put(ctx, d, -1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUpload(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 3} {
		if _, err := s.Append(ctx, "u", off, bytes.NewReader([]byte("abc"))); err != nil {
			t.Fatal(err)
		}
	}
	want := fmt.Sprint([]string{
		"blobs/sha256/" + d.Encoded(),
		"uploads/u/0000000000000000",
		"uploads/u/0000000000000003",
		"uploads/u/session",
	})
	if got := fmt.Sprint(keys(t, s)); got != want {
		t.Fatalf("keys = %s, want %s", got, want)
	}
}

func TestHostileUploadIDs(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for _, id := range []string{
		"../x", "a/b", "", "a\x00b", ".", "..", "/x", " x", "é", ".put-0000",
		strings.Repeat("a", maxIDLen+1), "session/../x",
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
	if got := keys(t, s); len(got) != 0 {
		t.Fatalf("keys = %v, want none", got)
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

// TestTruncateKeepsParts checks that resuming inside a part cuts it
// logically: the part object stays as written (WORM), later ones go.
func TestTruncateKeepsParts(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if err := s.CreateUpload(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []struct {
		off  int64
		data string
	}{{0, "hello "}, {6, "world"}, {11, "!!!"}, {3, "p!"}} {
		if _, err := s.Append(ctx, "u", chunk.off, strings.NewReader(chunk.data)); err != nil {
			t.Fatal(err)
		}
	}
	want := fmt.Sprint([]string{"uploads/u/0000000000000000", "uploads/u/0000000000000003", "uploads/u/session"})
	if got := fmt.Sprint(keys(t, s)); got != want {
		t.Fatalf("keys = %s, want %s", got, want)
	}
	if n, err := s.UploadSize(ctx, "u"); err != nil || n != 5 {
		t.Fatalf("UploadSize = %d, %v; want 5", n, err)
	}
	d := digest.SHA256.FromString("help!")
	if _, err := s.CommitUpload(ctx, "u", d, 5); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "help!" {
		t.Fatalf("content %q", b)
	}
	if got := keys(t, s); len(got) != 1 {
		t.Fatalf("keys after commit = %v, want the blob only", got)
	}
}

func TestPurgeTemp(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	tmp, err := s.tempKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.PutObject(ctx, s.bucket, tmp, strings.NewReader("partial"), 7, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUpload(ctx, "session1"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeTemp(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("PurgeTemp(an hour ago) = %d, %v; want 0", n, err)
	}
	if n, err := s.PurgeTemp(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("PurgeTemp(now) = %d, %v; want 1", n, err)
	}
	if _, err := s.UploadSize(ctx, "session1"); err != nil {
		t.Errorf("upload session touched: %v", err)
	}
}

func TestLayoutGap(t *testing.T) {
	if _, _, err := layout([]part{{start: 0, size: 3}, {start: 5, size: 1}}); err == nil {
		t.Fatal("layout with a gap succeeded")
	}
	used, size, err := layout([]part{{start: 0, size: 10}, {start: 4, size: 2}, {start: 6, size: 0}})
	if err != nil || size != 6 || fmt.Sprint(used) != "[4 2 0]" {
		t.Fatalf("layout = %v, %d, %v", used, size, err)
	}
}

// TestObjectLockBucket checks that the test bucket is a WORM bucket, as
// scripts/minio.sh creates it, so the suite shows that the store never
// needs to rewrite an object.
func TestObjectLockBucket(t *testing.T) {
	s := newStore(t)
	status, _, _, _, err := s.c.GetObjectLockConfig(t.Context(), s.bucket)
	if err != nil || status != "Enabled" {
		t.Fatalf("object lock of bucket %s: %q, %v; want Enabled", s.bucket, status, err)
	}
}

// requestLog is an http.RoundTripper recording each request's method, key
// and whether it was a server-side copy.
type requestLog struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) RoundTrip(r *http.Request) (*http.Response, error) {
	e := r.Method + " " + r.URL.Path
	if r.Header.Get("X-Amz-Copy-Source") != "" {
		e += " (copy)"
	}
	l.mu.Lock()
	l.reqs = append(l.reqs, e)
	l.mu.Unlock()
	return l.base.RoundTrip(r)
}

func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.reqs
	l.reqs = nil
	return r
}

// TestSmallPutWritesFinalKey checks that content up to directMax bytes
// (manifests, configs) is verified in memory and written to its final key
// in one PUT: no temporary object, no server-side copy, no delete. A
// wrong digest still leaves nothing behind.
func TestSmallPutWritesFinalKey(t *testing.T) {
	opts := testOptions(t)
	tr, err := minio.DefaultTransport(opts.Secure)
	if err != nil {
		t.Fatal(err)
	}
	rl := &requestLog{base: tr}
	opts.Transport = rl
	s := newStoreWith(t, opts)
	ctx := t.Context()
	for _, size := range []int64{-1, 0} {
		data := []byte(fmt.Sprintf(`{"schemaVersion":2,"size":%d}`, size))
		d := digest.SHA256.FromBytes(data)
		if size == 0 {
			size = int64(len(data))
		}
		rl.take()
		if _, err := s.Put(ctx, d, size, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		reqs := rl.take()
		var puts int
		for _, r := range reqs {
			if strings.Contains(r, "/uploads/") || strings.Contains(r, "(copy)") || strings.HasPrefix(r, "DELETE") {
				t.Errorf("small put (size %d) sent %q; all: %q", size, r, reqs)
			}
			if strings.HasPrefix(r, "PUT") {
				puts++
			}
		}
		if puts != 1 {
			t.Errorf("small put (size %d) sent %d PUTs, want 1: %q", size, puts, reqs)
		}
		if err := s.Verify(ctx, d); err != nil {
			t.Fatal(err)
		}
		if reqs := rl.take(); len(reqs) != 1 {
			t.Errorf("Verify after a small put sent %q, want one HEAD (the content was hashed on its way in)", reqs)
		}
	}
	before := fmt.Sprint(keys(t, s))
	data := []byte("small but wrong")
	wrong := digest.SHA256.FromString("something else")
	if _, err := s.Put(ctx, wrong, -1, bytes.NewReader(data)); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("Put with a wrong digest: %v, want ErrDigestMismatch", err)
	}
	if _, err := s.Put(ctx, digest.SHA256.FromBytes(data), int64(len(data))+1, bytes.NewReader(data)); !errors.Is(err, blob.ErrSizeMismatch) {
		t.Fatalf("Put with a wrong size: %v, want ErrSizeMismatch", err)
	}
	if after := fmt.Sprint(keys(t, s)); after != before {
		t.Fatalf("refused puts changed the store: %s, was %s", after, before)
	}
}

// TestLargePutWritesFinalKey checks that content of known size above
// directMax goes straight to its final key (one PUT, or a multipart upload
// for more than a part), with no temporary object and no server-side copy,
// and that a wrong digest or length fails before S3 creates the object:
// the store is left as it was, with no incomplete multipart upload.
func TestLargePutWritesFinalKey(t *testing.T) {
	opts := testOptions(t)
	tr, err := minio.DefaultTransport(opts.Secure)
	if err != nil {
		t.Fatal(err)
	}
	rl := &requestLog{base: tr}
	opts.Transport = rl
	opts.PartSize = minPartSize
	s := newStoreWith(t, opts)
	ctx := t.Context()
	for _, size := range []int{directMax + 1, 2*minPartSize + 17} {
		data := make([]byte, size)
		rand.Read(data)
		d := digest.SHA256.FromBytes(data)
		before := fmt.Sprint(keys(t, s))
		rl.take()
		wrongData := bytes.Clone(data)
		wrongData[size-1] ^= 1
		for _, c := range []struct {
			name    string
			content []byte
			size    int64
			want    error
		}{
			{"last byte flipped", wrongData, int64(size), blob.ErrDigestMismatch},
			{"one byte short", data[:size-1], int64(size), blob.ErrSizeMismatch},
			{"one byte more", append(bytes.Clone(data), 0), int64(size), blob.ErrSizeMismatch},
		} {
			if _, err := s.Put(ctx, d, c.size, bytes.NewReader(c.content)); !errors.Is(err, c.want) {
				t.Fatalf("%d bytes, %s: Put = %v, want %v", size, c.name, err, c.want)
			}
			if after := fmt.Sprint(keys(t, s)); after != before {
				t.Fatalf("%d bytes, %s: refused put changed the store: %s, was %s", size, c.name, after, before)
			}
			for u := range s.c.ListIncompleteUploads(ctx, s.bucket, s.prefix, true) {
				if u.Err != nil {
					t.Fatal(u.Err)
				}
				t.Fatalf("%d bytes, %s: incomplete multipart upload left: %s", size, c.name, u.Key)
			}
		}
		rl.take()
		if _, err := s.Put(ctx, d, int64(size), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		for _, r := range rl.take() {
			if strings.Contains(r, "/uploads/") || strings.Contains(r, "(copy)") || strings.HasPrefix(r, "DELETE") {
				t.Errorf("%d-byte put sent %q", size, r)
			}
		}
		if err := s.Verify(ctx, d); err != nil {
			t.Fatal(err)
		}
		// A second put of the same content stores nothing new.
		if _, err := s.Put(ctx, d, int64(size), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		for _, r := range rl.take() {
			if strings.HasPrefix(r, "PUT") && strings.Contains(r, "/blobs/") {
				t.Errorf("second %d-byte put rewrote the blob: %q", size, r)
			}
		}
	}
}

// TestOpenSeek checks an opened blob against seeks: a Seek sends no
// request, reading on where the response stands sends none either, a read
// after a seek elsewhere starts at the new offset (one ranged GET),
// SeekCurrent counts what was read, and a Read fills its buffer. Every GET after the first reads the
// version the first one did: a blob replaced meanwhile fails the read
// instead of mixing two versions' bytes (on a versioned and a plain
// bucket).
func TestOpenSeek(t *testing.T) {
	for _, bucket := range []string{"", plainBucket(t)} {
		opts := testOptions(t)
		if bucket != "" {
			opts.Bucket = bucket
		}
		ct := &countingTransport{}
		opts.Transport = ct
		s := newStoreWith(t, opts)
		ctx := t.Context()
		data := make([]byte, 3<<20+123)
		rand.Read(data)
		d := digest.SHA256.FromBytes(data)
		if _, err := s.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		ct.counts()
		f, size, err := s.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if size != int64(len(data)) {
			t.Fatalf("size %d, want %d", size, len(data))
		}
		// What http.ServeContent does first.
		if end, err := f.Seek(0, io.SeekEnd); err != nil || end != size {
			t.Fatalf("Seek(0, end) = %d, %v", end, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(f, buf); err != nil || !bytes.Equal(buf, data[:1000]) {
			t.Fatalf("first read: %v", err)
		}
		if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != 1000 {
			t.Fatalf("Seek(0, current) = %d, %v; want 1000", pos, err)
		}
		if _, err := io.ReadFull(f, buf); err != nil || !bytes.Equal(buf, data[1000:2000]) {
			t.Fatalf("read after Seek(0, current): %v", err)
		}
		if get, head := ct.counts(); get != 1 || head != 0 {
			t.Fatalf("Open, seeks and reads in order: %d GET, %d HEAD; want 1 and 0", get, head)
		}
		if pos, err := f.Seek(-500, io.SeekEnd); err != nil || pos != size-500 {
			t.Fatalf("Seek(-500, end) = %d, %v", pos, err)
		}
		rest, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(rest, data[len(data)-500:]) {
			t.Fatalf("read after Seek(-500, end): %d bytes, %v", len(rest), err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		all, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(all, data) {
			t.Fatalf("read after Seek(0, start): %d bytes, %v", len(all), err)
		}
		if _, err := f.Seek(5, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(f, buf[:10]); err != nil || !bytes.Equal(buf[:10], data[5:15]) {
			t.Fatalf("read after Seek(5, start): %v", err)
		}
		// One Read fills the buffer it is given (what net/http then writes
		// to the client in one piece), whatever the S3 connection had.
		if _, err := f.Seek(1000, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		big := make([]byte, 1<<20)
		if n, err := f.Read(big); n != len(big) || err != nil || !bytes.Equal(big, data[1000:1000+len(big)]) {
			t.Fatalf("Read of %d bytes returned %d, %v", len(big), n, err)
		}
		// Replace the object: the next ranged GET must not read the new one.
		other := bytes.Clone(data)
		for i := range other {
			other[i] ^= 0xff
		}
		if _, err := s.c.PutObject(ctx, s.bucket, s.blobKey(d), bytes.NewReader(other), int64(len(other)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(2<<20, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		n, err := io.ReadFull(f, buf)
		switch {
		case bucket == "" && err == nil && bytes.Equal(buf, data[2<<20:2<<20+len(buf)]):
			// The versioned bucket still has the version opened.
		case bucket != "" && err != nil && n == 0:
			// The plain bucket's object changed: its ETag no longer matches.
		default:
			t.Fatalf("read after the object was replaced (plain bucket %v): %d bytes, %v", bucket != "", n, err)
		}
		f.Close()
		if _, err := f.Read(buf); err == nil {
			t.Fatal("read after Close succeeded")
		}
	}
}

// TestOpenVerified checks that OpenVerified of a blob the store wrote costs
// the one GET Open does, warm or after a restart (the marker is in the
// GET's response); that an unmarked object is hashed before a reader is
// returned, then remembered; and that damaged content returns no reader.
func TestOpenVerified(t *testing.T) {
	ct := &countingTransport{}
	opts := testOptions(t)
	opts.Transport = ct
	s := newStoreWith(t, opts)
	ctx := t.Context()
	data := make([]byte, 700<<10)
	rand.Read(data)
	d := digest.SHA256.FromBytes(data)
	if _, err := s.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	read := func(d digest.Digest) ([]byte, error) {
		f, size, err := s.OpenVerified(ctx, d)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err == nil && int64(len(b)) != size {
			t.Fatalf("read %d bytes, size %d", len(b), size)
		}
		return b, err
	}
	ct.counts()
	for _, restart := range []bool{false, true} {
		if restart {
			s.verified = nil
		}
		if b, err := read(d); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("OpenVerified (restart %v): %d bytes, %v", restart, len(b), err)
		}
		if get, head := ct.counts(); get != 1 || head != 0 {
			t.Fatalf("OpenVerified of a blob the store wrote (restart %v): %d GET, %d HEAD; want 1 and 0", restart, get, head)
		}
	}
	content := []byte("written behind the store's back")
	other := digest.SHA256.FromBytes(content)
	if _, err := s.c.PutObject(ctx, s.bucket, s.blobKey(other), bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	ct.counts()
	if b, err := read(other); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("OpenVerified of an unmarked object: %q, %v", b, err)
	}
	if get, _ := ct.counts(); get != 3 {
		t.Fatalf("OpenVerified and read of an unmarked object: %d GET, want 3 (open, hash, read)", get)
	}
	if _, err := read(other); err != nil {
		t.Fatal(err)
	}
	if get, head := ct.counts(); get != 1 || head != 0 {
		t.Fatalf("OpenVerified after a hashed one: %d GET, %d HEAD; want 1 and 0", get, head)
	}
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 1
	if _, err := s.c.PutObject(ctx, s.bucket, s.blobKey(d), bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if f, _, err := s.OpenVerified(ctx, d); !errors.Is(err, blob.ErrDigestMismatch) || f != nil {
		t.Fatalf("OpenVerified of damaged content = %v, %v; want no reader and ErrDigestMismatch", f, err)
	}
	if _, _, err := s.OpenVerified(ctx, digest.SHA256.FromString("missing")); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("OpenVerified(missing) = %v, want ErrNotFound", err)
	}
}
