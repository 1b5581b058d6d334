package sqlite_test

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/meta/metatest"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/opencontainers/go-digest"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	metatest.Run(t, func(t *testing.T) meta.Store {
		s := open(t, filepath.Join(t.TempDir(), "meta.db"))
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}

func TestPersistence(t *testing.T) {
	ctx := t.Context()
	// A path with characters that need escaping in a file: URI.
	path := filepath.Join(t.TempDir(), "dir with space #1", "meta?.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}

	m := meta.Manifest{
		Repo:        "a/b",
		Digest:      digest.FromString("manifest"),
		MediaType:   "application/vnd.oci.image.manifest.v1+json",
		Size:        42,
		Subject:     digest.FromString("subject"),
		Annotations: map[string]string{"k": "v"},
		Blobs:       []digest.Digest{digest.FromString("config"), digest.FromString("layer")},
		Created:     time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	up := meta.Upload{ID: "u", Repo: "a/b", Offset: 9, Created: m.Created, Updated: m.Created}

	s := open(t, path)
	if err := s.LinkBlob(ctx, "a/b", digest.FromString("config"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.PutManifest(ctx, m, []string{"latest"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUpload(ctx, up); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for i := range 2 { // reopening twice also checks migrations are not re-applied
		s = open(t, path)
		got, err := s.GetManifest(ctx, "a/b", m.Digest)
		if err != nil {
			t.Fatalf("reopen %d: GetManifest: %v", i, err)
		}
		if got.Size != m.Size || got.Subject != m.Subject || got.Annotations["k"] != "v" ||
			!slices.Equal(got.Blobs, m.Blobs) || !got.Created.Equal(m.Created) {
			t.Errorf("reopen %d: GetManifest = %+v, want %+v", i, got, m)
		}
		if d, err := s.ResolveTag(ctx, "a/b", "latest"); err != nil || d != m.Digest {
			t.Errorf("reopen %d: ResolveTag = %s, %v; want %s", i, d, err, m.Digest)
		}
		if size, err := s.BlobSize(ctx, "a/b", digest.FromString("config")); err != nil || size != 7 {
			t.Errorf("reopen %d: BlobSize = %d, %v; want 7", i, size, err)
		}
		if u, err := s.GetUpload(ctx, "u"); err != nil || u.Offset != 9 || !u.Updated.Equal(up.Updated) {
			t.Errorf("reopen %d: GetUpload = %+v, %v; want %+v", i, u, err, up)
		}
		if repos, err := s.Repositories(ctx, "", 10); err != nil || !slices.Equal(repos, []string{"a/b"}) {
			t.Errorf("reopen %d: Repositories = %q, %v", i, repos, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}

	// The schema is versioned, each migration recorded once, and the
	// database is in WAL mode.
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, max int
	if err := db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != max || n < 1 {
		t.Errorf("schema_migrations has %d rows up to version %d, want one row per version", n, max)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

// TestReadDuringWrite checks that reads do not queue behind a write
// transaction: a TagCheck, which runs while the write connection is held,
// can read from the store and sees the last committed state.
func TestReadDuringWrite(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "meta.db"))
	defer s.Close()
	m1 := meta.Manifest{Repo: "r", Digest: digest.FromString("one"), MediaType: "application/vnd.oci.image.manifest.v1+json"}
	m2 := meta.Manifest{Repo: "r", Digest: digest.FromString("two"), MediaType: "application/vnd.oci.image.manifest.v1+json"}
	if err := s.PutManifest(ctx, m1, []string{"latest"}, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.PutManifest(ctx, m2, []string{"latest"}, func(tag string, current, next digest.Digest) error {
			d, err := s.ResolveTag(ctx, "r", tag)
			if err != nil {
				return err
			}
			if d != current {
				return fmt.Errorf("ResolveTag in check = %s, want %s", d, current)
			}
			if _, err := s.GetManifest(ctx, "r", next); err == nil {
				return fmt.Errorf("uncommitted manifest %s visible to readers", next)
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read inside a write transaction blocked")
	}
}

func TestOpenNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	open(t, path).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations(version, applied) VALUES (1000, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := sqlite.Open(path); err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
}

func TestOpenBadPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "dir", "meta.db")
	if s, err := sqlite.Open(path); err == nil {
		s.Close()
		t.Fatal("Open in a missing directory succeeded")
	}
}

func BenchmarkPutManifest(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "meta.db"))
	defer s.Close()
	ctx := b.Context()
	i := 0
	for b.Loop() {
		m := meta.Manifest{
			Repo:      fmt.Sprintf("bench/%d", i%8),
			Digest:    digest.FromString(fmt.Sprint("manifest ", i)),
			MediaType: "application/vnd.oci.image.manifest.v1+json",
			Size:      1000,
			Blobs: []digest.Digest{
				digest.FromString(fmt.Sprint("config ", i)),
				digest.FromString("base layer"),
				digest.FromString(fmt.Sprint("layer ", i)),
			},
			Created: time.Now(),
		}
		if err := s.PutManifest(ctx, m, []string{"latest", fmt.Sprint("v", i)}, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
