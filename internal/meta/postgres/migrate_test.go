package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/meta/postgres"
)

// rawConn connects to url without the store, closed when t ends.
func rawConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestMigration2Backfill undoes migration 2 on a store holding manifests
// and tags, as a database created by an older build, and reopens it: the
// build index is rebuilt from the manifests' annotations and the tag
// history is seeded with the current tags.
func TestMigration2Backfill(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	put := func(repo, name string, ann map[string]string, tags ...string) digest.Digest {
		t.Helper()
		m := meta.Manifest{Repo: repo, Digest: digest.FromString(name), MediaType: "application/vnd.oci.image.manifest.v1+json",
			Size: 10, Annotations: ann, Created: time.Now()}
		if err := s.PutManifest(ctx, m, tags, nil); err != nil {
			t.Fatal(err)
		}
		return m.Digest
	}
	a := put("team/app", "a", map[string]string{builds.AnnotationRevision: "r1", builds.AnnotationVersion: "1.0"}, "1.0", "latest")
	b := put("team/app", "b", map[string]string{builds.AnnotationRevision: "r2", builds.AnnotationVersion: "2.0"}, "2.0", "latest")
	put("team/app", "plain", map[string]string{"other": "x"}, "plain")
	c := put("other/app", "c", map[string]string{builds.AnnotationRevision: "r1"}, "latest")
	s.Close()

	conn := rawConn(t, u)
	for _, q := range []string{
		`DROP TABLE policies, retention, build_meta, tag_history, tlog_leaves, tlog_head, tlog_nodes, tlog_checkpoints`,
		// and what later migrations add.
		`DROP TABLE auth_users, auth_grants, auth_tokens, auth_generation`,
		`DELETE FROM schema_migrations WHERE version >= 2`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s = open(t, u)
	bs, err := s.Builds(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Digest != a || !slices.Equal(bs[0].Tags, []string{"1.0"}) || bs[1].Digest != c {
		t.Fatalf("backfilled Builds(r1) = %+v", bs)
	}
	vs, err := s.Versions(ctx, "team/app")
	if err != nil || len(vs) != 2 || vs[1].Version != "2.0" || !slices.Equal(vs[1].Tags, []string{"2.0", "latest"}) {
		t.Fatalf("backfilled Versions = %+v, %v", vs, err)
	}
	h, err := s.TagHistory(ctx, "team/app", "latest")
	if err != nil || len(h) != 1 || h[0].Digest != b {
		t.Fatalf("backfilled TagHistory = %+v, %v; want the current position only", h, err)
	}
	if n, err := s.TlogSize(ctx); err != nil || n != 0 {
		t.Fatalf("TlogSize after migration = %d, %v", n, err)
	}
}

// TestMigration3Accounts opens a database at schema version 2, as an
// older build left it, holding other data: migration 3 adds the account
// tables, empty, and keeps the rest.
func TestMigration3Accounts(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	m := meta.Manifest{Repo: "team/app", Digest: digest.FromString("m"), MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1, Created: time.Now()}
	if err := s.PutManifest(ctx, m, []string{"latest"}, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()

	conn := rawConn(t, u)
	for _, q := range []string{
		`DROP TABLE auth_users, auth_grants, auth_tokens, auth_generation`,
		`DELETE FROM schema_migrations WHERE version >= 3`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s = open(t, u)
	if d, err := s.ResolveTag(ctx, "team/app", "latest"); err != nil || d != m.Digest {
		t.Fatalf("ResolveTag after migration = %s, %v; want %s", d, err, m.Digest)
	}
	st, err := s.AuthState(ctx)
	if err != nil || st.Generation != 0 || len(st.Users)+len(st.Grants)+len(st.Tokens) != 0 {
		t.Fatalf("AuthState after migration = %+v, %v; want empty, generation 0", st, err)
	}
	if err := s.PutUser(ctx, account.User{Name: "alice", Created: time.Now()}); err != nil {
		t.Fatalf("PutUser after migration: %v", err)
	}
	if g, err := s.AuthGeneration(ctx); err != nil || g != 1 {
		t.Fatalf("AuthGeneration after one write = %d, %v; want 1", g, err)
	}
	var version int
	if err := conn.QueryRow(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != postgres.SchemaVersion {
		t.Fatalf("schema version = %d, %v; want %d", version, err, postgres.SchemaVersion)
	}
}

// TestMigration4Micros opens a database whose instants are still unix
// nanoseconds (schema version 3), as an older build left it, holding a
// retention date of 2300 that wrapped around to 1715: migration 4 turns
// every instant into microseconds and restores the wrapped date.
func TestMigration4Micros(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
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

	// Back to version 3: every instant in nanoseconds, the lock of m
	// until 2300 as the old code stored it (wrapped around), plain's until
	// 2030.
	y2300 := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	y2030 := time.Date(2030, 6, 7, 8, 9, 10, 999999999, time.UTC)
	ns := created.UnixNano()
	conn := rawConn(t, u)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM schema_migrations WHERE version >= 4`, nil},
		{`UPDATE manifests SET created = $1`, []any{ns}},
		{`UPDATE tags SET updated = $1`, []any{ns}},
		{`UPDATE tag_history SET at = $1`, []any{ns}},
		{`UPDATE uploads SET created = $1, updated = $1`, []any{ns}},
		{`UPDATE policies SET created = $1`, []any{ns}},
		{`UPDATE auth_users SET created = $1`, []any{ns}},
		{`UPDATE auth_tokens SET created = $1, expires = $2`, []any{ns, created.Add(time.Hour).UnixNano()}},
		{`UPDATE auth_tokens SET revoked = $1 WHERE id = 't2'`, []any{created.Add(time.Minute).UnixNano()}},
		{`INSERT INTO retention(repo, digest, mode, retain_until, legal_hold, updated) VALUES ('a/b', $1, 'compliance', $2, false, $3)`,
			[]any{m.Digest.String(), y2300.UnixNano(), ns}},
		{`INSERT INTO retention(repo, digest, mode, retain_until, legal_hold, updated) VALUES ('a/b', $1, 'governance', $2, true, $3)`,
			[]any{plain.Digest.String(), y2030.UnixNano(), ns}},
	} {
		if _, err := conn.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	var wrapped int64
	if err := conn.QueryRow(ctx, `SELECT retain_until FROM retention WHERE digest = $1`, m.Digest.String()).Scan(&wrapped); err != nil || wrapped >= 0 {
		t.Fatalf("the old representation of 2300 = %d, %v; want a negative (wrapped) count", wrapped, err)
	}

	s = open(t, u)
	want := created.Truncate(time.Microsecond)
	if got, err := s.GetManifest(ctx, "a/b", m.Digest); err != nil || !got.Created.Equal(want) {
		t.Fatalf("manifest created = %v, %v; want %v", got.Created, err, want)
	}
	if h, err := s.TagHistory(ctx, "a/b", "latest"); err != nil || len(h) != 2 || !h[1].At.Equal(want) {
		t.Fatalf("tag history = %+v, %v; want moves at %v", h, err, want)
	}
	if up, err := s.GetUpload(ctx, "u"); err != nil || !up.Created.Equal(want) || !up.Updated.Equal(want) {
		t.Fatalf("upload = %+v, %v; want created and updated %v", up, err, want)
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
