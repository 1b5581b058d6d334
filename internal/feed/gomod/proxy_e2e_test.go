package gomod_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/custody-dev/custody/internal/feed/gomod"
)

func proxyConfig(upstream, passwordEnv string) string {
	c := "feeds:\n  - name: goproxy\n    ecosystem: go\n    kind: proxy\n    upstream: " + upstream + "\n"
	if passwordEnv != "" {
		c += "    upstreamAuth:\n      username: token\n      passwordEnv: " + passwordEnv + "\n"
	}
	return c
}

// TestGoProxy: the go command gets and builds a module through a proxy
// feed whose upstream is another custody's hosted feed, then again with
// the upstream gone; publishing to the proxy is refused.
func TestGoProxy(t *testing.T) {
	up := startE2E(t)
	const path = "example.test/mod"
	lib := map[string]string{
		"go.mod": "module example.test/mod\n\ngo 1.21\n",
		"mod.go": "package mod\n\n// Hello greets.\nfunc Hello() string { return \"hello through the proxy\" }\n",
	}
	if code, out := up.put(path, "v1.0.0", up.writer, moduleZip(t, path, "v1.0.0", lib)); code != http.StatusCreated {
		t.Fatalf("publish upstream: %d %s", code, out)
	}
	e := startFeed(t, "goproxy", proxyConfig(up.s.URL+"/go/gofeed", "UPSTREAM_GO_TOKEN"), []string{"UPSTREAM_GO_TOKEN=" + up.reader})
	netrc := "machine " + strings.TrimPrefix(e.https, "https://") + " login token password " + e.reader + "\n"
	appFiles := map[string]string{
		"go.mod":  "module example.test/app\n\ngo 1.21\n",
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.test/mod\"\n)\n\nfunc main() { fmt.Println(mod.Hello()) }\n",
	}
	build := func(what string) string {
		t.Helper()
		app := writeDir(t, appFiles)
		if out, err := e.goCmd(app, netrc, "list", "-m", "-versions", path); err != nil || strings.TrimSpace(out) != path+" v1.0.0" {
			t.Errorf("%s: go list -m -versions: %v\n%s", what, err, out)
		}
		if out, err := e.goCmd(app, netrc, "get", path+"@v1.0.0"); err != nil {
			t.Fatalf("%s: go get: %v\n%s\nserver:\n%s", what, err, out, e.s.Logs())
		}
		if out, err := e.goCmd(app, netrc, "build", "-o", "app", "."); err != nil {
			t.Fatalf("%s: go build: %v\n%s", what, err, out)
		}
		if out, err := exec.Command(filepath.Join(app, "app")).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "hello through the proxy" {
			t.Fatalf("%s: the built program: %v %q", what, err, out)
		}
		sum, _ := readFile(filepath.Join(app, "go.sum"))
		return sum
	}
	sum := build("through the proxy")
	repo, _ := gomod.ModuleRepository("goproxy", path)
	code, m := e.call("GET", "/v2/"+repo+"/manifests/v1.0.0", "token", e.reader, nil)
	if code != http.StatusOK || !strings.Contains(string(m), `"dev.custody.feed.upstream":"`+up.s.URL+`/go/gofeed/example.test/mod/@v/v1.0.0.zip"`) {
		t.Fatalf("proxied manifest: %d %s", code, m)
	}
	var doc struct {
		Layers []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	_ = json.Unmarshal(m, &doc)
	if len(doc.Layers) != 2 || !strings.Contains(sum, path+" v1.0.0 "+doc.Layers[1].Annotations["dev.custody.feed.h1"]+"\n") {
		t.Errorf("go.sum does not hold the recorded h1: (%v):\n%s", doc.Layers, sum)
	}

	// Publishing to a proxy is refused; nothing stored.
	if code, out := e.put(path, "v1.1.0", e.writer, moduleZip(t, path, "v1.1.0", lib)); code != http.StatusMethodNotAllowed || !strings.Contains(out, "read-only") {
		t.Errorf("publish to a proxy feed: %d %s", code, out)
	}
	if _, tags := e.call("GET", "/v2/"+repo+"/tags/list", "token", e.reader, nil); strings.Contains(string(tags), "v1.1.0") {
		t.Errorf("a refused publish left a tag: %s", tags)
	}

	// Upstream gone: a fresh module cache still gets and builds it.
	up.s.Kill()
	if again := build("air-gapped"); again != sum {
		t.Errorf("go.sum differs air-gapped:\n%s\nwas\n%s", again, sum)
	}
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}

// TestGoProxyUpstreamRefusals: an upstream whose .mod is not its zip's
// go.mod, or whose zip leaves the module directory, is refused with
// nothing stored and audited; a traversing module path never reaches
// upstream; a recorded version keeps its bytes when upstream changes;
// concurrent first fetches fetch once.
func TestGoProxyUpstreamRefusals(t *testing.T) {
	const path = "example.test/mod"
	lib := map[string]string{"go.mod": "module example.test/mod\n\ngo 1.21\n", "mod.go": "package mod\n"}
	var mu sync.Mutex
	zips := map[string][]byte{
		"v1.0.0": moduleZip(t, path, "v1.0.0", lib),
		"v1.1.0": moduleZip(t, path, "v1.1.0", lib),
		"v1.2.0": appendEntry(t, moduleZip(t, path, "v1.2.0", lib), "../evil.go", "package evil\n"),
	}
	mods := map[string]string{"v1.0.0": lib["go.mod"], "v1.1.0": "module example.test/mod\n\ngo 1.22\n", "v1.2.0": lib["go.mod"]}
	var hits, zipHits atomic.Int32
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/"+path+"/@latest" {
			_, _ = io.WriteString(w, `{"Version":"v1.1.0","Time":"2024-01-02T03:04:05Z"}`)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/"+path+"/@v/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		dot := strings.LastIndexByte(rest, '.')
		if rest == "list" {
			_, _ = io.WriteString(w, "v1.0.0\nv1.1.0\nv1.2.0\n")
			return
		}
		if dot < 0 {
			http.NotFound(w, r)
			return
		}
		v, ext := rest[:dot], rest[dot+1:]
		switch ext {
		case "info":
			_, _ = io.WriteString(w, `{"Version":"`+v+`","Time":"2024-01-02T03:04:05Z"}`)
		case "mod":
			_, _ = io.WriteString(w, mods[v])
		case "zip":
			zipHits.Add(1)
			_, _ = w.Write(zips[v])
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(fake.Close)
	e := startFeed(t, "goproxy", proxyConfig(fake.URL, ""), nil)
	repo, _ := gomod.ModuleRepository("goproxy", path)
	base := "/go/goproxy/" + path + "/@v/"
	for _, c := range []struct{ version, want string }{
		{"v1.1.0", "not the go.mod in its zip"},
		{"v1.2.0", "refused"},
	} {
		if code, b := e.call("GET", base+c.version+".zip", "token", e.reader, nil); code != http.StatusBadGateway || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %s", c.version, code, b)
		}
	}
	if code, b := e.call("GET", "/v2/"+repo+"/tags/list", "token", e.reader, nil); code != http.StatusNotFound {
		t.Errorf("refused versions left tags: %d %s", code, b)
	}
	code, log := e.call("GET", "/api/v1/audit/search?repo="+repo, "admin", e.s.AdminPassword(), nil)
	if code != http.StatusOK || strings.Count(string(log), "feed.upstream_refused") < 2 {
		t.Errorf("refusals not audited: %d %s", code, log)
	}
	before := hits.Load()
	for _, p := range []string{"/go/goproxy/example.test/../../x/@v/list", "/go/goproxy/%2e%2e/@v/list", "/go/goproxy/example.test/mod/@v/..%2fv1.0.0.zip"} {
		if code, _ := e.call("GET", p, "token", e.reader, nil); code != http.StatusNotFound {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	if hits.Load() != before {
		t.Errorf("a traversing path reached upstream")
	}

	// Concurrent first requests for one version: one zip fetch.
	zipsBefore := zipHits.Load()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if code, b := e.call("GET", base+"v1.0.0.zip", "token", e.reader, nil); code != http.StatusOK || !bytes.Equal(b, zips["v1.0.0"]) {
				t.Errorf("concurrent first GET: %d", code)
			}
		})
	}
	wg.Wait()
	if n := zipHits.Load() - zipsBefore; n != 1 {
		t.Errorf("upstream served the zip %d times for 8 concurrent first GETs", n)
	}
	// Upstream changes the recorded version: the recorded zip is served.
	first := zips["v1.0.0"]
	mu.Lock()
	zips["v1.0.0"] = moduleZip(t, path, "v1.0.0", map[string]string{"go.mod": lib["go.mod"], "mod.go": "package mod\n// changed\n"})
	mu.Unlock()
	if code, b := e.call("GET", base+"v1.0.0.zip", "token", e.reader, nil); code != http.StatusOK || !bytes.Equal(b, first) {
		t.Errorf("recorded zip after upstream changed: %d, same %v", code, bytes.Equal(b, first))
	}
	if code, b := e.call("GET", base+"list", "token", e.reader, nil); code != http.StatusOK || string(b) != "v1.0.0\nv1.1.0\nv1.2.0\n" {
		t.Errorf("@v/list: %d %q", code, b)
	}
	if code, b := e.call("GET", "/go/goproxy/"+path+"/@latest", "token", e.reader, nil); code != http.StatusOK || !strings.HasPrefix(string(b), `{"Version":"v1.1.0","Time":"2024-01-02T03:04:05Z"}`) {
		t.Errorf("@latest: %d %q", code, b)
	}
	// Upstream gone: list and latest from what is stored (v1.0.0 only).
	fake.Close()
	if code, b := e.call("GET", base+"list", "token", e.reader, nil); code != http.StatusOK || string(b) != "v1.0.0\n" {
		t.Errorf("@v/list with upstream gone: %d %q", code, b)
	}
	if code, b := e.call("GET", "/go/goproxy/"+path+"/@latest", "token", e.reader, nil); code != http.StatusOK || !strings.Contains(string(b), `"Version":"v1.0.0"`) {
		t.Errorf("@latest with upstream gone: %d %q", code, b)
	}
}
