package npm_test

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha1" //nolint:gosec // npm's shasum
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/testserver"
)

// e2e is a running custody with one hosted npm feed, "npmfeed", and auth.
type e2e struct {
	t      *testing.T
	s      *testserver.Server
	feed   string // the feed projects point at
	npm    string
	writer string // API token: writer on npmfeed/**
	reader string // API token: reader on npmfeed/**
	homes  map[string]string
	// registry is the path npm is pointed at; /npm/npmfeed/ when empty.
	registry string
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	npmBin := testserver.Client(t, "npm")
	s := testserver.Start(t, testserver.Options{Auth: true, Config: "feeds:\n  - name: npmfeed\n    ecosystem: npm\n    kind: hosted\n"})
	e := &e2e{t: t, s: s, feed: "npmfeed", npm: npmBin, homes: map[string]string{}}
	e.writer = e.token(auth.RoleWriter)
	e.reader = e.token(auth.RoleReader)
	return e
}

func (e *e2e) token(role auth.Role) string {
	e.t.Helper()
	return e.s.Token(e.t, string(role), e.feed+"/**")
}

// call sends a request; cred is "bearer:<token>", "basic:<user>:<pw>" or "".
func (e *e2e) call(method, path, cred, ctype string, body []byte) (int, []byte) {
	e.t.Helper()
	resp, b := e.s.Call(e.t, method, path, cred, body, "Content-Type", ctype)
	return resp.StatusCode, b
}

// project writes a project directory with an .npmrc pointing at the feed
// with token, and no network: no audit, no fund, no update check.
func (e *e2e) project(token string, files map[string]string) string {
	e.t.Helper()
	dir := e.t.TempDir()
	state := e.t.TempDir() // npm's cache and home, outside what npm packs
	reg := e.s.URL + cmp.Or(e.registry, "/npm/"+e.feed+"/")
	hostPath := strings.TrimPrefix(reg, "http:")
	npmrc := "registry=" + reg + "\n" + hostPath + ":_authToken=" + token + "\n" +
		"audit=false\nfund=false\nupdate-notifier=false\nfetch-retries=0\ncache=" + filepath.Join(state, "cache") + "\n"
	files[".npmrc"] = npmrc
	files[".npmignore"] = ".npmrc\n"
	e.homes[dir] = filepath.Join(state, "home")
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	return dir
}

// run runs npm in dir with an isolated home, failing the test on error.
func (e *e2e) run(dir string, args ...string) string {
	e.t.Helper()
	out, err := e.try(dir, args...)
	if err != nil {
		e.t.Fatalf("npm %s: %v\n%s\nserver:\n%s", strings.Join(args, " "), err, out, e.s.Logs())
	}
	return out
}

