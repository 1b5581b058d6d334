// Package metatest is the conformance suite for implementations of
// meta.Store. Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		metatest.Run(t, func(t *testing.T) meta.Store {
//			s, err := mybackend.Open(...)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
package metatest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/opencontainers/go-digest"
)

// Media types used by the suite. The store does not interpret them.
const (
	mtImage = "application/vnd.oci.image.manifest.v1+json"
	mtIndex = "application/vnd.oci.image.index.v1+json"
)

// Run runs the conformance suite against the store open returns. open is
// called once per subtest and must return a new, empty store that it
// closes when the subtest ends (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) meta.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s meta.Store)
	}{
		{"Ping", testPing},
		{"BlobLinks", testBlobLinks},
		{"BlobLinked", testBlobLinked},
		{"ManifestRoundTrip", testManifestRoundTrip},
		{"ManifestScopedToRepo", testManifestScopedToRepo},
		{"PutManifestIdempotent", testPutManifestIdempotent},
		{"PutManifestVerified", testPutManifestVerified},
		{"TagMove", testTagMove},
		{"TagScopedToRepo", testTagScopedToRepo},
		{"TagCheckVeto", testTagCheckVeto},
		{"TagCheckSeesCurrent", testTagCheckSeesCurrent},
		{"ConcurrentTagRace", testConcurrentTagRace},
		{"ConcurrentPutSameTag", testConcurrentPutSameTag},
		{"CanceledContextChangesNothing", testCanceledContext},
		{"DeleteManifest", testDeleteManifest},
		{"DeleteTag", testDeleteTag},
		{"TagsPagination", testTagsPagination},
		{"TagsRepositoryNotFound", testTagsRepositoryNotFound},
		{"RepositoriesPagination", testRepositoriesPagination},
		{"RepositoryExistence", testRepositoryExistence},
		{"NestedRepositoryNames", testNestedRepositoryNames},
		{"Referrers", testReferrers},
		{"ReferrersPagination", testReferrersPagination},
		{"Uploads", testUploads},
		{"StaleUploads", testStaleUploads},
		{"FarFutureInstants", testFarFutureInstants},
		{"FlushLater", testFlushLater},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			if s == nil {
				t.Fatal("open returned a nil store")
			}
			tt.fn(t, s)
		})
	}
}

// d returns a digest derived from s.
func d(s string) digest.Digest { return digest.FromString(s) }

// image returns an image manifest record in repo named after name, with
// config and layer blobs derived from name.
func image(repo, name string) meta.Manifest {
	return meta.Manifest{
		Repo:         repo,
		Digest:       d("manifest " + name),
		MediaType:    mtImage,
		Size:         int64(100 + len(name)),
		ArtifactType: "application/vnd.oci.image.config.v1+json",
		Blobs:        []digest.Digest{d("config " + name), d("layer " + name)},
		Created:      time.Now().Truncate(time.Millisecond),
	}
}

func put(t *testing.T, s meta.Store, m meta.Manifest, tags ...string) {
	t.Helper()
	if err := s.PutManifest(t.Context(), m, tags, nil); err != nil {
		t.Fatalf("PutManifest(%s, %s, %q): %v", m.Repo, m.Digest, tags, err)
	}
}

func link(t *testing.T, s meta.Store, repo string, dg digest.Digest, size int64) {
	t.Helper()
	if err := s.LinkBlob(t.Context(), repo, dg, size); err != nil {
		t.Fatalf("LinkBlob(%s, %s): %v", repo, dg, err)
	}
}

func wantNotFound(t *testing.T, err error, call string) {
	t.Helper()
	if !errors.Is(err, meta.ErrNotFound) {
		t.Errorf("%s: error = %v, want one wrapping meta.ErrNotFound", call, err)
	}
}

func wantResolve(t *testing.T, s meta.Store, repo, tag string, want digest.Digest) {
	t.Helper()
	got, err := s.ResolveTag(t.Context(), repo, tag)
	if err != nil {
		t.Errorf("ResolveTag(%s, %s): %v", repo, tag, err)
		return
	}
	if got != want {
		t.Errorf("ResolveTag(%s, %s) = %s, want %s", repo, tag, got, want)
	}
}

func wantNoTag(t *testing.T, s meta.Store, repo, tag string) {
	t.Helper()
	got, err := s.ResolveTag(t.Context(), repo, tag)
	if err == nil {
		t.Errorf("ResolveTag(%s, %s) = %s, want not found", repo, tag, got)
		return
	}
	wantNotFound(t, err, fmt.Sprintf("ResolveTag(%s, %s)", repo, tag))
}

func wantNoManifest(t *testing.T, s meta.Store, repo string, dg digest.Digest) {
	t.Helper()
	_, err := s.GetManifest(t.Context(), repo, dg)
	if err == nil {
		t.Errorf("GetManifest(%s, %s) succeeded, want not found", repo, dg)
		return
	}
	wantNotFound(t, err, fmt.Sprintf("GetManifest(%s, %s)", repo, dg))
}

func wantTags(t *testing.T, s meta.Store, repo string, want ...string) {
	t.Helper()
	got, err := s.Tags(t.Context(), repo, "", 1000)
	if err != nil {
		t.Errorf("Tags(%s): %v", repo, err)
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("Tags(%s) = %q, want %q", repo, got, want)
	}
}

func wantRepos(t *testing.T, s meta.Store, want ...string) {
	t.Helper()
	got, err := s.Repositories(t.Context(), "", 1000)
	if err != nil {
		t.Errorf("Repositories: %v", err)
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("Repositories = %q, want %q", got, want)
	}
}

func wantLinked(t *testing.T, s meta.Store, dg digest.Digest, want bool) {
	t.Helper()
	got, err := s.BlobLinked(t.Context(), dg)
	if err != nil {
		t.Errorf("BlobLinked(%s): %v", dg, err)
		return
	}
	if got != want {
		t.Errorf("BlobLinked(%s) = %v, want %v", dg, got, want)
	}
}

