package npm_test

import (
	"crypto/sha1" //nolint:gosec // npm's shasum
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/testserver"
)

// startProxy starts a custody whose npm feed "npmproxy" pulls through
// from upstreamURL, presenting env's token upstream when tokenEnv is set.
func startProxy(t *testing.T, upstreamURL, tokenEnv string, env []string) *e2e {
	t.Helper()
	cfgText := "feeds:\n  - name: npmproxy\n    ecosystem: npm\n    kind: proxy\n    upstream: " + upstreamURL + "\n"
	if tokenEnv != "" {
		cfgText += "    upstreamAuth:\n      tokenEnv: " + tokenEnv + "\n"
	}
	s := testserver.Start(t, testserver.Options{Auth: true, Config: cfgText, Env: env})
	e := &e2e{t: t, s: s, feed: "npmproxy", npm: testserver.Client(t, "npm"), homes: map[string]string{}}
	e.writer = e.token(auth.RoleWriter)
	e.reader = e.token(auth.RoleReader)
	return e
}

// TestNPMProxy installs through a proxy feed whose upstream is another
// custody (a hosted feed, with its own token), then again with the
// upstream gone; publishing to the proxy is refused.
func TestNPMProxy(t *testing.T) {
	up := startE2E(t)
	up.publishDemo()

	e := startProxy(t, up.s.URL+"/npm/npmfeed", "UPSTREAM_NPM_TOKEN", []string{"UPSTREAM_NPM_TOKEN=" + up.reader})
	appJSON := `{"name":"app","version":"0.0.0","private":true,"dependencies":{"@acme/util":"^2.0.0"}}`
	app := e.project(e.reader, map[string]string{"package.json": appJSON})
	e.run(app, "install")
	if got, err := os.ReadFile(filepath.Join(app, "node_modules", "@acme", "util", "index.js")); err != nil || !strings.Contains(string(got), "-util") {
		t.Fatalf("installed @acme/util: %q %v", got, err)
	}
	lock, _ := os.ReadFile(filepath.Join(app, "package-lock.json"))
	if !strings.Contains(string(lock), "/npm/npmproxy/@acme/util/-/util-2.1.0.tgz") || strings.Contains(string(lock), "/npm/npmfeed/") {
		t.Errorf("package-lock.json does not resolve through the proxy feed:\n%s", lock)
	}
	// Each version is sealed in the proxy's own repository, annotated
	// with where it came from.
	code, m := e.call("GET", "/v2/npmproxy/acme/util/manifests/2.1.0", "bearer:"+e.reader, "", nil)
	if code != http.StatusOK || !strings.Contains(string(m), `"dev.custody.feed.upstream":"`+up.s.URL+`/npm/npmfeed/@acme/util/-/util-2.1.0.tgz"`) {
		t.Errorf("proxied manifest: %d %s", code, m)
	}
	if code, tags := e.call("GET", "/v2/npmproxy/left-pad-x/tags/list", "bearer:"+e.reader, "", nil); code != http.StatusOK || !strings.Contains(string(tags), `"1.0.0"`) {
		t.Errorf("left-pad-x was not sealed: %d %s", code, tags)
	}
	upPackument := e.packumentOf("npmproxy", "@acme/util")

	// Publishing to a proxy feed is refused, in npm's shape, nothing stored.
	own := e.project(e.writer, map[string]string{"package.json": pkgJSON("mine", "1.0.0", ""), "index.js": "1\n"})
	out, err := e.try(own, "publish")
	if err == nil || !strings.Contains(out, "read-only") {
		t.Errorf("npm publish to a proxy feed: %v\n%s", err, out)
	}
	if code, _ := e.call("GET", "/v2/npmproxy/mine/tags/list", "bearer:"+e.reader, "", nil); code != http.StatusNotFound {
		t.Errorf("mine exists after a refused publish: %d", code)
	}

	// Upstream gone: a fresh install (empty npm cache) works from what is
	// stored, and the packument is generated from it.
	up.s.Kill()
	app2 := e.project(e.reader, map[string]string{"package.json": appJSON})
	e.run(app2, "install")
	if _, err := os.Stat(filepath.Join(app2, "node_modules", "left-pad-x", "index.js")); err != nil {
		t.Fatalf("air-gapped install: %v", err)
	}
	offline := e.packumentOf("npmproxy", "@acme/util")
	if !strings.Contains(offline, `"latest":"2.1.0"`) || !strings.Contains(offline, "/npm/npmproxy/@acme/util/-/util-2.1.0.tgz") {
		t.Errorf("air-gapped packument:\n%s\n(upstream's was %s)", offline, upPackument)
	}
	// A version never fetched is 502 naming the unreachable upstream.
	if code, b := e.call("GET", "/npm/npmproxy/left-pad-x/-/left-pad-x-9.9.9.tgz", "bearer:"+e.reader, "", nil); code != http.StatusBadGateway || !strings.Contains(string(b), `"error"`) {
		t.Errorf("unfetched version with upstream down: %d %s", code, b)
	}
}