func (e *e2e) try(dir string, args ...string) (string, error) {
	cmd := exec.Command(e.npm, args...)
	cmd.Dir = dir
	home := e.homes[dir]
	cmd.Env = append(os.Environ(), "HOME="+home, "npm_config_userconfig="+filepath.Join(dir, ".npmrc"),
		"npm_config_globalconfig="+filepath.Join(home, "npmrc"), "NO_UPDATE_NOTIFIER=1", "NO_PROXY=127.0.0.1,localhost")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func pkgJSON(name, version, extra string) string {
	return `{"name":"` + name + `","version":"` + version + `","description":"test package","main":"index.js"` + extra + `}`
}

// publishDemo publishes, with npm publish as the writer, an unscoped
// package left-pad-x 1.0.0 and a scoped one, @acme/util 2.1.0, which
// depends on it, and returns left-pad-x's project directory.
func (e *e2e) publishDemo() string {
	e.t.Helper()
	lib := e.project(e.writer, map[string]string{"package.json": pkgJSON("left-pad-x", "1.0.0", ""), "index.js": "module.exports = 'left';\n"})
	e.run(lib, "publish")
	scoped := e.project(e.writer, map[string]string{
		"package.json": pkgJSON("@acme/util", "2.1.0", `,"dependencies":{"left-pad-x":"^1.0.0"}`),
		"index.js":     "module.exports = require('left-pad-x') + '-util';\n",
	})
	e.run(scoped, "publish")
	return lib
}

// TestNPMClient publishes, installs, tags and refuses with the real npm CLI.
func TestNPMClient(t *testing.T) {
	e := startE2E(t)

	// Publish an unscoped and a scoped package.
	lib := e.publishDemo()

	// Install both in a fresh project, with a reader token.
	app := e.project(e.reader, map[string]string{"package.json": `{"name":"app","version":"0.0.0","private":true,"dependencies":{"@acme/util":"^2.0.0"}}`})
	e.run(app, "install")
	got, err := os.ReadFile(filepath.Join(app, "node_modules", "@acme", "util", "index.js"))
	if err != nil || !strings.Contains(string(got), "-util") {
		t.Fatalf("installed @acme/util: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(app, "node_modules", "left-pad-x", "index.js")); err != nil {
		t.Fatalf("the dependency left-pad-x was not installed: %v", err)
	}
	lock, _ := os.ReadFile(filepath.Join(app, "package-lock.json"))
	if !strings.Contains(string(lock), "sha512-") || !strings.Contains(string(lock), "/npm/npmfeed/@acme/util/-/util-2.1.0.tgz") {
		t.Errorf("package-lock.json lacks the feed's integrity or tarball URL:\n%s", lock)
	}

	// npm view reads the packument.
	if out := e.run(app, "view", "@acme/util", "version"); strings.TrimSpace(out) != "2.1.0" {
		t.Errorf("npm view @acme/util version = %q", out)
	}

	// dist-tags: add and ls.
	e.run(lib, "dist-tag", "add", "left-pad-x@1.0.0", "stable")
	out := e.run(lib, "dist-tag", "ls", "left-pad-x")
	if !strings.Contains(out, "stable: 1.0.0") || !strings.Contains(out, "latest: 1.0.0") {
		t.Errorf("npm dist-tag ls:\n%s", out)
	}
	e.run(lib, "dist-tag", "rm", "left-pad-x", "stable")
	if out := e.run(lib, "dist-tag", "ls", "left-pad-x"); strings.Contains(out, "stable") {
		t.Errorf("stable still listed after rm:\n%s", out)
	}

	// Republishing 1.0.0 with other content is refused, nothing changed.
	before := e.packument("left-pad-x")
	if err := os.WriteFile(filepath.Join(lib, "index.js"), []byte("module.exports = 'changed';\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = e.try(lib, "publish")
	if err == nil || !strings.Contains(out, "cannot publish over the previously published versions") {
		t.Errorf("republish of 1.0.0 was not refused as npm expects: %v\n%s", err, out)
	}
	if after := e.packument("left-pad-x"); after != before {
		t.Errorf("the packument changed after a refused republish:\n%s\n%s", before, after)
	}

	// A reader token cannot publish.
	ro := e.project(e.reader, map[string]string{"package.json": pkgJSON("ro-pkg", "1.0.0", ""), "index.js": "1\n"})
	out, err = e.try(ro, "publish")
	if err == nil || !strings.Contains(out, "403") {
		t.Errorf("publish with a reader token: %v\n%s", err, out)
	}
	if code, _ := e.call("GET", "/npm/npmfeed/ro-pkg", "bearer:"+e.writer, "", nil); code != http.StatusNotFound {
		t.Errorf("ro-pkg exists after a refused publish: %d", code)
	}

	// The version is an OCI artifact on /v2/ and in the audit log.
	code, tags := e.call("GET", "/v2/npmfeed/acme/util/tags/list", "bearer:"+e.reader, "", nil)
	if code != http.StatusOK || !strings.Contains(string(tags), `"2.1.0"`) {
		t.Errorf("/v2/npmfeed/acme/util/tags/list: %d %s", code, tags)
	}
	code, m := e.call("GET", "/v2/npmfeed/acme/util/manifests/2.1.0", "bearer:"+e.reader, "", nil)
	if code != http.StatusOK || !strings.Contains(string(m), "application/vnd.custody.feed.npm.v1") || !strings.Contains(string(m), "util-2.1.0.tgz") {
		t.Errorf("/v2/ manifest of @acme/util@2.1.0: %d %s", code, m)
	}
	code, log := e.call("GET", "/api/v1/audit/search?repo=npmfeed/acme/util", "basic:admin:"+e.s.AdminPassword(), "", nil)
	if code != http.StatusOK || !strings.Contains(string(log), "manifest.put") {
		t.Errorf("audit log of npmfeed/acme/util: %d %s", code, log)
	}
}

// tgz builds a package tarball holding files (name -> content).
func tgz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, c := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(c))
	}
	_ = tw.Close()
	_ = zw.Close()
	return buf.Bytes()
}

// publishBody is a publish document as libnpmpublish sends it, for
// tarball data; integrity and shasum are those of claimed.
func publishBody(name, base, version string, data, claimed []byte) []byte {
	s512 := sha512.Sum512(claimed)
	s1 := sha1.Sum(claimed) //nolint:gosec // npm's shasum
	doc := map[string]any{
		"_id": name, "name": name,
		"dist-tags": map[string]string{"latest": version},
		"versions": map[string]any{version: map[string]any{
			"name": name, "version": version,
			"dist": map[string]string{"integrity": "sha512-" + base64.StdEncoding.EncodeToString(s512[:]), "shasum": hex.EncodeToString(s1[:]), "tarball": "http://x/y.tgz"},
		}},
		"_attachments": map[string]any{base + "-" + version + ".tgz": map[string]any{
			"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(data), "length": len(data),
		}},
	}
	b, _ := json.Marshal(doc)
	return b
}

func (e *e2e) packument(name string) string {
	e.t.Helper()
	code, b := e.call("GET", "/npm/npmfeed/"+strings.Replace(name, "/", "%2f", 1), "bearer:"+e.reader, "", nil)
	if code != http.StatusOK && code != http.StatusNotFound {
		e.t.Fatalf("packument %s: %d %s", name, code, b)
	}
	return string(b)
}

// TestNPMRefusals sends what the npm CLI never would: each is refused
// with npm's error shape and nothing is stored.
func TestNPMRefusals(t *testing.T) {
	e := startE2E(t)
	good := tgz(t, map[string]string{"package/package.json": `{"name":"evil","version":"1.0.0"}`})
	other := tgz(t, map[string]string{"package/package.json": `{"name":"evil","version":"1.0.0","x":1}`})
	cases := []struct {
		name, path string
		body       []byte
		code       int
		want       string
	}{
		{"hash differs from metadata", "/npm/npmfeed/evil", publishBody("evil", "evil", "1.0.0", good, other), 400, "dist.integrity"},
		{"traversal in name", "/npm/npmfeed/..%2f..%2fetc", publishBody("../../etc", "etc", "1.0.0", good, good), 400, "invalid package name"},
		{"traversal in scope", "/npm/npmfeed/@..%2fevil", publishBody("@../evil", "evil", "1.0.0", good, good), 400, "invalid package name"},
		{"encoded dot-dot", "/npm/npmfeed/%2e%2e", publishBody("..", "..", "1.0.0", good, good), 400, "percent-escapes"},
		{"traversal in archive", "/npm/npmfeed/evil", publishBody("evil", "evil", "1.0.0",
			tgz(t, map[string]string{"package/../../x": "boom"}), tgz(t, map[string]string{"package/../../x": "boom"})), 400, "leaves the package directory"},
		{"name differs from URL", "/npm/npmfeed/evil", publishBody("other", "other", "1.0.0", good, good), 400, "names package"},
	}
	blobsBefore := e.s.BlobFiles(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, b := e.call("PUT", c.path, "bearer:"+e.writer, "application/json", c.body)
			var msg struct {
				Error string `json:"error"`
			}
			if code != c.code || json.Unmarshal(b, &msg) != nil || !strings.Contains(msg.Error, c.want) {
				t.Errorf("PUT %s: %d %s; want %d and an error naming %q", c.path, code, b, c.code, c.want)
			}
		})
	}
	// Nothing was stored: no bytes, no package, no repository.
	if n := e.s.BlobFiles(t); n != blobsBefore {
		t.Errorf("refused publishes stored %d blob files", n-blobsBefore)
	}
	if code, b := e.call("GET", "/npm/npmfeed/evil", "bearer:"+e.reader, "", nil); code != http.StatusNotFound {
		t.Errorf("evil exists after refused publishes: %d %s", code, b)
	}
	if code, b := e.call("GET", "/api/v1/repositories", "basic:admin:"+e.s.AdminPassword(), "", nil); code != http.StatusOK || strings.Contains(string(b), "npmfeed") {
		t.Errorf("a repository was created by refused publishes: %d %s", code, b)
	}
	// The good tarball is accepted, then its version is sealed.
	if code, b := e.call("PUT", "/npm/npmfeed/evil", "bearer:"+e.writer, "application/json", publishBody("evil", "evil", "1.0.0", good, good)); code != http.StatusOK {
		t.Fatalf("publish: %d %s", code, b)
	}
	if n := e.s.BlobFiles(t); n <= blobsBefore {
		t.Errorf("the blob count does not see a publish (%d files): the check above proves nothing", n)
	}
	before := e.packument("evil")
	code, b := e.call("PUT", "/npm/npmfeed/evil", "bearer:"+e.writer, "application/json", publishBody("evil", "evil", "1.0.0", good, good))
	if code != http.StatusForbidden || !strings.Contains(string(b), "cannot publish over") {
		t.Errorf("republish: %d %s", code, b)
	}
	if after := e.packument("evil"); after != before {
		t.Errorf("packument changed by a refused republish")
	}
	// An internal path never leaks: unknown feeds and routes are npm JSON.
	if code, b := e.call("GET", "/npm/nofeed/x", "", "", nil); code != http.StatusNotFound || !strings.Contains(string(b), `"error"`) {
		t.Errorf("unknown feed: %d %s", code, b)
	}
}

