package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/jackc/pgx/v5"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/server"
)

// These benchmarks run custody in-process (httptest server over the real
// handler and the embedded store in b.TempDir()) with the same ggcr client
// as the comparison harness. Client and server share the process, so a CPU
// profile shows both:
//
//	go test -run '^$' -bench PushBlob64MiB -cpuprofile cpu.out ./bench/
//	go tool pprof -top bench.test cpu.out

const blobSize = 64 << 20

// startCustody serves a fresh custody and returns a client for it.
func startCustody(b *testing.B) *Client {
	return startCustodyWith(b, func(*config.Config) {})
}

// startCustodyWith is startCustody with the configuration changed by set.
func startCustodyWith(b *testing.B, set func(*config.Config)) *Client {
	b.Helper()
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = b.TempDir()
	cfg.Log.Level = "error"
	set(&cfg)
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	s, err := server.New(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	b.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	c, err := NewClient(context.Background(), strings.TrimPrefix(ts.URL, "http://"), nil)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// randomLayer writes a random file of n bytes in dir and returns it as a layer.
func randomLayer(b *testing.B, dir string, n int64) *FileLayer {
	b.Helper()
	p := filepath.Join(dir, fmt.Sprintf("blob-%d.bin", n))
	if err := WriteRandomFile(p, n); err != nil {
		b.Fatal(err)
	}
	l, err := NewFileLayer(p)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// suffixLayer is a blob of a random file followed by an 8-byte counter:
// each counter value makes a blob the server has never seen (ggcr HEADs
// first and skips existing blobs), and its digest costs no re-hashing of
// the file, so client-side hashing stays out of CPU profiles.
type suffixLayer struct {
	path   string
	base   []byte // marshalled sha256 state after the file's bytes
	size   int64
	suffix [8]byte
	digest v1.Hash
}

func newSuffixLayer(b *testing.B, dir string, size int64) *suffixLayer {
	b.Helper()
	p := filepath.Join(dir, "base.bin")
	if err := WriteRandomFile(p, size-8); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		b.Fatal(err)
	}
	st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	l := &suffixLayer{path: p, base: st, size: size}
	l.set(0)
	return l
}

// set makes the layer's content end with n.
func (l *suffixLayer) set(n uint64) {
	binary.BigEndian.PutUint64(l.suffix[:], n)
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(l.base); err != nil {
		panic(err)
	}
	h.Write(l.suffix[:])
	l.digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

func (l *suffixLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *suffixLayer) DiffID() (v1.Hash, error) { return l.digest, nil }
func (l *suffixLayer) Size() (int64, error)     { return l.size, nil }
func (l *suffixLayer) MediaType() (types.MediaType, error) {
	return types.OCIUncompressedLayer, nil
}
func (l *suffixLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
func (l *suffixLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	suffix := l.suffix
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(f, bytes.NewReader(suffix[:])), f}, nil
}

// BenchmarkPushBlob64MiB pushes a distinct 64 MiB blob per iteration
// (HEAD, POST, one PATCH with the whole body, PUT).
func BenchmarkPushBlob64MiB(b *testing.B) {
	c := startCustody(b)
	const repo = "bench/blob"
	if err := c.Warm(repo); err != nil {
		b.Fatal(err)
	}
	l := newSuffixLayer(b, b.TempDir(), blobSize)
	b.SetBytes(blobSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.set(uint64(i))
		if err := c.PushLayer(repo, l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPullBlob64MiB pulls one 64 MiB blob per iteration; ggcr verifies
// its digest while reading.
func BenchmarkPullBlob64MiB(b *testing.B) {
	c := startCustody(b)
	const repo = "bench/blob"
	if err := c.Warm(repo); err != nil {
		b.Fatal(err)
	}
	l := randomLayer(b, b.TempDir(), blobSize)
	if err := c.PushLayer(repo, l); err != nil {
		b.Fatal(err)
	}
	d, _ := l.Digest()
	b.SetBytes(blobSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := c.PullBlob(repo, d)
		if err != nil {
			b.Fatal(err)
		}
		if n != blobSize {
			b.Fatalf("pulled %d bytes", n)
		}
	}
}

// BenchmarkManifestPut PUTs a distinct tiny artifact manifest, by tag,
// per iteration.
func BenchmarkManifestPut(b *testing.B) {
	benchmarkManifestPut(b, startCustody(b))
}

// BenchmarkManifestPutAuditOff is BenchmarkManifestPut without the audit
// log (CUSTODY_AUDIT_DISABLE_UNSAFE): the difference is what the log
// costs a manifest push.
func BenchmarkManifestPutAuditOff(b *testing.B) {
	benchmarkManifestPut(b, startCustodyWith(b, func(c *config.Config) { c.Audit.DisableUnsafe = true }))
}

// BenchmarkManifestPutPostgres is BenchmarkManifestPut with the
// metadata on PostgreSQL (CUSTODY_TEST_POSTGRES, as scripts/postgres.sh
// starts it; a fresh schema per run), blobs on the filesystem.
func BenchmarkManifestPutPostgres(b *testing.B) {
	benchmarkManifestPut(b, startCustodyWith(b, func(c *config.Config) { c.Metadata = postgresSchema(b) }))
}

// BenchmarkManifestPutPostgresAuditOff is BenchmarkManifestPutPostgres
// without the audit log.
func BenchmarkManifestPutPostgresAuditOff(b *testing.B) {
	benchmarkManifestPut(b, startCustodyWith(b, func(c *config.Config) {
		c.Metadata = postgresSchema(b)
		c.Audit.DisableUnsafe = true
	}))
}

// postgresSchema creates a schema in the database at CUSTODY_TEST_POSTGRES
// and returns the URL that uses it, or skips b without one.
func postgresSchema(b *testing.B) string {
	b.Helper()
	base := os.Getenv("CUSTODY_TEST_POSTGRES")
	if base == "" {
		b.Skip("CUSTODY_TEST_POSTGRES is not set; run `eval \"$(bash scripts/postgres.sh start)\"`")
	}
	schema := "bench_" + strings.ToLower(rand.Text())
	conn, err := pgx.Connect(context.Background(), base)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func benchmarkManifestPut(b *testing.B, c *Client) {
	const repo = "bench/manifests"
	if err := c.Warm(repo); err != nil {
		b.Fatal(err)
	}
	nonce := rand.Text()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := RawManifest(ArtifactManifest(nonce, i))
		if err := c.PutManifest(repo, fmt.Sprintf("m%d", i), m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkManifestGet GETs tiny manifests by digest.
func BenchmarkManifestGet(b *testing.B) {
	c := startCustody(b)
	const repo = "bench/manifests"
	if err := c.Warm(repo); err != nil {
		b.Fatal(err)
	}
	const n = 200
	nonce := rand.Text()
	ms := make([]RawManifest, n)
	for i := range ms {
		ms[i] = RawManifest(ArtifactManifest(nonce, i))
		if err := c.PutManifest(repo, fmt.Sprintf("m%d", i), ms[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.GetManifest(repo, ms[i%n].Digest()); err != nil {
			b.Fatal(err)
		}
	}
}
