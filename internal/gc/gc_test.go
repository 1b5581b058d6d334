package gc_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob/fs"
	"github.com/custody-dev/custody/internal/gc"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/repopattern"
)

type protectSet map[digest.Digest]bool

func (p protectSet) Protected(_ context.Context, d digest.Digest) (bool, error) { return p[d], nil }

func stores(t *testing.T) (*fs.Store, *sqlite.Store) {
	t.Helper()
	dir := t.TempDir()
	b, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sqlite.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return b, m
}

func put(t *testing.T, b *fs.Store, content string) digest.Digest {
	t.Helper()
	d := digest.FromString(content)
	if _, err := b.Put(context.Background(), d, int64(len(content)), bytes.NewReader([]byte(content))); err != nil {
		t.Fatal(err)
	}
	return d
}

func digests(items []gc.Item) []digest.Digest {
	var out []digest.Digest
	for _, i := range items {
		out = append(out, i.Digest)
	}
	return out
}

func TestBlobs(t *testing.T) {
	ctx := context.Background()
	b, m := stores(t)
	orphan := put(t, b, "orphan")
	linked := put(t, b, "linked")
	referenced := put(t, b, "referenced")
	protected := put(t, b, "protected")
	if err := m.LinkBlob(ctx, "r", linked, 6); err != nil {
		t.Fatal(err)
	}
	mf := put(t, b, "manifest bytes")
	if err := m.PutManifest(ctx, meta.Manifest{Repo: "r", Digest: mf, MediaType: "x", Size: 14, Blobs: []digest.Digest{referenced}}, []string{"v1"}, nil); err != nil {
		t.Fatal(err)
	}
	c := &gc.Collector{Blobs: b, Meta: m, Ages: b, Grace: time.Hour, Protected: protectSet{protected: true}}

	// Everything is younger than the grace period.
	rep, err := c.Run(ctx, false)
	if err != nil || len(rep.Blobs) != 0 {
		t.Fatalf("young blobs collected: %v %+v", err, rep)
	}
	c.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	rep, err = c.Run(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := digests(rep.Blobs); !slices.Equal(got, []digest.Digest{orphan}) || !rep.DryRun {
		t.Fatalf("dry run: %v", got)
	}
	if _, err := b.Stat(ctx, orphan); err != nil {
		t.Fatal("dry run deleted")
	}
	rep, err = c.Run(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := digests(rep.Blobs); !slices.Equal(got, []digest.Digest{orphan}) || rep.BytesReclaimed != 6 || rep.Protected != 1 {
		t.Fatalf("run: %v %+v", got, rep)
	}
	for _, d := range []digest.Digest{linked, referenced, protected, mf} {
		if _, err := b.Stat(ctx, d); err != nil {
			t.Errorf("%s deleted: %v", d, err)
		}
	}
}

func TestUntaggedManifests(t *testing.T) {
	ctx := context.Background()
	b, m := stores(t)
	old := time.Now().Add(-48 * time.Hour)
	mk := func(repo, name string, tags []string, subject digest.Digest, children ...digest.Digest) digest.Digest {
		d := put(t, b, repo+name)
		if err := m.PutManifest(ctx, meta.Manifest{Repo: repo, Digest: d, MediaType: "x", Size: int64(len(repo + name)),
			Subject: subject, Manifests: children, Created: old}, tags, nil); err != nil {
			t.Fatal(err)
		}
		return d
	}
	const r = "tmp/x"
	tagged := mk(r, "tagged", []string{"v1"}, "")
	untagged := mk(r, "untagged", nil, "")
	child := mk(r, "child", nil, "")
	_ = mk(r, "index", []string{"multi"}, "", child)
	orphanChild := mk(r, "orphan-child", nil, "")
	orphanIndex := mk(r, "orphan-index", nil, "", orphanChild)
	sig := mk(r, "sig", nil, tagged)
	sigOfUntagged := mk(r, "sig-of-untagged", nil, untagged)
	sigOfSig := mk(r, "sig-of-sig", nil, sig)
	kept := mk("keep/x", "untagged", nil, "")

	c := &gc.Collector{Blobs: b, Meta: m, Ages: b, Grace: time.Hour, UntaggedRepos: []string{"tmp/**"},
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
	rep, err := c.Run(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	got := digests(rep.Manifests)
	want := []digest.Digest{untagged, orphanChild, orphanIndex, sigOfUntagged}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("deleted %v, want %v", got, want)
	}
	for _, d := range []digest.Digest{tagged, child, sig, sigOfSig} {
		if _, err := m.GetManifest(ctx, r, d); err != nil {
			t.Errorf("live manifest %s deleted", d)
		}
	}
	if _, err := m.GetManifest(ctx, "keep/x", kept); err != nil {
		t.Error("manifest in a repository that did not opt in deleted")
	}
	// Their bytes went in the same run.
	for _, d := range want {
		if _, err := b.Stat(ctx, d); err == nil {
			t.Errorf("bytes of deleted manifest %s kept", d)
		}
	}
}

func TestPutManifestVerified(t *testing.T) {
	ctx := context.Background()
	_, m := stores(t)
	l := digest.FromString("layer")
	if err := m.LinkBlob(ctx, "r", l, 5); err != nil {
		t.Fatal(err)
	}
	if err := m.UnlinkBlob(ctx, "r", l); err != nil {
		t.Fatal(err)
	}
	err := m.PutManifestVerified(ctx, meta.Manifest{Repo: "r", Digest: digest.FromString("m"), MediaType: "x", Size: 1, Blobs: []digest.Digest{l}}, []string{"v"}, nil)
	if !errors.Is(err, meta.ErrReferenceGone) {
		t.Fatalf("PutManifestVerified with an unlinked blob: %v", err)
	}
	err = m.PutManifestVerified(ctx, meta.Manifest{Repo: "r", Digest: digest.FromString("i"), MediaType: "x", Size: 1, Manifests: []digest.Digest{digest.FromString("gone")}}, nil, nil)
	if !errors.Is(err, meta.ErrReferenceGone) {
		t.Fatalf("PutManifestVerified with a missing child: %v", err)
	}
}

func TestMatchRepo(t *testing.T) {
	for _, c := range []struct {
		pats []string
		repo string
		want bool
	}{
		{[]string{"**"}, "a/b/c", true},
		{[]string{"ci/**"}, "ci/a/b", true},
		// "prefix/**" covers prefix itself too: one meaning of a
		// pattern everywhere (internal/repopattern).
		{[]string{"ci/**"}, "ci", true},
		{[]string{"ci/**"}, "cid", false},
		{[]string{"ci/*"}, "ci/a/b", false},
		{[]string{"ci/*"}, "ci/a", true},
		{nil, "x", false},
	} {
		if got := repopattern.MatchAny(c.pats, c.repo); got != c.want {
			t.Errorf("MatchRepo(%v, %q) = %v", c.pats, c.repo, got)
		}
	}
}
