package gomod_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/testserver"
)

// virtualConfig: hosted feeds gofirst and gosecond, and the virtual feed
// goproxy over them, in that order.
const virtualConfig = `feeds:
  - name: gofirst
    ecosystem: go
  - name: gosecond
    ecosystem: go
  - name: goproxy
    ecosystem: go
    kind: virtual
    members: [gofirst, gosecond]
`

// libOf is a module path's files, its Hello returning greeting.
func libOf(path, greeting string) map[string]string {
	pkg := path[strings.LastIndexByte(path, '/')+1:]
	return map[string]string{
		"go.mod":    "module " + path + "\n\ngo 1.21\n",
		pkg + ".go": "package " + pkg + "\n\n// Hello greets.\nfunc Hello() string { return \"" + greeting + "\" }\n",
	}
}

// TestGoVirtualFeed: the real go command through a virtual feed over two
// hosted feeds finds a module only the second holds, takes a module both
// hold from the first alone (shadowing: the second's newer version is not
// offered, not even as @latest), and custody gomod publish through the
// virtual feed lands in the first hosted member; refusals store nothing.
func TestGoVirtualFeed(t *testing.T) {
	e := startFeed(t, "goproxy", virtualConfig, nil)
	e.writer = e.scopedToken(auth.RoleWriter, "gofirst/**", "gosecond/**")
	e.reader = e.scopedToken(auth.RoleReader, "gofirst/**", "gosecond/**")
	publish := func(feedName, path, version, greeting string) {
		t.Helper()
		e.feed = feedName
		defer func() { e.feed = "goproxy" }()
		if code, out := e.put(path, version, e.writer, moduleZip(t, path, version, libOf(path, greeting))); code != http.StatusCreated {
			t.Fatalf("publish %s@%s to %s: %d %s", path, version, feedName, code, out)
		}
	}
	publish("gosecond", "example.test/onlysecond", "v1.0.0", "only in the second")
	publish("gofirst", "example.test/shadow", "v1.0.0", "from the first")
	publish("gosecond", "example.test/shadow", "v1.1.0", "from the second")

	netrc := "machine " + strings.TrimPrefix(e.https, "https://") + " login token password " + e.reader + "\n"
	app := writeDir(t, map[string]string{
		"go.mod": "module example.test/app\n\ngo 1.21\n",
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.test/onlysecond\"\n\t\"example.test/shadow\"\n)\n\n" +
			"func main() { fmt.Println(onlysecond.Hello() + \"; \" + shadow.Hello()) }\n",
	})
	if out, err := e.goCmd(app, netrc, "get", "example.test/onlysecond@v1.0.0", "example.test/shadow@latest"); err != nil {
		t.Fatalf("go get through the virtual feed: %v\n%s\nserver:\n%s", err, out, e.s.Logs())
	}
	if out, err := e.goCmd(app, netrc, "build", "-o", "app", "."); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(app, "app")).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "only in the second; from the first" {
		t.Errorf("the built program: %v %q", err, out)
	}
	if mod, _ := os.ReadFile(filepath.Join(app, "go.mod")); !strings.Contains(string(mod), "example.test/shadow v1.0.0") {
		t.Errorf("go.mod does not require the first member's shadow v1.0.0:\n%s", mod)
	}
	if out, err := e.goCmd(app, netrc, "list", "-m", "-versions", "example.test/shadow"); err != nil || strings.TrimSpace(out) != "example.test/shadow v1.0.0" {
		t.Errorf("go list -m -versions through the virtual feed: %v\n%s", err, out)
	}
	if out, err := e.goCmd(app, netrc, "get", "example.test/shadow@v1.1.0"); err == nil {
		t.Errorf("go get of the shadowed version through the virtual feed succeeded:\n%s", out)
	}

	// custody gomod publish through the virtual feed: into gofirst.
	pub := func(token string, args ...string) (string, error) {
		cmd := exec.Command(testserver.Binary(t), append([]string{"gomod", "publish", "--server", e.s.URL}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "CUSTODY_TOKEN="+token, "CUSTODY_SERVER=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	dir := writeDir(t, libOf("example.test/viavirtual", "published through the virtual feed"))
	if out, err := pub(e.writer, "goproxy", "example.test/viavirtual@v1.0.0", dir); err != nil {
		t.Fatalf("custody gomod publish through the virtual feed: %v\n%s", err, out)
	}
	if code, b := e.call("GET", "/go/gofirst/example.test/viavirtual/@v/list", "token", e.reader, nil); code != http.StatusOK || string(b) != "v1.0.0\n" {
		t.Errorf("the module published through the virtual feed is not in gofirst: %d %q", code, b)
	}
	if code, _ := e.call("GET", "/go/gosecond/example.test/viavirtual/@v/list", "token", e.reader, nil); code != http.StatusNotFound {
		t.Errorf("the module published through the virtual feed is in gosecond: %d", code)
	}

	// Refused publishes through the virtual feed store nothing.
	blobsBefore := e.s.BlobFiles(t)
	if out, err := pub(e.writer, "goproxy", "example.test/viavirtual@v1.0.0", writeDir(t, libOf("example.test/viavirtual", "changed"))); err == nil || !strings.Contains(out, "409") {
		t.Errorf("publishing other content for a published version through the virtual feed: %v\n%s", err, out)
	}
	if out, err := pub(e.reader, "goproxy", "example.test/viavirtual@v1.1.0", dir); err == nil || !strings.Contains(out, "403") {
		t.Errorf("publishing through the virtual feed with a reader token: %v\n%s", err, out)
	}
	if out, err := pub(e.scopedToken(auth.RoleWriter, "gosecond/**"), "goproxy", "example.test/viavirtual@v1.1.0", dir); err == nil || !strings.Contains(out, "403") {
		t.Errorf("publishing through the virtual feed by a writer of the second member only: %v\n%s", err, out)
	}
	if n := e.s.BlobFiles(t); n != blobsBefore {
		t.Errorf("refused publishes through the virtual feed stored %d blob files", n-blobsBefore)
	}
	if _, b := e.call("GET", "/go/goproxy/example.test/viavirtual/@v/list", "token", e.reader, nil); string(b) != "v1.0.0\n" {
		t.Errorf("@v/list through the virtual feed after refused publishes: %q", b)
	}

	// Reading needs read on the member's repository.
	second := e.scopedToken(auth.RoleReader, "gosecond/**")
	for _, c := range []struct {
		path string
		code int
	}{
		{"/go/goproxy/example.test/onlysecond/@v/list", 200},
		{"/go/goproxy/example.test/shadow/@v/list", 403},
		{"/go/goproxy/example.test/shadow/@v/v1.1.0.zip", 403},
	} {
		if code, b := e.call("GET", c.path, "token", second, nil); code != c.code {
			t.Errorf("a reader of gosecond, %s: %d %s; want %d", c.path, code, b, c.code)
		}
	}
}