func testPing(t *testing.T, s meta.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testBlobLinks(t *testing.T, s meta.Store) {
	ctx := t.Context()
	b := d("blob")

	_, err := s.BlobSize(ctx, "r", b)
	wantNotFound(t, err, "BlobSize before LinkBlob")
	wantNotFound(t, s.UnlinkBlob(ctx, "r", b), "UnlinkBlob before LinkBlob")

	link(t, s, "r", b, 1234)
	link(t, s, "r", b, 1234) // linking twice is a no-op
	size, err := s.BlobSize(ctx, "r", b)
	if err != nil || size != 1234 {
		t.Errorf("BlobSize = %d, %v; want 1234, nil", size, err)
	}
	_, err = s.BlobSize(ctx, "other", b)
	wantNotFound(t, err, "BlobSize in another repository")
	_, err = s.BlobSize(ctx, "r", d("another blob"))
	wantNotFound(t, err, "BlobSize of another blob")

	link(t, s, "other", b, 1234)
	if err := s.UnlinkBlob(ctx, "r", b); err != nil {
		t.Fatalf("UnlinkBlob: %v", err)
	}
	// One unlink undoes both links: the second LinkBlob recorded nothing.
	_, err = s.BlobSize(ctx, "r", b)
	wantNotFound(t, err, "BlobSize after UnlinkBlob")
	wantNotFound(t, s.UnlinkBlob(ctx, "r", b), "second UnlinkBlob")
	// The link in the other repository is untouched.
	if size, err := s.BlobSize(ctx, "other", b); err != nil || size != 1234 {
		t.Errorf("BlobSize(other) = %d, %v; want 1234, nil", size, err)
	}

	// Sizes are recorded per blob, including zero and large values.
	link(t, s, "r", d("empty"), 0)
	link(t, s, "r", d("big"), 1<<40)
	if size, err := s.BlobSize(ctx, "r", d("empty")); err != nil || size != 0 {
		t.Errorf("BlobSize(empty) = %d, %v; want 0, nil", size, err)
	}
	if size, err := s.BlobSize(ctx, "r", d("big")); err != nil || size != 1<<40 {
		t.Errorf("BlobSize(big) = %d, %v; want %d, nil", size, err, int64(1<<40))
	}
}

func testBlobLinked(t *testing.T, s meta.Store) {
	ctx := t.Context()
	wantLinked(t, s, d("nothing"), false)

	b := d("blob")
	link(t, s, "r1", b, 10)
	link(t, s, "r2", b, 10)
	wantLinked(t, s, b, true)
	if err := s.UnlinkBlob(ctx, "r1", b); err != nil {
		t.Fatal(err)
	}
	wantLinked(t, s, b, true) // still linked in r2
	if err := s.UnlinkBlob(ctx, "r2", b); err != nil {
		t.Fatal(err)
	}
	wantLinked(t, s, b, false)

	// A manifest record names its own digest, its blobs and its children,
	// whether or not they are linked.
	m := image("r", "img")
	child := d("child manifest")
	m.Manifests = []digest.Digest{child}
	put(t, s, m)
	for _, dg := range []digest.Digest{m.Digest, m.Blobs[0], m.Blobs[1], child} {
		wantLinked(t, s, dg, true)
	}
	if _, err := s.DeleteManifest(ctx, "r", m.Digest); err != nil {
		t.Fatal(err)
	}
	for _, dg := range []digest.Digest{m.Digest, m.Blobs[0], m.Blobs[1], child} {
		wantLinked(t, s, dg, false)
	}
}

func testManifestRoundTrip(t *testing.T, s meta.Store) {
	ctx := t.Context()
	subject := d("subject")
	// Blobs are given out of lexical order, with a repeated layer (images
	// built with empty layers repeat them), to check order is kept.
	// [c, x, y, x] is never in sorted order, whatever the digests are.
	blobs := []digest.Digest{d("config"), d("layer 1"), d("layer 2"), d("layer 1")}
	m := meta.Manifest{
		Repo:         "library/app",
		Digest:       d("manifest"),
		MediaType:    mtImage,
		Size:         4321,
		ArtifactType: "application/vnd.example.sbom",
		Subject:      subject,
		Annotations:  map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "a": ""},
		Blobs:        blobs,
		Created:      time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC),
	}
	put(t, s, m)
	got, err := s.GetManifest(ctx, m.Repo, m.Digest)
	if err != nil {
		t.Fatalf("GetManifest: %v", err)
	}
	checkManifest(t, got, m)

	// An index with children, in descending order, and no blobs,
	// annotations or subject.
	children := []digest.Digest{d("child a"), d("child b"), d("child c")}
	slices.Sort(children)
	slices.Reverse(children)
	idx := meta.Manifest{
		Repo:      "library/app",
		Digest:    d("index"),
		MediaType: mtIndex,
		Size:      99,
		Manifests: children,
		Created:   time.Now().Truncate(time.Millisecond),
	}
	put(t, s, idx)
	got, err = s.GetManifest(ctx, idx.Repo, idx.Digest)
	if err != nil {
		t.Fatalf("GetManifest(index): %v", err)
	}
	checkManifest(t, got, idx)
	if got.Annotations != nil {
		t.Errorf("GetManifest(index).Annotations = %#v, want nil", got.Annotations)
	}
	if len(got.Blobs) != 0 {
		t.Errorf("GetManifest(index).Blobs = %v, want none", got.Blobs)
	}

	wantNoManifest(t, s, m.Repo, d("absent"))
}

func checkManifest(t *testing.T, got, want meta.Manifest) {
	t.Helper()
	if got.Repo != want.Repo || got.Digest != want.Digest || got.MediaType != want.MediaType ||
		got.Size != want.Size || got.ArtifactType != want.ArtifactType || got.Subject != want.Subject {
		t.Errorf("GetManifest = {Repo:%q Digest:%s MediaType:%q Size:%d ArtifactType:%q Subject:%q}, "+
			"want {Repo:%q Digest:%s MediaType:%q Size:%d ArtifactType:%q Subject:%q}",
			got.Repo, got.Digest, got.MediaType, got.Size, got.ArtifactType, got.Subject,
			want.Repo, want.Digest, want.MediaType, want.Size, want.ArtifactType, want.Subject)
	}
	if !maps.Equal(got.Annotations, want.Annotations) {
		t.Errorf("GetManifest(%s).Annotations = %v, want %v", want.Digest, got.Annotations, want.Annotations)
	}
	if !slices.Equal(got.Blobs, want.Blobs) {
		t.Errorf("GetManifest(%s).Blobs = %v, want %v", want.Digest, got.Blobs, want.Blobs)
	}
	if !slices.Equal(got.Manifests, want.Manifests) {
		t.Errorf("GetManifest(%s).Manifests = %v, want %v", want.Digest, got.Manifests, want.Manifests)
	}
	if !got.Created.Equal(want.Created) {
		t.Errorf("GetManifest(%s).Created = %v, want %v", want.Digest, got.Created, want.Created)
	}
}

