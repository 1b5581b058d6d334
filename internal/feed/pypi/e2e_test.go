package pypi_test

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/md5" //nolint:gosec // PyPI's md5_digest
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/feed/feedtest"
	"github.com/custody-dev/custody/internal/testserver"
)

// e2e is a running custody with one hosted PyPI feed, "pyfeed", and auth.
type e2e struct {
	t      *testing.T
	s      *testserver.Server
	feed   string // the feed twine and pip use
	writer string // API token: writer on pyfeed/**
	reader string // API token: reader on pyfeed/**
	home   string
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	s := testserver.Start(t, testserver.Options{Auth: true, Config: "feeds:\n  - name: pyfeed\n    ecosystem: pypi\n    kind: hosted\n"})
	e := &e2e{t: t, s: s, feed: "pyfeed", home: t.TempDir()}
	e.writer = e.token(auth.RoleWriter)
	e.reader = e.token(auth.RoleReader)
	return e
}

func (e *e2e) token(role auth.Role) string {
	e.t.Helper()
	return e.tokenFor(role, e.feed+"/**")
}

func (e *e2e) tokenFor(role auth.Role, patterns ...string) string {
	e.t.Helper()
	return e.s.Token(e.t, string(role), patterns...)
}

// call sends a request; cred is "basic:<user>:<pw>" or "".
func (e *e2e) call(method, path, cred, ctype string, hdr map[string]string, body []byte) (int, []byte) {
	e.t.Helper()
	code, _, b := e.do(method, path, cred, ctype, hdr, body)
	return code, b
}

// do is call with the answer's header; redirects are not followed.
func (e *e2e) do(method, path, cred, ctype string, hdr map[string]string, body []byte) (int, http.Header, []byte) {
	e.t.Helper()
	header := []string{"Content-Type", ctype}
	for k, v := range hdr {
		header = append(header, k, v)
	}
	resp, b := e.s.Call(e.t, method, path, cred, body, header...)
	return resp.StatusCode, resp.Header, b
}

// wheel builds a pure-Python wheel of project custody-demo at version
// whose module custody_demo has VALUE = value.
func wheel(t *testing.T, version, value string) []byte {
	t.Helper()
	return wheelOf(t, "custody-demo", version, value)
}

// wheelOf builds a pure-Python wheel of project (a normalised name) at
// version whose module (the name with '_' for '-') has VALUE = value.
func wheelOf(t *testing.T, project, version, value string) []byte {
	t.Helper()
	mod := strings.ReplaceAll(project, "-", "_")
	return feedtest.Wheel(t, project, version, "Requires-Python: >=3.7\n", [2]string{mod + "/__init__.py", "VALUE = " + fmt.Sprintf("%q", value) + "\n"})
}