// TestNPMAccess: without a token, with a reader's, or with a token for
// other packages, nothing is read or changed, npm's anonymous paths give
// nothing away, and each refusal is in the audit log.
func TestNPMAccess(t *testing.T) {
	e := startE2E(t)
	good := tgz(t, map[string]string{"package/package.json": `{"name":"held","version":"1.0.0"}`})
	if code, b := e.call("PUT", "/npm/npmfeed/held", "bearer:"+e.writer, "application/json", publishBody("held", "held", "1.0.0", good, good)); code != http.StatusOK {
		t.Fatalf("publish: %d %s", code, b)
	}
	body, _ := json.Marshal(auth.TokenRequest{Name: "npm-other", Scopes: []auth.Scope{{Role: auth.RoleWriter, Repositories: []string{"npmfeed/other"}}}})
	code, out := e.call("POST", "/api/v1/tokens", "basic:admin:"+e.s.AdminPassword(), "application/json", body)
	var tok struct {
		Secret string `json:"secret"`
	}
	if code != http.StatusCreated || json.Unmarshal(out, &tok) != nil {
		t.Fatalf("token: %d %s", code, out)
	}
	other := "bearer:" + tok.Secret
	before := e.packument("held")
	version := []byte(`"1.0.0"`)
	cases := []struct {
		name, method, path, cred string
		body                     []byte
		code                     int
	}{
		{"anonymous packument", "GET", "/npm/npmfeed/held", "", nil, 401},
		{"anonymous tarball", "GET", "/npm/npmfeed/held/-/held-1.0.0.tgz", "", nil, 401},
		{"anonymous dist-tags", "GET", "/npm/npmfeed/-/package/held/dist-tags", "", nil, 401},
		{"anonymous publish", "PUT", "/npm/npmfeed/held", "", publishBody("held", "held", "2.0.0", good, good), 401},
		{"anonymous whoami", "GET", "/npm/npmfeed/-/whoami", "", nil, 401},
		{"reader publish", "PUT", "/npm/npmfeed/held", "bearer:" + e.reader, publishBody("held", "held", "2.0.0", good, good), 403},
		{"reader dist-tag add", "PUT", "/npm/npmfeed/-/package/held/dist-tags/evil", "bearer:" + e.reader, version, 403},
		{"reader dist-tag rm", "DELETE", "/npm/npmfeed/-/package/held/dist-tags/latest", "bearer:" + e.reader, nil, 403},
		{"other package's packument", "GET", "/npm/npmfeed/held", other, nil, 403},
		{"other package's tarball", "GET", "/npm/npmfeed/held/-/held-1.0.0.tgz", other, nil, 403},
		{"other package's dist-tag", "PUT", "/npm/npmfeed/-/package/held/dist-tags/latest", other, version, 403},
		{"other package's publish", "PUT", "/npm/npmfeed/held", other, publishBody("held", "held", "2.0.0", good, good), 403},
	}
	for _, c := range cases {
		code, b := e.call(c.method, c.path, c.cred, "application/json", c.body)
		var msg struct {
			Error string `json:"error"`
		}
		if code != c.code || json.Unmarshal(b, &msg) != nil || msg.Error == "" || strings.Contains(string(b), "held-1.0.0.tgz") {
			t.Errorf("%s: %d %s; want %d in npm's error shape", c.name, code, b, c.code)
		}
	}
	// npm's anonymous paths: ping answers, search is not served.
	if code, b := e.call("GET", "/npm/npmfeed/-/ping", "", "", nil); code != http.StatusOK || strings.TrimSpace(string(b)) != "{}" {
		t.Errorf("ping: %d %s", code, b)
	}
	if code, b := e.call("GET", "/npm/npmfeed/-/v1/search?text=held", "", "", nil); code != http.StatusNotFound || strings.Contains(string(b), "held") {
		t.Errorf("search: %d %s", code, b)
	}
	// Nothing changed, and each refusal on the package is audited.
	if after := e.packument("held"); after != before {
		t.Errorf("packument changed by refused requests:\n%s\n%s", before, after)
	}
	code, log := e.call("GET", "/api/v1/audit/search?repo=npmfeed/held&result=denied", "basic:admin:"+e.s.AdminPassword(), "", nil)
	if n := strings.Count(string(log), `\"action\":\"authorize\"`); code != http.StatusOK || n < len(cases)-1 {
		t.Errorf("audit: %d, %d authorize refusals of %d (whoami names no package)\n%s", code, n, len(cases)-1, log)
	}
}
