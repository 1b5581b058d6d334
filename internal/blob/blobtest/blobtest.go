// Package blobtest is the conformance suite for blob.Store implementations.
//
// Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t) })
//	}
//
// newStore must return an empty store for every call; the suite calls it once
// per subtest.
package blobtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/opencontainers/go-digest"
)

// StreamSize is the size of the blob the streaming subtest writes.
const StreamSize = 64 << 20

// MaxStreamAlloc is the most a Put of StreamSize bytes may allocate in total.
// A backend that buffers whole blobs needs at least StreamSize.
const MaxStreamAlloc = StreamSize / 4

// Run runs the conformance suite against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"PutRoundTrip", testPutRoundTrip},
		{"PutDigestMismatch", testPutDigestMismatch},
		{"PutSizeMismatch", testPutSizeMismatch},
		{"PutReaderError", testPutReaderError},
		{"InvalidDigests", testInvalidDigests},
		{"PutExisting", testPutExisting},
		{"ChunkedUpload", testChunkedUpload},
		{"AppendWrongOffset", testAppendWrongOffset},
		{"AppendTruncatesUnacknowledged", testAppendTruncates},
		{"AppendReaderError", testAppendReaderError},
		{"CommitMismatchKeepsSession", testCommitMismatch},
		{"AbortUpload", testAbortUpload},
		{"UnknownUpload", testUnknownUpload},
		{"Delete", testDelete},
		{"Walk", testWalk},
		{"Uploads", testUploads},
		{"ConcurrentPutSameDigest", testConcurrentPut},
		{"PutStreams", testPutStreams},
		{"OpenSeek", testOpenSeek},
		{"PurgeTemp", testPurgeTemp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

// Content returns n bytes of deterministic pseudo-random content.
func Content(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := i; j < n && j < i+8; j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
	return b
}

func sha256Of(b []byte) digest.Digest { return digest.SHA256.FromBytes(b) }
func sha512Of(b []byte) digest.Digest { return digest.SHA512.FromBytes(b) }

// mustPut stores b under its digest in algorithm alg.
func mustPut(t *testing.T, s blob.Store, alg digest.Algorithm, b []byte) digest.Digest {
	t.Helper()
	d := alg.FromBytes(b)
	n, err := s.Put(t.Context(), d, int64(len(b)), bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Put(%s): %v", d, err)
	}
	if n != int64(len(b)) {
		t.Fatalf("Put(%s) = %d bytes, want %d", d, n, len(b))
	}
	return d
}

// checkBlob asserts that d is stored with exactly the content want.
func checkBlob(t *testing.T, s blob.Store, d digest.Digest, want []byte) {
	t.Helper()
	ctx := t.Context()
	size, err := s.Stat(ctx, d)
	if err != nil {
		t.Fatalf("Stat(%s): %v", d, err)
	}
	if size != int64(len(want)) {
		t.Fatalf("Stat(%s) = %d, want %d", d, size, len(want))
	}
	rc, size, err := s.Open(ctx, d)
	if err != nil {
		t.Fatalf("Open(%s): %v", d, err)
	}
	defer rc.Close()
	if size != int64(len(want)) {
		t.Fatalf("Open(%s) size = %d, want %d", d, size, len(want))
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", d, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("content of %s: got %d bytes %s, want %d bytes %s", d, len(got), sha256Of(got), len(want), sha256Of(want))
	}
}

// checkAbsent asserts that d is not visible through Stat or Open.
func checkAbsent(t *testing.T, s blob.Store, d digest.Digest) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat(%s) = %v, want ErrNotFound", d, err)
	}
	rc, _, err := s.Open(ctx, d)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open(%s) = %v, want ErrNotFound", d, err)
	}
}