// sdist builds a source distribution of custody-demo with a PKG-INFO.
func sdist(t *testing.T, version string) []byte {
	t.Helper()
	dir := "custody_demo-" + version + "/"
	files := [][2]string{
		{dir + "PKG-INFO", "Metadata-Version: 2.1\nName: custody-demo\nVersion: " + version + "\nRequires-Python: >=3.7\nSummary: a test package\n"},
		{dir + "custody_demo/__init__.py", "VALUE = 'sdist'\n"},
		{dir + "setup.py", "from setuptools import setup\nsetup(name='custody-demo', version='" + version + "', packages=['custody_demo'])\n"},
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f[0], Mode: 0o644, Size: int64(len(f[1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(f[1]))
	}
	_ = tw.Close()
	_ = zw.Close()
	return buf.Bytes()
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// twine runs the real twine against the feed with token.
func (e *e2e) twine(token string, args ...string) (string, error) {
	e.t.Helper()
	bin := testserver.Client(e.t, "twine")
	full := append([]string{"upload", "--repository-url", e.s.URL + "/pypi/" + cmp.Or(e.feed, "pyfeed") + "/", "-u", "__token__", "-p", token,
		"--non-interactive", "--disable-progress-bar"}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Env = append(os.Environ(), "HOME="+e.home, "PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring", "NO_PROXY=127.0.0.1,localhost", "TWINE_CERT=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// python returns the Python with pip that the tests use.
func python(t *testing.T) string {
	t.Helper()
	py := testserver.Client(t, "python3")
	if out, err := exec.Command(py, "-m", "pip", "--version").CombinedOutput(); err != nil {
		t.Skipf("%s has no pip: %v %s (run scripts/install-clients.sh)", py, err, out)
	}
	return py
}

// pip installs spec into a fresh target directory from the feed, with
// token, and returns the directory.
func (e *e2e) pip(py, token, spec string) (string, string, error) {
	e.t.Helper()
	target := e.t.TempDir()
	index := strings.Replace(e.s.URL, "://", "://__token__:"+token+"@", 1) + "/pypi/" + cmp.Or(e.feed, "pyfeed") + "/simple/"
	cmd := exec.Command(py, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--no-input",
		"--target", target, "--index-url", index, "--retries", "0", spec)
	cmd.Env = append(os.Environ(), "HOME="+e.home, "PIP_CONFIG_FILE=/dev/null", "NO_PROXY=127.0.0.1,localhost", "PYTHONNOUSERSITE=1")
	out, err := cmd.CombinedOutput()
	return target, string(out), err
}

// TestPyPIClients uploads with the real twine and installs with the real
// pip; then refuses an overwrite and a reader's upload, changing nothing.
func TestPyPIClients(t *testing.T) {
	e := startE2E(t)
	py := python(t)
	dir := t.TempDir()
	whl := writeFile(t, dir, "custody_demo-1.0.0-py3-none-any.whl", wheel(t, "1.0.0", "hello"))
	sd := writeFile(t, dir, "custody_demo-1.0.0.tar.gz", sdist(t, "1.0.0"))

	if out, err := e.twine(e.writer, sd, whl); err != nil {
		t.Fatalf("twine upload: %v\n%s\nserver:\n%s", err, out, e.s.Logs())
	}
	// The same files again succeed and change nothing (twine --skip-existing
	// and plain re-uploads both).
	if out, err := e.twine(e.writer, "--skip-existing", sd, whl); err != nil {
		t.Fatalf("twine upload --skip-existing of the same files: %v\n%s", err, out)
	}

	// pip installs through any spelling of the name (redirected to the
	// normalised one) and the module imports.
	target, out, err := e.pip(py, e.reader, "Custody_Demo==1.0.0")
	if err != nil {
		t.Fatalf("pip install: %v\n%s\nserver:\n%s", err, out, e.s.Logs())
	}
	cmd := exec.Command(py, "-c", "import custody_demo; print(custody_demo.VALUE)")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+target)
	if got, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(got)) != "hello" {
		t.Fatalf("import custody_demo: %v %q", err, got)
	}

	// The index lists both files with their sha256 and requires-python.
	whlSum := sha256.Sum256(mustRead(t, whl))
	code, b := e.call("GET", "/pypi/pyfeed/simple/custody-demo/", "basic:__token__:"+e.reader, "", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(b), `href="../../files/custody-demo/custody_demo-1.0.0-py3-none-any.whl#sha256=`+hex.EncodeToString(whlSum[:])+`"`) ||
		!strings.Contains(string(b), `data-requires-python="&gt;=3.7"`) || !strings.Contains(string(b), "custody_demo-1.0.0.tar.gz") {
		t.Errorf("PEP 503 index: %d\n%s", code, b)
	}
	code, hdr, b := e.do("GET", "/pypi/pyfeed/simple/custody-demo/", "basic:__token__:"+e.reader, "", map[string]string{"Accept": "application/vnd.pypi.simple.v1+json"}, nil)
	var doc struct {
		Meta  map[string]string `json:"meta"`
		Name  string            `json:"name"`
		Files []struct {
			Filename, URL  string
			Hashes         map[string]string
			RequiresPython string `json:"requires-python"`
		} `json:"files"`
	}
	if code != http.StatusOK || hdr.Get("Content-Type") != "application/vnd.pypi.simple.v1+json" || json.Unmarshal(b, &doc) != nil ||
		doc.Name != "custody-demo" || len(doc.Files) != 2 || doc.Meta["api-version"] != "1.0" {
		t.Fatalf("PEP 691 index: %d %s\n%s", code, hdr.Get("Content-Type"), b)
	}
	for _, f := range doc.Files {
		if f.Filename == "custody_demo-1.0.0-py3-none-any.whl" && (f.Hashes["sha256"] != hex.EncodeToString(whlSum[:]) || f.RequiresPython != ">=3.7") {
			t.Errorf("PEP 691 file entry: %+v", f)
		}
	}
	code, hdr, _ = e.do("GET", "/pypi/pyfeed/simple/Custody.Demo/", "basic:__token__:"+e.reader, "", nil, nil)
	if code != http.StatusMovedPermanently || hdr.Get("Location") != "/pypi/pyfeed/simple/custody-demo/" {
		t.Errorf("non-normalised name: %d Location %q", code, hdr.Get("Location"))
	}
	code, b = e.call("GET", "/pypi/pyfeed/simple/", "basic:__token__:"+e.reader, "", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(b), `<a href="custody-demo/">custody-demo</a>`) {
		t.Errorf("project list: %d\n%s", code, b)
	}
	// A caller who may read no project sees none listed, and cannot read it.
	other := e.tokenFor(auth.RoleReader, "pyfeed/other")
	if code, b = e.call("GET", "/pypi/pyfeed/simple/", "basic:__token__:"+other, "", nil, nil); code != http.StatusOK || strings.Contains(string(b), "custody-demo") {
		t.Errorf("project list for a reader of pyfeed/other: %d\n%s", code, b)
	}
	if code, b = e.call("GET", "/pypi/pyfeed/simple/custody-demo/", "basic:__token__:"+other, "", nil, nil); code != http.StatusForbidden {
		t.Errorf("index for a reader of pyfeed/other: %d\n%s", code, b)
	}

	// Overwriting a file with other bytes is refused; nothing changes.
	before := e.index()
	changed := writeFile(t, t.TempDir(), "custody_demo-1.0.0-py3-none-any.whl", wheel(t, "1.0.0", "changed"))
	out, err = e.twine(e.writer, changed)
	if err == nil || !strings.Contains(out, "400") {
		t.Errorf("twine upload over an existing file was not refused: %v\n%s", err, out)
	}
	// A reader cannot upload.
	v2 := writeFile(t, t.TempDir(), "custody_demo-2.0.0-py3-none-any.whl", wheel(t, "2.0.0", "two"))
	out, err = e.twine(e.reader, v2)
	if err == nil || !strings.Contains(out, "403") {
		t.Errorf("twine upload with a reader token: %v\n%s", err, out)
	}
	if after := e.index(); after != before {
		t.Errorf("the index changed after refused uploads:\n%s\n%s", before, after)
	}

	// A release grows by files: a wheel of 2.0.0 after 1.0.0's.
	if out, err := e.twine(e.writer, v2); err != nil {
		t.Fatalf("twine upload of 2.0.0: %v\n%s", err, out)
	}
	target, out, err = e.pip(py, e.reader, "custody-demo")
	if err != nil {
		t.Fatalf("pip install of the newest: %v\n%s", err, out)
	}
	cmd = exec.Command(py, "-c", "import custody_demo; print(custody_demo.VALUE)")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+target)
	if got, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(got)) != "two" {
		t.Fatalf("import custody_demo 2.0.0: %v %q", err, got)
	}

	// Each file is an OCI artifact on /v2/, and in the audit log.
	code, m := e.call("GET", "/v2/pyfeed/custody-demo/manifests/custody_5fdemo-1.0.0-py3-none-any.whl", "basic:__token__:"+e.reader, "", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(m), "application/vnd.custody.feed.pypi.v1") {
		t.Errorf("/v2/ manifest of the wheel: %d %s", code, m)
	}
	code, log := e.call("GET", "/api/v1/audit/search?repo=pyfeed/custody-demo", "basic:admin:"+e.s.AdminPassword(), "", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(log), "manifest.put") {
		t.Errorf("audit log of pyfeed/custody-demo: %d %s", code, log)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *e2e) index() string {
	e.t.Helper()
	code, b := e.call("GET", "/pypi/pyfeed/simple/custody-demo/", "basic:__token__:"+e.reader, "", map[string]string{"Accept": "application/vnd.pypi.simple.v1+json"}, nil)
	if code != http.StatusOK && code != http.StatusNotFound {
		e.t.Fatalf("index: %d %s", code, b)
	}
	return string(b)
}

// form is an upload as twine sends it: fields, then the content.
type form struct {
	fields   [][2]string
	filename string
	content  []byte
}

func uploadForm(name, version, filetype, filename string, content, claimed []byte) form {
	sum := sha256.Sum256(claimed)
	m := md5.Sum(claimed) //nolint:gosec // md5_digest
	pyversion := "py3"
	if filetype == "sdist" {
		pyversion = "source"
	}
	return form{fields: [][2]string{{":action", "file_upload"}, {"protocol_version", "1"}, {"metadata_version", "2.1"},
		{"name", name}, {"version", version}, {"filetype", filetype}, {"pyversion", pyversion},
		{"md5_digest", hex.EncodeToString(m[:])}, {"sha256_digest", hex.EncodeToString(sum[:])}, {"requires_python", ">=3.7"}},
		filename: filename, content: content}
}

func (f form) encode(t *testing.T) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, kv := range f.fields {
		_ = mw.WriteField(kv[0], kv[1])
	}
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name="content"; filename=%q`, f.filename)}
	h["Content-Type"] = []string{"application/octet-stream"}
	w, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(f.content)
	_ = mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// TestPyPIRefusals sends what twine never would: each is refused with a
// PyPI-style status and text, and nothing is stored.
func TestPyPIRefusals(t *testing.T) {
	e := startE2E(t)
	good := wheel(t, "1.0.0", "x")
	const whl = "custody_demo-1.0.0-py3-none-any.whl"
	badMD5 := uploadForm("custody-demo", "1.0.0", "bdist_wheel", whl, good, good)
	badMD5.fields[7][1] = strings.Repeat("0", 32)
	evilWheel := feedtest.Zip(t, map[string]string{"custody_demo/__init__.py": "", "../../evil.py": "boom"})
	evilSdist := tgzOf(t, []tar.Header{{Name: "custody_demo-1.0.0/PKG-INFO", Typeflag: tar.TypeReg},
		{Name: "custody_demo-1.0.0/link", Typeflag: tar.TypeSymlink, Linkname: "../../../etc/passwd"}})
	cases := []struct {
		name string
		f    form
		code int
		want string
	}{
		{"traversal in wheel entry", uploadForm("custody-demo", "1.0.0", "bdist_wheel", whl, evilWheel, evilWheel), 400, "leaves its directory"},
		{"link out of sdist", uploadForm("custody-demo", "1.0.0", "sdist", "custody_demo-1.0.0.tar.gz", evilSdist, evilSdist), 400, "points outside its directory"},
		{"wheel not a zip", uploadForm("custody-demo", "1.0.0", "bdist_wheel", whl, []byte("not a zip"), []byte("not a zip")), 400, "not a zip archive"},
		{"sha256 differs", uploadForm("custody-demo", "1.0.0", "bdist_wheel", whl, good, []byte("other")), 400, "does not match"},
		{"md5 differs", badMD5, 400, "md5_digest"},
		{"traversal in file name", uploadForm("custody-demo", "1.0.0", "sdist", "../../custody_demo-1.0.0.tar.gz", good, good), 400, "invalid file name"},
		{"traversal in project name", uploadForm("../etc", "1.0.0", "sdist", "etc-1.0.0.tar.gz", good, good), 400, "invalid project name"},
		{"file of another project", uploadForm("custody-demo", "1.0.0", "bdist_wheel", "other-1.0.0-py3-none-any.whl", good, good), 400, "not a file of project"},
		{"file of another version", uploadForm("custody-demo", "1.0.0", "bdist_wheel", "custody_demo-2.0.0-py3-none-any.whl", good, good), 400, "not a file of version"},
	}
	blobsBefore := e.s.BlobFiles(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct, body := c.f.encode(t)
			code, b := e.call("POST", "/pypi/pyfeed/", "basic:__token__:"+e.writer, ct, nil, body)
			if code != c.code || !strings.Contains(string(b), c.want) || !strings.Contains(string(b), "nothing was stored") {
				t.Errorf("%d %s; want %d and a text naming %q", code, b, c.code, c.want)
			}
		})
	}
	// A reader cannot upload.
	ct, body := uploadForm("custody-demo", "1.0.0", "bdist_wheel", whl, good, good).encode(t)
	if code, b := e.call("POST", "/pypi/pyfeed/", "basic:__token__:"+e.reader, ct, nil, body); code != http.StatusForbidden {
		t.Errorf("reader upload: %d %s", code, b)
	}
	// Without credentials: 401 with a Basic challenge pip and twine answer.
	if code, hdr, b := e.do("POST", "/pypi/pyfeed/", "", ct, nil, body); code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous upload: %d %q %s", code, hdr.Get("WWW-Authenticate"), b)
	}
	if n := e.s.BlobFiles(t); n != blobsBefore {
		t.Errorf("refused uploads stored %d blob files", n-blobsBefore)
	}
	if code, b := e.call("GET", "/api/v1/repositories", "basic:admin:"+e.s.AdminPassword(), "", nil, nil); code != http.StatusOK || strings.Contains(string(b), "pyfeed") {
		t.Errorf("a repository was created by refused uploads: %d %s", code, b)
	}
	// The good upload is accepted; the same bytes again succeed; other
	// bytes under the same name are refused as PyPI does.
	if code, b := e.call("POST", "/pypi/pyfeed/", "basic:__token__:"+e.writer, ct, nil, body); code != http.StatusOK {
		t.Fatalf("upload: %d %s", code, b)
	}
	if n := e.s.BlobFiles(t); n <= blobsBefore {
		t.Errorf("the blob count does not see an upload (%d files): the checks above prove nothing", n)
	}
	before, blobsAfter := e.index(), e.s.BlobFiles(t)
	if code, b := e.call("POST", "/pypi/pyfeed/", "basic:__token__:"+e.writer, ct, nil, body); code != http.StatusOK {
		t.Errorf("the same upload again: %d %s", code, b)
	}
	other := wheel(t, "1.0.0", "y")
	ct2, body2 := uploadForm("custody-demo", "1.0.0", "bdist_wheel", whl, other, other).encode(t)
	if code, b := e.call("POST", "/pypi/pyfeed/", "basic:__token__:"+e.writer, ct2, nil, body2); code != http.StatusBadRequest || !strings.Contains(string(b), "File already exists") {
		t.Errorf("overwrite: %d %s", code, b)
	}
	if after := e.index(); after != before {
		t.Errorf("index changed by a repeated or refused upload:\n%s\n%s", before, after)
	}
	if n := e.s.BlobFiles(t); n != blobsAfter {
		t.Errorf("a repeated or refused upload stored %d blob files", n-blobsAfter)
	}
	// Unknown feeds and routes answer in plain text, nothing internal.
	if code, b := e.call("GET", "/pypi/nofeed/simple/", "", "", nil, nil); code != http.StatusNotFound || !strings.HasPrefix(string(b), "Not Found") {
		t.Errorf("unknown feed: %d %s", code, b)
	}
	if code, b := e.call("GET", "/pypi/pyfeed/files/custody-demo/..%2f..%2fx", "basic:__token__:"+e.reader, "", nil, nil); code != http.StatusBadRequest {
		t.Errorf("escaped traversal in a download: %d %s", code, b)
	}
}

// tgzOf builds a gzip'd tar of empty entries with the headers given.
func tgzOf(t *testing.T, hdrs []tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for i := range hdrs {
		if err := tw.WriteHeader(&hdrs[i]); err != nil {
			t.Fatal(err)
		}
	}
	_ = tw.Close()
	_ = zw.Close()
	return buf.Bytes()
}
