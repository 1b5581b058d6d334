package firewall_test

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/feed/gomod"
	"github.com/custody-dev/custody/internal/testserver"
)

// TestFirewallGo: the real go command is refused a module version with a
// high advisory (the advisory and the waiver command in its output);
// after the printed waiver it builds; @latest is refused where the feed
// blocks unpinned requests, while the pinned version still resolves.
func TestFirewallGo(t *testing.T) {
	goBin := testserver.Client(t, "go")
	root, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	goBin = filepath.Join(strings.TrimSpace(string(root)), "bin", "go")
	s := testserver.Start(t, testserver.Options{Auth: true, Config: "feeds:\n  - name: gofw\n    ecosystem: go\n    kind: hosted\n    firewall:\n      blockSeverity: high\n      blockUnpinned: true\n"})
	e := &env{t: t, s: s}
	e.admin = e.token(auth.RoleAdmin, "**")
	e.writer = e.token(auth.RoleWriter, "gofw/**")
	e.reader = e.token(auth.RoleReader, "gofw/**")
	adv := `{"schema_version":"1.6.0","id":"GO-2026-9999","modified":"2026-01-01T00:00:00Z","summary":"crafted test advisory for example.test/vuln",
"database_specific":{"severity":"HIGH"},"affected":[{"package":{"ecosystem":"Go","name":"example.test/vuln"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.1"}]}]}]}`
	if code, out := e.call("POST", "/api/v1/vulndb", "bearer:"+e.admin, "application/json", []byte(adv)); code != http.StatusOK {
		t.Fatalf("loading the advisory: %d %s", code, out)
	}
	// The go command sends .netrc credentials over HTTPS only.
	u, _ := url.Parse(s.URL)
	front := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(u))
	t.Cleanup(front.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// Publish example.test/vuln v1.0.0.
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.test/vuln\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "vuln.go"), []byte("package vuln\n\nfunc Hello() string { return \"hello\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var zip bytes.Buffer
	if err := gomod.Zip(&zip, "example.test/vuln", "v1.0.0", src); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", front.URL+"/go/gofw/example.test/vuln/@v/v1.0.0.zip", &zip)
	req.SetBasicAuth("token", e.writer)
	resp, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("publishing the module: %d", resp.StatusCode)
	}

	app := t.TempDir()
	for name, content := range map[string]string{
		"go.mod":  "module example.test/app\n\ngo 1.21\n\nrequire example.test/vuln v1.0.0\n",
		"main.go": "package main\n\nimport \"example.test/vuln\"\n\nfunc main() { println(vuln.Hello()) }\n",
	} {
		if err := os.WriteFile(filepath.Join(app, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte("machine "+strings.TrimPrefix(front.URL, "https://")+" login token password "+e.reader+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	gocache, _ := exec.Command(goBin, "env", "GOCACHE").Output()
	goCmd := func(args ...string) (string, error) {
		cmd := exec.Command(goBin, args...)
		cmd.Dir = app
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GO") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "NETRC=") && !strings.HasPrefix(kv, "SSL_CERT") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, "HOME="+home, "GOENV=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod",
			"GOPROXY="+front.URL+"/go/gofw", "GOSUMDB=off", "GONOSUMDB=*", "GOPRIVATE=", "GONOPROXY=", "GOINSECURE=",
			"GOPATH="+filepath.Join(home, "gopath"), "GOMODCACHE="+filepath.Join(home, "modcache"),
			"GOCACHE="+strings.TrimSpace(string(gocache)), "NETRC="+netrc, "SSL_CERT_FILE="+caFile)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := goCmd("build", "-o", os.DevNull, ".")
	if err == nil {
		t.Fatalf("go build with a blocked dependency succeeded:\n%s", out)
	}
	for _, want := range []string{"403", "GO-2026-9999", "fixed in 1.0.1", "custody firewall waive --feed gofw pkg:golang/example.test/vuln@v1.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("go's output lacks %q:\n%s", want, out)
		}
	}
	cmdline := waiveCommand.FindString(out)
	if got, err := e.custody(cmdline); cmdline == "" || err != nil {
		t.Fatalf("%q: %v\n%s", cmdline, err, got)
	}
	if out, err := goCmd("build", "-o", os.DevNull, "."); err != nil {
		t.Fatalf("go build after the waiver: %v\n%s", err, out)
	}
	// Unpinned: @latest is refused, naming the rule; nothing else changes.
	out, err = goCmd("get", "example.test/vuln@latest")
	if err == nil || !strings.Contains(out, "blockUnpinned") {
		t.Errorf("go get @latest on a feed that blocks unpinned requests: %v\n%s", err, out)
	}
	code, b := e.call("GET", "/go/gofw/example.test/vuln/@v/list", "basic:token:"+e.reader, "", nil)
	if code != http.StatusForbidden || !strings.Contains(string(b), "@v/list") {
		t.Errorf("@v/list: %d %s", code, b)
	}
	if out, err := goCmd("get", "example.test/vuln@v1.0.0"); err != nil {
		t.Errorf("go get of the pinned version: %v\n%s", err, out)
	}
}
