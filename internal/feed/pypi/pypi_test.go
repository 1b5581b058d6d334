package pypi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/feed"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Django": "django", "friendly-bard": "friendly-bard", "Friendly-Bard": "friendly-bard",
		"FRIENDLY-BARD": "friendly-bard", "friendly.bard": "friendly-bard", "friendly_bard": "friendly-bard",
		"friendly--bard": "friendly-bard", "FrIeNdLy-._.-bArD": "friendly-bard", "a": "a", "zope.interface": "zope-interface",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"", "-a", "a-", ".a", "a.", "../etc", "a/b", "a b", "é", "a%2fb", strings.Repeat("a", 201)} {
		if _, err := ParseName(bad); err == nil {
			t.Errorf("ParseName(%q) accepted", bad)
		}
	}
}

// FuzzNormalize: a name ParseName accepts normalises to one OCI name
// component (its repository is <feed>/<name>), idempotently.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"Django", "zope.interface", "a--b", "A_B.c", "..", "a/b", "x-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		if !feed.ValidComponent(n) || Normalize(n) != n || !ValidName(n) {
			t.Fatalf("ParseName(%q) = %q: not a normalised repository component", s, n)
		}
		if _, err := feed.Repository("feed", n); err != nil {
			t.Fatalf("repository of %q: %v", n, err)
		}
	})
}

