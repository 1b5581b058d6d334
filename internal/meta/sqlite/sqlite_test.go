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

	"github.com/custody-dev/custody/internal/account"
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
			!slices.Equal(got.Blobs, m.Blobs) || !got.Created.Equal(m.Created.Truncate(time.Microsecond)) {
			t.Errorf("reopen %d: GetManifest = %+v, want %+v", i, got, m)
		}
		if d, err := s.ResolveTag(ctx, "a/b", "latest"); err != nil || d != m.Digest {
			t.Errorf("reopen %d: ResolveTag = %s, %v; want %s", i, d, err, m.Digest)
		}
		if size, err := s.BlobSize(ctx, "a/b", digest.FromString("config")); err != nil || size != 7 {
			t.Errorf("reopen %d: BlobSize = %d, %v; want 7", i, size, err)
		}
		if u, err := s.GetUpload(ctx, "u"); err != nil || u.Offset != 9 || !u.Updated.Equal(up.Updated.Truncate(time.Microsecond)) {
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

// TestMigrationMicros opens a database whose instants are still unix
// nanoseconds (schema version 5), as an older build left it, holding a
// retention date of 2300 that wrapped around to 1715: migration 6 turns
// every instant into microseconds and restores the wrapped date.
func TestMigrationMicros(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "meta.db")
	s := open(t, path)
	created := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)
	m := meta.Manifest{Repo: "a/b", Digest: digest.FromString("m"), MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1, Created: created}
	plain := meta.Manifest{Repo: "a/b", Digest: digest.FromString("plain"), MediaType: m.MediaType, Size: 1, Created: created}
	for _, x := range []meta.Manifest{m, plain} {
		if err := s.PutManifest(ctx, x, []string{"latest"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateUpload(ctx, meta.Upload{ID: "u", Repo: "a/b", Created: created, Updated: created}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPolicy(ctx, "a/*", []byte(`{}`), created, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(ctx, account.User{Name: "alice", Created: created}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t2"} {
		if err := s.PutToken(ctx, account.Token{ID: id, Hash: id, Owner: "alice", Created: created, Expires: created.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeToken(ctx, "t2", created.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Back to version 5: every instant in nanoseconds, the lock of m
	// until 2300 as the old code stored it (wrapped around), plain's until
	// 2030.
	y2300 := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	y2030 := time.Date(2030, 6, 7, 8, 9, 10, 999999999, time.UTC)
	ns := created.UnixNano()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DELETE FROM schema_migrations WHERE version >= 6`,
		// Undo what migrations 7 and later added (the sessions of the web
		// interface, second factors), so they apply again as they would to
		// a version-5 database.
		`DROP TABLE auth_sessions`, `DROP TABLE auth_factors`, `DROP TABLE auth_recovery_codes`, `DROP TABLE auth_webauthn`,
		`ALTER TABLE auth_tokens DROP COLUMN sign_in`,
		`ALTER TABLE auth_users DROP COLUMN disabled`, // migration 10's
		// Migration 14's: the logs' nodes by (level, idx) (the test
		// appends no entries), signlog's tables (migration 12).
		`DROP TABLE tlog_tree`, `DROP TABLE tlog_search`,
		`CREATE TABLE tlog_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID`,
		`CREATE INDEX tlog_leaves_hash ON tlog_leaves(leaf_hash)`,
		`DROP TABLE signlog_leaves`, `DROP TABLE signlog_tree`, `DROP TABLE signlog_search`, `DROP TABLE signlog_checkpoints`,
		fmt.Sprintf(`UPDATE manifests SET created = %d`, ns),
		fmt.Sprintf(`UPDATE tags SET updated = %d`, ns),
		fmt.Sprintf(`UPDATE tag_history SET at = %d`, ns),
		fmt.Sprintf(`UPDATE uploads SET created = %d, updated = %d`, ns, ns),
		fmt.Sprintf(`UPDATE policies SET created = %d`, ns),
		fmt.Sprintf(`UPDATE auth_users SET created = %d`, ns),
		fmt.Sprintf(`UPDATE auth_tokens SET created = %d, expires = %d`, ns, created.Add(time.Hour).UnixNano()),
		fmt.Sprintf(`UPDATE auth_tokens SET revoked = %d WHERE id = 't2'`, created.Add(time.Minute).UnixNano()),
		fmt.Sprintf(`INSERT INTO retention(repo, digest, mode, retain_until, legal_hold, updated) VALUES ('a/b', '%s', 'compliance', %d, 0, %d)`,
			m.Digest, y2300.UnixNano(), ns),
		fmt.Sprintf(`INSERT INTO retention(repo, digest, mode, retain_until, legal_hold, updated) VALUES ('a/b', '%s', 'governance', %d, 1, %d)`,
			plain.Digest, y2030.UnixNano(), ns),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var wrapped int64
	if err := db.QueryRow(`SELECT retain_until FROM retention WHERE digest = ?`, m.Digest.String()).Scan(&wrapped); err != nil || wrapped >= 0 {
		t.Fatalf("the old representation of 2300 = %d, %v; want a negative (wrapped) count", wrapped, err)
	}
	db.Close()

	s = open(t, path)
	defer s.Close()
	want := created.Truncate(time.Microsecond)
	if got, err := s.GetManifest(ctx, "a/b", m.Digest); err != nil || !got.Created.Equal(want) {
		t.Fatalf("manifest created = %v, %v; want %v", got.Created, err, want)
	}
	if h, err := s.TagHistory(ctx, "a/b", "latest"); err != nil || len(h) != 2 || !h[1].At.Equal(want) {
		t.Fatalf("tag history = %+v, %v; want moves at %v", h, err, want)
	}
	if u, err := s.GetUpload(ctx, "u"); err != nil || !u.Created.Equal(want) || !u.Updated.Equal(want) {
		t.Fatalf("upload = %+v, %v; want created and updated %v", u, err, want)
	}
	if p, err := s.GetPolicy(ctx, "a/*", 0); err != nil || !p.Created.Equal(want) {
		t.Fatalf("policy = %+v, %v; want created %v", p, err, want)
	}
	l, err := s.GetLock(ctx, "a/b", m.Digest)
	if err != nil || l.Mode != "compliance" || !l.RetainUntil.Equal(y2300) || !l.Updated.Equal(want) {
		t.Fatalf("lock of m = %+v, %v; want compliance until %v (restored), updated %v", l, err, y2300, want)
	}
	l, err = s.GetLock(ctx, "a/b", plain.Digest)
	if err != nil || !l.LegalHold || !l.RetainUntil.Equal(y2030.Truncate(time.Microsecond)) {
		t.Fatalf("lock of plain = %+v, %v; want held, until %v", l, err, y2030.Truncate(time.Microsecond))
	}
	st, err := s.AuthState(ctx)
	if err != nil || len(st.Users) != 1 || !st.Users[0].Created.Equal(want) || len(st.Tokens) != 2 {
		t.Fatalf("auth state = %+v, %v", st, err)
	}
	for _, tok := range st.Tokens {
		if !tok.Created.Equal(want) || !tok.Expires.Equal(want.Add(time.Hour)) {
			t.Fatalf("token %s = %+v; want created %v, expires an hour later", tok.ID, tok, want)
		}
	}
	if !st.Tokens[0].Revoked.IsZero() || !st.Tokens[1].Revoked.Equal(want.Add(time.Minute)) {
		t.Fatalf("tokens = %+v; want t1 valid, t2 revoked at %v", st.Tokens, want.Add(time.Minute))
	}
}

// TestFileModes: the database and its -wal and -shm files are readable by
// their owner only, also when an older build left them readable by all.
func TestFileModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	check := func(when string) {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s: %s has mode %v, want 0600", when, filepath.Base(p), perm)
			}
		}
	}
	s := open(t, path)
	defer func() { s.Close() }()
	if err := s.PutUser(t.Context(), account.User{Name: "a", PasswordHash: "$2a$10$x", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	check("new database")
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s2 := open(t, path) // while s keeps -wal and -shm in place
	defer s2.Close()
	check("reopened database left readable by all")
}
