package maven

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// TestVirtualFeed: a virtual Maven feed over two hosted feeds serves an
// artifact only the second holds, serves an artifact both hold from the
// first (whose name shadows the second's), its metadata included, and
// sends deploys to the first hosted member.
func TestVirtualFeed(t *testing.T) {
	blobs, md := storetest.Embedded(t)
	h := New([]config.Feed{
		{Name: "team", Ecosystem: "maven"}, {Name: "shared", Ecosystem: "maven", Kind: "hosted"},
		{Name: "all", Ecosystem: "maven", Kind: "virtual", Members: []string{"team", "shared"}},
	}, blobs, md, registry.Options{Auditor: &recorder{}})
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	x := &fixture{h: h, md: md}
	do := func(method, path, body string) (int, string) {
		x.url = s.URL + "/maven/"
		code, b, _ := x.do(t, method, path, []byte(body))
		return code, b
	}
	for _, c := range []struct{ feed, path, body string }{
		{"shared", "org/lib/util/1.0/util-1.0.jar", "shared util"},
		{"shared", "com/acme/core/1.0/core-1.0.jar", "public core pretending to be ours"},
		{"team", "com/acme/core/1.0/core-1.0.jar", "our core"},
	} {
		if code, b := do("PUT", c.feed+"/"+c.path, c.body); code/100 != 2 {
			t.Fatalf("deploy %s to %s: %d %s", c.path, c.feed, code, b)
		}
	}
	if code, b := do("GET", "all/org/lib/util/1.0/util-1.0.jar", ""); code != http.StatusOK || b != "shared util" {
		t.Fatalf("an artifact only the second member holds: %d %q", code, b)
	}
	if code, b := do("GET", "all/com/acme/core/1.0/core-1.0.jar", ""); code != http.StatusOK || b != "our core" {
		t.Fatalf("an artifact both members hold: %d %q, want the first member's", code, b)
	}
	if code, b := do("GET", "all/com/acme/core/maven-metadata.xml", ""); code != http.StatusOK || !strings.Contains(b, "<version>1.0</version>") {
		t.Fatalf("metadata through the virtual feed: %d %s", code, b)
	}
	if code, b := do("PUT", "all/com/acme/new/2.0/new-2.0.jar", "new"); code/100 != 2 {
		t.Fatalf("deploy through the virtual feed: %d %s", code, b)
	}
	if code, b := do("GET", "team/com/acme/new/2.0/new-2.0.jar", ""); code != http.StatusOK || b != "new" {
		t.Fatalf("the deploy through the virtual feed is not in the first hosted member: %d %q", code, b)
	}
	if code, _ := do("GET", "shared/com/acme/new/2.0/new-2.0.jar", ""); code != http.StatusNotFound {
		t.Fatalf("the deploy through the virtual feed reached the second member: %d", code)
	}
}