// walkAll returns every blob Walk reports.
func walkAll(t *testing.T, s blob.Store) map[digest.Digest]int64 {
	t.Helper()
	got := make(map[digest.Digest]int64)
	err := s.Walk(t.Context(), func(d digest.Digest, size int64) error {
		if _, dup := got[d]; dup {
			t.Errorf("Walk reported %s twice", d)
		}
		got[d] = size
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

// uploadsAll returns every upload Uploads reports.
func uploadsAll(t *testing.T, s blob.Store) map[string]time.Time {
	t.Helper()
	got := make(map[string]time.Time)
	err := s.Uploads(t.Context(), func(id string, mod time.Time) error {
		if _, dup := got[id]; dup {
			t.Errorf("Uploads reported %q twice", id)
		}
		got[id] = mod
		return nil
	})
	if err != nil {
		t.Fatalf("Uploads: %v", err)
	}
	return got
}

func mustCreate(t *testing.T, s blob.Store, id string) {
	t.Helper()
	if err := s.CreateUpload(t.Context(), id); err != nil {
		t.Fatalf("CreateUpload(%q): %v", id, err)
	}
}

func mustAppend(t *testing.T, s blob.Store, id string, offset int64, b []byte) {
	t.Helper()
	n, err := s.Append(t.Context(), id, offset, bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Append(%q, %d, %d bytes): %v", id, offset, len(b), err)
	}
	if want := offset + int64(len(b)); n != want {
		t.Fatalf("Append(%q, %d, %d bytes) = %d, want %d", id, offset, len(b), n, want)
	}
}

func checkUploadSize(t *testing.T, s blob.Store, id string, want int64) {
	t.Helper()
	n, err := s.UploadSize(t.Context(), id)
	if err != nil {
		t.Fatalf("UploadSize(%q): %v", id, err)
	}
	if n != want {
		t.Fatalf("UploadSize(%q) = %d, want %d", id, n, want)
	}
}

func mustCommit(t *testing.T, s blob.Store, id string, d digest.Digest, size int64) {
	t.Helper()
	n, err := s.CommitUpload(t.Context(), id, d, size)
	if err != nil {
		t.Fatalf("CommitUpload(%q, %s, %d): %v", id, d, size, err)
	}
	if size >= 0 && n != size {
		t.Fatalf("CommitUpload(%q, %s, %d) = %d", id, d, size, n)
	}
}

func testPutRoundTrip(t *testing.T, s blob.Store) {
	for _, tc := range []struct {
		name string
		alg  digest.Algorithm
		data []byte
		size func(n int) int64
	}{
		{"sha256", digest.SHA256, Content(1, 3<<20+17), func(n int) int64 { return int64(n) }},
		{"sha512", digest.SHA512, Content(2, 1<<20+5), func(n int) int64 { return int64(n) }},
		{"sha256/unknown-size", digest.SHA256, Content(3, 100_001), func(int) int64 { return -1 }},
		{"sha512/unknown-size", digest.SHA512, Content(4, 999), func(int) int64 { return -1 }},
		{"empty", digest.SHA256, []byte{}, func(int) int64 { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.alg.FromBytes(tc.data)
			checkAbsent(t, s, d)
			n, err := s.Put(t.Context(), d, tc.size(len(tc.data)), bytes.NewReader(tc.data))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if n != int64(len(tc.data)) {
				t.Fatalf("Put = %d, want %d", n, len(tc.data))
			}
			checkBlob(t, s, d, tc.data)
		})
	}
}

func testPutDigestMismatch(t *testing.T, s blob.Store) {
	data, other := Content(10, 200_000), Content(11, 200_000)
	for _, tc := range []struct {
		name  string
		claim digest.Digest
		size  int64
	}{
		{"sha256", sha256Of(other), int64(len(data))},
		{"sha256/unknown-size", sha256Of(other), -1},
		{"sha512", sha512Of(other), int64(len(data))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Put(t.Context(), tc.claim, tc.size, bytes.NewReader(data))
			if !errors.Is(err, blob.ErrDigestMismatch) {
				t.Fatalf("Put with wrong digest = %v, want ErrDigestMismatch", err)
			}
			checkAbsent(t, s, tc.claim)
			checkAbsent(t, s, tc.claim.Algorithm().FromBytes(data))
		})
	}
	if got := walkAll(t, s); len(got) != 0 {
		t.Fatalf("Walk after failed Puts = %v, want nothing", got)
	}
}

func testPutSizeMismatch(t *testing.T, s blob.Store) {
	data := Content(20, 300_000)
	d := sha256Of(data)
	for _, size := range []int64{int64(len(data)) - 1, int64(len(data)) + 1, 0, 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			_, err := s.Put(t.Context(), d, size, bytes.NewReader(data))
			if !errors.Is(err, blob.ErrSizeMismatch) {
				t.Fatalf("Put(size %d) of %d bytes = %v, want ErrSizeMismatch", size, len(data), err)
			}
			checkAbsent(t, s, d)
		})
	}
}

