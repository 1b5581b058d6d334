package scrub

import (
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
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
