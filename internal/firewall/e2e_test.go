package firewall_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/feed/feedtest"
	"github.com/custody-dev/custody/internal/feed/origin"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/testserver"
)

// env is a running custody with an npm and a PyPI feed under a firewall
// (blockSeverity high) and auth on, and a vulnerability database holding
// crafted advisories against versions published to them.
type env struct {
	t      *testing.T
	s      *testserver.Server
	admin  string // API token: admin
	writer string // API token: writer on every feed
	reader string // API token: reader on every feed
}

const firewallConfig = `feeds:
  - name: npmfw
    ecosystem: npm
    kind: hosted
    firewall:
      blockSeverity: high
      allow: ["fw-allowed"]
  - name: pyfw
    ecosystem: pypi
    kind: hosted
    firewall:
      blockSeverity: high
`

// advisory is an OSV record affecting versions [introduced, fixed) of pkg.
func advisory(id, eco, pkg, introduced, fixed, severity string) string {
	return fmt.Sprintf(`{"schema_version":"1.6.0","id":%q,"modified":"2026-01-01T00:00:00Z","published":"2026-01-01T00:00:00Z",
"summary":"crafted test advisory for %s","database_specific":{"severity":%q},
"affected":[{"package":{"ecosystem":%q,"name":%q},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":%q},{"fixed":%q}]}]}]}`,
		id, pkg, severity, eco, pkg, introduced, fixed)
}

func start(t *testing.T) *env { return startIn(t, t.TempDir()) }

// startIn starts the server on data directory data.
func startIn(t *testing.T, data string) *env {
	t.Helper()
	s := testserver.Start(t, testserver.Options{Auth: true, Data: data, Config: firewallConfig, Env: []string{"CUSTODY_KEY_PASSWORD=server-pass"}})
	e := &env{t: t, s: s}
	e.admin = e.token(auth.RoleAdmin, "**")
	e.writer = e.token(auth.RoleWriter, "**")
	e.reader = e.token(auth.RoleReader, "**")
	for _, a := range []string{
		advisory("GHSA-fwfw-0001-test", "npm", "fw-demo", "0", "1.0.1", "HIGH"),
		advisory("GHSA-fwfw-0002-test", "npm", "fw-allowed", "0", "9.0.0", "CRITICAL"),
		advisory("GHSA-fwfw-0003-test", "npm", "fw-minor", "0", "9.0.0", "MODERATE"),
		advisory("PYSEC-2026-fw1", "PyPI", "fw-demo-py", "0", "1.0.1", "CRITICAL"),
	} {
		if code, out := e.call("POST", "/api/v1/vulndb", "bearer:"+e.admin, "application/json", []byte(a)); code != http.StatusOK {
			t.Fatalf("loading an advisory: %d %s", code, out)
		}
	}
	return e
}

func (e *env) token(role auth.Role, pattern string) string {
	e.t.Helper()
	return e.s.Token(e.t, string(role), pattern)
}

// call sends a request; cred is "bearer:<token>", "basic:<user>:<pw>" or "".
func (e *env) call(method, path, cred, ctype string, body []byte) (int, []byte) {
	e.t.Helper()
	resp, b := e.s.Call(e.t, method, path, cred, body, "Content-Type", ctype)
	return resp.StatusCode, b
}

