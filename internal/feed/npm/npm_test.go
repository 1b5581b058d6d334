package npm

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1" //nolint:gosec // npm's shasum
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/blob/fs"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/registry"
)

func tarball(t testing.TB, entries ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		h.Mode = 0o644
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
	}
	_ = tw.Close()
	_ = zw.Close()
	return buf.Bytes()
}

// body is a publish document (as libnpmpublish sends it) for data, with
// the hashes of claimed.
func body(name, attachment, version string, data, claimed []byte, tags map[string]string) []byte {
	s512 := sha512.Sum512(claimed)
	s1 := sha1.Sum(claimed) //nolint:gosec // npm's shasum
	if tags == nil {
		tags = map[string]string{"latest": version}
	}
	b, _ := json.Marshal(map[string]any{
		"_id": name, "name": name, "dist-tags": tags,
		"versions": map[string]any{version: map[string]any{
			"name": name, "version": version, "dependencies": map[string]string{"x": "^1"}, "scripts": map[string]string{"test": "true"},
			"dist": map[string]string{"integrity": "sha512-" + base64.StdEncoding.EncodeToString(s512[:]), "shasum": hex.EncodeToString(s1[:]), "tarball": "http://elsewhere/x.tgz"},
		}},
		"_attachments": map[string]any{attachment: map[string]any{"content_type": "application/octet-stream",
			"data": base64.StdEncoding.EncodeToString(data), "length": len(data)}},
	})
	return b
}

func TestParseName(t *testing.T) {
	for s, want := range map[string]Name{"left-pad": {Base: "left-pad"}, "@acme/util": {Scope: "acme", Base: "util"}, "a.b_c": {Base: "a.b_c"}} {
		n, err := ParseName(s)
		if err != nil || n != want || n.String() != s {
			t.Errorf("ParseName(%q) = %+v, %v", s, n, err)
		}
		repo, err := n.Repository("f")
		if err != nil {
			t.Fatal(err)
		}
		back, ok := NameOf("f", repo)
		if !ok || back != n {
			t.Errorf("NameOf(%q) = %+v", repo, back)
		}
	}
	for _, s := range []string{"", "@", "@/x", "@acme", "@acme/", "..", "../x", "@../x", "@acme/..", "a/b", "UPPER", "a~b", ".hidden", "_x", "a b", "@a/b/c", strings.Repeat("a", 215)} {
		if n, err := ParseName(s); err == nil {
			t.Errorf("ParseName(%q) = %+v, want an error", s, n)
		}
	}
}

