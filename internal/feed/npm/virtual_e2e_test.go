package npm_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/testserver"
)

// virtualConfig: hosted feeds npmfirst and npmsecond, and the virtual feed
// npm over them, in that order.
const virtualConfig = `feeds:
  - name: npmfirst
    ecosystem: npm
  - name: npmsecond
    ecosystem: npm
  - name: npm
    ecosystem: npm
    kind: virtual
    members: [npmfirst, npmsecond]
`

func startVirtual(t *testing.T) *e2e {
	t.Helper()
	npmBin := testserver.Client(t, "npm")
	s := testserver.Start(t, testserver.Options{Auth: true, Config: virtualConfig})
	e := &e2e{t: t, s: s, npm: npmBin, homes: map[string]string{}, registry: "/npm/npm/"}
	e.writer = e.scoped(auth.RoleWriter, "npmfirst/**", "npmsecond/**")
	e.reader = e.scoped(auth.RoleReader, "npmfirst/**", "npmsecond/**")
	return e
}

func (e *e2e) scoped(role auth.Role, repos ...string) string {
	e.t.Helper()
	body, _ := json.Marshal(auth.TokenRequest{Name: "npm-" + string(role) + "-" + strings.NewReplacer("/", "-", "*", "x").Replace(strings.Join(repos, "-")),
		Scopes: []auth.Scope{{Role: role, Repositories: repos}}})
	code, out := e.call("POST", "/api/v1/tokens", "basic:admin:"+e.s.AdminPassword(), "application/json", body)
	var tok struct {
		Secret string `json:"secret"`
	}
	if code != http.StatusCreated || json.Unmarshal(out, &tok) != nil || tok.Secret == "" {
		e.t.Fatalf("creating a %s token: %d %s", role, code, out)
	}
	return tok.Secret
}

// publishTo publishes name@version to a feed directly, its index.js
// exporting value.
func (e *e2e) publishTo(feedName, name, version, value string) {
	e.t.Helper()
	data := tgz(e.t, map[string]string{
		"package/package.json": pkgJSON(name, version, ""),
		"package/index.js":     "module.exports = '" + value + "';\n",
	})
	if code, b := e.call("PUT", "/npm/"+feedName+"/"+name, "bearer:"+e.writer, "application/json", publishBody(name, name, version, data, data)); code != http.StatusOK {
		e.t.Fatalf("publish %s@%s to %s: %d %s", name, version, feedName, code, b)
	}
}