// custody runs the custody CLI as the admin; command is a command line
// starting with "custody " as the firewall prints it.
func (e *env) custody(command string) (string, error) {
	e.t.Helper()
	cmd := exec.Command("sh", "-c", strings.Replace(command, "custody ", testserver.Binary(e.t)+" ", 1))
	cmd.Env = append(os.Environ(), "CUSTODY_SERVER="+e.s.URL, "CUSTODY_TOKEN="+e.admin, "HOME="+e.t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var waiveCommand = regexp.MustCompile(`custody firewall waive [^\n]*"reviewed: not affected"`)

// npm is a project directory for the real npm CLI against feed npmfw.
type npm struct {
	e        *env
	bin, dir string
	home     string
}

func (e *env) npm(token string, files map[string]string) *npm {
	e.t.Helper()
	n := &npm{e: e, bin: testserver.Client(e.t, "npm"), dir: e.t.TempDir(), home: e.t.TempDir()}
	reg := e.s.URL + "/npm/npmfw/"
	files[".npmrc"] = "registry=" + reg + "\n" + strings.TrimPrefix(reg, "http:") + ":_authToken=" + token + "\n" +
		"audit=false\nfund=false\nupdate-notifier=false\nfetch-retries=0\ncache=" + filepath.Join(n.home, "cache") + "\n"
	files[".npmignore"] = ".npmrc\n"
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(n.dir, name), []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	return n
}

func (n *npm) try(args ...string) (string, error) {
	cmd := exec.Command(n.bin, args...)
	cmd.Dir = n.dir
	cmd.Env = append(os.Environ(), "HOME="+n.home, "npm_config_userconfig="+filepath.Join(n.dir, ".npmrc"),
		"npm_config_globalconfig="+filepath.Join(n.home, "npmrc"), "NO_UPDATE_NOTIFIER=1", "NO_PROXY=127.0.0.1,localhost")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *env) publishNPM(name, version string) {
	e.t.Helper()
	p := e.npm(e.writer, map[string]string{
		"package.json": `{"name":"` + name + `","version":"` + version + `","main":"index.js"}`,
		"index.js":     "module.exports = '" + name + "@" + version + "';\n",
	})
	if out, err := p.try("publish"); err != nil {
		e.t.Fatalf("npm publish %s@%s: %v\n%s", name, version, err, out)
	}
}

// install installs name@version into a fresh project with the reader's
// token, with no cache shared with earlier installs.
func (e *env) install(name, version string) (string, error) {
	p := e.npm(e.reader, map[string]string{"package.json": `{"name":"app","version":"0.0.0","private":true,"dependencies":{"` + name + `":"` + version + `"}}`})
	return p.try("install")
}

// TestFirewallNPM: the real npm is refused a version with a high
// advisory, with the advisory and the waiver command in its output; the
// printed command, run as printed, lets it through; the waiver's expiry
// blocks it again; the allow-list and a lower severity pass.
func TestFirewallNPM(t *testing.T) {
	e := start(t)
	e.publishNPM("fw-demo", "1.0.0")
	e.publishNPM("fw-demo", "1.0.1")
	e.publishNPM("fw-allowed", "1.0.0")
	e.publishNPM("fw-minor", "1.0.0")

	out, err := e.install("fw-demo", "1.0.0")
	if err == nil {
		t.Fatalf("npm install of a version with a high advisory succeeded:\n%s", out)
	}
	for _, want := range []string{"403", "GHSA-fwfw-0001-test", "fixed in 1.0.1", "custody firewall waive --feed npmfw pkg:npm/fw-demo@1.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("npm's output lacks %q:\n%s", want, out)
		}
	}
	if code, b := e.call("GET", "/api/v1/feeds/npmfw/waivers", "bearer:"+e.reader, "", nil); code != 200 || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("waivers before any: %d %s", code, b)
	}
	// The fixed version and the allow-listed package install.
	if out, err := e.install("fw-demo", "1.0.1"); err != nil {
		t.Errorf("npm install of the fixed version: %v\n%s", err, out)
	}
	if out, err := e.install("fw-allowed", "1.0.0"); err != nil {
		t.Errorf("npm install of an allow-listed package: %v\n%s", err, out)
	}
	if out, err := e.install("fw-minor", "1.0.0"); err != nil {
		t.Errorf("npm install of a version with a medium advisory (below blockSeverity): %v\n%s", err, out)
	}

	// A reader cannot waive; nothing is stored.
	if code, b := e.call("POST", "/api/v1/feeds/npmfw/waivers", "bearer:"+e.reader, "application/json",
		[]byte(`{"package":"pkg:npm/fw-demo@1.0.0","advisory":"GHSA-fwfw-0001-test","expires":"2099-01-01","reason":"x"}`)); code != http.StatusForbidden {
		t.Errorf("a reader's waiver: %d %s", code, b)
	}
	// The printed command, run as printed.
	cmdline := waiveCommand.FindString(out)
	if cmdline == "" {
		t.Fatalf("no waiver command in npm's output:\n%s", out)
	}
	if got, err := e.custody(cmdline); err != nil || !strings.Contains(got, "waived GHSA-fwfw-0001-test") {
		t.Fatalf("%s: %v\n%s", cmdline, err, got)
	}
	if out, err := e.install("fw-demo", "1.0.0"); err != nil {
		t.Fatalf("npm install after the waiver: %v\n%s\nserver:\n%s", err, out, e.s.Logs())
	}
	list, err := e.custody("custody firewall waivers --feed npmfw -o json")
	if err != nil || !strings.Contains(list, `"advisory": "GHSA-fwfw-0001-test"`) || !strings.Contains(list, `"expired": false`) {
		t.Errorf("custody firewall waivers: %v\n%s", err, list)
	}

	// A waiver that expires: fw-demo@1.0.0 in the same feed, another
	// feed's waiver does not count. Replace the long waiver by a short one
	// in a fresh server's feed to watch it lapse.
	e2 := start(t)
	e2.publishNPM("fw-demo", "1.0.0")
	expires := time.Now().Add(4 * time.Second).UTC().Format(time.RFC3339)
	if got, err := e2.custody("custody firewall waive --feed npmfw pkg:npm/fw-demo@1.0.0 --advisory GHSA-fwfw-0001-test --expires " + expires + ` --reason "short review"`); err != nil {
		t.Fatalf("short waiver: %v\n%s", err, got)
	}
	tarball := "/npm/npmfw/fw-demo/-/fw-demo-1.0.0.tgz"
	if code, b := e2.call("GET", tarball, "bearer:"+e2.reader, "", nil); code != http.StatusOK {
		t.Fatalf("download during the waiver: %d %s", code, b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, b := e2.call("GET", tarball, "bearer:"+e2.reader, "", nil)
		if code == http.StatusForbidden && strings.Contains(string(b), "GHSA-fwfw-0001-test") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the download still answers %d after the waiver expired: %s", code, b)
		}
		time.Sleep(200 * time.Millisecond) // the server's clock passing the expiry
	}
	if out, err := e2.install("fw-demo", "1.0.0"); err == nil || !strings.Contains(out, "GHSA-fwfw-0001-test") {
		t.Errorf("npm install after the waiver expired: %v\n%s", err, out)
	}
	if list, err := e2.custody("custody firewall waivers --feed npmfw"); err != nil || !strings.Contains(list, "expired") {
		t.Errorf("the expired waiver is not listed as expired: %v\n%s", err, list)
	}
	// The audit log has the waiver and the refusals.
	code, b := e2.call("GET", "/api/v1/audit/entries", "bearer:"+e2.admin, "", nil)
	if code != 200 || !strings.Contains(string(b), "firewall.waive") || !strings.Contains(string(b), "feed.blocked") {
		t.Errorf("audit log lacks firewall.waive or feed.blocked: %d %.2000s", code, b)
	}
}