func (e *e2e) packumentOf(feedName, name string) string {
	e.t.Helper()
	code, b := e.call("GET", "/npm/"+feedName+"/"+strings.Replace(name, "/", "%2f", 1), "bearer:"+e.reader, "", nil)
	if code != http.StatusOK {
		e.t.Fatalf("packument %s: %d %s", name, code, b)
	}
	return string(b)
}

// fakeRegistry is an npm upstream whose tarballs and stated hashes the
// test controls: a version's tarball and what the version document says
// about it can differ.
type fakeRegistry struct {
	mu       sync.Mutex
	tarballs map[string][]byte // name@version -> bytes served
	claims   map[string][]byte // name@version -> bytes whose hashes are stated
	fetches  atomic.Int32      // tarball GETs
	srv      *httptest.Server
	sawAuth  atomic.Value
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	f := &fakeRegistry{tarballs: map[string][]byte{}, claims: map[string][]byte{}}
	f.sawAuth.Store("")
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRegistry) set(name, version string, served, claimed []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tarballs[name+"@"+version] = served
	f.claims[name+"@"+version] = claimed
}

func (f *fakeRegistry) versionDoc(name, version string) map[string]any {
	c := f.claims[name+"@"+version]
	s512 := sha512.Sum512(c)
	s1 := sha1.Sum(c) //nolint:gosec // npm's shasum
	return map[string]any{"name": name, "version": version, "dist": map[string]string{
		"integrity": "sha512-" + base64.StdEncoding.EncodeToString(s512[:]), "shasum": hex.EncodeToString(s1[:]),
		"tarball": f.srv.URL + "/" + name + "/-/" + name + "-" + version + ".tgz",
	}}
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a := r.Header.Get("Authorization"); a != "" {
		f.sawAuth.Store(a)
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 1:
		versions := map[string]any{}
		for k := range f.claims {
			if n, v, _ := strings.Cut(k, "@"); n == parts[0] {
				versions[v] = f.versionDoc(n, v)
			}
		}
		if len(versions) == 0 {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"name": parts[0], "dist-tags": map[string]string{}, "versions": versions})
	case len(parts) == 2:
		if _, ok := f.claims[parts[0]+"@"+parts[1]]; !ok {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(f.versionDoc(parts[0], parts[1]))
	case len(parts) == 3 && parts[1] == "-":
		f.fetches.Add(1)
		v := strings.TrimSuffix(strings.TrimPrefix(parts[2], parts[0]+"-"), ".tgz")
		b, ok := f.tarballs[parts[0]+"@"+v]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

// TestNPMProxyUpstreamRefusals: an upstream whose tarball does not match
// its stated hash, whose tarball leaves its directory, or which changes a
// version custody recorded: each refused, nothing stored, audited; the
// recorded bytes stay served. Concurrent first fetches fetch once.
func TestNPMProxyUpstreamRefusals(t *testing.T) {
	fake := newFakeRegistry(t)
	good := tgz(t, map[string]string{"package/package.json": `{"name":"steady","version":"1.0.0"}`})
	other := tgz(t, map[string]string{"package/package.json": `{"name":"steady","version":"1.0.0","changed":true}`})
	fake.set("liar", "1.0.0", other, good)
	evil := tgz(t, map[string]string{"package/../../x": "boom"})
	fake.set("escaper", "1.0.0", evil, evil)
	fake.set("steady", "1.0.0", good, good)
	e := startProxy(t, fake.srv.URL, "", nil)
	admin := "basic:admin:" + e.s.AdminPassword()
	noTag := func(repo string) {
		t.Helper()
		if code, b := e.call("GET", "/v2/npmproxy/"+repo+"/tags/list", "bearer:"+e.reader, "", nil); code != http.StatusNotFound {
			t.Errorf("%s has tags after a refused fetch: %d %s", repo, code, b)
		}
	}
	blobsBefore := e.s.BlobFiles(t)

	// Bytes not matching upstream's own dist.integrity: 502, nothing stored.
	code, b := e.call("GET", "/npm/npmproxy/liar/-/liar-1.0.0.tgz", "bearer:"+e.reader, "", nil)
	if code != http.StatusBadGateway || !strings.Contains(string(b), "dist.integrity") {
		t.Errorf("mismatching tarball: %d %s", code, b)
	}
	noTag("liar")
	// An archive entry leaving the package directory: refused likewise.
	code, b = e.call("GET", "/npm/npmproxy/escaper/-/escaper-1.0.0.tgz", "bearer:"+e.reader, "", nil)
	if code != http.StatusBadGateway || !strings.Contains(string(b), "leaves the package directory") {
		t.Errorf("escaping tarball: %d %s", code, b)
	}
	noTag("escaper")
	if n := e.s.BlobFiles(t); n != blobsBefore {
		t.Errorf("refused fetches left %d blob files", n-blobsBefore)
	}
	// Traversal in a package name never reaches upstream.
	before := fake.fetches.Load()
	for _, p := range []string{"/npm/npmproxy/..%2f..%2fetc", "/npm/npmproxy/%2e%2e/-/x-1.0.0.tgz", "/npm/npmproxy/@..%2fevil"} {
		if code, b := e.call("GET", p, "bearer:"+e.reader, "", nil); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s", p, code, b)
		}
	}
	if fake.fetches.Load() != before {
		t.Errorf("a traversing name reached upstream")
	}

	// Concurrent first GETs of one version: one upstream fetch.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if code, b := e.call("GET", "/npm/npmproxy/steady/-/steady-1.0.0.tgz", "bearer:"+e.reader, "", nil); code != http.StatusOK || string(b) != string(good) {
				t.Errorf("concurrent first GET: %d (%d bytes)", code, len(b))
			}
		})
	}
	wg.Wait()
	if n := fake.fetches.Load() - before; n != 1 {
		t.Errorf("upstream served the tarball %d times for 8 concurrent first GETs", n)
	}

	// Upstream now serves other bytes for the recorded version (with
	// hashes matching them): the recorded bytes are served, the packument
	// states the recorded integrity, the change is audited.
	fake.set("steady", "1.0.0", other, other)
	pk := e.packumentOf("npmproxy", "steady")
	s512 := sha512.Sum512(good)
	if !strings.Contains(pk, "sha512-"+base64.StdEncoding.EncodeToString(s512[:])) {
		t.Errorf("packument does not state the recorded integrity:\n%s", pk)
	}
	if code, b := e.call("GET", "/npm/npmproxy/steady/-/steady-1.0.0.tgz", "bearer:"+e.reader, "", nil); code != http.StatusOK || string(b) != string(good) {
		t.Errorf("recorded tarball: %d, same bytes %v", code, string(b) == string(good))
	}
	code, log := e.call("GET", "/api/v1/audit/search?repo=npmproxy/steady&result=denied", admin, "", nil)
	if code != http.StatusOK || !strings.Contains(string(log), "feed.upstream_changed") {
		t.Errorf("no feed.upstream_changed audited: %d %s", code, log)
	}
	code, log = e.call("GET", "/api/v1/audit/search?repo=npmproxy/liar", admin, "", nil)
	if code != http.StatusOK || !strings.Contains(string(log), "feed.upstream_mismatch") {
		t.Errorf("no feed.upstream_mismatch audited: %d %s", code, log)
	}
	// The client's credentials never went upstream (this feed has none).
	if a := fake.sawAuth.Load(); a != "" {
		t.Errorf("upstream received Authorization %q", a)
	}
}