// errReader yields n bytes of data, then fails with err.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

var errBroken = errors.New("blobtest: broken reader")

func testPutReaderError(t *testing.T, s blob.Store) {
	data := Content(25, 3<<20)
	d := sha256Of(data)
	for _, rerr := range []error{errBroken, io.ErrUnexpectedEOF} {
		t.Run(rerr.Error(), func(t *testing.T) {
			_, err := s.Put(t.Context(), d, -1, &errReader{data[:2<<20], rerr})
			if !errors.Is(err, rerr) {
				t.Fatalf("Put from failing reader = %v, want %v", err, rerr)
			}
			checkAbsent(t, s, d)
		})
	}
}

// touchReader fails the test if it is read.
type touchReader struct{ t *testing.T }

func (r touchReader) Read([]byte) (int, error) {
	r.t.Error("content read although the digest is invalid")
	return 0, io.EOF
}

func testInvalidDigests(t *testing.T, s blob.Store) {
	ctx := t.Context()
	mustCreate(t, s, "invalid-digests")
	mustAppend(t, s, "invalid-digests", 0, []byte("x"))
	valid := string(sha256Of([]byte("x")))
	for _, tc := range []struct {
		name        string
		d           digest.Digest
		unsupported bool // must wrap blob.ErrUnsupportedDigest
	}{
		{"sha384", digest.SHA384.FromString("x"), true},
		{"md5", digest.Digest("md5:9dd4e461268c8034f5c8564e155c67a6"), true},
		{"uppercase", digest.Digest(strings.ToUpper(valid[:7]) + strings.ToUpper(valid[7:])), false},
		{"uppercase-hex", digest.Digest("sha256:" + strings.ToUpper(valid[7:])), false},
		{"short", digest.Digest(valid[:len(valid)-1]), false},
		{"long", digest.Digest(valid + "0"), false},
		{"sha512-with-sha256-length", digest.Digest("sha512:" + valid[7:]), false},
		{"non-hex", digest.Digest("sha256:" + strings.Repeat("g", 64)), false},
		{"path", digest.Digest("sha256:../../../../../../etc/passwd"), false},
		{"empty", "", false},
		{"no-separator", digest.Digest(valid[7:]), false},
		{"no-encoded", "sha256:", false},
		{"no-algorithm", digest.Digest(valid[6:]), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(op string, err error) {
				t.Helper()
				switch {
				case err == nil:
					t.Errorf("%s(%q) succeeded", op, tc.d)
				case tc.unsupported && !errors.Is(err, blob.ErrUnsupportedDigest):
					t.Errorf("%s(%q) = %v, want ErrUnsupportedDigest", op, tc.d, err)
				case errors.Is(err, blob.ErrNotFound):
					t.Errorf("%s(%q) = %v, want a rejected digest, not ErrNotFound", op, tc.d, err)
				}
			}
			_, err := s.Put(ctx, tc.d, 1, touchReader{t})
			check("Put", err)
			_, err = s.Stat(ctx, tc.d)
			check("Stat", err)
			rc, _, err := s.Open(ctx, tc.d)
			if err == nil {
				rc.Close()
			}
			check("Open", err)
			check("Delete", s.Delete(ctx, tc.d))
			_, err = s.CommitUpload(ctx, "invalid-digests", tc.d, -1)
			check("CommitUpload", err)
			checkUploadSize(t, s, "invalid-digests", 1)
		})
	}
	if got := walkAll(t, s); len(got) != 0 {
		t.Fatalf("Walk = %v, want nothing", got)
	}
}

