package metatest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/gc"
	"github.com/custody-dev/custody/internal/meta"
)

// GCStore is what RunGC tests: the store garbage collection needs
// (meta.Store, with its GC-safe PutManifestVerified, and gc.Store's
// methods).
type GCStore interface {
	gc.Store
}

// RunGC is the conformance suite for the gc.Store methods and for
// PutManifestVerified racing a collection (Run checks PutManifestVerified
// on its own).
func RunGC(t *testing.T, open Replicas[GCStore]) {
	runSuite(t, open, []subtest[GCStore]{
		{"ReferencedBlobs", testReferencedBlobs},
		{"DeleteBlobIfUnreferenced", testDeleteBlobIfUnreferenced},
		{"GCManifests", testGCManifests},
		{"DeleteUntaggedManifest", testDeleteUntaggedManifest},
		{"DeleteUntaggedSubjectChain", testDeleteUntaggedSubjectChain},
		{"DeleteBlobHoldsOffWriters", testDeleteBlobHoldsOffWriters},
		{"ConcurrentVerifiedPutAndCollect", testConcurrentVerifiedPutAndCollect},
	})
}

func testReferencedBlobs(t *testing.T, open Replicas[GCStore]) {
	s := one(t, open)
	ctx := t.Context()
	link(t, s, "r", d("linked"), 1)
	m := meta.Manifest{Repo: "r", Digest: d("m"), MediaType: mtImage, Size: 1, Blobs: []digest.Digest{d("linked"), d("layer")}}
	put(t, s, m)
	idx := meta.Manifest{Repo: "r2", Digest: d("idx"), MediaType: mtIndex, Size: 1, Manifests: []digest.Digest{d("child")}}
	put(t, s, idx)
	link(t, s, "r", d("unlinked"), 1)
	if err := s.UnlinkBlob(ctx, "r", d("unlinked")); err != nil {
		t.Fatal(err)
	}
	got := map[digest.Digest]bool{}
	if err := s.ReferencedBlobs(ctx, func(dg digest.Digest) error { got[dg] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, want := range []digest.Digest{d("linked"), d("layer"), d("m"), d("idx"), d("child")} {
		if !got[want] {
			t.Errorf("ReferencedBlobs did not report %s", want)
		}
	}
	if got[d("unlinked")] {
		t.Errorf("ReferencedBlobs reported a blob nothing links or references")
	}
	stop := errors.New("stop")
	if err := s.ReferencedBlobs(ctx, func(digest.Digest) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("ReferencedBlobs returned %v, want the callback's error", err)
	}
}

func testDeleteBlobIfUnreferenced(t *testing.T, open Replicas[GCStore]) {
	s := one(t, open)
	ctx := t.Context()
	link(t, s, "r", d("linked"), 1)
	put(t, s, meta.Manifest{Repo: "r", Digest: d("m"), MediaType: mtImage, Size: 1, Blobs: []digest.Digest{d("layer")}})
	for _, used := range []digest.Digest{d("linked"), d("layer"), d("m")} {
		called := false
		ok, err := s.DeleteBlobIfUnreferenced(ctx, used, func() error { called = true; return nil })
		if err != nil || ok || called {
			t.Fatalf("DeleteBlobIfUnreferenced(%s) of a used blob = %v, %v (del called: %v)", used, ok, err, called)
		}
	}
	called := false
	ok, err := s.DeleteBlobIfUnreferenced(ctx, d("free"), func() error { called = true; return nil })
	if err != nil || !ok || !called {
		t.Fatalf("DeleteBlobIfUnreferenced of an unused blob = %v, %v (del called: %v)", ok, err, called)
	}
	failed := errors.New("disk on fire")
	ok, err = s.DeleteBlobIfUnreferenced(ctx, d("free"), func() error { return failed })
	if ok || !errors.Is(err, failed) {
		t.Fatalf("DeleteBlobIfUnreferenced with a failing del = %v, %v; want false and del's error", ok, err)
	}
}

func testGCManifests(t *testing.T, open Replicas[GCStore]) {
	s := one(t, open)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	img := meta.Manifest{Repo: "r", Digest: d("img"), MediaType: mtImage, Size: 1, Created: at}
	img2 := meta.Manifest{Repo: "r", Digest: d("img2"), MediaType: mtImage, Size: 1, Created: at}
	idx := meta.Manifest{Repo: "r", Digest: d("idx"), MediaType: mtIndex, Size: 1, Manifests: []digest.Digest{img2.Digest, img.Digest}, Created: at.Add(time.Second)}
	sig := meta.Manifest{Repo: "r", Digest: d("sig"), MediaType: mtImage, Size: 1, Subject: img.Digest, Created: at.Add(2 * time.Second)}
	put(t, s, img)
	put(t, s, img2)
	put(t, s, idx, "v1")
	put(t, s, sig)
	put(t, s, meta.Manifest{Repo: "other", Digest: d("elsewhere"), MediaType: mtImage, Size: 1})
	got, err := s.GCManifests(t.Context(), "r")
	if err != nil {
		t.Fatal(err)
	}
	want := map[digest.Digest]gc.Manifest{
		img.Digest:  {Digest: img.Digest, Created: at},
		img2.Digest: {Digest: img2.Digest, Created: at},
		idx.Digest:  {Digest: idx.Digest, Created: at.Add(time.Second), Tagged: true, Children: []digest.Digest{img2.Digest, img.Digest}},
		sig.Digest:  {Digest: sig.Digest, Subject: img.Digest, Created: at.Add(2 * time.Second)},
	}
	if len(got) != len(want) {
		t.Fatalf("GCManifests(r) = %+v, want %d manifests", got, len(want))
	}
	if !slices.IsSortedFunc(got, func(a, b gc.Manifest) int { return strings.Compare(a.Digest.String(), b.Digest.String()) }) {
		t.Errorf("GCManifests is not ordered by digest")
	}
	for _, g := range got {
		w, ok := want[g.Digest]
		if !ok || g.Subject != w.Subject || !g.Created.Equal(w.Created) || g.Tagged != w.Tagged || !slices.Equal(g.Children, w.Children) {
			t.Errorf("GCManifests: %+v, want %+v", g, w)
		}
	}
}

func testDeleteUntaggedManifest(t *testing.T, open Replicas[GCStore]) {
	s := one(t, open)
	ctx := t.Context()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	later := at.Add(time.Hour)
	mk := func(name string, children ...digest.Digest) meta.Manifest {
		return meta.Manifest{Repo: "r", Digest: d(name), MediaType: mtImage, Size: 1, Manifests: children, Created: at}
	}
	tagged, child, idx, loose := mk("tagged"), mk("child"), mk("idx", d("child")), mk("loose")
	put(t, s, tagged, "v1")
	put(t, s, child)
	put(t, s, idx, "v2")
	put(t, s, loose)
	del := func(dg digest.Digest, notAfter time.Time) bool {
		t.Helper()
		ok, err := s.DeleteUntaggedManifest(ctx, "r", dg, notAfter)
		if err != nil {
			t.Fatalf("DeleteUntaggedManifest(%s): %v", dg, err)
		}
		return ok
	}
	if del(tagged.Digest, later) {
		t.Fatal("deleted a tagged manifest")
	}
	if del(child.Digest, later) {
		t.Fatal("deleted a manifest an index references")
	}
	if del(loose.Digest, at) {
		t.Fatal("deleted a manifest created at notAfter (only before is collectable)")
	}
	if del(d("absent"), later) {
		t.Fatal("reported deleting a manifest that is not there")
	}
	if !del(loose.Digest, later) {
		t.Fatal("did not delete an old, untagged, unreferenced manifest")
	}
	wantNoManifest(t, s, "r", loose.Digest)
	// The index's references go with it: then the child is collectable.
	if err := s.DeleteTag(ctx, "r", "v2"); err != nil {
		t.Fatal(err)
	}
	if !del(idx.Digest, later) || !del(child.Digest, later) {
		t.Fatal("did not delete an untagged index and then its child")
	}
	// The last manifest of a repository takes the repository with it.
	put(t, s, meta.Manifest{Repo: "solo", Digest: d("solo"), MediaType: mtImage, Size: 1, Created: at})
	if ok, err := s.DeleteUntaggedManifest(ctx, "solo", d("solo"), later); err != nil || !ok {
		t.Fatalf("DeleteUntaggedManifest(solo) = %v, %v", ok, err)
	}
	wantRepos(t, s, "r")
}

func testDeleteUntaggedSubjectChain(t *testing.T, open Replicas[GCStore]) {
	s := one(t, open)
	ctx := t.Context()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	later := at.Add(time.Hour)
	img := meta.Manifest{Repo: "r", Digest: d("img"), MediaType: mtImage, Size: 1, Created: at}
	sig := meta.Manifest{Repo: "r", Digest: d("sig"), MediaType: mtImage, Size: 1, Subject: img.Digest, Created: at}
	sigsig := meta.Manifest{Repo: "r", Digest: d("sigsig"), MediaType: mtImage, Size: 1, Subject: sig.Digest, Created: at}
	orphan := meta.Manifest{Repo: "r", Digest: d("orphan"), MediaType: mtImage, Size: 1, Subject: d("never pushed"), Created: at}
	put(t, s, img, "v1")
	put(t, s, sig)
	put(t, s, sigsig)
	put(t, s, orphan)
	for _, dg := range []digest.Digest{sig.Digest, sigsig.Digest} {
		if ok, err := s.DeleteUntaggedManifest(ctx, "r", dg, later); err != nil || ok {
			t.Fatalf("DeleteUntaggedManifest(%s) with a tagged subject (chain) = %v, %v; want kept", dg, ok, err)
		}
	}
	if ok, err := s.DeleteUntaggedManifest(ctx, "r", orphan.Digest, later); err != nil || !ok {
		t.Fatalf("DeleteUntaggedManifest of a referrer whose subject is absent = %v, %v; want deleted", ok, err)
	}
	if err := s.DeleteTag(ctx, "r", "v1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DeleteUntaggedManifest(ctx, "r", sigsig.Digest, later); err != nil || !ok {
		t.Fatalf("DeleteUntaggedManifest of a referrer whose subject chain is collectable = %v, %v", ok, err)
	}
}

// testPutManifestVerified checks the verified put of meta.Store: refused,
// writing nothing, when a blob is linked only elsewhere or a child is
// missing; recorded with its tags otherwise. (The race with a collection
// is testConcurrentVerifiedPutAndCollect.)
func testPutManifestVerified(t *testing.T, s meta.Store) {
	ctx := t.Context()
	link(t, s, "r", d("layer"), 1)
	link(t, s, "other", d("elsewhere"), 1)
	bad := meta.Manifest{Repo: "r", Digest: d("bad"), MediaType: mtImage, Size: 1, Blobs: []digest.Digest{d("layer"), d("elsewhere")}}
	if err := s.PutManifestVerified(ctx, bad, []string{"v"}, nil); !errors.Is(err, meta.ErrReferenceGone) {
		t.Fatalf("PutManifestVerified with a blob linked only into another repository: %v, want meta.ErrReferenceGone", err)
	}
	wantNoManifest(t, s, "r", bad.Digest)
	wantNoTag(t, s, "r", "v")
	idx := meta.Manifest{Repo: "r", Digest: d("idx"), MediaType: mtIndex, Size: 1, Manifests: []digest.Digest{d("missing")}}
	if err := s.PutManifestVerified(ctx, idx, nil, nil); !errors.Is(err, meta.ErrReferenceGone) {
		t.Fatalf("PutManifestVerified with a missing child: %v, want meta.ErrReferenceGone", err)
	}
	good := meta.Manifest{Repo: "r", Digest: d("good"), MediaType: mtImage, Size: 1, Blobs: []digest.Digest{d("layer")}}
	if err := s.PutManifestVerified(ctx, good, []string{"v"}, nil); err != nil {
		t.Fatal(err)
	}
	wantResolve(t, s, "r", "v", good.Digest)
	idx.Manifests = []digest.Digest{good.Digest}
	if err := s.PutManifestVerified(ctx, idx, []string{"i"}, nil); err != nil {
		t.Fatal(err)
	}
	wantResolve(t, s, "r", "i", idx.Digest)
	// Its tag check runs as PutManifest's does: a veto writes nothing.
	veto := errors.New("veto")
	next := meta.Manifest{Repo: "r", Digest: d("next"), MediaType: mtImage, Size: 1, Blobs: []digest.Digest{d("layer")}}
	if err := s.PutManifestVerified(ctx, next, []string{"v"}, func(string, digest.Digest, digest.Digest) error { return veto }); !errors.Is(err, veto) {
		t.Fatalf("PutManifestVerified with a vetoing tag check: %v, want the veto", err)
	}
	wantNoManifest(t, s, "r", next.Digest)
	wantResolve(t, s, "r", "v", good.Digest)
}

// testDeleteBlobHoldsOffWriters checks, with two replicas, that while
// DeleteBlobIfUnreferenced runs del no link or manifest record naming the
// blob commits: writers started meanwhile finish only after del.
func testDeleteBlobHoldsOffWriters(t *testing.T, open Replicas[GCStore]) {
	ss := open(t, 2)
	registry, collector := ss[0], ss[1]
	ctx := t.Context()
	b := d("contested")
	var (
		mu       sync.Mutex
		finished []string
		writers  sync.WaitGroup
		errs     = make([]error, 2)
	)
	done := func(what string) {
		mu.Lock()
		finished = append(finished, what)
		mu.Unlock()
	}
	ok, err := collector.DeleteBlobIfUnreferenced(ctx, b, func() error {
		writers.Go(func() {
			errs[0] = registry.LinkBlob(ctx, "r", b, 1)
			done("LinkBlob")
		})
		writers.Go(func() {
			errs[1] = registry.PutManifest(ctx, meta.Manifest{Repo: "r2", Digest: d("m"), MediaType: mtImage, Size: 1,
				Blobs: []digest.Digest{b}}, nil, nil)
			done("PutManifest")
		})
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if len(finished) > 0 {
			return fmt.Errorf("%v committed a record naming the blob while its bytes were being deleted", finished)
		}
		return nil
	})
	writers.Wait()
	if err != nil || !ok {
		t.Fatalf("DeleteBlobIfUnreferenced = %v, %v", ok, err)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("writers held off by DeleteBlobIfUnreferenced failed: %v", err)
	}
}

// testConcurrentVerifiedPutAndCollect races, on two replicas, a registry
// recording manifests that reference freshly linked blobs against a
// collector unlinking those blobs and deleting their bytes. In even rounds
// the collector strikes while the registry's transaction is open (its
// TagCheck signals and waits), in odd rounds they race freely. Whatever
// the interleaving, no recorded manifest may reference deleted bytes.
func testConcurrentVerifiedPutAndCollect(t *testing.T, open Replicas[GCStore]) {
	ss := open(t, 2)
	registry, collector := ss[0], ss[1]
	ctx := t.Context()
	const rounds = 40
	var (
		mu      sync.Mutex
		deleted = map[digest.Digest]bool{}
		errs    []error
		inTx    = make(chan int, 4*rounds)
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	blob := func(i int) digest.Digest { return d(fmt.Sprint("racing blob ", i)) }
	manifest := func(i int) meta.Manifest {
		return meta.Manifest{Repo: "r", Digest: d(fmt.Sprint("racing manifest ", i)), MediaType: mtImage, Size: 1,
			Blobs: []digest.Digest{blob(i)}}
	}
	// Keep the repository alive whatever happens to the racing blobs.
	link(t, registry, "r", d("anchor"), 1)
	for i := range rounds {
		link(t, registry, "r", blob(i), 1)
	}
	concurrently(2, func(who int) {
		for i := range rounds {
			if who == 0 {
				check := func(string, digest.Digest, digest.Digest) error {
					if i%2 == 0 {
						inTx <- i
						time.Sleep(10 * time.Millisecond)
					}
					return nil
				}
				err := registry.PutManifestVerified(ctx, manifest(i), []string{fmt.Sprint("t", i)}, check)
				if err != nil && !errors.Is(err, meta.ErrReferenceGone) {
					fail(fmt.Errorf("PutManifestVerified %d: %w", i, err))
				}
				continue
			}
			if i%2 == 0 {
			wait:
				for {
					select {
					case j := <-inTx:
						if j == i {
							break wait
						}
					case <-time.After(10 * time.Second):
						fail(fmt.Errorf("round %d: the registry's TagCheck never ran", i))
						return
					}
				}
			}
			if err := collector.UnlinkBlob(ctx, "r", blob(i)); err != nil {
				fail(fmt.Errorf("UnlinkBlob %d: %w", i, err))
				continue
			}
			_, err := collector.DeleteBlobIfUnreferenced(ctx, blob(i), func() error {
				mu.Lock()
				deleted[blob(i)] = true
				mu.Unlock()
				return nil
			})
			if err != nil {
				fail(fmt.Errorf("DeleteBlobIfUnreferenced %d: %w", i, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	recorded := 0
	for i := range rounds {
		_, err := registry.GetManifest(ctx, "r", manifest(i).Digest)
		switch {
		case err == nil:
			recorded++
			if deleted[blob(i)] {
				t.Errorf("manifest %d was recorded, but the bytes of the blob it references were deleted", i)
			}
		case !errors.Is(err, meta.ErrNotFound):
			t.Fatal(err)
		}
	}
	t.Logf("%d of %d manifests recorded, %d blobs deleted", recorded, rounds, len(deleted))
}
