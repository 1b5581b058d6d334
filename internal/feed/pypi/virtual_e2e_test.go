package pypi_test

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/testserver"
)

// virtualConfig: hosted feeds pyfirst and pysecond, and the virtual feed
// py over them, in that order.
const virtualConfig = `feeds:
  - name: pyfirst
    ecosystem: pypi
  - name: pysecond
    ecosystem: pypi
  - name: py
    ecosystem: pypi
    kind: virtual
    members: [pyfirst, pysecond]
`

func startVirtual(t *testing.T) *e2e {
	t.Helper()
	s := testserver.Start(t, testserver.Options{Auth: true, Config: virtualConfig})
	e := &e2e{t: t, s: s, home: t.TempDir(), feed: "py"}
	e.writer = e.tokenFor(auth.RoleWriter, "pyfirst/**", "pysecond/**")
	e.reader = e.tokenFor(auth.RoleReader, "pyfirst/**", "pysecond/**")
	return e
}

// uploadTo uploads a wheel of project at version, VALUE = value, to a feed
// directly.
func (e *e2e) uploadTo(feedName, project, version, value string) {
	e.t.Helper()
	whl := wheelOf(e.t, project, version, value)
	file := strings.ReplaceAll(project, "-", "_") + "-" + version + "-py3-none-any.whl"
	ct, body := uploadForm(project, version, "bdist_wheel", file, whl, whl).encode(e.t)
	if code, b := e.call("POST", "/pypi/"+feedName+"/", "basic:__token__:"+e.writer, ct, nil, body); code != http.StatusOK {
		e.t.Fatalf("upload %s to %s: %d %s", file, feedName, code, b)
	}
}