func testPutExisting(t *testing.T, s blob.Store) {
	data := Content(30, 500_000)
	d := mustPut(t, s, digest.SHA256, data)
	mustPut(t, s, digest.SHA256, data)
	checkBlob(t, s, d, data)
	if _, err := s.Put(t.Context(), d, -1, bytes.NewReader(Content(31, len(data)))); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("Put of other content over existing %s = %v, want ErrDigestMismatch", d, err)
	}
	checkBlob(t, s, d, data)
	// Committing an upload of the same content succeeds too.
	mustCreate(t, s, "again")
	mustAppend(t, s, "again", 0, data)
	mustCommit(t, s, "again", d, int64(len(data)))
	checkBlob(t, s, d, data)
	if got := walkAll(t, s); len(got) != 1 || got[d] != int64(len(data)) {
		t.Fatalf("Walk = %v, want only %s", got, d)
	}
}

func testChunkedUpload(t *testing.T, s blob.Store) {
	data := Content(40, 5<<20+123)
	cuts := []int{0, 1, 1, 4096, 1<<20 + 7, 3 << 20, len(data)} // includes empty chunks
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			id := "chunked-" + string(alg)
			mustCreate(t, s, id)
			checkUploadSize(t, s, id, 0)
			for i := 1; i < len(cuts); i++ {
				mustAppend(t, s, id, int64(cuts[i-1]), data[cuts[i-1]:cuts[i]])
				checkUploadSize(t, s, id, int64(cuts[i]))
			}
			d := alg.FromBytes(data)
			checkAbsent(t, s, d)
			mustCommit(t, s, id, d, int64(len(data)))
			checkBlob(t, s, d, data)
			if _, err := s.UploadSize(t.Context(), id); !errors.Is(err, blob.ErrUploadNotFound) {
				t.Fatalf("UploadSize after commit = %v, want ErrUploadNotFound", err)
			}
			if _, ok := uploadsAll(t, s)[id]; ok {
				t.Fatalf("Uploads lists %q after commit", id)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		mustCreate(t, s, "empty")
		d := sha256Of(nil)
		mustCommit(t, s, "empty", d, -1)
		checkBlob(t, s, d, nil)
	})
}

func testAppendWrongOffset(t *testing.T, s blob.Store) {
	ctx := t.Context()
	mustCreate(t, s, "offset")
	mustAppend(t, s, "offset", 0, []byte("hello"))
	for _, off := range []int64{6, 100, 1 << 40} {
		if _, err := s.Append(ctx, "offset", off, strings.NewReader("world")); !errors.Is(err, blob.ErrOffset) {
			t.Errorf("Append at %d to 5-byte upload = %v, want ErrOffset", off, err)
		}
		checkUploadSize(t, s, "offset", 5)
	}
	if _, err := s.Append(ctx, "offset", -1, strings.NewReader("world")); err == nil {
		t.Errorf("Append at -1 succeeded")
	}
	checkUploadSize(t, s, "offset", 5)
	mustAppend(t, s, "offset", 5, []byte(" world"))
	mustCommit(t, s, "offset", sha256Of([]byte("hello world")), 11)
}

