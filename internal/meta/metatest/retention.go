package metatest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/retention"
)

// RetentionStore is what RunRetention tests: a metadata store that also
// keeps retention locks.
type RetentionStore interface {
	meta.Store
	retention.Store
}

// RunRetention is the conformance suite for retention.Store.
func RunRetention(t *testing.T, open Replicas[RetentionStore]) {
	runSuite(t, open, []subtest[RetentionStore]{
		{"GetLockNotFound", testLockNotFound},
		{"SetLockRoundTrip", testSetLockRoundTrip},
		{"SetLockRefusal", testSetLockRefusal},
		{"ListLocks", testListLocks},
		{"Protecting", testProtecting},
		{"ConcurrentSetLock", testConcurrentSetLock},
		{"FarFutureLock", testFarFutureLock},
		{"LockTimeOutOfRange", testLockTimeOutOfRange},
	})
}

func setLock(t *testing.T, s retention.Store, l retention.Lock) {
	t.Helper()
	if err := s.SetLock(t.Context(), l.Repo, l.Digest, func(*retention.Lock) (retention.Lock, error) { return l, nil }); err != nil {
		t.Fatalf("SetLock(%s@%s): %v", l.Repo, l.Digest, err)
	}
}

func sameLock(t *testing.T, call string, got, want retention.Lock) {
	t.Helper()
	if got.Repo != want.Repo || got.Digest != want.Digest || got.Mode != want.Mode || got.LegalHold != want.LegalHold ||
		!got.RetainUntil.Equal(keep(want.RetainUntil)) || !got.Updated.Equal(keep(want.Updated)) {
		t.Fatalf("%s = %+v, want %+v", call, got, want)
	}
}

func testLockNotFound(t *testing.T, open Replicas[RetentionStore]) {
	s := one(t, open)
	_, err := s.GetLock(t.Context(), "r", d("nothing"))
	if !errors.Is(err, retention.ErrNotFound) {
		t.Fatalf("GetLock of an artifact without a lock: %v, want retention.ErrNotFound", err)
	}
}

func testSetLockRoundTrip(t *testing.T, open Replicas[RetentionStore]) {
	s := one(t, open)
	ctx := t.Context()
	at := time.Date(2031, 2, 3, 4, 5, 6, 789, time.UTC)
	first := retention.Lock{Repo: "team/app", Digest: d("m"), Mode: "governance",
		RetainUntil: at.Add(48 * time.Hour), Updated: at}
	var seen []*retention.Lock
	set := func(l retention.Lock) {
		t.Helper()
		err := s.SetLock(ctx, l.Repo, l.Digest, func(cur *retention.Lock) (retention.Lock, error) {
			seen = append(seen, cur)
			return l, nil
		})
		if err != nil {
			t.Fatalf("SetLock: %v", err)
		}
	}
	set(first)
	if len(seen) == 0 || seen[len(seen)-1] != nil {
		t.Fatalf("SetLock of a new artifact passed current %+v, want nil", seen)
	}
	got, err := s.GetLock(ctx, "team/app", d("m"))
	if err != nil {
		t.Fatal(err)
	}
	sameLock(t, "GetLock", got, first)

	// A legal hold without a retention period: the zero RetainUntil
	// round-trips as zero.
	second := retention.Lock{Repo: "team/app", Digest: d("m"), LegalHold: true, Updated: at.Add(time.Second)}
	set(second)
	cur := seen[len(seen)-1]
	if cur == nil {
		t.Fatal("SetLock of an existing lock passed current nil")
	}
	sameLock(t, "current passed to SetLock", *cur, first)
	got, err = s.GetLock(ctx, "team/app", d("m"))
	if err != nil {
		t.Fatal(err)
	}
	sameLock(t, "GetLock after update", got, second)
	if !got.RetainUntil.IsZero() {
		t.Fatalf("RetainUntil = %v, want zero", got.RetainUntil)
	}
	if _, err := s.GetLock(ctx, "other", d("m")); !errors.Is(err, retention.ErrNotFound) {
		t.Fatalf("lock is not scoped to its repository: %v", err)
	}
}

func testSetLockRefusal(t *testing.T, open Replicas[RetentionStore]) {
	s := one(t, open)
	ctx := t.Context()
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	l := retention.Lock{Repo: "r", Digest: d("m"), Mode: "compliance", RetainUntil: at.Add(time.Hour), Updated: at}
	setLock(t, s, l)
	refused := errors.New("refused by the test")
	err := s.SetLock(ctx, "r", d("m"), func(*retention.Lock) (retention.Lock, error) { return retention.Lock{}, refused })
	if err != refused {
		t.Fatalf("SetLock returned %v, want the callback's error unchanged", err)
	}
	got, err := s.GetLock(ctx, "r", d("m"))
	if err != nil {
		t.Fatal(err)
	}
	sameLock(t, "GetLock after a refused SetLock", got, l)
	err = s.SetLock(ctx, "r", d("new"), func(*retention.Lock) (retention.Lock, error) { return retention.Lock{}, refused })
	if err != refused {
		t.Fatalf("SetLock returned %v, want the callback's error unchanged", err)
	}
	if _, err := s.GetLock(ctx, "r", d("new")); !errors.Is(err, retention.ErrNotFound) {
		t.Fatalf("a refused SetLock wrote a lock: %v", err)
	}
}