// TestNPMVirtualFeed installs and publishes with the real npm CLI through
// a virtual feed over two hosted feeds: a package only the second holds
// is found, a package both hold comes from the first alone (shadowing,
// even where the second has a newer version), URLs name the virtual feed,
// a publish lands in the first hosted member, and refusals change nothing.
func TestNPMVirtualFeed(t *testing.T) {
	e := startVirtual(t)
	e.publishTo("npmsecond", "only-second", "1.0.0", "second-only")
	e.publishTo("npmfirst", "shadowed", "1.0.0", "from-first")
	e.publishTo("npmsecond", "shadowed", "2.0.0", "from-second")

	app := e.project(e.reader, map[string]string{"package.json": `{"name":"app","version":"0.0.0","private":true,"dependencies":{"only-second":"^1.0.0","shadowed":"*"}}`})
	e.run(app, "install")
	for pkg, want := range map[string]string{"only-second": "second-only", "shadowed": "from-first"} {
		got, err := os.ReadFile(filepath.Join(app, "node_modules", pkg, "index.js"))
		if err != nil || !strings.Contains(string(got), want) {
			t.Errorf("installed %s: %q %v; want %q", pkg, got, err, want)
		}
	}
	lock, _ := os.ReadFile(filepath.Join(app, "package-lock.json"))
	for _, want := range []string{"/npm/npm/only-second/-/only-second-1.0.0.tgz", "/npm/npm/shadowed/-/shadowed-1.0.0.tgz"} {
		if !strings.Contains(string(lock), want) {
			t.Errorf("package-lock.json does not resolve through the virtual feed (%s):\n%s", want, lock)
		}
	}
	if strings.Contains(string(lock), "npmfirst") || strings.Contains(string(lock), "npmsecond") {
		t.Errorf("package-lock.json names a member feed:\n%s", lock)
	}
	// The packument is the first member's: 2.0.0 of the second is not in it.
	if out := e.run(app, "view", "shadowed", "versions", "--json"); strings.Contains(out, "2.0.0") || !strings.Contains(out, "1.0.0") {
		t.Errorf("npm view shadowed versions through the virtual feed: %s", out)
	}
	// Even the second member's tarball URL, asked through the virtual
	// feed, is not served: the name belongs to the first member.
	if code, b := e.call("GET", "/npm/npm/shadowed/-/shadowed-2.0.0.tgz", "bearer:"+e.reader, "", nil); code != http.StatusNotFound {
		t.Errorf("the shadowed version's tarball through the virtual feed: %d %s", code, b)
	}

	// npm publish through the virtual feed lands in the first hosted member.
	lib := e.project(e.writer, map[string]string{"package.json": pkgJSON("via-virtual", "1.0.0", ""), "index.js": "module.exports = 'v';\n"})
	e.run(lib, "publish")
	if code, _ := e.call("GET", "/npm/npmfirst/via-virtual", "bearer:"+e.reader, "", nil); code != http.StatusOK {
		t.Errorf("the package published through the virtual feed is not in npmfirst: %d", code)
	}
	if code, _ := e.call("GET", "/npm/npmsecond/via-virtual", "bearer:"+e.reader, "", nil); code != http.StatusNotFound {
		t.Errorf("the package published through the virtual feed is in npmsecond: %d", code)
	}
	e.run(lib, "dist-tag", "add", "via-virtual@1.0.0", "stable")
	if out := e.run(lib, "dist-tag", "ls", "via-virtual"); !strings.Contains(out, "stable: 1.0.0") {
		t.Errorf("npm dist-tag ls through the virtual feed:\n%s", out)
	}

	// Refused writes through the virtual feed store nothing: a republish,
	// a publish with a reader's token, a publish of a name the first member
	// may not take from this writer.
	blobsBefore := e.s.BlobFiles(t)
	before := e.virtualPackument("via-virtual")
	if err := os.WriteFile(filepath.Join(lib, "index.js"), []byte("module.exports = 'changed';\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := e.try(lib, "publish"); err == nil || !strings.Contains(out, "cannot publish over") {
		t.Errorf("republish through the virtual feed: %v\n%s", err, out)
	}
	ro := e.project(e.reader, map[string]string{"package.json": pkgJSON("ro-virtual", "1.0.0", ""), "index.js": "1\n"})
	if out, err := e.try(ro, "publish"); err == nil || !strings.Contains(out, "403") {
		t.Errorf("publish with a reader token through the virtual feed: %v\n%s", err, out)
	}
	secondOnly := e.scoped(auth.RoleWriter, "npmsecond/**")
	other := e.project(secondOnly, map[string]string{"package.json": pkgJSON("second-writer", "1.0.0", ""), "index.js": "1\n"})
	if out, err := e.try(other, "publish"); err == nil || !strings.Contains(out, "403") {
		t.Errorf("publish through the virtual feed by a writer of the second member only: %v\n%s", err, out)
	}
	if n := e.s.BlobFiles(t); n != blobsBefore {
		t.Errorf("refused writes through the virtual feed stored %d blob files", n-blobsBefore)
	}
	if after := e.virtualPackument("via-virtual"); after != before {
		t.Errorf("the packument changed after refused writes:\n%s\n%s", before, after)
	}
	for _, name := range []string{"ro-virtual", "second-writer"} {
		for _, f := range []string{"npmfirst", "npmsecond"} {
			if code, _ := e.call("GET", "/npm/"+f+"/"+name, "bearer:"+e.writer, "", nil); code != http.StatusNotFound {
				t.Errorf("%s exists in %s after a refused publish: %d", name, f, code)
			}
		}
	}
}

// TestNPMVirtualAccess: reading through a virtual feed needs read on the
// member's repository of the package; a grant on the virtual feed's name
// grants nothing, and a caller who may read only the second member is
// refused a name the first member holds rather than given the second's.
func TestNPMVirtualAccess(t *testing.T) {
	e := startVirtual(t)
	e.publishTo("npmfirst", "shadowed", "1.0.0", "from-first")
	e.publishTo("npmsecond", "shadowed", "2.0.0", "from-second")
	e.publishTo("npmsecond", "only-second", "1.0.0", "second-only")
	secondReader := "bearer:" + e.scoped(auth.RoleReader, "npmsecond/**")
	virtualReader := "bearer:" + e.scoped(auth.RoleReader, "npm/**")
	for _, c := range []struct {
		name, path, cred string
		code             int
	}{
		{"reader of both: shadowed", "/npm/npm/shadowed", "bearer:" + e.reader, 200},
		{"reader of the second: only-second", "/npm/npm/only-second", secondReader, 200},
		{"reader of the second: only-second's tarball", "/npm/npm/only-second/-/only-second-1.0.0.tgz", secondReader, 200},
		{"reader of the second: shadowed is the first's", "/npm/npm/shadowed", secondReader, 403},
		{"reader of the second: shadowed 2.0.0's tarball", "/npm/npm/shadowed/-/shadowed-2.0.0.tgz", secondReader, 403},
		{"reader of the virtual feed's name only", "/npm/npm/only-second", virtualReader, 403},
		{"anonymous", "/npm/npm/only-second", "", 401},
	} {
		code, b := e.call("GET", c.path, c.cred, "", nil)
		if code != c.code || (code != 200 && strings.Contains(string(b), "from-second")) {
			t.Errorf("%s: %d %s; want %d", c.name, code, b, c.code)
		}
		if code == 200 && strings.Contains(string(b), "npmsecond") {
			t.Errorf("%s: the answer names the member feed: %s", c.name, b)
		}
	}
}

func (e *e2e) virtualPackument(name string) string {
	e.t.Helper()
	code, b := e.call("GET", "/npm/npm/"+name, "bearer:"+e.reader, "", nil)
	if code != http.StatusOK && code != http.StatusNotFound {
		e.t.Fatalf("packument %s: %d %s", name, code, b)
	}
	return string(b)
}