func testAppendTruncates(t *testing.T, s blob.Store) {
	a, b := Content(50, 2<<20+11), Content(51, 1<<20+3)
	// The store holds len(a) bytes, but the caller only acknowledged cut
	// of them: resuming at cut discards the rest.
	for _, cut := range []int{0, 1, 1 << 20, len(a) - 1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			id := fmt.Sprintf("resume-%d", cut)
			mustCreate(t, s, id)
			mustAppend(t, s, id, 0, a)
			mustAppend(t, s, id, int64(cut), b)
			checkUploadSize(t, s, id, int64(cut+len(b)))
			want := append(append([]byte{}, a[:cut]...), b...)
			mustCommit(t, s, id, sha256Of(want), int64(len(want)))
			checkBlob(t, s, sha256Of(want), want)
		})
	}
	t.Run("sha512", func(t *testing.T) {
		mustCreate(t, s, "resume-sha512")
		mustAppend(t, s, "resume-sha512", 0, a)
		mustAppend(t, s, "resume-sha512", 10, b)
		want := append(append([]byte{}, a[:10]...), b...)
		mustCommit(t, s, "resume-sha512", sha512Of(want), -1)
		checkBlob(t, s, sha512Of(want), want)
	})
}

func testAppendReaderError(t *testing.T, s blob.Store) {
	a, b := Content(55, 1<<20+1), Content(56, 3<<20)
	mustCreate(t, s, "broken")
	mustAppend(t, s, "broken", 0, a)
	_, err := s.Append(t.Context(), "broken", int64(len(a)), &errReader{b[:2<<20+5], io.ErrUnexpectedEOF})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Append from failing reader = %v, want io.ErrUnexpectedEOF", err)
	}
	// The failed Append was not acknowledged: resume where the last one ended.
	mustAppend(t, s, "broken", int64(len(a)), b)
	want := append(append([]byte{}, a...), b...)
	mustCommit(t, s, "broken", sha256Of(want), int64(len(want)))
	checkBlob(t, s, sha256Of(want), want)
}

func testCommitMismatch(t *testing.T, s blob.Store) {
	ctx := t.Context()
	a, b := Content(60, 1<<20+9), Content(61, 77)
	wrong := sha256Of(b)
	mustCreate(t, s, "mismatch")
	mustAppend(t, s, "mismatch", 0, a)
	for _, d := range []digest.Digest{wrong, sha512Of(b)} {
		if _, err := s.CommitUpload(ctx, "mismatch", d, -1); !errors.Is(err, blob.ErrDigestMismatch) {
			t.Fatalf("CommitUpload with wrong digest %s = %v, want ErrDigestMismatch", d, err)
		}
		checkAbsent(t, s, d)
	}
	if _, err := s.CommitUpload(ctx, "mismatch", sha256Of(a), int64(len(a))+1); !errors.Is(err, blob.ErrSizeMismatch) {
		t.Fatalf("CommitUpload with wrong size = %v, want ErrSizeMismatch", err)
	}
	checkAbsent(t, s, sha256Of(a))
	checkUploadSize(t, s, "mismatch", int64(len(a)))
	if _, ok := uploadsAll(t, s)["mismatch"]; !ok {
		t.Fatalf("Uploads does not list the session after a failed commit")
	}
	// The session goes on.
	mustAppend(t, s, "mismatch", int64(len(a)), b)
	want := append(append([]byte{}, a...), b...)
	mustCommit(t, s, "mismatch", sha256Of(want), int64(len(want)))
	checkBlob(t, s, sha256Of(want), want)
	checkAbsent(t, s, sha256Of(a))
}

func testAbortUpload(t *testing.T, s blob.Store) {
	ctx := t.Context()
	data := Content(70, 100_000)
	mustCreate(t, s, "abort")
	mustAppend(t, s, "abort", 0, data)
	if err := s.AbortUpload(ctx, "abort"); err != nil {
		t.Fatalf("AbortUpload: %v", err)
	}
	if _, err := s.UploadSize(ctx, "abort"); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Fatalf("UploadSize after abort = %v, want ErrUploadNotFound", err)
	}
	if _, err := s.Append(ctx, "abort", int64(len(data)), strings.NewReader("x")); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Fatalf("Append after abort = %v, want ErrUploadNotFound", err)
	}
	if _, err := s.CommitUpload(ctx, "abort", sha256Of(data), -1); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Fatalf("CommitUpload after abort = %v, want ErrUploadNotFound", err)
	}
	if err := s.AbortUpload(ctx, "abort"); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Fatalf("second AbortUpload = %v, want ErrUploadNotFound", err)
	}
	checkAbsent(t, s, sha256Of(data))
	if got := uploadsAll(t, s); len(got) != 0 {
		t.Fatalf("Uploads after abort = %v, want none", got)
	}
	// The ID may be used again, from scratch.
	mustCreate(t, s, "abort")
	checkUploadSize(t, s, "abort", 0)
	mustAppend(t, s, "abort", 0, data[:10])
	mustCommit(t, s, "abort", sha256Of(data[:10]), 10)
}

