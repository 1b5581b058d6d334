package gomod

import (
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/custody-dev/custody/internal/feed"
)

// FuzzPackageSegments: the module a virtual feed routes by is the one the
// member's handler serves.
func FuzzPackageSegments(f *testing.F) {
	for _, s := range []string{"example.test/mod/@v/list", "github.com/!azure/x/@latest", "example.test/mod/@v/v1.0.0.zip",
		"a/@v/b/@v/list", "@v/list", "../x/@v/list", "example.test/mod"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		segs := packageSegments(rest)
		if segs == nil {
			return
		}
		repo, err := feed.Repository("f", segs...)
		if err != nil {
			t.Fatalf("%q: segments %q make no repository: %v", rest, segs, err)
		}
		esc := strings.TrimSuffix(rest, "/@latest")
		if i := strings.LastIndex(rest, "/@v/"); i >= 0 {
			esc = rest[:i]
		}
		path, err := module.UnescapePath(esc)
		if err != nil {
			t.Fatalf("%q: routed, but its module path does not unescape: %v", rest, err)
		}
		if want, err := ModuleRepository("f", path); err != nil || want != repo {
			t.Fatalf("%q: the member would serve %q (%v), the router routes by %q", rest, want, err, repo)
		}
	})
}