// TestFirewallWaiverRefusals: bad waivers are 4xx problems and store
// nothing.
func TestFirewallWaiverRefusals(t *testing.T) {
	e := start(t)
	for _, body := range []string{
		`{"package":"pkg:pypi/fw-demo@1.0.0","advisory":"GHSA-x","expires":"2099-01-01","reason":"x"}`, // other ecosystem
		`{"package":"fw-demo","advisory":"GHSA-x","expires":"2099-01-01","reason":"x"}`,                // not a purl
		`{"package":"pkg:npm/fw-demo","advisory":"a b","expires":"2099-01-01","reason":"x"}`,           // advisory
		`{"package":"pkg:npm/fw-demo","advisory":"GHSA-x","expires":"2001-01-01","reason":"x"}`,        // past
		`{"package":"pkg:npm/fw-demo","advisory":"GHSA-x","expires":"soon","reason":"x"}`,              // expiry
		`{"package":"pkg:npm/fw-demo","advisory":"GHSA-x","expires":"2099-01-01","reason":"  "}`,       // no reason
		`{"package":"pkg:npm/fw-demo","advisory":"GHSA-x","expires":"2099-01-01","reason":"x","y":1}`,  // unknown field
	} {
		code, b := e.call("POST", "/api/v1/feeds/npmfw/waivers", "bearer:"+e.admin, "application/json", []byte(body))
		if code != http.StatusBadRequest || !strings.Contains(string(b), `"detail"`) {
			t.Errorf("%s: %d %s", body, code, b)
		}
	}
	if code, b := e.call("POST", "/api/v1/feeds/nofeed/waivers", "bearer:"+e.admin, "application/json",
		[]byte(`{"package":"pkg:npm/fw-demo","advisory":"GHSA-x","expires":"2099-01-01","reason":"x"}`)); code != http.StatusNotFound {
		t.Errorf("unknown feed: %d %s", code, b)
	}
	if code, b := e.call("GET", "/api/v1/feeds/npmfw/waivers", "bearer:"+e.admin, "", nil); code != 200 || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("waivers after refusals: %d %s", code, b)
	}
}