func TestParsePublish(t *testing.T) {
	good := tarball(t, tar.Header{Name: "package/package.json"}, tar.Header{Name: "package/lib/index.js"})
	util := Name{Scope: "acme", Base: "util"}
	p, err := ParsePublish(body("@acme/util", "@acme/util-1.2.3.tgz", "1.2.3", good, good, map[string]string{"beta": "1.2.3"}), util)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != "1.2.3" || p.Filename != "util-1.2.3.tgz" || !bytes.Equal(p.Tarball, good) || len(p.DistTags) != 1 || p.DistTags[0] != "beta" {
		t.Errorf("ParsePublish = %+v", p)
	}
	if strings.Contains(string(p.Doc), "elsewhere") || !strings.Contains(string(p.Doc), `"dependencies"`) {
		t.Errorf("version document kept = %s", p.Doc)
	}
	left := Name{Base: "left"}
	cases := []struct {
		name string
		body []byte
		want string
	}{
		{"not JSON", []byte("{"), "not a package document"},
		{"integrity mismatch", body("left", "left-1.0.0.tgz", "1.0.0", good, []byte("other"), nil), "dist.integrity"},
		{"wrong name", body("right", "right-1.0.0.tgz", "1.0.0", good, good, nil), "names package"},
		{"bad version", body("left", "left-01.0.0.tgz", "01.0.0", good, good, nil), "not a semantic version"},
		{"build metadata", body("left", "left-1.0.0+b.tgz", "1.0.0+b", good, good, nil), "not a semantic version"},
		{"attachment name", body("left", "../left-1.0.0.tgz", "1.0.0", good, good, nil), "must be called"},
		{"tag names another version", body("left", "left-1.0.0.tgz", "1.0.0", good, good, map[string]string{"latest": "2.0.0"}), "may only tag"},
		{"tag looks like a version", body("left", "left-1.0.0.tgz", "1.0.0", good, good, map[string]string{"v1": "1.0.0"}), "invalid dist-tag"},
		{"not gzip", body("left", "left-1.0.0.tgz", "1.0.0", []byte("plain"), []byte("plain"), nil), "not gzip"},
		{"absolute entry", body("left", "left-1.0.0.tgz", "1.0.0", tarball(t, tar.Header{Name: "/etc/passwd"}), tarball(t, tar.Header{Name: "/etc/passwd"}), nil), "leaves the package directory"},
		{"dot-dot entry", body("left", "left-1.0.0.tgz", "1.0.0", tarball(t, tar.Header{Name: "package/../../x"}), tarball(t, tar.Header{Name: "package/../../x"}), nil), "leaves the package directory"},
		{"escaping symlink", body("left", "left-1.0.0.tgz", "1.0.0",
			tarball(t, tar.Header{Name: "package/l", Typeflag: tar.TypeSymlink, Linkname: "../../etc"}),
			tarball(t, tar.Header{Name: "package/l", Typeflag: tar.TypeSymlink, Linkname: "../../etc"}), nil), "points outside"},
	}
	for _, c := range cases {
		if _, err := ParsePublish(c.body, left); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
}

// FuzzParsePublish: the parser never panics, and what it accepts is one
// checked version whose tarball matches the hashes it reports.
func FuzzParsePublish(f *testing.F) {
	good := tarball(f, tar.Header{Name: "package/package.json"})
	f.Add(body("left", "left-1.0.0.tgz", "1.0.0", good, good, nil))
	f.Add(body("left", "left-1.0.0.tgz", "1.0.0", good, []byte("x"), nil))
	f.Add([]byte(`{"name":"left","versions":{},"_attachments":{}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePublish(b, Name{Base: "left"})
		if err != nil {
			return
		}
		s := sha512.Sum512(p.Tarball)
		if !ValidVersion(p.Version) || p.SHA512 != hex.EncodeToString(s[:]) || p.Filename != "left-"+p.Version+".tgz" {
			t.Fatalf("accepted %+v", p)
		}
	})
}

// FuzzParseName: accepted names round-trip through their repository and
// stay inside the feed.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"left-pad", "@acme/util", "@../x", "..", "a/b", "@a/b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		if n.String() != s {
			t.Fatalf("ParseName(%q).String() = %q", s, n)
		}
		repo, err := n.Repository("f")
		if err != nil {
			return // too long for a repository name
		}
		if !registry.ValidName(repo) || !strings.HasPrefix(repo, "f/") {
			t.Fatalf("%q maps to %q", s, repo)
		}
		if back, ok := NameOf("f", repo); !ok || back != n {
			t.Fatalf("NameOf(%q) = %+v, want %+v", repo, back, n)
		}
	})
}

// handler is an npm handler over real stores, without authentication.
func handler(t *testing.T) *httptest.Server {
	t.Helper()
	dir := t.TempDir()
	blobs, err := fs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	md, err := sqlite.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	h := New([]config.Feed{{Name: "f", Ecosystem: "npm", Kind: "hosted"}}, blobs, md, registry.Options{})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, method, url, accept string, b []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func TestPackumentForms(t *testing.T) {
	srv := handler(t)
	tgz := tarball(t, tar.Header{Name: "package/package.json"})
	if resp, b := call(t, "PUT", srv.URL+"/npm/f/@acme%2futil", "", body("@acme/util", "@acme/util-1.0.0.tgz", "1.0.0", tgz, tgz, nil)); resp.StatusCode != 200 {
		t.Fatalf("publish: %d %s", resp.StatusCode, b)
	}
	// Both spellings of a scoped name reach the package.
	for _, path := range []string{"/npm/f/@acme%2futil", "/npm/f/@acme%2Futil", "/npm/f/@acme/util", "/npm/f/%40acme%2futil"} {
		if resp, b := call(t, "GET", srv.URL+path, "", nil); resp.StatusCode != 200 || !strings.Contains(string(b), `"readme"`) && !strings.Contains(string(b), `"time"`) {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	// Abbreviated metadata keeps the install fields only.
	resp, b := call(t, "GET", srv.URL+"/npm/f/@acme%2futil", "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*", nil)
	var abbr struct {
		Name     string            `json:"name"`
		Modified string            `json:"modified"`
		DistTags map[string]string `json:"dist-tags"`
		Versions map[string]map[string]json.RawMessage
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != AbbreviatedType || json.Unmarshal(b, &abbr) != nil {
		t.Fatalf("abbreviated: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	v := abbr.Versions["1.0.0"]
	if abbr.DistTags["latest"] != "1.0.0" || abbr.Modified == "" || v["dependencies"] == nil || v["scripts"] != nil || v["dist"] == nil {
		t.Errorf("abbreviated document: %s", b)
	}
	var dist struct{ Tarball, Integrity, Shasum string }
	_ = json.Unmarshal(v["dist"], &dist)
	s512 := sha512.Sum512(tgz)
	if dist.Tarball != srv.URL+"/npm/f/@acme/util/-/util-1.0.0.tgz" || dist.Integrity != "sha512-"+base64.StdEncoding.EncodeToString(s512[:]) || len(dist.Shasum) != 40 {
		t.Errorf("dist = %+v", dist)
	}
	// The tarball is served at the URL the document names.
	if resp, got := call(t, "GET", dist.Tarball, "", nil); resp.StatusCode != 200 || !bytes.Equal(got, tgz) {
		t.Errorf("tarball: %d", resp.StatusCode)
	}
	// A version by number and by dist-tag.
	for _, ref := range []string{"1.0.0", "latest"} {
		if resp, b := call(t, "GET", srv.URL+"/npm/f/@acme%2futil/"+ref, "", nil); resp.StatusCode != 200 || !strings.Contains(string(b), `"version":"1.0.0"`) {
			t.Errorf("GET version %s: %d %s", ref, resp.StatusCode, b)
		}
	}
	// Misses are npm's JSON errors.
	for _, path := range []string{"/npm/f/nothing", "/npm/f/@acme%2futil/-/util-9.9.9.tgz", "/npm/f/@acme%2futil/9.9.9", "/npm/g/x", "/npm/f/-/nothing"} {
		resp, b := call(t, "GET", srv.URL+path, "", nil)
		var e struct{ Error string }
		if resp.StatusCode != 404 || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
}
