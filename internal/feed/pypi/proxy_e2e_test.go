package pypi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/feed/feedtest"
	"github.com/custody-dev/custody/internal/testserver"
)

// startPyProxy starts a custody whose PyPI feed "pyproxy" pulls through
// from upstream, with Basic credentials __token__ and env's password
// when passwordEnv is set.
func startPyProxy(t *testing.T, upstream, passwordEnv string, env []string) *e2e {
	t.Helper()
	text := "feeds:\n  - name: pyproxy\n    ecosystem: pypi\n    kind: proxy\n    upstream: " + upstream + "\n"
	if passwordEnv != "" {
		text += "    upstreamAuth:\n      username: __token__\n      passwordEnv: " + passwordEnv + "\n"
	}
	s := testserver.Start(t, testserver.Options{Auth: true, Config: text, Env: env})
	e := &e2e{t: t, s: s, feed: "pyproxy", home: t.TempDir()}
	e.writer = e.token(auth.RoleWriter)
	e.reader = e.token(auth.RoleReader)
	return e
}

func importValue(t *testing.T, py, target string) string {
	t.Helper()
	cmd := exec.Command(py, "-c", "import custody_demo; print(custody_demo.VALUE)")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+target)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("import custody_demo: %v %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPyPIProxy installs with pip through a proxy feed whose upstream is
// another custody's hosted feed (reached with its own token), then with
// the upstream gone; twine upload to the proxy is refused.
func TestPyPIProxy(t *testing.T) {
	py := python(t)
	up := startE2E(t)
	dir := t.TempDir()
	whl := writeFile(t, dir, "custody_demo-1.0.0-py3-none-any.whl", wheel(t, "1.0.0", "proxied"))
	if out, err := up.twine(up.writer, whl); err != nil {
		t.Fatalf("twine upload upstream: %v\n%s", err, out)
	}
	e := startPyProxy(t, up.s.URL+"/pypi/pyfeed/simple", "UPSTREAM_PYPI_TOKEN", []string{"UPSTREAM_PYPI_TOKEN=" + up.reader})

	target, out, err := e.pip(py, e.reader, "custody-demo==1.0.0")
	if err != nil {
		t.Fatalf("pip install through the proxy: %v\n%s\nserver:\n%s", err, out, e.s.Logs())
	}
	if v := importValue(t, py, target); v != "proxied" {
		t.Fatalf("installed VALUE = %q", v)
	}
	// PEP 691 too, with links to custody and the sha256.
	sum := sha256.Sum256(mustRead(t, whl))
	code, b := e.call("GET", "/pypi/pyproxy/simple/custody-demo/", "basic:__token__:"+e.reader, "", map[string]string{"Accept": "application/vnd.pypi.simple.v1+json"}, nil)
	if code != http.StatusOK || !strings.Contains(string(b), `"url":"../../files/custody-demo/custody_demo-1.0.0-py3-none-any.whl"`) || !strings.Contains(string(b), hex.EncodeToString(sum[:])) {
		t.Errorf("PEP 691 index through the proxy: %d %s", code, b)
	}
	code, m := e.call("GET", "/v2/pyproxy/custody-demo/manifests/custody_5fdemo-1.0.0-py3-none-any.whl", "basic:__token__:"+e.reader, "", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(m), `"dev.custody.feed.upstream":"`+up.s.URL+`/pypi/pyfeed/files/custody-demo/custody_demo-1.0.0-py3-none-any.whl"`) {
		t.Errorf("proxied manifest: %d %s", code, m)
	}

	// Uploading to a proxy feed is refused; nothing stored.
	sd := writeFile(t, dir, "custody_demo-2.0.0.tar.gz", sdist(t, "2.0.0"))
	// (twine prints the status line only; the body says why.)
	if out, err := e.twine(e.writer, sd); err == nil || !strings.Contains(out, "405") {
		t.Errorf("twine upload to a proxy feed: %v\n%s", err, out)
	}
	if code, b := e.call("POST", "/pypi/pyproxy/legacy/", "basic:__token__:"+e.writer, "multipart/form-data; boundary=x", nil, []byte("--x--\r\n")); code != http.StatusMethodNotAllowed || !strings.Contains(string(b), "proxy feed is read-only; publish to a hosted feed") {
		t.Errorf("upload to a proxy feed: %d %s", code, b)
	}
	if code, b := e.call("GET", "/v2/pyproxy/custody-demo/tags/list", "basic:__token__:"+e.reader, "", nil, nil); code != http.StatusOK || strings.Contains(string(b), "2.0.0") {
		t.Errorf("tags after a refused upload: %d %s", code, b)
	}

	// Upstream gone: pip installs from what is stored.
	up.s.Kill()
	target, out, err = e.pip(py, e.reader, "custody-demo==1.0.0")
	if err != nil {
		t.Fatalf("air-gapped pip install: %v\n%s", err, out)
	}
	if v := importValue(t, py, target); v != "proxied" {
		t.Fatalf("air-gapped VALUE = %q", v)
	}
}

// fakeIndex is a PyPI upstream whose files and the sha256 its index
// states for them the test controls.
type fakeIndex struct {
	mu      sync.Mutex
	files   map[string][]byte // served bytes by file name
	claims  map[string][]byte // bytes whose sha256 the index states
	fetches atomic.Int32
	srv     *httptest.Server
}

func newFakeIndex(t *testing.T) *fakeIndex {
	f := &fakeIndex{files: map[string][]byte{}, claims: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if name, ok := strings.CutPrefix(r.URL.Path, "/files/"); ok {
			f.fetches.Add(1)
			b, ok := f.files[name]
			if !ok {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write(b)
			return
		}
		if r.URL.Path != "/simple/custody-demo/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>\n")
		for name, c := range f.claims {
			s := sha256.Sum256(c)
			fmt.Fprintf(w, "<a href=\"/files/%s#sha256=%x\">%s</a>\n", name, s, name)
		}
		fmt.Fprint(w, "</body></html>\n")
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIndex) set(name string, served, claimed []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[name], f.claims[name] = served, claimed
}

// TestPyPIProxyUpstreamRefusals: a file not matching the index's sha256,
// and an archive leaving its directory, are refused with nothing stored
// and audited; a recorded file whose upstream bytes change keeps being
// served as recorded, the index states the recorded hash, and the change
// is audited.
func TestPyPIProxyUpstreamRefusals(t *testing.T) {
	fake := newFakeIndex(t)
	good, other := wheel(t, "1.0.0", "good"), wheel(t, "1.0.0", "other")
	fake.set("custody_demo-1.0.0-py3-none-any.whl", good, good)
	fake.set("custody_demo-2.0.0-py3-none-any.whl", wheel(t, "2.0.0", "x"), wheel(t, "2.0.0", "y"))
	evil := feedtest.Zip(t, map[string]string{"../../evil.py": "x"})
	fake.set("custody_demo-3.0.0-py3-none-any.whl", evil, evil)
	e := startPyProxy(t, fake.srv.URL+"/simple", "", nil)
	cred := "basic:__token__:" + e.reader
	admin := "basic:admin:" + e.s.AdminPassword()
	files := "/pypi/pyproxy/files/custody-demo/"

	code, b := e.call("GET", files+"custody_demo-2.0.0-py3-none-any.whl", cred, "", nil, nil)
	if code != http.StatusBadGateway || !strings.Contains(string(b), "sha256") {
		t.Errorf("mismatching file: %d %s", code, b)
	}
	code, b = e.call("GET", files+"custody_demo-3.0.0-py3-none-any.whl", cred, "", nil, nil)
	if code != http.StatusBadGateway || !strings.Contains(string(b), "leaves its directory") {
		t.Errorf("escaping archive: %d %s", code, b)
	}
	if code, b := e.call("GET", "/v2/pyproxy/custody-demo/tags/list", cred, "", nil, nil); code != http.StatusNotFound {
		t.Errorf("refused files left tags: %d %s", code, b)
	}
	if code, b := e.call("GET", files+"..%2f..%2fx", cred, "", nil, nil); code != http.StatusBadRequest {
		t.Errorf("traversal: %d %s", code, b)
	}

	// Recorded, then changed upstream.
	if code, b := e.call("GET", files+"custody_demo-1.0.0-py3-none-any.whl", cred, "", nil, nil); code != http.StatusOK || string(b) != string(good) {
		t.Fatalf("first download: %d", code)
	}
	fake.set("custody_demo-1.0.0-py3-none-any.whl", other, other)
	goodSum := sha256.Sum256(good)
	if code, b := e.call("GET", "/pypi/pyproxy/simple/custody-demo/", cred, "", nil, nil); code != http.StatusOK || !strings.Contains(string(b), hex.EncodeToString(goodSum[:])) {
		t.Errorf("index after upstream changed: %d %s", code, b)
	}
	if code, b := e.call("GET", files+"custody_demo-1.0.0-py3-none-any.whl", cred, "", nil, nil); code != http.StatusOK || string(b) != string(good) {
		t.Errorf("recorded file after upstream changed: %d", code)
	}
	code, log := e.call("GET", "/api/v1/audit/search?repo=pyproxy/custody-demo", admin, "", nil, nil)
	for _, action := range []string{"feed.upstream_mismatch", "feed.upstream_changed", "feed.upstream_refused"} {
		if code != http.StatusOK || !strings.Contains(string(log), action) {
			t.Errorf("audit lacks %s: %d %s", action, code, log)
		}
	}
}