// wheel builds a minimal wheel of fw-demo-py.
func wheel(t *testing.T, version string) []byte {
	t.Helper()
	return feedtest.Wheel(t, "fw-demo-py", version, "", [2]string{"fw_demo_py/__init__.py", "VALUE = 1\n"})
}

// TestFirewallPip: the real pip is refused a wheel with a critical
// advisory, the message in its output; after the printed waiver it
// installs.
func TestFirewallPip(t *testing.T) {
	e := start(t)
	py := testserver.Client(t, "python3")
	if out, err := exec.Command(py, "-m", "pip", "--version").CombinedOutput(); err != nil {
		t.Skipf("%s has no pip: %v %s", py, err, out)
	}
	twine := testserver.Client(t, "twine")
	home := t.TempDir()
	whl := filepath.Join(t.TempDir(), "fw_demo_py-1.0.0-py3-none-any.whl")
	if err := os.WriteFile(whl, wheel(t, "1.0.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := exec.Command(twine, "upload", "--repository-url", e.s.URL+"/pypi/pyfw/", "-u", "__token__", "-p", e.writer,
		"--non-interactive", "--disable-progress-bar", whl)
	up.Env = append(os.Environ(), "HOME="+home, "PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring", "NO_PROXY=127.0.0.1,localhost")
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("twine upload: %v\n%s", err, out)
	}
	pip := func() (string, error) {
		index := strings.Replace(e.s.URL, "://", "://__token__:"+e.reader+"@", 1) + "/pypi/pyfw/simple/"
		cmd := exec.Command(py, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--no-input",
			"--target", t.TempDir(), "--index-url", index, "--retries", "0", "fw-demo-py==1.0.0")
		cmd.Env = append(os.Environ(), "HOME="+home, "PIP_CONFIG_FILE=/dev/null", "NO_PROXY=127.0.0.1,localhost", "PYTHONNOUSERSITE=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := pip()
	if err == nil || !strings.Contains(out, "403") {
		t.Fatalf("pip install of a blocked version: %v\n%s", err, out)
	}
	code, body := e.call("GET", "/pypi/pyfw/files/fw-demo-py/fw_demo_py-1.0.0-py3-none-any.whl", "basic:__token__:"+e.reader, "", nil)
	if code != http.StatusForbidden || !strings.Contains(string(body), "PYSEC-2026-fw1") {
		t.Fatalf("download of the blocked wheel: %d %s", code, body)
	}
	// pip prints only the status line of a refused download (requests'
	// "403 Client Error: Forbidden"); the body of the refused URL names
	// the advisory and the waiver command (docs/feeds.md says so).
	cmdline := waiveCommand.FindString(string(body))
	if !strings.Contains(cmdline, "pkg:pypi/fw-demo-py@1.0.0") {
		t.Fatalf("waiver command %q in %s", cmdline, body)
	}
	if got, err := e.custody(cmdline); err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, got)
	}
	if out, err := pip(); err != nil {
		t.Fatalf("pip install after the waiver: %v\n%s", err, out)
	}
}

