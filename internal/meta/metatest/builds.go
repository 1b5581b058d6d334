package metatest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/meta"
)

// BuildsStore is what RunBuilds tests: a metadata store that indexes build
// annotations and tag history as manifests are recorded and tags move.
type BuildsStore interface {
	meta.Store
	builds.Index
}

// RunBuilds is the conformance suite for builds.Index and the writes that
// feed it (PutManifest indexes annotations, moving a tag appends to its
// history).
func RunBuilds(t *testing.T, open Replicas[BuildsStore]) {
	runSuite(t, open, []subtest[BuildsStore]{
		{"Empty", testBuildsEmpty},
		{"IndexAndTagHistory", testBuildIndexAndTagHistory},
		{"AllKeys", testBuildAllKeys},
		{"VetoedMoveNotRecorded", testVetoedMoveNotRecorded},
		{"DeletedManifestLeavesIndex", testDeletedManifestLeavesIndex},
		{"ConcurrentTagMoves", testConcurrentTagMoves},
		{"TaggedRepositories", testTaggedRepositories},
	})
}

func annotated(repo, name string, created time.Time, ann map[string]string) meta.Manifest {
	return meta.Manifest{Repo: repo, Digest: d(name), MediaType: mtImage, Size: 10, Annotations: ann, Created: created}
}

func testBuildsEmpty(t *testing.T, open Replicas[BuildsStore]) {
	s := one(t, open)
	ctx := t.Context()
	if bs, err := s.Builds(ctx, "r1"); err != nil || bs == nil || len(bs) != 0 {
		t.Fatalf("Builds of an unknown revision = %#v, %v; want an empty, non-nil list", bs, err)
	}
	if vs, err := s.Versions(ctx, "r"); err != nil || vs == nil || len(vs) != 0 {
		t.Fatalf("Versions of an unknown repository = %#v, %v; want an empty, non-nil list", vs, err)
	}
	if h, err := s.TagHistory(ctx, "r", "latest"); err != nil || h == nil || len(h) != 0 {
		t.Fatalf("TagHistory of an unknown tag = %#v, %v; want an empty, non-nil list", h, err)
	}
	if rs, err := s.TaggedRepositories(ctx, "prod"); err != nil || rs == nil || len(rs) != 0 {
		t.Fatalf("TaggedRepositories of an unknown tag = %#v, %v; want an empty, non-nil list", rs, err)
	}
}

// testTaggedRepositories: the repositories whose tag has a history, in
// byte order, each once however often the tag moved, including those
// where the tag was since deleted, excluding repositories that no longer
// exist and those where only another tag moved.
func testTaggedRepositories(t *testing.T, open Replicas[BuildsStore]) {
	s := one(t, open)
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	m := func(repo, name string) meta.Manifest {
		return meta.Manifest{Repo: repo, Digest: d(repo + name), MediaType: mtImage, Size: 10, Created: t0}
	}
	put(t, s, m("b/app", "1"), "prod")
	put(t, s, m("b/app", "2"), "prod") // moved: still one entry
	put(t, s, m("B/app", "1"), "prod") // upper case sorts first in byte order
	put(t, s, m("a/app", "1"), "staging")
	put(t, s, m("c/app", "1"), "prod")
	if err := s.DeleteTag(ctx, "c/app", "prod"); err != nil { // deleted tag: its history stays
		t.Fatal(err)
	}
	gone := m("gone/app", "1")
	put(t, s, gone, "prod")
	if _, err := s.DeleteManifest(ctx, "gone/app", gone.Digest); err != nil { // the repository is gone
		t.Fatal(err)
	}
	if _, err := s.GetManifest(ctx, "gone/app", gone.Digest); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("GetManifest after delete: %v", err)
	}
	want := []string{"B/app", "b/app", "c/app"}
	if rs, err := s.TaggedRepositories(ctx, "prod"); err != nil || !slices.Equal(rs, want) {
		t.Fatalf("TaggedRepositories(prod) = %q, %v; want %q", rs, err, want)
	}
	if rs, err := s.TaggedRepositories(ctx, "staging"); err != nil || !slices.Equal(rs, []string{"a/app"}) {
		t.Fatalf("TaggedRepositories(staging) = %q, %v; want [a/app]", rs, err)
	}
	if rs, err := s.TaggedRepositories(ctx, "pro"); err != nil || len(rs) != 0 {
		t.Fatalf("TaggedRepositories(pro) = %q, %v; a prefix of a tag is another tag", rs, err)
	}
}