func testUnknownUpload(t *testing.T, s blob.Store) {
	ctx := t.Context()
	const id = "no-such-upload"
	if _, err := s.UploadSize(ctx, id); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("UploadSize = %v, want ErrUploadNotFound", err)
	}
	if _, err := s.Append(ctx, id, 0, strings.NewReader("x")); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("Append = %v, want ErrUploadNotFound", err)
	}
	if _, err := s.CommitUpload(ctx, id, sha256Of(nil), -1); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("CommitUpload = %v, want ErrUploadNotFound", err)
	}
	if err := s.AbortUpload(ctx, id); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("AbortUpload = %v, want ErrUploadNotFound", err)
	}
	checkAbsent(t, s, sha256Of(nil))
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := t.Context()
	keep := mustPut(t, s, digest.SHA256, Content(80, 1000))
	gone := mustPut(t, s, digest.SHA512, Content(81, 1000))
	if err := s.Delete(ctx, gone); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkAbsent(t, s, gone)
	if err := s.Delete(ctx, gone); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, sha256Of([]byte("never stored"))); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Delete of absent blob = %v, want ErrNotFound", err)
	}
	checkBlob(t, s, keep, Content(80, 1000))
	if got := walkAll(t, s); len(got) != 1 || got[keep] != 1000 {
		t.Fatalf("Walk after Delete = %v, want only %s", got, keep)
	}
	// A deleted blob can be stored again.
	mustPut(t, s, digest.SHA512, Content(81, 1000))
	checkBlob(t, s, gone, Content(81, 1000))
}

func testWalk(t *testing.T, s blob.Store) {
	if got := walkAll(t, s); len(got) != 0 {
		t.Fatalf("Walk of empty store = %v", got)
	}
	want := make(map[digest.Digest]int64)
	for i := range 40 {
		alg := digest.SHA256
		if i%3 == 0 {
			alg = digest.SHA512
		}
		b := Content(uint64(100+i), i*37)
		want[mustPut(t, s, alg, b)] = int64(len(b))
	}
	// An open upload is no blob.
	mustCreate(t, s, "walk")
	mustAppend(t, s, "walk", 0, []byte("pending"))

	got := walkAll(t, s)
	if len(got) != len(want) {
		t.Errorf("Walk found %d blobs, want %d", len(got), len(want))
	}
	for d, size := range want {
		if g, ok := got[d]; !ok || g != size {
			t.Errorf("Walk: %s size %d (found %v), want %d", d, g, ok, size)
		}
	}
	for d := range got {
		if _, ok := want[d]; !ok {
			t.Errorf("Walk reported unknown blob %s", d)
		}
	}

	calls := 0
	err := s.Walk(t.Context(), func(digest.Digest, int64) error {
		calls++
		return errBroken
	})
	if !errors.Is(err, errBroken) || calls != 1 {
		t.Fatalf("Walk with failing fn = %v after %d calls, want errBroken after 1", err, calls)
	}
}

