package metatest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/scrub"
)

// ScrubStores is a metadata store and the scrub.Store view of the same
// database (they may be one value).
type ScrubStores struct {
	Meta  meta.Store
	Scrub scrub.Store
}

// RunScrub is the conformance suite for scrub.Store.
func RunScrub(t *testing.T, open Replicas[ScrubStores]) {
	runSuite(t, open, []subtest[ScrubStores]{
		{"Empty", testScrubEmpty},
		{"Listings", testScrubListings},
		{"CallbackError", testScrubCallbackError},
	})
}

func testScrubEmpty(t *testing.T, open Replicas[ScrubStores]) {
	s := one(t, open).Scrub
	ctx := t.Context()
	calls := 0
	count := func() error { calls++; return nil }
	if err := s.ScrubLinks(ctx, func(string, digest.Digest, int64) error { return count() }); err != nil {
		t.Fatal(err)
	}
	if err := s.ScrubManifests(ctx, func(meta.Manifest) error { return count() }); err != nil {
		t.Fatal(err)
	}
	if err := s.ScrubTags(ctx, func(string, string, digest.Digest) error { return count() }); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Fatalf("an empty store reported %d items", calls)
	}
}

func testScrubListings(t *testing.T, open Replicas[ScrubStores]) {
	pair := one(t, open)
	m, s := pair.Meta, pair.Scrub
	ctx := t.Context()
	link(t, m, "b", d("l1"), 11)
	link(t, m, "a", d("l2"), 22)
	link(t, m, "a", d("l1"), 11)
	img := meta.Manifest{Repo: "a", Digest: d("img"), MediaType: mtImage, Size: 7, Blobs: []digest.Digest{d("cfg"), d("l2"), d("l1")}}
	idx := meta.Manifest{Repo: "a", Digest: d("idx"), MediaType: mtIndex, Size: 8, Manifests: []digest.Digest{img.Digest}, Subject: d("subj")}
	bare := meta.Manifest{Repo: "b", Digest: d("bare"), MediaType: mtImage, Size: 9}
	put(t, m, img, "v1", "latest")
	put(t, m, idx)
	put(t, m, bare, "x")

	type linkRow struct {
		repo string
		d    digest.Digest
		size int64
	}
	var links []linkRow
	if err := s.ScrubLinks(ctx, func(repo string, dg digest.Digest, size int64) error {
		links = append(links, linkRow{repo, dg, size})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantLinks := []linkRow{{"a", d("l1"), 11}, {"a", d("l2"), 22}, {"b", d("l1"), 11}}
	slices.SortFunc(wantLinks, func(x, y linkRow) int {
		return cmp.Or(strings.Compare(x.repo, y.repo), strings.Compare(x.d.String(), y.d.String()))
	})
	if !slices.Equal(links, wantLinks) {
		t.Fatalf("ScrubLinks = %v, want %v (ordered by repository, digest)", links, wantLinks)
	}

	got := map[string]meta.Manifest{}
	var order []string
	if err := s.ScrubManifests(ctx, func(m meta.Manifest) error {
		key := m.Repo + "@" + m.Digest.String()
		if _, dup := got[key]; dup {
			return fmt.Errorf("manifest %s reported twice", key)
		}
		got[key] = m
		order = append(order, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("ScrubManifests reported %v, want 3 manifests", order)
	}
	for _, want := range []meta.Manifest{img, idx, bare} {
		g := got[want.Repo+"@"+want.Digest.String()]
		if g.MediaType != want.MediaType || g.Size != want.Size || g.Subject != want.Subject ||
			!slices.Equal(g.Blobs, want.Blobs) || !slices.Equal(g.Manifests, want.Manifests) {
			t.Errorf("ScrubManifests: %+v, want %+v", g, want)
		}
	}

	var tags []string
	if err := s.ScrubTags(ctx, func(repo, tag string, dg digest.Digest) error {
		tags = append(tags, repo+":"+tag+"="+dg.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantTags := []string{"a:latest=" + img.Digest.String(), "a:v1=" + img.Digest.String(), "b:x=" + bare.Digest.String()}
	if !slices.Equal(tags, wantTags) {
		t.Fatalf("ScrubTags = %v, want %v", tags, wantTags)
	}
}

func testScrubCallbackError(t *testing.T, open Replicas[ScrubStores]) {
	pair := one(t, open)
	m, s := pair.Meta, pair.Scrub
	ctx := t.Context()
	link(t, m, "r", d("l"), 1)
	put(t, m, meta.Manifest{Repo: "r", Digest: d("m"), MediaType: mtImage, Size: 1, Blobs: []digest.Digest{d("l")}}, "t")
	stop := errors.New("stop")
	if err := s.ScrubLinks(ctx, func(string, digest.Digest, int64) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ScrubLinks returned %v, want the callback's error", err)
	}
	if err := s.ScrubManifests(ctx, func(meta.Manifest) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ScrubManifests returned %v, want the callback's error", err)
	}
	if err := s.ScrubTags(ctx, func(string, string, digest.Digest) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ScrubTags returned %v, want the callback's error", err)
	}
}
