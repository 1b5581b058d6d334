package maven

import (
	"crypto/sha1" //nolint:gosec // Maven's .sha1
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
)

// upstream plays a public Maven repository: files by path, changeable,
// counting GETs, and able to go away (503 for everything).
type upstream struct {
	mu    sync.Mutex
	files map[string]string
	gets  map[string]int
	down  bool
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if r.Header.Get("Authorization") != "" {
		http.Error(w, "a client's credentials reached upstream", http.StatusTeapot)
		return
	}
	if u.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/repo/")
	u.gets[p]++
	b, ok := u.files[p]
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(b))
}

func (u *upstream) set(path, body string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files[path] = body
	s := sha1.Sum([]byte(body)) //nolint:gosec // Maven's .sha1
	u.files[path+".sha1"] = hexOf(s[:])
}

func (u *upstream) count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.gets[path]
}

func newProxyFixture(t *testing.T) (*fixture, *upstream) {
	t.Helper()
	x := newFixture(t)
	u := &upstream{files: map[string]string{}, gets: map[string]int{}}
	us := httptest.NewServer(u)
	t.Cleanup(us.Close)
	client, err := feed.NewUpstream(config.Feed{Name: "p", Ecosystem: "maven", Kind: "proxy", Upstream: us.URL + "/repo/"}, feed.UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x.h.Upstreams = map[string]*feed.Upstream{"p": client}
	x.url = strings.Replace(x.url, "/maven/f/", "/maven/p/", 1)
	return x, u
}

const libJar = "com/example/lib/1.0/lib-1.0.jar"

// TestProxyPullThrough: a file is fetched from upstream once, checked
// against upstream's .sha1, sealed with its source and then served from
// custody, also when upstream is gone; metadata is upstream's with the
// stored versions, or generated when upstream cannot be reached; writes
// are refused.
func TestProxyPullThrough(t *testing.T) {
	x, u := newProxyFixture(t)
	u.set(libJar, "lib 1.0 bytes")
	u.set("com/example/lib/maven-metadata.xml", `<metadata><groupId>com.example</groupId><artifactId>lib</artifactId>
<versioning><latest>2.0</latest><release>2.0</release><versions><version>1.0</version><version>2.0</version></versions></versioning></metadata>`)
	for i := 0; i < 3; i++ {
		if code, body, _ := x.do(t, "GET", libJar, nil); code != 200 || body != "lib 1.0 bytes" {
			t.Fatalf("GET through the proxy (%d): %d %q", i, code, body)
		}
	}
	if n := u.count(libJar); n != 1 {
		t.Fatalf("upstream was asked for the jar %d times; want once", n)
	}
	v, err := x.h.Store.Version(t.Context(), "p/com/example/lib", "lib-1.0.jar")
	if err != nil || v.Manifest.Annotations[feed.AnnotationUpstream] == "" || v.Manifest.Annotations[feed.AnnotationPackage] != "com.example:lib" {
		t.Fatalf("stored version: %+v, %v", v.Manifest.Annotations, err)
	}
	s := sha1.Sum([]byte("lib 1.0 bytes")) //nolint:gosec // Maven's .sha1
	if code, body, _ := x.do(t, "GET", libJar+".sha1", nil); code != 200 || body != hexOf(s[:]) {
		t.Fatalf("GET .sha1: %d %q", code, body)
	}
	if code, body, _ := x.do(t, "GET", "com/example/lib/maven-metadata.xml", nil); code != 200 || !strings.Contains(body, "<version>2.0</version>") {
		t.Fatalf("GET metadata through the proxy: %d\n%s", code, body)
	}
	if code, body, _ := x.do(t, "GET", "com/example/lib/9.9/lib-9.9.jar", nil); code != 404 {
		t.Fatalf("GET a file upstream lacks: %d %s", code, body)
	}
	// Writes are refused.
	if code, body, _ := x.do(t, "PUT", "com/example/lib/3.0/lib-3.0.jar", []byte("x")); code != http.StatusMethodNotAllowed || !strings.Contains(body, feed.ProxyReadOnly) {
		t.Fatalf("PUT to a proxy feed: %d %s", code, body)
	}
	if _, err := x.h.Store.Version(t.Context(), "p/com/example/lib", "lib-3.0.jar"); err == nil {
		t.Fatal("the refused PUT stored a file")
	}
	// Upstream gone: stored files and generated metadata still serve.
	u.mu.Lock()
	u.down = true
	u.mu.Unlock()
	if code, body, _ := x.do(t, "GET", libJar, nil); code != 200 || body != "lib 1.0 bytes" {
		t.Fatalf("GET with upstream down: %d %q", code, body)
	}
	if code, body, _ := x.do(t, "GET", libJar+".sha1", nil); code != 200 || body != hexOf(s[:]) {
		t.Fatalf("GET .sha1 with upstream down: %d %q", code, body)
	}
	code, body, _ := x.do(t, "GET", "com/example/lib/maven-metadata.xml", nil)
	if code != 200 || !strings.Contains(body, "<version>1.0</version>") || strings.Contains(body, "2.0") {
		t.Fatalf("GET metadata with upstream down: %d\n%s", code, body)
	}
	if code, body, _ := x.do(t, "GET", "com/example/lib/2.0/lib-2.0.jar", nil); code != http.StatusBadGateway {
		t.Fatalf("GET an unstored file with upstream down: %d %s", code, body)
	}
}

// TestProxyUpstreamMismatch: bytes that do not match upstream's own .sha1
// are refused (502), audited, and nothing is stored.
func TestProxyUpstreamMismatch(t *testing.T) {
	x, u := newProxyFixture(t)
	u.set(libJar, "lib 1.0 bytes")
	u.mu.Lock()
	u.files[libJar] = "tampered bytes"
	u.mu.Unlock()
	code, body, _ := x.do(t, "GET", libJar, nil)
	if code != http.StatusBadGateway || !strings.Contains(body, "nothing stored") {
		t.Fatalf("GET with a mismatching .sha1: %d %q", code, body)
	}
	if !x.audit.has("feed.upstream_mismatch", "denied") {
		t.Fatal("no feed.upstream_mismatch audit event")
	}
	if tags := x.tags(t, "p/com/example/lib"); tags != nil {
		t.Fatalf("stored after a mismatch: %v", tags)
	}
}

// TestProxyUpstreamChanged: once a file is recorded, upstream offering
// other bytes (another .sha1) changes nothing: the recorded bytes and
// checksum are served and the change is audited.
func TestProxyUpstreamChanged(t *testing.T) {
	x, u := newProxyFixture(t)
	u.set(libJar, "first bytes")
	if code, body, _ := x.do(t, "GET", libJar, nil); code != 200 || body != "first bytes" {
		t.Fatalf("first GET: %d %q", code, body)
	}
	u.set(libJar, "second bytes")
	s := sha1.Sum([]byte("first bytes")) //nolint:gosec // Maven's .sha1
	if code, body, _ := x.do(t, "GET", libJar+".sha1", nil); code != 200 || body != hexOf(s[:]) {
		t.Fatalf("GET .sha1 after upstream changed: %d %q; want the recorded %s", code, body, hexOf(s[:]))
	}
	if !x.audit.has("feed.upstream_changed", "denied") {
		t.Fatal("no feed.upstream_changed audit event")
	}
	if code, body, _ := x.do(t, "GET", libJar, nil); code != 200 || body != "first bytes" {
		t.Fatalf("GET after upstream changed: %d %q", code, body)
	}
}

// TestProxyFirewallBeforeFetch: a blocked version is refused before
// anything is fetched from upstream.
func TestProxyFirewallBeforeFetch(t *testing.T) {
	x, u := newProxyFixture(t)
	const bad = "com/example/bad/6.6/bad-6.6.jar"
	u.set(bad, "bad bytes")
	if code, body, _ := x.do(t, "GET", bad, nil); code != http.StatusForbidden || !strings.Contains(body, "GHSA-test") {
		t.Fatalf("GET a blocked version through the proxy: %d %q", code, body)
	}
	if n := u.count(bad); n != 0 {
		t.Fatalf("upstream was asked for a blocked file %d times", n)
	}
	if tags := x.tags(t, "p/com/example/bad"); tags != nil {
		t.Fatalf("stored a blocked file: %v", tags)
	}
}