func testUploads(t *testing.T, s blob.Store) {
	if got := uploadsAll(t, s); len(got) != 0 {
		t.Fatalf("Uploads of empty store = %v", got)
	}
	start := time.Now()
	ids := []string{"up-1", "up_2", "UP3", "x"}
	content := make(map[string][]byte)
	for i, id := range ids {
		content[id] = Content(uint64(200+i), 10*i)
		mustCreate(t, s, id)
		mustAppend(t, s, id, 0, content[id])
	}
	mustPut(t, s, digest.SHA256, Content(210, 1000)) // no upload
	end := time.Now()

	got := uploadsAll(t, s)
	var names []string
	for id, mod := range got {
		names = append(names, id)
		// Allow for coarse file system clocks.
		if mod.Before(start.Add(-time.Minute)) || mod.After(end.Add(time.Minute)) {
			t.Errorf("Uploads: %q modified %v, want between %v and %v", id, mod, start, end)
		}
	}
	sort.Strings(names)
	want := append([]string{}, ids...)
	sort.Strings(want)
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("Uploads = %v, want %v", names, want)
	}

	mustCommit(t, s, "x", sha256Of(content["x"]), int64(len(content["x"])))
	if err := s.AbortUpload(t.Context(), "UP3"); err != nil {
		t.Fatal(err)
	}
	got = uploadsAll(t, s)
	if _, ok := got["x"]; ok || len(got) != 2 {
		t.Fatalf("Uploads after commit and abort = %v, want up-1 and up_2", got)
	}

	calls := 0
	err := s.Uploads(t.Context(), func(string, time.Time) error {
		calls++
		return errBroken
	})
	if !errors.Is(err, errBroken) || calls != 1 {
		t.Fatalf("Uploads with failing fn = %v after %d calls, want errBroken after 1", err, calls)
	}
}

func testConcurrentPut(t *testing.T, s blob.Store) {
	data := Content(300, 4<<20+1)
	d := sha256Of(data)
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := make(chan struct{})
	for range writers {
		wg.Go(func() {
			<-start
			n, err := s.Put(t.Context(), d, int64(len(data)), bytes.NewReader(data))
			if err == nil && n != int64(len(data)) {
				err = fmt.Errorf("wrote %d bytes", n)
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Put: %v", err)
		}
	}
	checkBlob(t, s, d, data)
	if got := walkAll(t, s); len(got) != 1 {
		t.Fatalf("Walk after concurrent Puts = %v, want one blob", got)
	}
	if got := uploadsAll(t, s); len(got) != 0 {
		t.Fatalf("Uploads after concurrent Puts = %v, want none", got)
	}
}

// genReader produces n bytes by cycling through pattern, without allocating.
type genReader struct {
	pattern []byte
	pos     int
	left    int64
}

// NewGenReader returns a reader of n bytes that allocates nothing as it is
// read: the bytes repeat a 1 MiB pseudo-random pattern, shifted by one byte
// each round so that equal blocks never line up.
func NewGenReader(seed uint64, n int64) io.Reader {
	return &genReader{pattern: Content(seed, 1<<20+1), left: n}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], g.pattern[g.pos:])
		n += c
		g.pos = (g.pos + c) % len(g.pattern)
	}
	g.left -= int64(n)
	return n, nil
}

