package sqlite_test

import (
	"database/sql"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/meta"
)

func TestBuildIndexAndTagHistory(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "meta.db")
	s := open(t, path)
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
	put("team/app", "plain", nil, "plain")
	put("team/app", "b", nil, "latest") // same digest again: no history entry
	c := put("other/app", "c", map[string]string{builds.AnnotationRevision: "r1"}, "latest")

	check := func(s builds.Index) {
		t.Helper()
		bs, err := s.Builds(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) != 2 || bs[0].Digest != a || !slices.Equal(bs[0].Tags, []string{"1.0"}) || bs[1].Digest != c {
			t.Fatalf("Builds(r1) = %+v", bs)
		}
		vs, err := s.Versions(ctx, "team/app")
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 2 || vs[0].Version != "1.0" || vs[1].Version != "2.0" || !slices.Equal(vs[1].Tags, []string{"2.0", "latest"}) {
			t.Fatalf("Versions = %+v", vs)
		}
		for _, v := range vs {
			if d := time.Since(v.Pushed); d < 0 || d > time.Hour {
				t.Fatalf("version %s pushed at %v, not just now", v.Version, v.Pushed)
			}
		}
	}
	check(s)
	h, err := s.TagHistory(ctx, "team/app", "latest")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Digest != a || h[1].Digest != b {
		t.Fatalf("TagHistory = %+v", h)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Undo migrations 3 and later and reopen: the backfill rebuilds the
	// index from the manifests' annotations and seeds tag history with
	// current tags.
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TABLE build_meta`, `DROP TABLE tag_history`,
		`DROP TABLE tlog_leaves`, `DROP TABLE tlog_tree`, `DROP TABLE tlog_search`, `DROP TABLE tlog_checkpoints`,
		`DROP TABLE signlog_leaves`, `DROP TABLE signlog_tree`, `DROP TABLE signlog_search`, `DROP TABLE signlog_checkpoints`,
		`DROP TABLE auth_users`, `DROP TABLE auth_grants`, `DROP TABLE auth_tokens`, `DROP TABLE auth_generation`,
		`DROP TABLE auth_sessions`, `DROP TABLE auth_factors`, `DROP TABLE auth_recovery_codes`, `DROP TABLE auth_webauthn`,
		`DELETE FROM schema_migrations WHERE version >= 3`,
		// A version-2 database kept instants in nanoseconds (migration 6
		// turns them into microseconds).
		`UPDATE manifests SET created = created * 1000`, `UPDATE tags SET updated = updated * 1000`,
		`UPDATE uploads SET created = created * 1000, updated = updated * 1000`,
		`UPDATE policies SET created = created * 1000`,
		`UPDATE retention SET retain_until = retain_until * 1000, updated = updated * 1000`,
		`UPDATE schema_migrations SET applied = applied * 1000`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s = open(t, path)
	defer s.Close()
	check(s)
	h, err = s.TagHistory(ctx, "team/app", "latest")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 || h[0].Digest != b {
		t.Fatalf("backfilled TagHistory = %+v", h)
	}
}
