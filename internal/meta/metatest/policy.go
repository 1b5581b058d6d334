package metatest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/policy"
)

// RunPolicy is the conformance suite for policy.Store.
func RunPolicy(t *testing.T, open Replicas[policy.Store]) {
	runSuite(t, open, []subtest[policy.Store]{
		{"NotFound", testPolicyNotFound},
		{"Versions", testPolicyVersions},
		{"CheckRefuses", testPolicyCheckRefuses},
		{"CurrentPolicies", testCurrentPolicies},
		{"ConcurrentPut", testConcurrentPutPolicy},
	})
}

func putPolicy(t *testing.T, s policy.Store, pattern, body string, now time.Time) int {
	t.Helper()
	v, err := s.PutPolicy(t.Context(), pattern, []byte(body), now, nil)
	if err != nil {
		t.Fatalf("PutPolicy(%q): %v", pattern, err)
	}
	return v
}

func wantPolicy(t *testing.T, got policy.Record, pattern string, version int, body string, created time.Time) {
	t.Helper()
	if got.Pattern != pattern || got.Version != version || string(got.Body) != body || !got.Created.Equal(keep(created)) {
		t.Fatalf("policy = {%q v%d %s %v}, want {%q v%d %s %v}", got.Pattern, got.Version, got.Body, got.Created,
			pattern, version, body, created)
	}
}

func testPolicyNotFound(t *testing.T, open Replicas[policy.Store]) {
	s := one(t, open)
	for _, v := range []int{0, 1} {
		if _, err := s.GetPolicy(t.Context(), "team/*", v); !errors.Is(err, policy.ErrNotFound) {
			t.Fatalf("GetPolicy(version %d) of an unknown pattern: %v, want policy.ErrNotFound", v, err)
		}
	}
	got, err := s.CurrentPolicies(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("CurrentPolicies of an empty store = %v, %v", got, err)
	}
}

func testPolicyVersions(t *testing.T, open Replicas[policy.Store]) {
	s := one(t, open)
	ctx := t.Context()
	t1 := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	t2 := t1.Add(time.Hour)
	var seen [][]byte
	put := func(body string, now time.Time) int {
		t.Helper()
		v, err := s.PutPolicy(ctx, "team/*", []byte(body), now, func(cur []byte) error {
			seen = append(seen, cur)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := put(`{"a":1}`, t1); v != 1 {
		t.Fatalf("first version = %d, want 1", v)
	}
	if seen[0] != nil {
		t.Fatalf("check of the first version saw %q, want nil", seen[0])
	}
	if v := put(`{"a":2}`, t2); v != 2 {
		t.Fatalf("second version = %d, want 2", v)
	}
	if string(seen[1]) != `{"a":1}` {
		t.Fatalf("check of the second version saw %q, want the first body", seen[1])
	}
	got, err := s.GetPolicy(ctx, "team/*", 1)
	if err != nil {
		t.Fatal(err)
	}
	wantPolicy(t, got, "team/*", 1, `{"a":1}`, t1)
	got, err = s.GetPolicy(ctx, "team/*", 0)
	if err != nil {
		t.Fatal(err)
	}
	wantPolicy(t, got, "team/*", 2, `{"a":2}`, t2)
	if _, err := s.GetPolicy(ctx, "team/*", 3); !errors.Is(err, policy.ErrNotFound) {
		t.Fatalf("GetPolicy of a version not stored: %v", err)
	}
	// Versions count per pattern.
	if v := putPolicy(t, s, "other/**", `{}`, t1); v != 1 {
		t.Fatalf("first version of another pattern = %d, want 1", v)
	}
}

func testPolicyCheckRefuses(t *testing.T, open Replicas[policy.Store]) {
	s := one(t, open)
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	putPolicy(t, s, "p", `{"v":1}`, now)
	refused := fmt.Errorf("refused: %w", policy.ErrConflict)
	v, err := s.PutPolicy(ctx, "p", []byte(`{"v":2}`), now, func([]byte) error { return refused })
	if err != refused {
		t.Fatalf("PutPolicy returned %v (version %d), want the check's error unchanged", err, v)
	}
	got, err := s.GetPolicy(ctx, "p", 0)
	if err != nil {
		t.Fatal(err)
	}
	wantPolicy(t, got, "p", 1, `{"v":1}`, now)
	if v := putPolicy(t, s, "p", `{"v":3}`, now); v != 2 {
		t.Fatalf("version after a refused put = %d, want 2", v)
	}
}

func testCurrentPolicies(t *testing.T, open Replicas[policy.Store]) {
	s := one(t, open)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	putPolicy(t, s, "b/*", `{"b":1}`, now)
	putPolicy(t, s, "a/*", `{"a":1}`, now)
	putPolicy(t, s, "b/*", `{"b":2}`, now.Add(time.Minute))
	putPolicy(t, s, "c", `{"c":1}`, now)
	got, err := s.CurrentPolicies(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("CurrentPolicies = %d records, want 3", len(got))
	}
	wantPolicy(t, got[0], "a/*", 1, `{"a":1}`, now)
	wantPolicy(t, got[1], "b/*", 2, `{"b":2}`, now.Add(time.Minute))
	wantPolicy(t, got[2], "c", 1, `{"c":1}`, now)
}

// testConcurrentPutPolicy has two replicas put versions of one pattern at
// once: every put gets its own version, they are 1..n, and each check saw
// the body of the version before its own.
func testConcurrentPutPolicy(t *testing.T, open Replicas[policy.Store]) {
	ss := open(t, 2)
	ctx := t.Context()
	const per = 15
	type put struct {
		version int
		prev    string
		body    string
	}
	results := make([][]put, len(ss))
	errs := make([]error, len(ss))
	concurrently(len(ss), func(i int) {
		for j := range per {
			body := fmt.Sprintf(`{"replica":%d,"n":%d}`, i, j)
			var prev string
			v, err := ss[i].PutPolicy(ctx, "p", []byte(body), time.Now(), func(cur []byte) error {
				time.Sleep(time.Millisecond) // widen the window for a conflict
				prev = string(cur)
				return nil
			})
			if err != nil {
				errs[i] = err
				return
			}
			results[i] = append(results[i], put{v, prev, body})
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	byVersion := map[int]put{}
	for _, rs := range results {
		for _, r := range rs {
			if _, dup := byVersion[r.version]; dup {
				t.Fatalf("version %d given to two puts", r.version)
			}
			byVersion[r.version] = r
		}
	}
	versions := slices.Sorted(maps.Keys(byVersion))
	if len(versions) != 2*per || versions[0] != 1 || versions[len(versions)-1] != 2*per {
		t.Fatalf("versions = %v, want 1..%d", versions, 2*per)
	}
	for v := 2; v <= 2*per; v++ {
		if byVersion[v].prev != byVersion[v-1].body {
			t.Fatalf("the check of version %d saw %s, want version %d's body %s", v, byVersion[v].prev, v-1, byVersion[v-1].body)
		}
	}
}