func testManifestScopedToRepo(t *testing.T, s meta.Store) {
	ctx := t.Context()
	m := image("r1", "img")
	put(t, s, m)
	wantNoManifest(t, s, "r2", m.Digest)

	// The same manifest in two repositories is two records.
	m2 := m
	m2.Repo = "r2"
	put(t, s, m2)
	if _, err := s.DeleteManifest(ctx, "r1", m.Digest); err != nil {
		t.Fatal(err)
	}
	wantNoManifest(t, s, "r1", m.Digest)
	got, err := s.GetManifest(ctx, "r2", m.Digest)
	if err != nil {
		t.Fatalf("GetManifest(r2) after deleting from r1: %v", err)
	}
	checkManifest(t, got, m2)
}

func testPutManifestIdempotent(t *testing.T, s meta.Store) {
	ctx := t.Context()
	m := image("r", "img")
	m.Annotations = map[string]string{"k": "v"}
	put(t, s, m, "v1")

	// Recording it again is a no-op for the record, even if the caller
	// passes different fields, and still moves tags.
	again := m
	again.Size = 1
	again.Annotations = map[string]string{"other": "x"}
	again.Blobs = []digest.Digest{d("config img"), d("layer img"), d("extra")}
	again.Created = m.Created.Add(time.Hour)
	put(t, s, again, "v2")

	got, err := s.GetManifest(ctx, "r", m.Digest)
	if err != nil {
		t.Fatalf("GetManifest: %v", err)
	}
	checkManifest(t, got, m)
	wantResolve(t, s, "r", "v1", m.Digest)
	wantResolve(t, s, "r", "v2", m.Digest)
	wantTags(t, s, "r", "v1", "v2")
	wantLinked(t, s, d("extra"), false)
}

func testTagMove(t *testing.T, s meta.Store) {
	ctx := t.Context()
	m1, m2 := image("r", "one"), image("r", "two")
	put(t, s, m1, "latest", "v1")
	wantResolve(t, s, "r", "latest", m1.Digest)
	put(t, s, m2, "latest")
	wantResolve(t, s, "r", "latest", m2.Digest)
	wantResolve(t, s, "r", "v1", m1.Digest)
	wantTags(t, s, "r", "latest", "v1")

	// The old manifest stays.
	if _, err := s.GetManifest(ctx, "r", m1.Digest); err != nil {
		t.Errorf("GetManifest(m1) after its tag moved: %v", err)
	}
	// Moving back works too.
	put(t, s, m1, "latest")
	wantResolve(t, s, "r", "latest", m1.Digest)
	wantNoTag(t, s, "r", "absent")
	wantNoTag(t, s, "absent", "latest")
}

func testTagScopedToRepo(t *testing.T, s meta.Store) {
	m1, m2 := image("r1", "one"), image("r2", "two")
	put(t, s, m1, "latest")
	put(t, s, m2, "latest")
	wantResolve(t, s, "r1", "latest", m1.Digest)
	wantResolve(t, s, "r2", "latest", m2.Digest)
	put(t, s, m1, "only-r1")
	wantTags(t, s, "r1", "latest", "only-r1")
	wantTags(t, s, "r2", "latest")
}

var errVeto = errors.New("metatest: tag check veto")

func testTagCheckVeto(t *testing.T, s meta.Store) {
	ctx := t.Context()
	m1 := image("r", "one")
	put(t, s, m1, "stable")

	m2 := image("r", "two")
	veto := func(tag string, current, next digest.Digest) error {
		if tag == "stable" {
			return fmt.Errorf("refusing to move %s from %s: %w", tag, current, errVeto)
		}
		return nil
	}
	// "new" is listed first, so a backend that applies tags one by one has
	// already moved it when the check vetoes "stable".
	err := s.PutManifest(ctx, m2, []string{"new", "stable"}, veto)
	if !errors.Is(err, errVeto) {
		t.Fatalf("PutManifest with vetoed tag: error = %v, want one wrapping the check's error", err)
	}
	wantNoManifest(t, s, "r", m2.Digest)
	wantNoTag(t, s, "r", "new")
	wantResolve(t, s, "r", "stable", m1.Digest)
	wantTags(t, s, "r", "stable")
	for _, dg := range append([]digest.Digest{m2.Digest}, m2.Blobs...) {
		wantLinked(t, s, dg, false)
	}

	// A veto in a new repository leaves no repository behind.
	m3 := image("fresh", "three")
	err = s.PutManifest(ctx, m3, []string{"stable"}, veto)
	if !errors.Is(err, errVeto) {
		t.Fatalf("PutManifest in a new repository with vetoed tag: error = %v, want errVeto", err)
	}
	wantNoManifest(t, s, "fresh", m3.Digest)
	wantRepos(t, s, "r")
	_, err = s.Tags(ctx, "fresh", "", 10)
	wantNotFound(t, err, "Tags of a repository whose only push was vetoed")

	// Vetoing the move of a tag on an existing manifest leaves the tag.
	err = s.PutManifest(ctx, m1, []string{"stable"}, func(string, digest.Digest, digest.Digest) error { return errVeto })
	if !errors.Is(err, errVeto) {
		t.Fatalf("PutManifest of an existing manifest with vetoed tag: error = %v, want errVeto", err)
	}
	wantResolve(t, s, "r", "stable", m1.Digest)

	// The same push without the vetoed tag succeeds.
	if err := s.PutManifest(ctx, m2, []string{"new"}, veto); err != nil {
		t.Fatalf("PutManifest approved by check: %v", err)
	}
	wantResolve(t, s, "r", "new", m2.Digest)
}

type checkCall struct {
	Tag           string
	Current, Next digest.Digest
}

func testTagCheckSeesCurrent(t *testing.T, s meta.Store) {
	ctx := t.Context()
	var calls []checkCall
	record := func(tag string, current, next digest.Digest) error {
		calls = append(calls, checkCall{tag, current, next})
		return nil
	}
	step := func(m meta.Manifest, tags []string, want ...checkCall) {
		t.Helper()
		calls = nil
		if err := s.PutManifest(ctx, m, tags, record); err != nil {
			t.Fatalf("PutManifest(%s, %q): %v", m.Digest, tags, err)
		}
		sort.Slice(calls, func(i, j int) bool { return calls[i].Tag < calls[j].Tag })
		if !slices.Equal(calls, want) {
			t.Errorf("PutManifest(%s, %q) checks = %+v, want %+v", m.Digest, tags, calls, want)
		}
	}
	m1, m2 := image("r", "one"), image("r", "two")
	step(m1, []string{"t"}, checkCall{"t", "", m1.Digest})
	step(m2, []string{"t", "u"}, checkCall{"t", m1.Digest, m2.Digest}, checkCall{"u", "", m2.Digest})
	step(m2, []string{"t"}, checkCall{"t", m2.Digest, m2.Digest})
	step(m1, []string{"u"}, checkCall{"u", m2.Digest, m1.Digest})
	step(m1, nil)

	// The current value is per repository.
	m3 := image("other", "three")
	step(m3, []string{"t"}, checkCall{"t", "", m3.Digest})

	// After a tag is deleted, the check sees it as new again.
	if err := s.DeleteTag(ctx, "r", "t"); err != nil {
		t.Fatal(err)
	}
	step(m1, []string{"t"}, checkCall{"t", "", m1.Digest})
}

