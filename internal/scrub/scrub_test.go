package scrub

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
)

func TestSubsetPartitions(t *testing.T) {
	for _, bad := range []string{"", "0/3", "4/3", "1/0", "a/b", "1"} {
		if _, err := ParseSubset(bad); err == nil {
			t.Errorf("ParseSubset(%q) accepted", bad)
		}
	}
	const total = 5
	counts := make([]int, total)
	for i := range 1000 {
		d := digest.FromString(fmt.Sprint(i))
		n := 0
		for b := 1; b <= total; b++ {
			s, err := ParseSubset(fmt.Sprintf("%d/%d", b, total))
			if err != nil {
				t.Fatal(err)
			}
			if s.Contains(d) {
				n++
				counts[b-1]++
			}
		}
		if n != 1 {
			t.Fatalf("%s is in %d buckets", d, n)
		}
	}
	for b, c := range counts {
		if c < 150 {
			t.Errorf("bucket %d/%d holds only %d of 1000 digests", b+1, total, c)
		}
	}
	if !(Subset{}).Contains(digest.FromString("x")) {
		t.Error("the zero Subset must select everything")
	}
}

// TestWithEvidence: the artifacts whose evidence is re-verified are the
// subjects of referrers and the digests named by .sig/.att tags, present
// in their repository and in the run's subset, each once.
func TestWithEvidence(t *testing.T) {
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	records := map[string]bool{"r@" + a.String(): true, "r@" + b.String(): true, "s@" + a.String(): true}
	ms := []meta.Manifest{
		{Repo: "r", Digest: digest.FromString("sig"), Subject: a},
		{Repo: "r", Digest: digest.FromString("att"), Subject: a},
		{Repo: "r", Digest: digest.FromString("dangling"), Subject: c}, // subject not stored
		{Repo: "r", Digest: b},
	}
	tags := []artifact{{"s", a}, {"r", b}}
	got := withEvidence(ms, tags, records, Subset{})
	want := []artifact{{"r", a}, {"r", b}, {"s", a}}
	slices.SortFunc(want[:2], func(x, y artifact) int { return strings.Compare(string(x.d), string(y.d)) })
	if !slices.Equal(got, want) {
		t.Fatalf("withEvidence = %v, want %v", got, want)
	}
	// A subset keeps only the artifacts of its bucket; the buckets cover
	// every artifact once.
	n := 0
	for i := uint32(1); i <= 3; i++ {
		n += len(withEvidence(ms, tags, records, Subset{N: i, T: 3}))
	}
	if n != len(want) {
		t.Fatalf("buckets 1/3..3/3 hold %d artifacts, want %d", n, len(want))
	}
	for _, tag := range []string{"sha256-" + a.Encoded() + ".sig", "sha256-" + a.Encoded() + ".att"} {
		if !evidenceTag().MatchString(tag) {
			t.Errorf("%s is not an evidence tag", tag)
		}
	}
	for _, tag := range []string{"v1", "sha256-" + a.Encoded() + ".sbom", "sha256-abc.sig", "sha512-" + a.Encoded() + ".sig"} {
		if evidenceTag().MatchString(tag) {
			t.Errorf("%s is taken for an evidence tag", tag)
		}
	}
}
