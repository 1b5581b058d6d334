package gomod_test

import (
	stdzip "archive/zip"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/testserver"
)

// e2e is a running custody with one hosted Go module feed, "gofeed", and
// auth, behind a TLS-terminating proxy: the go command sends .netrc
// credentials over https only.
type e2e struct {
	t      *testing.T
	s      *testserver.Server
	feed   string // the feed the helpers use
	https  string // https://127.0.0.1:port, the proxy in front of custody
	caFile string // the proxy's certificate, PEM
	goBin  string
	client *http.Client // trusts the proxy's certificate
	writer string
	reader string
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	return startFeed(t, "gofeed", "feeds:\n  - name: gofeed\n    ecosystem: go\n    kind: hosted\n", nil)
}

// startFeed starts custody with the configuration cfgText (whose Go feed
// feedName the helpers use) and env, behind a TLS front.
func startFeed(t *testing.T, feedName, cfgText string, env []string) *e2e {
	t.Helper()
	goBin := testserver.Client(t, "go")
	root, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	s := testserver.Start(t, testserver.Options{Auth: true, Config: cfgText, Env: env})
	u, _ := url.Parse(s.URL)
	front := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(u))
	t.Cleanup(front.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &e2e{t: t, s: s, feed: feedName, https: front.URL, caFile: caFile, client: front.Client(), goBin: filepath.Join(strings.TrimSpace(string(root)), "bin", "go")}
	e.writer = e.token(auth.RoleWriter)
	e.reader = e.token(auth.RoleReader)
	return e
}

const app3Main = "package main\n\nimport \"example.test/mod\"\n\nfunc main() { println(mod.Hello()) }\n"

func (e *e2e) token(role auth.Role) string { return e.scopedToken(role, e.feed+"/**") }

func (e *e2e) scopedToken(role auth.Role, repos ...string) string {
	e.t.Helper()
	return e.s.Token(e.t, string(role), repos...)
}

// call sends a request straight to custody with Basic credentials.
func (e *e2e) call(method, path, user, pass string, body []byte) (int, []byte) {
	e.t.Helper()
	resp, b := e.s.Call(e.t, method, path, testserver.Basic(user, pass), body)
	return resp.StatusCode, b
}