var errRefused = errors.New("metatest: tag is immutable")

func testConcurrentTagRace(t *testing.T, s meta.Store) {
	ctx := t.Context()
	const n = 16
	// Immutable tags: a tag may be created, or re-pointed at the digest it
	// already has, but not moved.
	immutable := func(tag string, current, next digest.Digest) error {
		if current != "" && current != next {
			return fmt.Errorf("tag %s points at %s: %w", tag, current, errRefused)
		}
		return nil
	}
	ms := make([]meta.Manifest, n)
	errs := make([]error, n)
	for i := range ms {
		ms[i] = image("r", fmt.Sprint("racer ", i))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() {
			<-start
			errs[i] = s.PutManifest(ctx, ms[i], []string{"race"}, immutable)
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("PutManifest %d and %d both won the race for a new immutable tag", winner, i)
			}
			winner = i
		case !errors.Is(err, errRefused):
			t.Errorf("PutManifest %d: error = %v, want success or the check's error", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no PutManifest won the race for a new tag")
	}
	wantResolve(t, s, "r", "race", ms[winner].Digest)
	for i, m := range ms {
		if i == winner {
			if _, err := s.GetManifest(ctx, "r", m.Digest); err != nil {
				t.Errorf("GetManifest(winner): %v", err)
			}
			continue
		}
		if errs[i] != nil {
			wantNoManifest(t, s, "r", m.Digest)
		}
	}
	wantTags(t, s, "r", "race")
}

func testConcurrentPutSameTag(t *testing.T, s meta.Store) {
	ctx := t.Context()
	const n = 16
	ms := make([]meta.Manifest, n)
	errs := make([]error, n)
	for i := range ms {
		ms[i] = image("r", fmt.Sprint("pusher ", i))
	}
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() { errs[i] = s.PutManifest(ctx, ms[i], []string{"latest", fmt.Sprint("v", i)}, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("PutManifest %d: %v", i, err)
		}
	}
	got, err := s.ResolveTag(ctx, "r", "latest")
	if err != nil {
		t.Fatalf("ResolveTag(latest): %v", err)
	}
	if !slices.ContainsFunc(ms, func(m meta.Manifest) bool { return m.Digest == got }) {
		t.Errorf("ResolveTag(latest) = %s, not one of the pushed manifests", got)
	}
	for i, m := range ms {
		if _, err := s.GetManifest(ctx, "r", m.Digest); err != nil {
			t.Errorf("GetManifest %d: %v", i, err)
		}
		wantResolve(t, s, "r", fmt.Sprint("v", i), m.Digest)
	}
}

func testCanceledContext(t *testing.T, s meta.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m := image("r", "img")
	if err := s.PutManifest(ctx, m, []string{"latest"}, nil); err == nil {
		t.Error("PutManifest with a canceled context succeeded")
	}
	if err := s.LinkBlob(ctx, "r", d("blob"), 1); err == nil {
		t.Error("LinkBlob with a canceled context succeeded")
	}
	wantNoManifest(t, s, "r", m.Digest)
	wantNoTag(t, s, "r", "latest")
	_, err := s.BlobSize(t.Context(), "r", d("blob"))
	wantNotFound(t, err, "BlobSize after LinkBlob with a canceled context")
	wantRepos(t, s)
}

func testDeleteManifest(t *testing.T, s meta.Store) {
	ctx := t.Context()
	m1, m2, m3 := image("r", "one"), image("r", "two"), image("r", "untagged")
	put(t, s, m1, "b", "a", "c")
	put(t, s, m2, "other")
	put(t, s, m3)
	m1r2 := m1
	m1r2.Repo = "r2"
	put(t, s, m1r2, "a")

	removed, err := s.DeleteManifest(ctx, "r", m1.Digest)
	if err != nil {
		t.Fatalf("DeleteManifest: %v", err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(removed, want) {
		t.Errorf("DeleteManifest removed tags %q, want %q", removed, want)
	}
	wantNoManifest(t, s, "r", m1.Digest)
	for _, tag := range []string{"a", "b", "c"} {
		wantNoTag(t, s, "r", tag)
	}
	wantResolve(t, s, "r", "other", m2.Digest)
	wantTags(t, s, "r", "other")
	// The same manifest in another repository is untouched.
	wantResolve(t, s, "r2", "a", m1.Digest)
	wantLinked(t, s, m1.Digest, true)

	removed, err = s.DeleteManifest(ctx, "r", m3.Digest)
	if err != nil {
		t.Fatalf("DeleteManifest(untagged): %v", err)
	}
	if len(removed) != 0 {
		t.Errorf("DeleteManifest(untagged) removed tags %q, want none", removed)
	}
	wantNoManifest(t, s, "r", m3.Digest)

	_, err = s.DeleteManifest(ctx, "r", m1.Digest)
	wantNotFound(t, err, "second DeleteManifest")
	_, err = s.DeleteManifest(ctx, "r", d("absent"))
	wantNotFound(t, err, "DeleteManifest of an absent manifest")
	_, err = s.DeleteManifest(ctx, "absent", m2.Digest)
	wantNotFound(t, err, "DeleteManifest in an absent repository")
	wantResolve(t, s, "r", "other", m2.Digest)

	// A deleted manifest can be pushed again, without its old tags.
	put(t, s, m1)
	wantTags(t, s, "r", "other")
}

func testDeleteTag(t *testing.T, s meta.Store) {
	ctx := t.Context()
	m := image("r", "img")
	put(t, s, m, "a", "b")
	if err := s.DeleteTag(ctx, "r", "a"); err != nil {
		t.Fatalf("DeleteTag: %v", err)
	}
	wantNoTag(t, s, "r", "a")
	wantResolve(t, s, "r", "b", m.Digest)
	wantTags(t, s, "r", "b")
	if _, err := s.GetManifest(ctx, "r", m.Digest); err != nil {
		t.Errorf("GetManifest after DeleteTag: %v", err)
	}
	wantNotFound(t, s.DeleteTag(ctx, "r", "a"), "second DeleteTag")
	wantNotFound(t, s.DeleteTag(ctx, "absent", "b"), "DeleteTag in an absent repository")

	// Deleting the last tag leaves the repository with its manifest.
	if err := s.DeleteTag(ctx, "r", "b"); err != nil {
		t.Fatalf("DeleteTag(b): %v", err)
	}
	wantTags(t, s, "r")
	wantRepos(t, s, "r")
}

// after returns the entries of sorted after last, at most n.
func after(sorted []string, last string, n int) []string {
	out := []string{}
	for _, s := range sorted {
		if s > last && len(out) < n {
			out = append(out, s)
		}
	}
	return out
}

// checkPages checks list against every combination of interesting last and
// n values, and that paging through with each page size yields all.
func checkPages(t *testing.T, what string, all []string, extraLast []string, list func(last string, n int) ([]string, error)) {
	t.Helper()
	want := slices.Clone(all)
	sort.Strings(want) // byte order
	got, err := list("", len(all)+10)
	if err != nil {
		t.Fatalf("%s(\"\", %d): %v", what, len(all)+10, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q (byte order)", what, got, want)
	}
	lasts := append([]string{""}, want...)
	lasts = append(lasts, extraLast...)
	for _, last := range lasts {
		for _, n := range []int{0, 1, 2, 3, len(all) - 1, len(all), len(all) + 1, 1000} {
			got, err := list(last, n)
			if err != nil {
				t.Errorf("%s(%q, %d): %v", what, last, n, err)
				continue
			}
			if w := after(want, last, n); !slices.Equal(got, w) {
				t.Errorf("%s(%q, %d) = %q, want %q", what, last, n, got, w)
			}
		}
	}
	for _, size := range []int{1, 2, 3} {
		var paged []string
		last := ""
		for range len(all) + 2 {
			page, err := list(last, size)
			if err != nil {
				t.Fatalf("%s(%q, %d): %v", what, last, size, err)
			}
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			last = page[len(page)-1]
		}
		if !slices.Equal(paged, want) {
			t.Errorf("%s paged by %d = %q, want %q", what, size, paged, want)
		}
	}
}

func testTagsPagination(t *testing.T, s meta.Store) {
	ctx := t.Context()
	// Byte order differs from case-insensitive and locale-aware orders on
	// these: upper case before lower case, '-' < '.' < digits < '_'.
	tags := []string{"latest", "v1.10", "v1.2", "a_1", "a1", "a.1", "a-1", "a", "B", "Z9", "1.0"}
	m1, m2 := image("r", "one"), image("r", "two")
	put(t, s, m1, tags[:5]...)
	put(t, s, m2, tags[5:]...)
	// Tags of another repository must not show up.
	put(t, s, image("r2", "three"), "b", "zz")
	extra := []string{"0", "A", "a0", "b", "v1.1", "zzz", "~"}
	checkPages(t, "Tags(r)", tags, extra, func(last string, n int) ([]string, error) {
		return s.Tags(ctx, "r", last, n)
	})

	// A repository with manifests but no tags lists none.
	put(t, s, image("untagged", "four"))
	got, err := s.Tags(ctx, "untagged", "", 10)
	if err != nil || len(got) != 0 {
		t.Errorf("Tags(untagged) = %q, %v; want none, nil", got, err)
	}
}

func testTagsRepositoryNotFound(t *testing.T, s meta.Store) {
	ctx := t.Context()
	_, err := s.Tags(ctx, "absent", "", 10)
	wantNotFound(t, err, "Tags of an absent repository")

	// A repository holding only a blob exists and has no tags.
	link(t, s, "blobs-only", d("blob"), 1)
	got, err := s.Tags(ctx, "blobs-only", "", 10)
	if err != nil || len(got) != 0 {
		t.Errorf("Tags(blobs-only) = %q, %v; want none, nil", got, err)
	}
}

func testRepositoriesPagination(t *testing.T, s meta.Store) {
	ctx := t.Context()
	if got, err := s.Repositories(ctx, "", 10); err != nil || len(got) != 0 {
		t.Errorf("Repositories of an empty store = %q, %v; want none, nil", got, err)
	}
	// Byte order: '-' < '.' < '/' < digits < '_' < letters.
	repos := []string{"b", "ab", "a_b", "a/b/d", "a/b/c", "a.b", "a-b", "a0", "library/ubuntu", "library-x"}
	for i, r := range repos {
		if i%2 == 0 {
			link(t, s, r, d("blob "+r), 1)
		} else {
			put(t, s, image(r, r), "latest")
		}
	}
	extra := []string{"a", "a/", "a/b", "a/b/c/d", "library", "z"}
	checkPages(t, "Repositories", repos, extra, func(last string, n int) ([]string, error) {
		return s.Repositories(ctx, last, n)
	})
}

func testRepositoryExistence(t *testing.T, s meta.Store) {
	ctx := t.Context()
	b := d("blob")
	m := image("r", "img")

	// Blob, then manifest; unlink the blob, then delete the manifest.
	link(t, s, "r", b, 1)
	wantRepos(t, s, "r")
	wantTags(t, s, "r")
	put(t, s, m, "latest")
	if err := s.UnlinkBlob(ctx, "r", b); err != nil {
		t.Fatal(err)
	}
	wantRepos(t, s, "r")
	wantTags(t, s, "r", "latest")
	if err := s.DeleteTag(ctx, "r", "latest"); err != nil {
		t.Fatal(err)
	}
	wantRepos(t, s, "r") // the manifest is still there
	if _, err := s.DeleteManifest(ctx, "r", m.Digest); err != nil {
		t.Fatal(err)
	}
	wantRepos(t, s)
	_, err := s.Tags(ctx, "r", "", 10)
	wantNotFound(t, err, "Tags after the repository emptied")

	// Manifest, then blob; delete the manifest, then unlink the blob.
	put(t, s, m, "latest")
	wantRepos(t, s, "r")
	link(t, s, "r", b, 1)
	if _, err := s.DeleteManifest(ctx, "r", m.Digest); err != nil {
		t.Fatal(err)
	}
	wantRepos(t, s, "r")
	wantTags(t, s, "r")
	if err := s.UnlinkBlob(ctx, "r", b); err != nil {
		t.Fatal(err)
	}
	wantRepos(t, s)
	_, err = s.Tags(ctx, "r", "", 10)
	wantNotFound(t, err, "Tags after the repository emptied")

	// Failed deletes do not remove a repository.
	link(t, s, "r", b, 1)
	_, err = s.DeleteManifest(ctx, "r", m.Digest)
	wantNotFound(t, err, "DeleteManifest of an absent manifest")
	wantNotFound(t, s.UnlinkBlob(ctx, "r", d("absent")), "UnlinkBlob of an absent blob")
	wantRepos(t, s, "r")

	// Emptying one repository leaves the others.
	link(t, s, "s", b, 1)
	if err := s.UnlinkBlob(ctx, "r", b); err != nil {
		t.Fatal(err)
	}
	wantRepos(t, s, "s")
}

func testNestedRepositoryNames(t *testing.T, s meta.Store) {
	ctx := t.Context()
	deep := image("a/b/c", "deep")
	put(t, s, deep, "latest")
	link(t, s, "a/b/c/d", d("blob"), 1)
	wantRepos(t, s, "a/b/c", "a/b/c/d")
	for _, parent := range []string{"a", "a/b", "a/b/"} {
		_, err := s.Tags(ctx, parent, "", 10)
		wantNotFound(t, err, fmt.Sprintf("Tags(%q) of a parent of a repository", parent))
		wantNoTag(t, s, parent, "latest")
		wantNoManifest(t, s, parent, deep.Digest)
	}
	wantTags(t, s, "a/b/c", "latest")
	wantTags(t, s, "a/b/c/d")
	wantResolve(t, s, "a/b/c", "latest", deep.Digest)

	if _, err := s.DeleteManifest(ctx, "a/b/c", deep.Digest); err != nil {
		t.Fatal(err)
	}
	wantRepos(t, s, "a/b/c/d")
}

func testReferrers(t *testing.T, s meta.Store) {
	ctx := t.Context()
	subject := image("r", "subject")
	put(t, s, subject, "latest")

	ref := func(repo, name, artifactType string, annotations map[string]string) meta.Manifest {
		m := image(repo, name)
		m.ArtifactType = artifactType
		m.Subject = subject.Digest
		m.Annotations = annotations
		return m
	}
	sig1 := ref("r", "sig1", "application/vnd.example.signature", nil)
	sig2 := ref("r", "sig2", "application/vnd.example.signature", map[string]string{"k": "v"})
	sbom := ref("r", "sbom", "application/vnd.example.sbom", map[string]string{"org.example": "1"})
	elsewhere := ref("r2", "sig3", "application/vnd.example.signature", nil)
	otherSubject := ref("r", "other", "application/vnd.example.signature", nil)
	otherSubject.Subject = d("other subject")
	for _, m := range []meta.Manifest{sig1, sig2, sbom, elsewhere, otherSubject} {
		put(t, s, m)
	}
	desc := func(m meta.Manifest) meta.Descriptor {
		return meta.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size,
			ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	}
	byDigest := func(ms ...meta.Manifest) []meta.Descriptor {
		out := []meta.Descriptor{}
		for _, m := range ms {
			out = append(out, desc(m))
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
		return out
	}
	check := func(repo string, dg digest.Digest, artifactType string, want []meta.Descriptor) {
		t.Helper()
		got, err := s.Referrers(ctx, repo, dg, artifactType, "", 1000)
		if err != nil {
			t.Errorf("Referrers(%s, %s, %q): %v", repo, dg, artifactType, err)
			return
		}
		// Page by page, two at a time, the same list.
		var paged []meta.Descriptor
		for last := digest.Digest(""); ; {
			page, err := s.Referrers(ctx, repo, dg, artifactType, last, 2)
			if err != nil {
				t.Errorf("Referrers(%s, %s, %q, after %s): %v", repo, dg, artifactType, last, err)
				return
			}
			paged = append(paged, page...)
			if len(page) < 2 {
				break
			}
			last = page[len(page)-1].Digest
		}
		if len(paged) != len(got) {
			t.Errorf("Referrers(%s, %s, %q) paged by 2 = %d entries, in one page %d", repo, dg, artifactType, len(paged), len(got))
		}
		for i := range paged {
			if i < len(got) && paged[i].Digest != got[i].Digest {
				t.Errorf("Referrers(%s, %s, %q) paged by 2: [%d] = %s, in one page %s", repo, dg, artifactType, i, paged[i].Digest, got[i].Digest)
			}
		}
		if len(got) != len(want) {
			t.Errorf("Referrers(%s, %s, %q) = %+v, want %+v", repo, dg, artifactType, got, want)
			return
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.MediaType != w.MediaType || g.Digest != w.Digest || g.Size != w.Size ||
				g.ArtifactType != w.ArtifactType || !maps.Equal(g.Annotations, w.Annotations) {
				t.Errorf("Referrers(%s, %s, %q)[%d] = %+v, want %+v", repo, dg, artifactType, i, got[i], want[i])
			}
		}
	}

	check("r", subject.Digest, "", byDigest(sig1, sig2, sbom))
	check("r", subject.Digest, "application/vnd.example.signature", byDigest(sig1, sig2))
	check("r", subject.Digest, "application/vnd.example.sbom", byDigest(sbom))
	check("r", subject.Digest, "application/vnd.example.none", nil)
	check("r2", subject.Digest, "", byDigest(elsewhere))
	check("r", d("other subject"), "", byDigest(otherSubject))
	check("r", sig1.Digest, "", nil)
	check("r", d("no such subject"), "", nil)

	removed, err := s.DeleteManifest(ctx, "r", sig2.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 {
		t.Errorf("DeleteManifest(sig2) removed tags %q, want none", removed)
	}
	check("r", subject.Digest, "", byDigest(sig1, sbom))

	// Referrers survive their subject's deletion (they may be pushed
	// before it, too).
	if _, err := s.DeleteManifest(ctx, "r", subject.Digest); err != nil {
		t.Fatal(err)
	}
	check("r", subject.Digest, "", byDigest(sig1, sbom))
}

// testReferrersPagination: a subject with thousands of referrers is listed
// in pages, in digest order, each referrer exactly once, with the
// artifactType filter applied on every page.
func testReferrersPagination(t *testing.T, s meta.Store) {
	ctx := t.Context()
	subject := image("many", "subject")
	put(t, s, subject, "latest")
	const total = 5000
	want := map[digest.Digest]string{}
	for i := range total {
		m := image("many", fmt.Sprintf("ref-%d", i))
		m.Subject = subject.Digest
		m.ArtifactType = "application/vnd.example.sig"
		if i%5 == 0 {
			m.ArtifactType = "application/vnd.example.sbom"
		}
		put(t, s, m)
		want[m.Digest] = m.ArtifactType
	}
	walk := func(artifactType string, n int) []meta.Descriptor {
		t.Helper()
		var all []meta.Descriptor
		last := digest.Digest("")
		for pages := 0; ; pages++ {
			if pages > total {
				t.Fatal("paging does not end")
			}
			page, err := s.Referrers(ctx, "many", subject.Digest, artifactType, last, n)
			if err != nil {
				t.Fatalf("Referrers(after %s, %d): %v", last, n, err)
			}
			if len(page) > n {
				t.Fatalf("Referrers(n=%d) returned %d", n, len(page))
			}
			all = append(all, page...)
			if len(page) < n {
				return all
			}
			last = page[len(page)-1].Digest
		}
	}
	for _, tc := range []struct {
		artifactType string
		n, count     int
	}{{"", 1000, total}, {"", 333, total}, {"application/vnd.example.sbom", 97, total / 5}, {"application/vnd.example.sig", 1000, total - total/5}} {
		all := walk(tc.artifactType, tc.n)
		if len(all) != tc.count {
			t.Errorf("artifactType %q by %d: %d referrers, want %d", tc.artifactType, tc.n, len(all), tc.count)
		}
		seen := map[digest.Digest]bool{}
		for i, x := range all {
			if seen[x.Digest] {
				t.Fatalf("artifactType %q by %d: %s listed twice", tc.artifactType, tc.n, x.Digest)
			}
			seen[x.Digest] = true
			if i > 0 && all[i-1].Digest >= x.Digest {
				t.Fatalf("artifactType %q by %d: out of digest order at %d", tc.artifactType, tc.n, i)
			}
			if at, ok := want[x.Digest]; !ok || (tc.artifactType != "" && at != tc.artifactType) {
				t.Fatalf("artifactType %q by %d: unexpected referrer %s (%s)", tc.artifactType, tc.n, x.Digest, x.ArtifactType)
			}
		}
	}
	if got, err := s.Referrers(ctx, "many", subject.Digest, "", "", 0); err != nil || len(got) != 0 {
		t.Errorf("Referrers(n=0) = %d entries, %v; want none", len(got), err)
	}
}

func sameUpload(t *testing.T, call string, got, want meta.Upload) {
	t.Helper()
	if got.ID != want.ID || got.Repo != want.Repo || got.Offset != want.Offset ||
		!got.Created.Equal(keep(want.Created)) || !got.Updated.Equal(keep(want.Updated)) {
		t.Errorf("%s = %+v, want %+v", call, got, want)
	}
}

func testUploads(t *testing.T, s meta.Store) {
	ctx := t.Context()
	_, err := s.GetUpload(ctx, "u1")
	wantNotFound(t, err, "GetUpload before CreateUpload")
	wantNotFound(t, s.UpdateUpload(ctx, "u1", 1), "UpdateUpload before CreateUpload")
	wantNotFound(t, s.DeleteUpload(ctx, "u1"), "DeleteUpload before CreateUpload")

	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	u1 := meta.Upload{ID: "u1", Repo: "a/b", Offset: 0, Created: t0, Updated: t0}
	u2 := meta.Upload{ID: "u2", Repo: "c", Offset: 7, Created: t0, Updated: t0.Add(time.Second)}
	for _, u := range []meta.Upload{u1, u2} {
		if err := s.CreateUpload(ctx, u); err != nil {
			t.Fatalf("CreateUpload(%s): %v", u.ID, err)
		}
	}
	got, err := s.GetUpload(ctx, "u1")
	if err != nil {
		t.Fatalf("GetUpload: %v", err)
	}
	sameUpload(t, "GetUpload(u1)", got, u1)
	got, err = s.GetUpload(ctx, "u2")
	if err != nil {
		t.Fatalf("GetUpload(u2): %v", err)
	}
	sameUpload(t, "GetUpload(u2)", got, u2)

	// Upload sessions do not create repositories.
	wantRepos(t, s)

	// An ID is used once: a second CreateUpload fails and changes nothing.
	dup := meta.Upload{ID: "u1", Repo: "elsewhere", Offset: 99, Created: t0, Updated: t0}
	if err := s.CreateUpload(ctx, dup); err == nil {
		t.Error("CreateUpload with an existing ID succeeded")
	}
	got, err = s.GetUpload(ctx, "u1")
	if err != nil {
		t.Fatalf("GetUpload after duplicate CreateUpload: %v", err)
	}
	sameUpload(t, "GetUpload(u1) after duplicate CreateUpload", got, u1)

	before := time.Now().Add(-time.Millisecond)
	if err := s.UpdateUpload(ctx, "u1", 5<<30); err != nil {
		t.Fatalf("UpdateUpload: %v", err)
	}
	got, err = s.GetUpload(ctx, "u1")
	if err != nil {
		t.Fatalf("GetUpload after UpdateUpload: %v", err)
	}
	if got.Offset != 5<<30 {
		t.Errorf("GetUpload after UpdateUpload: Offset = %d, want %d", got.Offset, int64(5<<30))
	}
	if got.Updated.Before(before) {
		t.Errorf("GetUpload after UpdateUpload: Updated = %v, want at least %v", got.Updated, before)
	}
	if got.ID != u1.ID || got.Repo != u1.Repo || !got.Created.Equal(u1.Created) {
		t.Errorf("GetUpload after UpdateUpload = %+v, want ID, Repo and Created of %+v", got, u1)
	}
	if got, err := s.GetUpload(ctx, "u2"); err != nil || got.Offset != 7 {
		t.Errorf("GetUpload(u2) after updating u1 = %+v, %v; want offset 7", got, err)
	}

	if err := s.DeleteUpload(ctx, "u1"); err != nil {
		t.Fatalf("DeleteUpload: %v", err)
	}
	_, err = s.GetUpload(ctx, "u1")
	wantNotFound(t, err, "GetUpload after DeleteUpload")
	wantNotFound(t, s.DeleteUpload(ctx, "u1"), "second DeleteUpload")
	wantNotFound(t, s.UpdateUpload(ctx, "u1", 1), "UpdateUpload after DeleteUpload")
	if _, err := s.GetUpload(ctx, "u2"); err != nil {
		t.Errorf("GetUpload(u2) after deleting u1: %v", err)
	}
}

func testStaleUploads(t *testing.T, s meta.Store) {
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	old := meta.Upload{ID: "old", Repo: "r", Offset: 1, Created: now.Add(-3 * time.Hour), Updated: now.Add(-2 * time.Hour)}
	mid := meta.Upload{ID: "mid", Repo: "r", Offset: 2, Created: now.Add(-3 * time.Hour), Updated: now.Add(-time.Hour)}
	fresh := meta.Upload{ID: "fresh", Repo: "r", Offset: 3, Created: now, Updated: now}
	for _, u := range []meta.Upload{fresh, old, mid} {
		if err := s.CreateUpload(ctx, u); err != nil {
			t.Fatalf("CreateUpload(%s): %v", u.ID, err)
		}
	}
	check := func(before time.Time, want ...meta.Upload) {
		t.Helper()
		got, err := s.StaleUploads(ctx, before)
		if err != nil {
			t.Errorf("StaleUploads(%v): %v", before, err)
			return
		}
		sort.Slice(got, func(i, j int) bool { return got[i].ID < got[j].ID })
		sort.Slice(want, func(i, j int) bool { return want[i].ID < want[j].ID })
		if len(got) != len(want) {
			t.Errorf("StaleUploads(now%+v) = %+v, want %+v", before.Sub(now), got, want)
			return
		}
		for i := range got {
			sameUpload(t, fmt.Sprintf("StaleUploads(now%+v)[%d]", before.Sub(now), i), got[i], want[i])
		}
	}
	check(now.Add(-4 * time.Hour))
	check(now.Add(-90*time.Minute), old)
	check(now.Add(-30*time.Minute), old, mid)
	check(mid.Updated, old) // strictly before
	check(now.Add(time.Minute), old, mid, fresh)

	// Progress on an upload makes it fresh again.
	if err := s.UpdateUpload(ctx, "old", 10); err != nil {
		t.Fatal(err)
	}
	got, err := s.StaleUploads(ctx, now.Add(-30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "mid" {
		t.Errorf("StaleUploads after UpdateUpload(old) = %+v, want only mid", got)
	}

	if err := s.DeleteUpload(ctx, "mid"); err != nil {
		t.Fatal(err)
	}
	check(now.Add(-30 * time.Minute))
}

// testFlushLater: writes under meta.FlushLater (the metadata of a change
// the audit log's commit flushes) keep every other rule: they are
// visible at once, atomic (a refused or cancelled one changes nothing),
// and the writes after them, with or without FlushLater, work as usual.
func testFlushLater(t *testing.T, s meta.Store) {
	ctx := meta.FlushLater(t.Context())
	if !meta.FlushesLater(ctx) || meta.FlushesLater(t.Context()) {
		t.Fatal("FlushesLater does not report FlushLater's context")
	}
	if err := s.LinkBlob(ctx, "r", d("blob"), 3); err != nil {
		t.Fatalf("LinkBlob under FlushLater: %v", err)
	}
	if n, err := s.BlobSize(t.Context(), "r", d("blob")); err != nil || n != 3 {
		t.Fatalf("BlobSize after LinkBlob under FlushLater = %d, %v; want 3", n, err)
	}
	m := image("r", "img")
	if err := s.PutManifest(ctx, m, []string{"latest"}, nil); err != nil {
		t.Fatalf("PutManifest under FlushLater: %v", err)
	}
	if got, err := s.ResolveTag(t.Context(), "r", "latest"); err != nil || got != m.Digest {
		t.Fatalf("ResolveTag after a put under FlushLater = %s, %v; want %s", got, err, m.Digest)
	}

	// A vetoed put changes nothing.
	m2 := image("r", "other")
	veto := func(tag string, current, next digest.Digest) error { return errVeto }
	if err := s.PutManifest(ctx, m2, []string{"latest"}, veto); !errors.Is(err, errVeto) {
		t.Fatalf("vetoed PutManifest under FlushLater: %v, want the veto", err)
	}
	wantNoManifest(t, s, "r", m2.Digest)
	if got, _ := s.ResolveTag(t.Context(), "r", "latest"); got != m.Digest {
		t.Fatalf("latest moved to %s by a vetoed put", got)
	}

	// A cancelled one too.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.LinkBlob(cctx, "r2", d("blob"), 3); err == nil {
		t.Fatal("LinkBlob under FlushLater with a cancelled context succeeded")
	}
	_, err := s.BlobSize(t.Context(), "r2", d("blob"))
	wantNotFound(t, err, "BlobSize after a cancelled LinkBlob under FlushLater")

	// Uploads, deletions, and the ordinary writes after them.
	// (The registry writes a session's bookkeeping under FlushLater.)
	now := time.Now().Truncate(time.Millisecond)
	if err := s.CreateUpload(ctx, meta.Upload{ID: "u", Repo: "r", Created: now, Updated: now}); err != nil {
		t.Fatalf("CreateUpload under FlushLater: %v", err)
	}
	if err := s.CreateUpload(ctx, meta.Upload{ID: "u", Repo: "r"}); err == nil {
		t.Fatal("second CreateUpload of one ID under FlushLater succeeded")
	}
	if err := s.UpdateUpload(ctx, "u", 5); err != nil {
		t.Fatalf("UpdateUpload under FlushLater: %v", err)
	}
	wantNotFound(t, s.UpdateUpload(ctx, "nope", 5), "UpdateUpload of an unknown session under FlushLater")
	if u, err := s.GetUpload(t.Context(), "u"); err != nil || u.Offset != 5 || u.Repo != "r" || !u.Created.Equal(now) {
		t.Fatalf("GetUpload after writes under FlushLater = %+v, %v; want offset 5 in r, created %v", u, err, now)
	}
	if err := s.DeleteUpload(ctx, "u"); err != nil {
		t.Fatalf("DeleteUpload under FlushLater: %v", err)
	}
	_, err = s.GetUpload(t.Context(), "u")
	wantNotFound(t, err, "GetUpload after DeleteUpload under FlushLater")
	wantNotFound(t, s.DeleteUpload(ctx, "u"), "second DeleteUpload under FlushLater")
	if err := s.DeleteTag(ctx, "r", "latest"); err != nil {
		t.Fatalf("DeleteTag under FlushLater: %v", err)
	}
	wantNoTag(t, s, "r", "latest")
	if _, err := s.DeleteManifest(ctx, "r", m.Digest); err != nil {
		t.Fatalf("DeleteManifest under FlushLater: %v", err)
	}
	wantNoManifest(t, s, "r", m.Digest)
	if err := s.UnlinkBlob(ctx, "r", d("blob")); err != nil {
		t.Fatalf("UnlinkBlob under FlushLater: %v", err)
	}
	wantRepos(t, s)
	put(t, s, image("r", "after"), "after")
	wantTags(t, s, "r", "after")
}