func TestCheckFilename(t *testing.T) {
	ok := []struct{ file, ft, project, version string }{
		{"custody_demo-1.0.0-py3-none-any.whl", "bdist_wheel", "custody-demo", "1.0.0"},
		{"Custody.Demo-1.0.0-1-py3-none-any.whl", "bdist_wheel", "custody-demo", "1.0.0"},
		{"numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "bdist_wheel", "numpy", "1.26.4"},
		{"custody_demo-1.0.0.tar.gz", "sdist", "custody-demo", "1.0.0"},
		{"custody-demo-1.0.0.zip", "sdist", "custody-demo", "1.0.0"},
	}
	for _, c := range ok {
		if err := checkFilename(c.file, c.ft, c.project, c.version); err != nil {
			t.Errorf("%s: %v", c.file, err)
		}
	}
	bad := []struct{ file, ft, project, version string }{
		{"other-1.0.0-py3-none-any.whl", "bdist_wheel", "custody-demo", "1.0.0"},
		{"custody_demo-1.0.1-py3-none-any.whl", "bdist_wheel", "custody-demo", "1.0.0"},
		{"custody_demo-1.0.0.whl", "bdist_wheel", "custody-demo", "1.0.0"},
		{"custody_demo-1.0.0-py3-none-any.tar.gz", "bdist_wheel", "custody-demo", "1.0.0"},
		{"custody_demo-1.0.0.egg", "bdist_egg", "custody-demo", "1.0.0"},
		{"../custody_demo-1.0.0.tar.gz", "sdist", "custody-demo", "1.0.0"},
		{"custody_demo-1.0.1.tar.gz", "sdist", "custody-demo", "1.0.0"},
	}
	for _, c := range bad {
		if err := checkFilename(c.file, c.ft, c.project, c.version); err == nil {
			t.Errorf("%s accepted", c.file)
		}
	}
}

// body is a multipart body with boundary "B" of fields and, when
// filename is set, a content part.
func body(fields [][2]string, filename, content string) []byte {
	var b bytes.Buffer
	for _, kv := range fields {
		fmt.Fprintf(&b, "--B\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", kv[0], kv[1])
	}
	if filename != "" {
		fmt.Fprintf(&b, "--B\r\nContent-Disposition: form-data; name=\"content\"; filename=%q\r\n\r\n%s\r\n", filename, content)
	}
	b.WriteString("--B--\r\n")
	return b.Bytes()
}

func twineFields(name, version, sha string) [][2]string {
	return [][2]string{{":action", "file_upload"}, {"protocol_version", "1"}, {"name", name}, {"version", version},
		{"filetype", "sdist"}, {"pyversion", "source"}, {"sha256_digest", sha}, {"classifiers", "A"}, {"classifiers", "B"},
		{"requires_python", ">=3.8"}}
}

func TestParseUpload(t *testing.T) {
	sum := sha256.Sum256([]byte("data"))
	sha := hex.EncodeToString(sum[:])
	u, part, err := ParseUpload(multipart.NewReader(bytes.NewReader(body(twineFields("My.Pkg", "1.0", sha), "my_pkg-1.0.tar.gz", "data")), "B"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(part)
	if u.Project != "my-pkg" || u.Name != "My.Pkg" || u.Filename != "my_pkg-1.0.tar.gz" || u.SHA256 != sha || string(got) != "data" ||
		u.RequiresPython != ">=3.8" || len(u.Metadata["classifiers"]) != 2 || u.Metadata["sha256_digest"] != nil {
		t.Errorf("parsed %+v content %q", u, got)
	}
	for name, c := range map[string]struct {
		body []byte
		want string
	}{
		"no content":        {body(twineFields("p", "1.0", sha), "", ""), "no content part"},
		"digest after file": {body([][2]string{{":action", "file_upload"}, {"name", "p"}, {"version", "1.0"}, {"filetype", "sdist"}}, "p-1.0.tar.gz", "data"), "sha256_digest must be given before the content"},
		"traversal":         {body(twineFields("p", "1.0", sha), "../p-1.0.tar.gz", "data"), "invalid file name"},
		"absolute":          {body(twineFields("p", "1.0", sha), "/etc/p-1.0.tar.gz", "data"), "invalid file name"},
		"bad name":          {body(twineFields("../p", "1.0", sha), "p-1.0.tar.gz", "data"), "invalid project name"},
		"bad version":       {body(twineFields("p", "1.0/../x", sha), "p-1.0.tar.gz", "data"), "invalid version"},
		"bad action":        {body(append([][2]string{{":action", "remove_pkg"}}, twineFields("p", "1.0", sha)[1:]...), "p-1.0.tar.gz", "data"), "unknown :action"},
		"twice":             {body(append(twineFields("p", "1.0", sha), [2]string{"version", "2.0"}), "p-1.0.tar.gz", "data"), "given 2 times"},
		"not multipart":     {[]byte("hello"), "no content part"},
	} {
		_, _, err := ParseUpload(multipart.NewReader(bytes.NewReader(c.body), "B"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
		}
	}
}

// FuzzParseUpload: whatever the body, an accepted upload names a valid
// project, a plain file name of that project, and a sha256.
func FuzzParseUpload(f *testing.F) {
	sum := sha256.Sum256([]byte("data"))
	sha := hex.EncodeToString(sum[:])
	f.Add(body(twineFields("My.Pkg", "1.0", sha), "my_pkg-1.0.tar.gz", "data"))
	f.Add(body(twineFields("p", "1.0", sha), "../p-1.0.tar.gz", "data"))
	f.Add(body(twineFields("p", "1.0", sha), "p-1.0-py3-none-any.whl", "data"))
	f.Add([]byte("--B\r\n\r\n--B--"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, part, err := ParseUpload(multipart.NewReader(bytes.NewReader(b), "B"))
		if err != nil {
			return
		}
		if part == nil || !feed.ValidFilename(u.Filename) || strings.ContainsAny(u.Filename, "/\\") ||
			Normalize(u.Name) != u.Project || !feed.ValidComponent(u.Project) || !isHex(u.SHA256, 32) {
			t.Fatalf("accepted %+v", u)
		}
		if err := checkFilename(u.Filename, u.Filetype, u.Project, u.Version); err != nil {
			t.Fatalf("accepted a file name checkFilename refuses: %v", err)
		}
		if _, err := feed.Repository("feed", u.Project); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWantsJSON(t *testing.T) {
	for accept, want := range map[string]bool{
		"": false, "text/html": false,
		"application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01": true, // pip
		"application/vnd.pypi.simple.v1+json;q=0":                                                            false,
		"text/html, application/vnd.pypi.simple.v1+json;q=0.5":                                               false,
		"application/vnd.pypi.simple.v1+json; q=1, text/html; q=1":                                           true,
		"APPLICATION/VND.PYPI.SIMPLE.V1+JSON":                                                                true,
		"application/vnd.pypi.simple.v1+json;q=junk, text/html;q=0.1":                                        false,
		"application/vnd.pypi.simple.v1+html, application/vnd.pypi.simple.v1+json":                           true,
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		if got := wantsJSON(r); got != want {
			t.Errorf("Accept %q: JSON %v, want %v", accept, got, want)
		}
	}
}

// FuzzCheckArchive: whatever the bytes, checkArchive answers (no panic,
// no hang) and accepts nothing whose listing escapes.
func FuzzCheckArchive(f *testing.F) {
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), false)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}, true)
	f.Add([]byte("not an archive"), true)
	f.Fuzz(func(t *testing.T, b []byte, tgz bool) {
		name := "p-1.0-py3-none-any.whl"
		if tgz {
			name = "p-1.0.tar.gz"
		}
		tmp, err := os.CreateTemp(t.TempDir(), "a")
		if err != nil {
			t.Fatal(err)
		}
		defer tmp.Close()
		if _, err := tmp.Write(b); err != nil {
			t.Fatal(err)
		}
		_ = checkArchive(tmp, int64(len(b)), name)
	})
}