func testBuildIndexAndTagHistory(t *testing.T, open Replicas[BuildsStore]) {
	s := one(t, open)
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a := annotated("team/app", "a", t0, map[string]string{builds.AnnotationRevision: "r1", builds.AnnotationVersion: "1.0"})
	b := annotated("team/app", "b", t0.Add(time.Minute), map[string]string{builds.AnnotationRevision: "r2", builds.AnnotationVersion: "2.0"})
	plain := annotated("team/app", "plain", t0.Add(2*time.Minute), map[string]string{"other": "x"})
	c := annotated("other/app", "c", t0.Add(3*time.Minute), map[string]string{builds.AnnotationRevision: "r1"})
	put(t, s, a, "1.0", "latest")
	put(t, s, b, "2.0", "latest")
	put(t, s, plain, "plain")
	put(t, s, meta.Manifest{Repo: "team/app", Digest: b.Digest, MediaType: mtImage, Size: 10}, "latest") // no move
	put(t, s, c, "latest")

	bs, err := s.Builds(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Digest != a.Digest || bs[0].Repo != "team/app" || !slices.Equal(bs[0].Tags, []string{"1.0"}) ||
		bs[1].Digest != c.Digest || bs[1].Repo != "other/app" || !slices.Equal(bs[1].Tags, []string{"latest"}) {
		t.Fatalf("Builds(r1) = %+v; want a (tag 1.0) then c (tag latest), oldest first", bs)
	}
	if bs[0].Revision != "r1" || bs[0].Version != "1.0" || !bs[0].Pushed.Equal(t0) {
		t.Fatalf("Builds(r1)[0] = %+v; want revision r1, version 1.0, pushed %v", bs[0], t0)
	}
	if bs, err := s.Builds(ctx, "r2"); err != nil || len(bs) != 1 || bs[0].Digest != b.Digest {
		t.Fatalf("Builds(r2) = %+v, %v", bs, err)
	}
	vs, err := s.Versions(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Version != "1.0" || vs[1].Version != "2.0" || !slices.Equal(vs[1].Tags, []string{"2.0", "latest"}) {
		t.Fatalf("Versions(team/app) = %+v; want 1.0, then 2.0 tagged 2.0 and latest", vs)
	}
	if vs, err := s.Versions(ctx, "other/app"); err != nil || len(vs) != 0 {
		t.Fatalf("Versions(other/app) = %+v, %v; want none (c has no version)", vs, err)
	}
	h, err := s.TagHistory(ctx, "team/app", "latest")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Digest != a.Digest || h[1].Digest != b.Digest || h[1].At.Before(h[0].At) {
		t.Fatalf("TagHistory(team/app:latest) = %+v; want a then b (putting b again is not a move)", h)
	}
	if h, err := s.TagHistory(ctx, "other/app", "latest"); err != nil || len(h) != 1 || h[0].Digest != c.Digest {
		t.Fatalf("TagHistory(other/app:latest) = %+v, %v; history is per repository", h, err)
	}

	// Moving a tag back records the move again.
	put(t, s, a, "latest")
	if h, err := s.TagHistory(ctx, "team/app", "latest"); err != nil || len(h) != 3 || h[2].Digest != a.Digest {
		t.Fatalf("TagHistory after moving back = %+v, %v", h, err)
	}
}

func testBuildAllKeys(t *testing.T, open Replicas[BuildsStore]) {
	s := one(t, open)
	ann := map[string]string{
		builds.AnnotationRevision:    "0123abcd",
		builds.AnnotationSource:      "https://example.com/repo.git",
		builds.AnnotationVersion:     "3.1.4",
		builds.AnnotationCreated:     "2030-01-01T00:00:00Z",
		builds.AnnotationBuildNumber: "42",
		builds.AnnotationPipelineRun: "run-7",
		"unrelated":                  "ignored",
	}
	m := annotated("r", "m", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), ann)
	put(t, s, m)
	bs, err := s.Builds(t.Context(), "0123abcd")
	if err != nil {
		t.Fatal(err)
	}
	want := builds.Build{Repo: "r", Digest: m.Digest, Tags: []string{}, Revision: "0123abcd",
		Source: "https://example.com/repo.git", Version: "3.1.4", Created: "2030-01-01T00:00:00Z",
		BuildNumber: "42", PipelineRun: "run-7", Pushed: m.Created}
	if len(bs) != 1 || fmt.Sprintf("%+v", bs[0]) != fmt.Sprintf("%+v", want) {
		t.Fatalf("Builds = %+v\nwant [%+v]", bs, want)
	}
}

func testVetoedMoveNotRecorded(t *testing.T, open Replicas[BuildsStore]) {
	s := one(t, open)
	ctx := t.Context()
	a := image("r", "a")
	put(t, s, a, "latest")
	veto := errors.New("veto")
	err := s.PutManifest(ctx, image("r", "b"), []string{"latest"}, func(string, digest.Digest, digest.Digest) error { return veto })
	if !errors.Is(err, veto) {
		t.Fatalf("PutManifest with a vetoing check: %v", err)
	}
	err = s.PutManifest(ctx, image("r", "c"), []string{"new"}, func(string, digest.Digest, digest.Digest) error { return veto })
	if !errors.Is(err, veto) {
		t.Fatalf("PutManifest with a vetoing check: %v", err)
	}
	if h, err := s.TagHistory(ctx, "r", "latest"); err != nil || len(h) != 1 || h[0].Digest != a.Digest {
		t.Fatalf("TagHistory after a vetoed move = %+v, %v; want only a", h, err)
	}
	if h, err := s.TagHistory(ctx, "r", "new"); err != nil || len(h) != 0 {
		t.Fatalf("TagHistory of a vetoed new tag = %+v, %v; want nothing", h, err)
	}
}

func testDeletedManifestLeavesIndex(t *testing.T, open Replicas[BuildsStore]) {
	s := one(t, open)
	ctx := t.Context()
	m := annotated("r", "m", time.Now(), map[string]string{builds.AnnotationRevision: "rev", builds.AnnotationVersion: "1"})
	put(t, s, m, "v1")
	if _, err := s.DeleteManifest(ctx, "r", m.Digest); err != nil {
		t.Fatal(err)
	}
	if bs, err := s.Builds(ctx, "rev"); err != nil || len(bs) != 0 {
		t.Fatalf("Builds after DeleteManifest = %+v, %v; want none", bs, err)
	}
	if vs, err := s.Versions(ctx, "r"); err != nil || len(vs) != 0 {
		t.Fatalf("Versions after DeleteManifest = %+v, %v; want none", vs, err)
	}
	// Recording it again indexes it again.
	put(t, s, m)
	if bs, err := s.Builds(ctx, "rev"); err != nil || len(bs) != 1 || len(bs[0].Tags) != 0 {
		t.Fatalf("Builds after recording again = %+v, %v; want it, untagged", bs, err)
	}
}

// testConcurrentTagMoves has two replicas move one tag at once, each to
// its own manifests: no move may be lost, so the history holds every one
// of them and ends where the tag points.
func testConcurrentTagMoves(t *testing.T, open Replicas[BuildsStore]) {
	ss := open(t, 2)
	ctx := t.Context()
	const per = 15
	errs := make([]error, len(ss))
	concurrently(len(ss), func(i int) {
		for j := range per {
			m := image("r", fmt.Sprintf("replica %d push %d", i, j))
			if err := ss[i].PutManifest(ctx, m, []string{"latest"}, nil); err != nil {
				errs[i] = err
				return
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i, s := range ss {
		h, err := s.TagHistory(ctx, "r", "latest")
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 2*per {
			t.Fatalf("replica %d: TagHistory has %d moves, want %d", i, len(h), 2*per)
		}
		seen := map[digest.Digest]bool{}
		for _, e := range h {
			seen[e.Digest] = true
		}
		for r := range ss {
			for j := range per {
				if dg := image("r", fmt.Sprintf("replica %d push %d", r, j)).Digest; !seen[dg] {
					t.Fatalf("replica %d: TagHistory lacks push %d of replica %d (lost update)", i, j, r)
				}
			}
		}
		if cur, err := s.ResolveTag(ctx, "r", "latest"); err != nil || cur != h[len(h)-1].Digest {
			t.Fatalf("replica %d: latest points at %s (%v), but its history ends at %s", i, cur, err, h[len(h)-1].Digest)
		}
	}
}
