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