func testListLocks(t *testing.T, open Replicas[RetentionStore]) {
	s := one(t, open)
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []digest.Digest
	for i := range 5 {
		dg := d(fmt.Sprint("m", i))
		setLock(t, s, retention.Lock{Repo: "r", Digest: dg, LegalHold: true, Updated: at})
		want = append(want, dg)
	}
	setLock(t, s, retention.Lock{Repo: "r2", Digest: d("x"), LegalHold: true, Updated: at})
	slices.Sort(want)
	got, err := s.ListLocks(t.Context(), "r")
	if err != nil {
		t.Fatal(err)
	}
	var gotD []digest.Digest
	for _, l := range got {
		if l.Repo != "r" {
			t.Fatalf("ListLocks(r) returned a lock of %s", l.Repo)
		}
		gotD = append(gotD, l.Digest)
	}
	if !slices.Equal(gotD, want) {
		t.Fatalf("ListLocks(r) = %v, want %v (ordered by digest)", gotD, want)
	}
	if got, err := s.ListLocks(t.Context(), "none"); err != nil || len(got) != 0 {
		t.Fatalf("ListLocks(none) = %v, %v; want nothing", got, err)
	}
}

func testProtecting(t *testing.T, open Replicas[RetentionStore]) {
	s := one(t, open)
	ctx := t.Context()
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	layer := d("layer")
	// r: index -> child -> layer. r2: another image with the same layer.
	child := meta.Manifest{Repo: "r", Digest: d("child"), MediaType: mtImage, Size: 1, Blobs: []digest.Digest{layer}, Created: at}
	index := meta.Manifest{Repo: "r", Digest: d("index"), MediaType: mtIndex, Size: 1, Manifests: []digest.Digest{child.Digest}, Created: at}
	other := meta.Manifest{Repo: "r2", Digest: d("other"), MediaType: mtImage, Size: 1, Blobs: []digest.Digest{layer}, Created: at}
	link(t, s, "r", layer, 5)
	link(t, s, "r2", layer, 5)
	put(t, s, child)
	put(t, s, index)
	put(t, s, other)
	hold := func(repo string, dg digest.Digest) retention.Lock {
		l := retention.Lock{Repo: repo, Digest: dg, LegalHold: true, Updated: at}
		setLock(t, s, l)
		return l
	}
	lIndex := hold("r", index.Digest)
	lOther := hold("r2", other.Digest)
	hold("r", d("gone")) // a lock on a manifest that is not there protects nothing

	check := func(dg digest.Digest, repo string, want ...retention.Lock) {
		t.Helper()
		got, err := s.Protecting(ctx, dg, repo)
		if err != nil {
			t.Fatalf("Protecting(%s, %q): %v", dg, repo, err)
		}
		if len(got) != len(want) {
			t.Fatalf("Protecting(%s, %q) = %+v, want %+v", dg, repo, got, want)
		}
		for i := range want {
			sameLock(t, "Protecting", got[i], want[i])
		}
	}
	check(layer, "r", lIndex)        // through child, then the index
	check(layer, "", lIndex, lOther) // every repository, ordered by repo
	check(layer, "r2", lOther)       // scoped
	check(child.Digest, "r", lIndex) // a manifest referenced by an index
	check(index.Digest, "r", lIndex) // the locked manifest itself
	check(d("unrelated"), "")        // nothing references it
	check(d("gone"), "r")            // the lock's manifest is absent
	if _, err := s.DeleteManifest(ctx, "r", index.Digest); err != nil {
		t.Fatal(err)
	}
	check(layer, "r") // the index's lock no longer covers anything
}

// testConcurrentSetLock has two replicas extend the same lock many times
// at once: each SetLock must see the value the previous one wrote.
func testConcurrentSetLock(t *testing.T, open Replicas[RetentionStore]) {
	ss := open(t, 2)
	ctx := t.Context()
	base := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	const per = 20
	errs := make([]error, len(ss))
	concurrently(len(ss), func(i int) {
		for range per {
			err := ss[i].SetLock(ctx, "r", d("m"), func(cur *retention.Lock) (retention.Lock, error) {
				time.Sleep(time.Millisecond) // widen the window for a lost update
				until := base
				if cur != nil {
					until = cur.RetainUntil
				}
				return retention.Lock{Repo: "r", Digest: d("m"), Mode: "governance",
					RetainUntil: until.Add(time.Second), Updated: base}, nil
			})
			if err != nil {
				errs[i] = err
				return
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got, err := ss[0].GetLock(ctx, "r", d("m"))
	if err != nil {
		t.Fatal(err)
	}
	if want := base.Add(2 * per * time.Second); !got.RetainUntil.Equal(want) {
		t.Fatalf("after %d concurrent extensions by one second, RetainUntil = %v, want %v (lost update)",
			2*per, got.RetainUntil, want)
	}
}
