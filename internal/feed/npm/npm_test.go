package npm

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1" //nolint:gosec // npm's shasum
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/store/storetest"
	"github.com/custody-dev/custody/internal/testserver"
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
	p, tgz, err := parsePublish(body("@acme/util", "@acme/util-1.2.3.tgz", "1.2.3", good, good, map[string]string{"beta": "1.2.3"}), util)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != "1.2.3" || p.Filename != "util-1.2.3.tgz" || !bytes.Equal(tgz, good) || p.Size != int64(len(good)) || len(p.DistTags) != 1 || p.DistTags[0] != "beta" {
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
		if _, _, err := parsePublish(c.body, left); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
}

// FuzzParsePublish: the streaming parser never panics, and what it
// accepts is valid JSON, one checked version whose tarball is what
// encoding/json and a whole-string base64 decoding read from the same
// body, and matches the hashes it reports.
func FuzzParsePublish(f *testing.F) {
	good := tarball(f, tar.Header{Name: "package/package.json"})
	f.Add(body("left", "left-1.0.0.tgz", "1.0.0", good, good, nil))
	f.Add(body("left", "left-1.0.0.tgz", "1.0.0", good, []byte("x"), nil))
	f.Add([]byte(`{"name":"left","versions":{},"_attachments":{}}`))
	f.Add([]byte(`[]`))
	var first bytes.Buffer
	_ = streamPublish(&first, 10)
	f.Add(first.Bytes())
	f.Add(bytes.ReplaceAll(body("left", "left-1.0.0.tgz", "1.0.0", good, good, nil), []byte("/"), []byte(`\/`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, tgz, err := parsePublish(b, Name{Base: "left"})
		if err != nil {
			return
		}
		s := sha512.Sum512(tgz)
		s1 := sha1.Sum(tgz) //nolint:gosec // npm's shasum
		if !ValidVersion(p.Version) || p.SHA512 != hex.EncodeToString(s[:]) || p.SHA1 != hex.EncodeToString(s1[:]) ||
			p.Size != int64(len(tgz)) || p.Filename != "left-"+p.Version+".tgz" {
			t.Fatalf("accepted %+v", p)
		}
		var doc struct {
			Attachments map[string]json.RawMessage `json:"_attachments"`
		}
		if err := json.Unmarshal(b, &doc); err != nil || len(doc.Attachments) != 1 {
			t.Fatalf("accepted a body encoding/json reads otherwise: %v", err)
		}
		for _, a := range doc.Attachments {
			var m map[string]json.RawMessage
			_ = json.Unmarshal(a, &m)
			if ref, isJSON, isB64 := decodeData(m["data"]); !isJSON || !isB64 || !bytes.Equal(ref, tgz) {
				t.Fatalf("streamed tarball %x, whole decoding %x", tgz, ref)
			}
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
	blobs, md := storetest.Embedded(t)
	h := New([]config.Feed{{Name: "f", Ecosystem: "npm", Kind: "hosted"}}, blobs, md, registry.Options{})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, method, url, accept string, b []byte) (*http.Response, []byte) {
	t.Helper()
	return testserver.Do(t, method, url, "", b, "Accept", accept)
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

// TestTarballEscapes: npm unpacks a tarball dropping its first path
// component ("package/"), and follows symlinks earlier entries made; so
// "package/../x" lands beside the package directory, and a chain of links
// that each look harmless lexically leads out. Every such tarball is
// refused, by the parser and at the route, storing nothing.
func TestTarballEscapes(t *testing.T) {
	sym := func(name, target string) tar.Header {
		return tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}
	}
	hard := func(name, target string) tar.Header {
		return tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}
	}
	file := func(name string) tar.Header { return tar.Header{Name: name} }
	bad := map[string][]tar.Header{
		"dot-dot after the first component": {file("package/package.json"), file("package/../x")},
		"symlink chain":                     {file("package/package.json"), sym("package/l", ".."), sym("package/l/up", ".."), file("package/l/up/evil")},
		"symlink through a symlink":         {file("package/package.json"), sym("package/l", ".."), sym("package/m", "l/..")},
		"symlink up to the root":            {file("package/package.json"), sym("package/l", "..")},
		"absolute symlink":                  {file("package/package.json"), sym("package/l", "/etc")},
		"hardlink with dot-dot":             {file("package/package.json"), hard("package/h", "package/../x")},
		"empty symlink target":              {file("package/package.json"), sym("package/l", "")},
	}
	for name, entries := range bad {
		tgz := tarball(t, entries...)
		if _, _, err := parsePublish(body("left", "left-1.0.0.tgz", "1.0.0", tgz, tgz, nil), Name{Base: "left"}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Links that stay inside still pass: npm packs hardlinks within the
	// package as such, and a symlink pointing down is harmless.
	ok := tarball(t, file("package/package.json"), file("package/lib/a.js"), hard("package/lib/b.js", "package/lib/a.js"), sym("package/c.js", "lib/a.js"))
	if _, _, err := parsePublish(body("left", "left-1.0.0.tgz", "1.0.0", ok, ok, nil), Name{Base: "left"}); err != nil {
		t.Errorf("inside links: %v", err)
	}

	// At the route: 400 in npm's shape, and the package does not exist.
	srv := handler(t)
	tgz := tarball(t, bad["symlink chain"]...)
	resp, b := call(t, "PUT", srv.URL+"/npm/f/left", "", body("left", "left-1.0.0.tgz", "1.0.0", tgz, tgz, nil))
	var e struct{ Error string }
	if resp.StatusCode != 400 || json.Unmarshal(b, &e) != nil || e.Error == "" {
		t.Errorf("publish: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "GET", srv.URL+"/npm/f/left", "", nil); resp.StatusCode != 404 {
		t.Errorf("after the refusal the package exists: %d %s", resp.StatusCode, b)
	}
}

// TestPublishDistTagCount: npm sends one dist-tag with a publish. A body
// naming thousands (each a tag, each appended after listing the
// repository's tags) would make one request cost quadratic work and
// leave thousands of tags; more than maxPublishDistTags is refused and
// nothing is stored.
func TestPublishDistTagCount(t *testing.T) {
	tgz := tarball(t, tar.Header{Name: "package/package.json"})
	tags := map[string]string{}
	for i := range 2000 {
		tags[fmt.Sprintf("t%d", i)] = "1.0.0"
	}
	if _, _, err := parsePublish(body("left", "left-1.0.0.tgz", "1.0.0", tgz, tgz, tags), Name{Base: "left"}); err == nil || !strings.Contains(err.Error(), "dist-tags") {
		t.Errorf("2000 dist-tags: %v", err)
	}
	srv := handler(t)
	resp, b := call(t, "PUT", srv.URL+"/npm/f/left", "", body("left", "left-1.0.0.tgz", "1.0.0", tgz, tgz, tags))
	if resp.StatusCode != 400 {
		t.Errorf("publish: %d %.200s", resp.StatusCode, b)
	}
	if resp, b := call(t, "GET", srv.URL+"/npm/f/left", "", nil); resp.StatusCode != 404 {
		t.Errorf("after the refusal the package exists: %d %.200s", resp.StatusCode, b)
	}
	// A few are fine.
	few := map[string]string{"latest": "1.0.0", "next": "1.0.0"}
	if _, _, err := parsePublish(body("left", "left-1.0.0.tgz", "1.0.0", tgz, tgz, few), Name{Base: "left"}); err != nil {
		t.Errorf("two dist-tags: %v", err)
	}
}

// TestDistRegistryFields: a version's dist is the registry's word, so
// fields only a registry may state (its signatures, the provenance
// attestations it verified, npm's old PGP signature) are never taken
// from the publisher: npm audit signatures would fetch and trust them.
// The publisher's file count and unpacked size stay.
func TestDistRegistryFields(t *testing.T) {
	srv := handler(t)
	tgz := tarball(t, tar.Header{Name: "package/package.json"})
	var doc map[string]any
	_ = json.Unmarshal(body("left", "left-1.0.0.tgz", "1.0.0", tgz, tgz, nil), &doc)
	v := doc["versions"].(map[string]any)["1.0.0"].(map[string]any)
	d := v["dist"].(map[string]any)
	d["signatures"] = []any{map[string]any{"keyid": "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA", "sig": "MEUCIQ=="}}
	d["attestations"] = map[string]any{"url": "https://evil.example/attestations/left@1.0.0", "provenance": map[string]any{"predicateType": "https://slsa.dev/provenance/v1"}}
	d["npm-signature"] = "-----BEGIN PGP SIGNATURE-----"
	d["fileCount"] = 1
	d["unpackedSize"] = 42
	b, _ := json.Marshal(doc)
	if resp, out := call(t, "PUT", srv.URL+"/npm/f/left", "", b); resp.StatusCode != 200 {
		t.Fatalf("publish: %d %s", resp.StatusCode, out)
	}
	for _, path := range []string{"/npm/f/left", "/npm/f/left/1.0.0"} {
		for _, accept := range []string{"", AbbreviatedType} {
			resp, out := call(t, "GET", srv.URL+path, accept, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, out)
			}
			for _, bad := range []string{"signatures", "attestations", "evil.example", "npm-signature"} {
				if strings.Contains(string(out), bad) {
					t.Errorf("GET %s (%s) serves the publisher's %q: %s", path, accept, bad, out)
				}
			}
			if !strings.Contains(string(out), `"fileCount":1`) || !strings.Contains(string(out), `"unpackedSize":42`) {
				t.Errorf("GET %s (%s) dropped fileCount/unpackedSize: %s", path, accept, out)
			}
		}
	}
}

// auditLog keeps audit events.
type auditLog struct {
	mu     sync.Mutex
	events []audit.Event
}

func (a *auditLog) Record(_ context.Context, e audit.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
}

func (a *auditLog) len() int { a.mu.Lock(); defer a.mu.Unlock(); return len(a.events) }

// TestDistTagRefusalsAudited: a dist-tag change refused because its
// version or dist-tag does not exist is a refused write like any other:
// it is in the audit log, and nothing changed.
func TestDistTagRefusalsAudited(t *testing.T) {
	blobs, md := storetest.Embedded(t)
	log := &auditLog{}
	srv := httptest.NewServer(New([]config.Feed{{Name: "f", Ecosystem: "npm", Kind: "hosted"}}, blobs, md, registry.Options{Auditor: log}))
	t.Cleanup(srv.Close)
	tgz := tarball(t, tar.Header{Name: "package/package.json"})
	if resp, b := call(t, "PUT", srv.URL+"/npm/f/left", "", body("left", "left-1.0.0.tgz", "1.0.0", tgz, tgz, nil)); resp.StatusCode != 200 {
		t.Fatalf("publish: %d %s", resp.StatusCode, b)
	}
	_, before := call(t, "GET", srv.URL+"/npm/f/-/package/left/dist-tags", "", nil)
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/npm/f/-/package/left/dist-tags/beta", `"9.9.9"`},
		{"DELETE", "/npm/f/-/package/left/dist-tags/beta", ""},
	} {
		n := log.len()
		resp, b := call(t, c.method, srv.URL+c.path, "", []byte(c.body))
		if resp.StatusCode != 404 {
			t.Errorf("%s %s: %d %s", c.method, c.path, resp.StatusCode, b)
		}
		log.mu.Lock()
		got := log.events[n:]
		if len(got) != 1 || got[0].Action != "npm.dist-tag" || got[0].Result != "invalid" || got[0].Repo != "f/left" {
			t.Errorf("%s %s audited as %+v", c.method, c.path, got)
		}
		log.mu.Unlock()
	}
	if _, after := call(t, "GET", srv.URL+"/npm/f/-/package/left/dist-tags", "", nil); string(after) != string(before) {
		t.Errorf("dist-tags changed: %s -> %s", before, after)
	}
}