func testPutStreams(t *testing.T, s blob.Store) {
	if testing.Short() {
		t.Skip("writes 64 MiB")
	}
	h := digest.SHA256.Digester()
	if _, err := io.Copy(h.Hash(), NewGenReader(400, StreamSize)); err != nil {
		t.Fatal(err)
	}
	d := h.Digest()
	r := NewGenReader(400, StreamSize)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, err := s.Put(t.Context(), d, StreamSize, r)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if n != StreamSize {
		t.Fatalf("Put = %d, want %d", n, StreamSize)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("Put of %d MiB allocated %.2f MiB", StreamSize>>20, float64(alloc)/(1<<20))
	if alloc > MaxStreamAlloc {
		t.Fatalf("Put of %d MiB allocated %d MiB, want at most %d MiB: it must stream",
			StreamSize>>20, alloc>>20, MaxStreamAlloc>>20)
	}
	size, err := s.Stat(t.Context(), d)
	if err != nil || size != StreamSize {
		t.Fatalf("Stat = %d, %v; want %d", size, err, StreamSize)
	}
}

func testOpenSeek(t *testing.T, s blob.Store) {
	data := Content(500, 3<<20+1)
	d := mustPut(t, s, digest.SHA256, data)
	rc, size, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if size != int64(len(data)) {
		t.Fatalf("Open size = %d, want %d", size, len(data))
	}
	readAt := func(whence int, off int64, wantPos int64, n int) {
		t.Helper()
		pos, err := rc.Seek(off, whence)
		if err != nil {
			t.Fatalf("Seek(%d, %d): %v", off, whence, err)
		}
		if pos != wantPos {
			t.Fatalf("Seek(%d, %d) = %d, want %d", off, whence, pos, wantPos)
		}
		got := make([]byte, n)
		if _, err := io.ReadFull(rc, got); err != nil {
			t.Fatalf("read %d bytes at %d: %v", n, pos, err)
		}
		if !bytes.Equal(got, data[pos:pos+int64(n)]) {
			t.Fatalf("bytes %d-%d differ", pos, pos+int64(n))
		}
	}
	readAt(io.SeekStart, 1<<20+3, 1<<20+3, 4096)
	readAt(io.SeekCurrent, 100, 1<<20+3+4096+100, 10)
	readAt(io.SeekEnd, -17, int64(len(data))-17, 17)
	readAt(io.SeekStart, 0, 0, 1)
	if _, err := rc.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read at end = %d, %v; want 0, EOF", n, err)
	}
}

// testPurgeTemp checks PurgeTemp's promise to garbage collection: it
// removes only temporary data older than its cut-off, never a blob, an
// upload session or the data of a write in progress that started after the
// cut-off, and a completed write leaves nothing behind for it.
func testPurgeTemp(t *testing.T, s blob.Store) {
	ctx := t.Context()
	start := time.Now()
	put := mustPut(t, s, digest.SHA256, Content(40, 1000))
	committed := Content(41, 2000)
	mustCreate(t, s, "purge-committed")
	mustAppend(t, s, "purge-committed", 0, committed)
	mustCommit(t, s, "purge-committed", sha256Of(committed), int64(len(committed)))
	open := Content(42, 3000)
	mustCreate(t, s, "purge-open")
	mustAppend(t, s, "purge-open", 0, open[:1500])

	// A Put in progress: half of its bytes have been read.
	big := Content(43, 2<<20)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, sha256Of(big), int64(len(big)), pr)
		pr.CloseWithError(err)
		done <- err
	}()
	if _, err := pw.Write(big[:1<<20]); err != nil {
		t.Fatalf("writing the first half of a Put: %v", err)
	}
	if n, err := s.PurgeTemp(ctx, start.Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("PurgeTemp(before any write) = %d, %v; want 0, nil", n, err)
	}
	if _, err := pw.Write(big[1<<20:]); err != nil {
		t.Fatalf("writing the second half of a Put after PurgeTemp: %v", err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("Put across a PurgeTemp with an earlier cut-off: %v", err)
	}
	checkBlob(t, s, sha256Of(big), big)

	// A cut-off after every write: blobs and the open session stay.
	if _, err := s.PurgeTemp(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("PurgeTemp(after every write): %v", err)
	}
	checkBlob(t, s, put, Content(40, 1000))
	checkBlob(t, s, sha256Of(committed), committed)
	checkBlob(t, s, sha256Of(big), big)
	checkUploadSize(t, s, "purge-open", 1500)
	mustAppend(t, s, "purge-open", 1500, open[1500:])
	mustCommit(t, s, "purge-open", sha256Of(open), int64(len(open)))
	checkBlob(t, s, sha256Of(open), open)
	// Completed writes leave no temporary data behind.
	if n, err := s.PurgeTemp(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("PurgeTemp after completed writes only = %d, %v; want 0, nil", n, err)
	}
}