// moduleZip builds the zip of module path at version from files, as the
// go command would (golang.org/x/mod/zip.CreateFromDir).
func moduleZip(t *testing.T, path, version string, files map[string]string) []byte {
	t.Helper()
	dir := writeDir(t, files)
	var buf bytes.Buffer
	if err := modzip.CreateFromDir(&buf, module.Version{Path: path, Version: version}, dir); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, c := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// goCmd runs the go command in dir against the feed, with the netrc
// given, no checksum database and no network besides the feed.
func (e *e2e) goCmd(dir, netrc string, args ...string) (string, error) {
	e.t.Helper()
	netrcFile := filepath.Join(e.t.TempDir(), "netrc")
	if err := os.WriteFile(netrcFile, []byte(netrc), 0o600); err != nil {
		e.t.Fatal(err)
	}
	gocache, _ := exec.Command(e.goBin, "env", "GOCACHE").Output()
	home := e.t.TempDir()
	cmd := exec.Command(e.goBin, args...)
	cmd.Dir = dir
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GO") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "NETRC=") && !strings.HasPrefix(kv, "SSL_CERT") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"HOME="+home, "GOENV=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod",
		"GOPROXY="+e.https+"/go/"+e.feed, "GOSUMDB=off", "GONOSUMDB=*", "GOPRIVATE=", "GONOPROXY=", "GOINSECURE=",
		"GOPATH="+filepath.Join(home, "gopath"), "GOMODCACHE="+filepath.Join(home, "modcache"),
		"GOCACHE="+strings.TrimSpace(string(gocache)), "NETRC="+netrcFile, "SSL_CERT_FILE="+e.caFile)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// put publishes a module zip through the TLS front, as curl -T would.
func (e *e2e) put(path, version, token string, zip []byte) (int, string) {
	e.t.Helper()
	esc, _ := module.EscapePath(path)
	req, _ := http.NewRequest("PUT", e.https+"/go/"+e.feed+"/"+esc+"/@v/"+version+".zip", bytes.NewReader(zip))
	if token != "" {
		req.SetBasicAuth("token", token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGoCommand publishes a module, then the real go command resolves,
// downloads, verifies and builds against it through the feed; refused
// publishes change nothing.
func TestGoCommand(t *testing.T) {
	e := startE2E(t)
	const path = "example.test/mod"
	lib := map[string]string{
		"go.mod": "module example.test/mod\n\ngo 1.21\n",
		"mod.go": "package mod\n\n// Hello greets.\nfunc Hello() string { return \"hello from custody\" }\n",
	}
	zip := moduleZip(t, path, "v1.0.0", lib)
	code, out := e.put(path, "v1.0.0", e.writer, zip)
	if code != http.StatusCreated || !strings.Contains(out, " h1:") {
		t.Fatalf("publish: %d %s\nserver:\n%s", code, out, e.s.Logs())
	}
	h1 := strings.TrimSpace(out[strings.LastIndex(out, " h1:")+1:])
	// The same content again is success and changes nothing.
	if code, out := e.put(path, "v1.0.0", e.writer, zip); code != http.StatusOK || !strings.Contains(out, h1) {
		t.Errorf("republishing the same zip: %d %s", code, out)
	}

	// Refusals: nothing is stored, the feed answers as before.
	blobsBefore := e.s.BlobFiles(t)
	_, listBefore := e.call("GET", "/go/gofeed/example.test/mod/@v/list", "token", e.reader, nil)
	outside := moduleZip(t, path, "v1.1.0", lib)
	outside = appendEntry(t, outside, "evil.go", "package evil\n")
	changed := moduleZip(t, path, "v1.0.0", map[string]string{"go.mod": lib["go.mod"], "mod.go": lib["mod.go"] + "// changed\n"})
	for _, c := range []struct {
		name, path, version, token string
		zip                        []byte
		code                       int
		want                       string
	}{
		{"file outside the module directory", path, "v1.1.0", e.writer, outside, 400, "does not have prefix"},
		{"module path mismatch", "example.test/other", "v1.0.0", e.writer,
			moduleZip(t, "example.test/other", "v1.0.0", lib), 400, `declares module "example.test/mod"`},
		{"overwrite with different bytes", path, "v1.0.0", e.writer, changed, 409, "immutable"},
		{"a reader cannot publish", path, "v1.2.0", e.reader, moduleZip(t, path, "v1.2.0", lib), 403, ""},
		{"anonymous cannot publish", path, "v1.2.0", "", moduleZip(t, path, "v1.2.0", lib), 401, ""},
	} {
		code, out := e.put(c.path, c.version, c.token, c.zip)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%s: %d %q; want %d and %q", c.name, code, out, c.code, c.want)
		}
	}
	if n := e.s.BlobFiles(t); n != blobsBefore {
		t.Errorf("refused publishes stored %d blob files", n-blobsBefore)
	}
	if _, list := e.call("GET", "/go/gofeed/example.test/mod/@v/list", "token", e.reader, nil); string(list) != string(listBefore) || string(list) != "v1.0.0\n" {
		t.Errorf("@v/list after refusals = %q, before %q", list, listBefore)
	}
	if code, b := e.call("GET", "/api/v1/repositories", "admin", e.s.AdminPassword(), nil); code != http.StatusOK || strings.Contains(string(b), "gofeed/example.test/other") {
		t.Errorf("a refused publish created a repository: %d %s", code, b)
	}

	// The go command, in a fresh module, with the reader's token in .netrc.
	// The go command looks credentials up by host:port.
	netrc := "machine " + strings.TrimPrefix(e.https, "https://") + " login token password " + e.reader + "\n"
	app := writeDir(t, map[string]string{
		"go.mod":  "module example.test/app\n\ngo 1.21\n",
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.test/mod\"\n)\n\nfunc main() { fmt.Println(mod.Hello()) }\n",
	})
	if out, err := e.goCmd(app, netrc, "list", "-m", "-versions", path); err != nil || strings.TrimSpace(out) != path+" v1.0.0" {
		t.Errorf("go list -m -versions: %v\n%s", err, out)
	}
	if out, err := e.goCmd(app, netrc, "get", path+"@v1.0.0"); err != nil {
		t.Fatalf("go get: %v\n%s\nserver:\n%s", err, out, e.s.Logs())
	}
	if out, err := e.goCmd(app, netrc, "build", "-o", "app", "."); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(app, "app")).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "hello from custody" {
		t.Errorf("the built program: %v %q", err, out)
	}
	sum, _ := os.ReadFile(filepath.Join(app, "go.sum"))
	if !strings.Contains(string(sum), path+" v1.0.0 "+h1+"\n") {
		t.Errorf("go.sum lacks custody's hash %s:\n%s", h1, sum)
	}
	// The go.mod hash in go.sum is the one custody keeps on the .mod layer.
	code, m := e.call("GET", "/v2/gofeed/example.test/mod/manifests/v1.0.0", "token", e.reader, nil)
	if code != http.StatusOK || !strings.Contains(string(m), "application/vnd.custody.feed.go.v1") || !strings.Contains(string(m), h1) {
		t.Fatalf("/v2/ manifest of example.test/mod@v1.0.0: %d %s", code, m)
	}
	var doc struct {
		Layers []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	_ = json.Unmarshal(m, &doc)
	if len(doc.Layers) != 2 || !strings.Contains(string(sum), path+" v1.0.0/go.mod "+doc.Layers[0].Annotations["dev.custody.feed.h1"]+"\n") {
		t.Errorf("go.sum's go.mod line is not custody's (%v):\n%s", doc.Layers, sum)
	}

	// A token that may read only this module's repository is enough:
	// the go command gets past refusals of the path prefixes it may also
	// look up (example.test).
	narrow := e.scopedToken(auth.RoleReader, "gofeed/example.test/mod")
	narrowApp := writeDir(t, map[string]string{"go.mod": "module example.test/app3\n\ngo 1.21\n", "main.go": app3Main})
	netrcNarrow := "machine " + strings.TrimPrefix(e.https, "https://") + " login token password " + narrow + "\n"
	if out, err := e.goCmd(narrowApp, netrcNarrow, "get", path+"@v1.0.0"); err != nil {
		t.Errorf("go get with a token for the module's repository only: %v\n%s", err, out)
	}

	// Without credentials the go command is refused and says so.
	fresh := writeDir(t, map[string]string{"go.mod": "module example.test/app2\n\ngo 1.21\n"})
	if out, err := e.goCmd(fresh, "", "get", path+"@v1.0.0"); err == nil || !strings.Contains(out, "401") {
		t.Errorf("go get without credentials: %v\n%s", err, out)
	}
}

// appendEntry returns zb with one more file, name, outside the module
// directory.
func appendEntry(t *testing.T, zb []byte, name, content string) []byte {
	t.Helper()
	zr, err := stdzip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := stdzip.NewWriter(&buf)
	for _, f := range zr.File {
		if err := zw.Copy(f); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := zw.Create(name)
	_, _ = io.WriteString(w, content)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPublishCommand publishes with 'custody gomod publish'.
func TestPublishCommand(t *testing.T) {
	e := startE2E(t)
	dir := writeDir(t, map[string]string{"go.mod": "module example.test/Cli\n\ngo 1.21\n", "cli.go": "package cli\n"})
	run := func(token string, args ...string) (string, error) {
		cmd := exec.Command(testserver.Binary(t), append([]string{"gomod", "publish", "--server", e.s.URL}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "CUSTODY_TOKEN="+token, "CUSTODY_SERVER=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(e.writer, "gofeed", "example.test/Cli@v1.0.0", dir)
	if err != nil || !strings.Contains(out, "published example.test/Cli@v1.0.0 h1:") {
		t.Fatalf("custody gomod publish: %v\n%s", err, out)
	}
	if out, err := run(e.writer, "gofeed", "example.test/Cli@v1.0.0", dir); err != nil || !strings.Contains(out, "already published") {
		t.Errorf("publishing again: %v\n%s", err, out)
	}
	if out, err := run(e.reader, "gofeed", "example.test/Cli@v1.1.0", dir); err == nil || !strings.Contains(out, "403") {
		t.Errorf("publishing with a reader token: %v\n%s", err, out)
	}
	if out, err := run(e.writer, "gofeed", "example.test/Other@v1.0.0", dir); err == nil || !strings.Contains(out, `declares module "example.test/Cli"`) {
		t.Errorf("publishing under another module path: %v\n%s", err, out)
	}
	if code, b := e.call("GET", "/go/gofeed/example.test/!cli/@v/list", "token", e.reader, nil); code != http.StatusOK || string(b) != "v1.0.0\n" {
		t.Errorf("@v/list: %d %q", code, b)
	}
}