func (e *e2e) value(py, target, module string) string {
	e.t.Helper()
	cmd := exec.Command(py, "-c", "import "+module+"; print("+module+".VALUE)")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+target)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("import %s: %v %s", module, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPyPIVirtualFeed installs with the real pip and uploads with the real
// twine through a virtual feed over two hosted feeds: a project only the
// second holds is found, a project both hold comes from the first alone
// (shadowing: the second's newer release is not offered), an upload lands
// in the first hosted member, and refused uploads change nothing.
func TestPyPIVirtualFeed(t *testing.T) {
	e := startVirtual(t)
	py := python(t)
	e.uploadTo("pyfirst", "custody-demo", "1.0.0", "first")
	e.uploadTo("pysecond", "custody-demo", "2.0.0", "second")
	e.uploadTo("pysecond", "other-demo", "1.0.0", "other")

	target, out, err := e.pip(py, e.reader, "custody-demo")
	if err != nil {
		t.Fatalf("pip install custody-demo through the virtual feed: %v\n%s\nserver:\n%s", err, out, e.s.Logs())
	}
	if got := e.value(py, target, "custody_demo"); got != "first" {
		t.Errorf("custody-demo through the virtual feed is %q, want the first member's", got)
	}
	target, out, err = e.pip(py, e.reader, "Other.Demo==1.0.0")
	if err != nil {
		t.Fatalf("pip install other-demo through the virtual feed: %v\n%s\nserver:\n%s", err, out, e.s.Logs())
	}
	if got := e.value(py, target, "other_demo"); got != "other" {
		t.Errorf("other-demo through the virtual feed is %q", got)
	}
	if _, out, err := e.pip(py, e.reader, "custody-demo==2.0.0"); err == nil {
		t.Errorf("pip installed the shadowed custody-demo 2.0.0 through the virtual feed:\n%s", out)
	}

	// The index is the first member's, its links relative (so under the
	// virtual feed); redirects and the project list name the virtual feed.
	reader := "basic:__token__:" + e.reader
	code, b := e.call("GET", "/pypi/py/simple/custody-demo/", reader, "", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(b), `href="../../files/custody-demo/custody_demo-1.0.0-py3-none-any.whl#sha256=`) || strings.Contains(string(b), "2.0.0") {
		t.Errorf("index through the virtual feed: %d\n%s", code, b)
	}
	code, hdr, _ := e.do("GET", "/pypi/py/simple/Custody.Demo/", reader, "", nil, nil)
	if code != http.StatusMovedPermanently || hdr.Get("Location") != "/pypi/py/simple/custody-demo/" {
		t.Errorf("non-normalised name through the virtual feed: %d Location %q", code, hdr.Get("Location"))
	}
	code, b = e.call("GET", "/pypi/py/simple/", reader, "", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(b), `<a href="custody-demo/">`) || !strings.Contains(string(b), `<a href="other-demo/">`) {
		t.Errorf("project list of the virtual feed: %d\n%s", code, b)
	}
	if code, b := e.call("GET", "/pypi/py/files/custody-demo/custody_demo-2.0.0-py3-none-any.whl", reader, "", nil, nil); code != http.StatusNotFound {
		t.Errorf("the shadowed file through the virtual feed: %d %s", code, b)
	}

	// twine through the virtual feed uploads to the first hosted member.
	dir := t.TempDir()
	v3 := writeFile(t, dir, "custody_demo-3.0.0-py3-none-any.whl", wheel(t, "3.0.0", "three"))
	if out, err := e.twine(e.writer, v3); err != nil {
		t.Fatalf("twine upload through the virtual feed: %v\n%s\nserver:\n%s", err, out, e.s.Logs())
	}
	if code, b := e.call("GET", "/pypi/pyfirst/simple/custody-demo/", reader, "", nil, nil); code != http.StatusOK || !strings.Contains(string(b), "custody_demo-3.0.0") {
		t.Errorf("the upload through the virtual feed is not in pyfirst: %d\n%s", code, b)
	}
	if _, b := e.call("GET", "/pypi/pysecond/simple/custody-demo/", reader, "", nil, nil); strings.Contains(string(b), "3.0.0") {
		t.Errorf("the upload through the virtual feed is in pysecond:\n%s", b)
	}

	// Refused uploads through the virtual feed change nothing: other
	// bytes under a taken file name, a reader's upload, and an upload by a
	// writer of the second member only (it goes to the first).
	blobsBefore := e.s.BlobFiles(t)
	before := e.virtualIndex()
	changed := writeFile(t, t.TempDir(), "custody_demo-3.0.0-py3-none-any.whl", wheel(t, "3.0.0", "changed"))
	if out, err := e.twine(e.writer, changed); err == nil || !strings.Contains(out, "400") {
		t.Errorf("overwrite through the virtual feed: %v\n%s", err, out)
	}
	v4 := writeFile(t, t.TempDir(), "custody_demo-4.0.0-py3-none-any.whl", wheel(t, "4.0.0", "four"))
	if out, err := e.twine(e.reader, v4); err == nil || !strings.Contains(out, "403") {
		t.Errorf("reader's upload through the virtual feed: %v\n%s", err, out)
	}
	if out, err := e.twine(e.tokenFor(auth.RoleWriter, "pysecond/**"), v4); err == nil || !strings.Contains(out, "403") {
		t.Errorf("upload through the virtual feed by a writer of the second member only: %v\n%s", err, out)
	}
	if n := e.s.BlobFiles(t); n != blobsBefore {
		t.Errorf("refused uploads through the virtual feed stored %d blob files", n-blobsBefore)
	}
	if after := e.virtualIndex(); after != before {
		t.Errorf("the index changed after refused uploads:\n%s\n%s", before, after)
	}

	// Reading needs read on the member's repository: a reader of the
	// second member only is refused the first member's project, not
	// given the second's, and a grant on the virtual feed's name alone
	// reads nothing.
	second := "basic:__token__:" + e.tokenFor(auth.RoleReader, "pysecond/**")
	if code, b := e.call("GET", "/pypi/py/simple/custody-demo/", second, "", nil, nil); code != http.StatusForbidden {
		t.Errorf("a reader of pysecond, the first member's project: %d\n%s", code, b)
	}
	if code, b := e.call("GET", "/pypi/py/simple/other-demo/", second, "", nil, nil); code != http.StatusOK {
		t.Errorf("a reader of pysecond, its project: %d\n%s", code, b)
	}
	if code, b := e.call("GET", "/pypi/py/simple/", second, "", nil, nil); code != http.StatusOK || strings.Contains(string(b), "custody-demo") || !strings.Contains(string(b), "other-demo") {
		t.Errorf("the project list for a reader of pysecond: %d\n%s", code, b)
	}
	virtualOnly := "basic:__token__:" + e.tokenFor(auth.RoleReader, "py/**")
	if code, b := e.call("GET", "/pypi/py/simple/other-demo/", virtualOnly, "", nil, nil); code != http.StatusForbidden {
		t.Errorf("a reader of the virtual feed's name only: %d\n%s", code, b)
	}
}

func (e *e2e) virtualIndex() string {
	e.t.Helper()
	code, b := e.call("GET", "/pypi/py/simple/custody-demo/", "basic:__token__:"+e.reader, "", map[string]string{"Accept": "application/vnd.pypi.simple.v1+json"}, nil)
	if code != http.StatusOK {
		e.t.Fatalf("index: %d %s", code, b)
	}
	return string(b)
}