// TestDependencyReport: real npm installs through the feed; custody's own
// provenance generator reads the project's real package-lock.json; the
// report says which dependencies came through which feed, by name,
// version AND digest: a dependency the lockfile says came with other
// bytes, and one no feed holds, did not.
func TestDependencyReport(t *testing.T) {
	// The server's own key ring signs the provenance, so it is trusted.
	data := t.TempDir()
	ring, err := key.Open(filepath.Join(data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Create(key.ECDSAP256, "server", []byte("server-pass")); err != nil {
		t.Fatal(err)
	}
	e := startIn(t, data)
	e.publishNPM("fw-demo", "1.0.1")
	e.publishNPM("fw-minor", "1.0.0")
	p := e.npm(e.reader, map[string]string{"package.json": `{"name":"app","version":"0.0.0","private":true,"dependencies":{"fw-demo":"1.0.1","fw-minor":"1.0.0"}}`})
	if out, err := p.try("install"); err != nil {
		t.Fatalf("npm install: %v\n%s", err, out)
	}
	lockPath := filepath.Join(p.dir, "package-lock.json")
	raw, err := os.ReadFile(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	var lock map[string]any
	if err := json.Unmarshal(raw, &lock); err != nil {
		t.Fatal(err)
	}
	pkgs := lock["packages"].(map[string]any)
	// fw-minor's bytes came from elsewhere (another integrity), and
	// outside-pkg from a registry custody does not front.
	pkgs["node_modules/fw-minor"].(map[string]any)["integrity"] = "sha512-" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 64))
	pkgs["node_modules/outside-pkg"] = map[string]any{"version": "2.0.0", "resolved": "https://registry.npmjs.org/outside-pkg/-/outside-pkg-2.0.0.tgz",
		"integrity": "sha512-" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 64))}
	raw, _ = json.Marshal(lock)
	if err := os.WriteFile(lockPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		return map[string]string{"CUSTODY_BUILD_SOURCE_URI": "git+https://git.example.test/team/app", "CUSTODY_BUILD_BUILDER_ID": "https://ci.example.test/runner"}[k]
	}
	pred, err := provenance.FromEnv(getenv, p.dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1",
		"subject": []any{map[string]any{"name": "app", "digest": map[string]string{"sha256": strings.Repeat("a", 64)}}}, "predicate": pred})
	file := filepath.Join(t.TempDir(), "statement.json")
	if err := os.WriteFile(file, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := e.custody("custody dependencies --provenance " + file + " -o json")
	if err != nil {
		t.Fatalf("custody dependencies: %v\n%s", err, out)
	}
	var rep origin.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]origin.Dependency{}
	for _, d := range rep.Dependencies {
		got[d.Name] = d
	}
	if d := got["fw-demo"]; !d.ThroughCustody || d.Feed != "npmfw" || d.Matched != "sha512" || d.Repository != "npmfw/fw-demo" {
		t.Errorf("fw-demo: %+v", d)
	}
	if d := got["fw-minor"]; d.ThroughCustody || !strings.Contains(d.Reason, "other content") {
		t.Errorf("fw-minor with other bytes: %+v", d)
	}
	if d := got["outside-pkg"]; d.ThroughCustody || !strings.Contains(d.Reason, "no feed holds") {
		t.Errorf("outside-pkg: %+v", d)
	}
	if rep.Through != 1 || rep.Outside != len(rep.Dependencies)-1 {
		t.Errorf("counts: %d through, %d outside of %d", rep.Through, rep.Outside, len(rep.Dependencies))
	}
	// The same from a stored build: custody attest provenance signs the
	// provenance of the project's workspace and attaches it to an image;
	// the report reads that trusted attestation.
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(e.s.Host()+"/apps/web:1.0.0", name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: e.s.AdminPassword()})); err != nil {
		t.Fatal(err)
	}
	dg, _ := img.Digest()
	build := e.s.Host() + "/apps/web@" + dg.String()
	attest := exec.Command(testserver.Binary(t), "attest", "provenance", "--from-env", "--workspace", p.dir, "--keys", filepath.Join(data, "keys"), build)
	attest.Env = append(os.Environ(), "CUSTODY_SERVER="+e.s.URL, "CUSTODY_TOKEN="+e.admin, "HOME="+t.TempDir(), "CUSTODY_KEY_PASSWORD=server-pass",
		"CUSTODY_BUILD_SOURCE_URI=git+https://git.example.test/team/app", "CUSTODY_BUILD_BUILDER_ID=https://ci.example.test/runner")
	if out, err := attest.CombinedOutput(); err != nil {
		t.Fatalf("custody attest provenance: %v\n%s", err, out)
	}
	out, err = e.custody("custody dependencies " + build + " -o json")
	if err != nil {
		t.Fatalf("custody dependencies %s: %v\n%s", build, err, out)
	}
	var stored origin.Report
	if err := json.Unmarshal([]byte(out), &stored); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if stored.Subject != "apps/web@"+dg.String() || stored.Through != 1 || stored.Outside != rep.Outside {
		t.Errorf("report of the stored build: %+v", stored)
	}
	if text, err := e.custody("custody dependencies " + build); err != nil || !strings.Contains(text, "1 through custody") {
		t.Errorf("custody dependencies (text): %v\n%s", err, text)
	}
	// A build without provenance, and one the caller may not pull.
	if code, b := e.call("GET", "/api/v1/feeds/report?repository=npmfw/fw-demo&digest="+dg.String(), "bearer:"+e.admin, "", nil); code != http.StatusNotFound {
		t.Errorf("report of a digest not in the repository: %d %s", code, b)
	}
	if code, b := e.call("GET", "/api/v1/feeds/report?repository=apps/web&digest="+dg.String(), "bearer:"+e.reader+"x", "", nil); code != http.StatusUnauthorized {
		t.Errorf("report with a bad token: %d %s", code, b)
	}

	// A caller who may not read the feed learns nothing of its versions.
	other := e.token(auth.RoleReader, "elsewhere/**")
	code, b := e.call("POST", "/api/v1/feeds/report", "bearer:"+other, "application/json", doc)
	if code != 200 || strings.Contains(string(b), `"throughCustody":true`) {
		t.Errorf("report for a caller without access to the feed: %d %s", code, b)
	}
	// Refusals are problem JSON.
	for _, c := range []struct {
		method, path string
		body         string
		want         int
	}{
		{"POST", "/api/v1/feeds/report", `{"predicate":{}}`, 400},
		{"POST", "/api/v1/feeds/report", `not json`, 400},
		{"GET", "/api/v1/feeds/report?repository=npmfw/fw-demo", "", 400},
		{"GET", "/api/v1/feeds/report?repository=npmfw/fw-demo&digest=sha256:" + strings.Repeat("0", 64), "", 404},
		{"GET", "/api/v1/feeds/report?repository=npmfw/fw-demo&digest=nope", "", 400},
	} {
		code, b := e.call(c.method, c.path, "bearer:"+e.admin, "application/json", []byte(c.body))
		if code != c.want || !strings.Contains(string(b), `"detail"`) {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, code, b)
		}
	}
}
