package npm

import (
	"archive/tar"
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// feedGate blocks every version in the feeds named in block and records
// the feeds it was asked about.
type feedGate struct {
	mu    sync.Mutex
	asked []string
	block string
}

func (g *feedGate) AdmitUnpinned(context.Context, config.Feed, string, string) error { return nil }

func (g *feedGate) Admit(_ context.Context, f config.Feed, name, version string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, f.Name)
	if f.Name == g.block {
		return &feed.Blocked{Feed: f.Name, Package: name, Version: version, Reason: "blocked by the policy of " + f.Name}
	}
	return nil
}

// TestVirtualFirewall: a tarball served through a virtual feed is judged
// with the member's policy and the virtual feed's; the same tarball at the
// member's own URL only with the member's.
func TestVirtualFirewall(t *testing.T) {
	blobs, md := storetest.Embedded(t)
	h := New([]config.Feed{{Name: "f", Ecosystem: "npm"}, {Name: "v", Ecosystem: "npm", Kind: "virtual", Members: []string{"f"}}}, blobs, md, registry.Options{})
	g := &feedGate{block: "v"}
	h.Gate = g
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tgz := tarball(t, tar.Header{Name: "package/package.json"})
	if resp, b := call(t, "PUT", srv.URL+"/npm/v/left", "", body("left", "left-1.0.0.tgz", "1.0.0", tgz, tgz, nil)); resp.StatusCode != 200 {
		t.Fatalf("publish through the virtual feed: %d %s", resp.StatusCode, b)
	}
	resp, b := call(t, "GET", srv.URL+"/npm/v/left/-/left-1.0.0.tgz", "", nil)
	if resp.StatusCode != 403 || !strings.Contains(string(b), "blocked by the policy of v") || strings.Join(g.asked, " ") != "f v" {
		t.Errorf("tarball through the virtual feed: %d %s; the gate was asked about %v", resp.StatusCode, b, g.asked)
	}
	g.asked = nil
	if resp, b := call(t, "GET", srv.URL+"/npm/f/left/-/left-1.0.0.tgz", "", nil); resp.StatusCode != 200 || strings.Join(g.asked, " ") != "f" {
		t.Errorf("tarball from the member: %d %s; the gate was asked about %v", resp.StatusCode, b, g.asked)
	}
	g.asked, g.block = nil, "f"
	if resp, b := call(t, "GET", srv.URL+"/npm/v/left/-/left-1.0.0.tgz", "", nil); resp.StatusCode != 403 || !strings.Contains(string(b), "blocked by the policy of f") {
		t.Errorf("tarball through the virtual feed, blocked by the member's policy: %d %s", resp.StatusCode, b)
	}
	// The packument through the virtual feed names the virtual feed.
	if resp, b := call(t, "GET", srv.URL+"/npm/v/left", "", nil); resp.StatusCode != 200 || !strings.Contains(string(b), srv.URL+"/npm/v/left/-/left-1.0.0.tgz") || strings.Contains(string(b), "/npm/f/") {
		t.Errorf("packument through the virtual feed: %d %s", resp.StatusCode, b)
	}
}

// FuzzPackageSegments: the package a virtual feed routes by is the one the
// member's handler serves: its repository is the one locate names.
func FuzzPackageSegments(f *testing.F) {
	for _, s := range []string{"@acme%2futil/-/util-1.0.0.tgz", "left/1.0.0", "-/package/@a/b/dist-tags/latest", "-/ping",
		"..%2f..%2fetc", "%2e%2e", "@acme", "", "-/package/x", "A/b"} {
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
		n, ok := NameOf("f", repo)
		if !ok {
			t.Fatalf("%q: repository %q is not a package's", rest, repo)
		}
		q, err := (&Handler{}).locate("f", n.String())
		if err != nil || q.repo != repo {
			t.Fatalf("%q: the member would serve %q (%v), the router routes by %q", rest, q.repo, err, repo)
		}
	})
}
