package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/blob/fs"
	"github.com/custody-dev/custody/internal/jsondoc"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/meta/sqlite"
)

// Fuzz targets. `go test` runs their seed corpora; scripts/fuzz.sh runs
// each with -fuzz for a while.

const (
	fuzzSHA256 = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	fuzzSHA512 = "sha512:9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043"
)

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/v2", "/v2/", "/v2/_catalog", "/v2/library/alpine/manifests/latest",
		"/v2/a/b/c/manifests/" + fuzzSHA256, "/v2/a/tags/list", "/v2/a/referrers/" + fuzzSHA256,
		"/v2/a/blobs/" + fuzzSHA256, "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads",
		"/v2/a/blobs/uploads/0123abcd", "/v2/../../etc/manifests/x", "/v2/a/../b/manifests/x",
		"/v2//manifests/x", "/v2/a//b/manifests/x", "/v2/a/blobs/uploads/blobs/uploads/",
		"/v2/A/manifests/x", "/v2/a\x00b/manifests/x", "/v2/./manifests/x", "/v3/a/manifests/x",
		"/v2/a/manifests/", "/v2/a/manifests/../../x", "/v2/a.b-c__d/tags/list", "",
	} {
		f.Add(s)
	}
	dir := filepath.Join(string(filepath.Separator)+"srv", "custody", "repos")
	f.Fuzz(func(t *testing.T, path string) {
		rt, ok := parseRoute(path)
		if got := Endpoint(path); ok && got != rt.kind || !ok && got != "other" {
			t.Fatalf("Endpoint(%q) = %q, parseRoute kind %q (ok %v)", path, got, rt.kind, ok)
		}
		if !ok {
			return
		}
		// The parsed pieces spell the path again: nothing is dropped or
		// decoded on the way.
		var want []string
		switch rt.kind {
		case "base":
			want = []string{"/v2", "/v2/"}
		case "catalog":
			want = []string{"/v2/_catalog"}
		case "tags":
			want = []string{"/v2/" + rt.repo + "/tags/list"}
		case "manifest":
			want = []string{"/v2/" + rt.repo + "/manifests/" + rt.ref}
		case "referrers":
			want = []string{"/v2/" + rt.repo + "/referrers/" + rt.ref}
		case "blob":
			want = []string{"/v2/" + rt.repo + "/blobs/" + rt.ref}
		case "uploads":
			want = []string{"/v2/" + rt.repo + "/blobs/uploads", "/v2/" + rt.repo + "/blobs/uploads/"}
		case "upload":
			want = []string{"/v2/" + rt.repo + "/blobs/uploads/" + rt.ref}
		default:
			t.Fatalf("parseRoute(%q): unknown kind %q", path, rt.kind)
		}
		found := false
		for _, w := range want {
			found = found || w == path
		}
		if !found {
			t.Fatalf("parseRoute(%q) = %+v, which spells %q", path, rt, want)
		}
		if strings.Contains(rt.ref, "/") {
			t.Fatalf("parseRoute(%q): reference %q contains '/'", path, rt.ref)
		}
		if rt.kind == "base" || rt.kind == "catalog" || !ValidName(rt.repo) {
			return
		}
		if strings.Contains(rt.repo, "..") {
			t.Fatalf("parseRoute(%q): valid repository %q contains \"..\"", path, rt.repo)
		}
		joined := filepath.Join(dir, rt.repo)
		rel, err := filepath.Rel(dir, joined)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || !filepath.IsLocal(rt.repo) {
			t.Fatalf("parseRoute(%q): repository %q joined under %s gives %s, outside it", path, rt.repo, dir, joined)
		}
		if rel != filepath.FromSlash(rt.repo) {
			t.Fatalf("parseRoute(%q): repository %q is not clean (joins as %s)", path, rt.repo, rel)
		}
	})
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{
		"a", "library/alpine", "a.b_c__d-e--f/g", "A", "a..b", "../a", "a/", "/a", "a//b", "a\x00",
		".", "..", "a/../b", "a/./b", "a-", "-a", "_a", "a___b", strings.Repeat("a", 255), strings.Repeat("a", 256),
		"a\n", "ä", "a b", "a/b/c/d/e/f", "a.-b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidName(s) {
			return
		}
		switch {
		case len(s) == 0 || len(s) > maxNameLength:
			t.Fatalf("ValidName(%q): length %d", s, len(s))
		case strings.ToLower(s) != s:
			t.Fatalf("ValidName(%q): uppercase", s)
		case strings.Contains(s, ".."):
			t.Fatalf("ValidName(%q): contains \"..\"", s)
		case strings.ContainsRune(s, 0):
			t.Fatalf("ValidName(%q): contains NUL", s)
		case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//"):
			t.Fatalf("ValidName(%q): empty path component", s)
		case !filepath.IsLocal(s) || filepath.Clean(s) != filepath.FromSlash(s):
			t.Fatalf("ValidName(%q): not a clean local path", s)
		case strings.ContainsAny(s, ":@?#%\\ \t\r\n"):
			t.Fatalf("ValidName(%q): contains a reference or URL delimiter", s)
		}
		for _, c := range strings.Split(s, "/") {
			if c == "." || !isAlnum(c[0]) || !isAlnum(c[len(c)-1]) {
				t.Fatalf("ValidName(%q): component %q does not start and end with [a-z0-9]", s, c)
			}
		}
	})
}

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// Tags may hold uppercase and "..", so the tag invariants differ from the
// name ones: a valid tag is one safe path element and never a digest.
func FuzzValidTag(f *testing.F) {
	for _, s := range []string{
		"latest", "v1.2.3", "V1_RC-2", "_x", ".x", "-x", "a..b", "a:b", "a/b", "", "a\x00",
		strings.Repeat("a", 128), strings.Repeat("a", 129), "sha256:abc", "a\n", "ä",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidTag(s) {
			return
		}
		switch {
		case len(s) == 0 || len(s) > maxTagLength:
			t.Fatalf("ValidTag(%q): length %d", s, len(s))
		case isDigestRef(s):
			t.Fatalf("ValidTag(%q): would be taken for a digest", s)
		case strings.ContainsAny(s, "/\\\x00:@?#% \t\r\n"):
			t.Fatalf("ValidTag(%q): contains a separator, NUL or URL delimiter", s)
		case s[0] == '.' || s[0] == '-':
			t.Fatalf("ValidTag(%q): starts with %q", s, s[0])
		case filepath.Base(s) != s || !filepath.IsLocal(s):
			t.Fatalf("ValidTag(%q): not a single local path element", s)
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{
		"0-0", "0-1023", "bytes=0-1023", "bytes 5-10", " 7-8 ", "10-5", "-1-5", "5--1", "+1-5", "1-+5",
		"", "-", "0-", "-0", "0-9223372036854775807", "1-9223372036854775807", "9223372036854775807-9223372036854775807",
		"0-9223372036854775808", "0x10-0x20", "1_000-2_000", "bytes=bytes=0-1", "0-1-2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, err := parseContentRange(s)
		if err != nil {
			if start != 0 || end != 0 {
				t.Fatalf("parseContentRange(%q) failed (%v) but returned %d-%d", s, err, start, end)
			}
			return
		}
		if start < 0 || end < start {
			t.Fatalf("parseContentRange(%q) = %d-%d", s, start, end)
		}
		// appendChunk reads end-start+1 bytes: the length must be a
		// positive int64, not wrap around.
		if end-start+1 <= 0 {
			t.Fatalf("parseContentRange(%q) = %d-%d, whose length %d overflows", s, start, end, end-start+1)
		}
		s2, e2, err := parseContentRange(fmt.Sprintf("%d-%d", start, end))
		if err != nil || s2 != start || e2 != end {
			t.Fatalf("parseContentRange(%q) = %d-%d, which does not round-trip: %d-%d, %v", s, start, end, s2, e2, err)
		}
	})
}

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		fuzzSHA256, fuzzSHA512, strings.ToUpper(fuzzSHA256), "SHA256:" + fuzzSHA256[7:],
		"sha384:" + strings.Repeat("a", 96), "sha256:" + strings.Repeat("a", 63), "sha256:" + strings.Repeat("a", 65),
		"sha256:", ":abc", "sha256", "", "sha256:" + fuzzSHA256[7:] + "\n", "sha256+b64:abc", "md5:d41d8cd98f00b204e9800998ecf8427e",
		"blake3:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("g", 64), "sha512:" + fuzzSHA256[7:],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = blob.Supported(digest.Digest(s)) // must not panic on anything
		d, err := parseDigest(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != codeDigestInvalid {
				t.Fatalf("parseDigest(%q): error %v is not a 400 DIGEST_INVALID", s, err)
			}
			return
		}
		if string(d) != s {
			t.Fatalf("parseDigest(%q) = %q: altered", s, d)
		}
		alg, hexPart, _ := strings.Cut(s, ":")
		want := map[string]int{"sha256": 64, "sha512": 128}[alg]
		if want == 0 || len(hexPart) != want {
			t.Fatalf("parseDigest(%q) accepted: algorithm %q with %d hex digits", s, alg, len(hexPart))
		}
		for i := 0; i < len(hexPart); i++ {
			if c := hexPart[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				t.Fatalf("parseDigest(%q) accepted: %q is not lowercase hex", s, c)
			}
		}
		if err := blob.Supported(d); err != nil {
			t.Fatalf("parseDigest(%q) accepted what blob.Supported refuses: %v", s, err)
		}
	})
}

// Seed manifests for FuzzParseManifest and FuzzManifestPut. fuzzConfig and
// fuzzLayer are the blobs FuzzManifestPut stores before it starts.
var (
	fuzzConfig = []byte(`{"architecture":"amd64","os":"linux"}`)
	fuzzLayer  = []byte("hello, custody")
)

func desc(mt string, b []byte) string {
	return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, mt, digest.FromBytes(b), len(b))
}

func seedManifests() (child []byte, seeds [][2]string) {
	cfg := desc("application/vnd.oci.image.config.v1+json", fuzzConfig)
	layer := desc("application/vnd.oci.image.layer.v1.tar+gzip", fuzzLayer)
	child = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"layers":[` + layer + `]}`)
	childDesc := desc(MediaTypeOCIManifest, child)
	oci, docker, index, list := MediaTypeOCIManifest, MediaTypeDockerManifest, MediaTypeOCIIndex, MediaTypeDockerList
	seeds = [][2]string{
		{oci, string(child)},
		{"", string(child)},
		{oci + "; charset=utf-8", string(child)},
		{docker, `{"schemaVersion":2,"mediaType":"` + docker + `","config":` + desc("application/vnd.docker.container.image.v1+json", fuzzConfig) + `,"layers":[` + desc("application/vnd.docker.image.rootfs.diff.tar.gzip", fuzzLayer) + `]}`},
		{index, `{"schemaVersion":2,"mediaType":"` + index + `","manifests":[` + childDesc + `]}`},
		{list, `{"schemaVersion":2,"mediaType":"` + list + `","manifests":[` + childDesc + `]}`},
		{index, `{"schemaVersion":2,"manifests":[]}`},
		{oci, `{"schemaVersion":2,"config":` + cfg + `,"layers":[],"subject":` + childDesc + `,"annotations":{"a":"b"}}`},
		{oci, `{"schemaVersion":2,"artifactType":"application/vnd.example+type","config":` + desc("application/vnd.oci.empty.v1+json", fuzzConfig) + `}`},
		{oci, `{"schemaVersion":2,"config":` + cfg + `,"layers":[{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"` + fuzzSHA512 + `","size":3}]}`},
		{docker, `{"schemaVersion":2,"config":` + cfg + `,"layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"` + fuzzSHA256 + `","size":3,"urls":["https://example.com/x"]}]}`},
		// Invalid ones.
		{oci, `{"schemaVersion":2,"config":` + cfg + `,"manifests":[` + childDesc + `]}`},
		{index, `{"schemaVersion":2,"mediaType":"` + index + `","layers":[` + layer + `],"manifests":[]}`},
		{oci, `{"schemaVersion":1,"config":` + cfg + `}`},
		{oci, `{"schemaVersion":2,"fsLayers":[],"config":` + cfg + `}`},
		{oci, `{"schemaVersion":2}`},
		{oci, `{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:abc","size":1}}`},
		{oci, `{"schemaVersion":2,"config":{"mediaType":"x","digest":"SHA256:` + strings.ToUpper(fuzzSHA256[7:]) + `","size":1}}`},
		{oci, `{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha384:` + strings.Repeat("a", 96) + `","size":1}}`},
		{oci, `{"schemaVersion":2,"config":{"mediaType":"x","digest":"` + fuzzSHA256 + `","size":-1}}`},
		{oci, `{"schemaVersion":2,"config":{"digest":"` + fuzzSHA256 + `","size":1}}`},
		{oci, `{"schemaVersion":2,"config":{"mediaType":"x","digest":"` + fuzzSHA256 + `","size":1}}`},
		{oci, `{"schemaVersion":2,"config":` + desc("application/vnd.oci.image.config.v1+json", fuzzConfig[1:]) + `}`},
		{docker, string(child)},
		{oci, `{"schemaVersion":2,"mediaType":"` + index + `","manifests":[]}`},
		{"text/plain", `{"schemaVersion":2,"mediaType":"text/plain","config":` + cfg + `}`},
		{docker, `{"schemaVersion":2,"artifactType":"x","config":` + cfg + `}`},
		{oci, `{"schemaVersion":2.0,"config":` + cfg + `}`},
		{oci, `{"schemaVersion":"2","config":` + cfg + `}`},
		{oci, `{"schemaVersion":2,"Manifests":[],"config":` + cfg + `}`},
		{oci, `{"schemaVersion":2,"config":` + cfg + `,"subject":{"mediaType":"x","digest":"nope","size":1}}`},
		{oci, `{"schemaVersion":2,"config":` + cfg + `,"layers":null,"manifests":null}`},
		{oci, `{"schemaVersion":2,"config":` + cfg + `,"schemaVersion":3}`},
		{oci, `{"schemaVersion":2,"config":` + cfg + `,"annotations":{"\u0000":"\ud800"}}`},
		{oci, `{"schemaVersion":2,"config":` + cfg + `,"layers":[` + strings.Repeat(layer+",", 50) + layer + `]}`},
		{oci, `[` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `]`},
		{oci, `null`}, {oci, `{}`}, {oci, ``}, {oci, `{"schemaVersion":2,"config":` + cfg}, {oci, "\xff\xfe"},
	}
	return child, seeds
}

func FuzzParseManifest(f *testing.F) {
	_, seeds := seedManifests()
	for _, s := range seeds {
		f.Add(s[0], []byte(s[1]))
	}
	supported := map[string]bool{MediaTypeOCIManifest: true, MediaTypeOCIIndex: true, MediaTypeDockerManifest: true, MediaTypeDockerList: true}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		p, err := ParseManifest(contentType, body)
		if err != nil {
			var me *ManifestError
			if p != nil || !errors.As(err, &me) {
				t.Fatalf("ParseManifest failed with %T %v and result %v", err, err, p)
			}
			return
		}
		if !supported[p.MediaType] {
			t.Fatalf("accepted media type %q", p.MediaType)
		}
		ct, _, _ := strings.Cut(contentType, ";")
		if ct = strings.TrimSpace(ct); ct != "" && ct != p.MediaType {
			t.Fatalf("accepted a %q document sent as %q", p.MediaType, contentType)
		}
		if p.Manifests != nil && (p.Config != nil || p.Layers != nil) {
			t.Fatalf("accepted a document that is both an index and a manifest (%s)", p.MediaType)
		}
		if p.IsIndex() {
			if p.Config != nil || p.Layers != nil {
				t.Fatalf("index %s carries config or layers", p.MediaType)
			}
		} else if p.Config == nil || p.Manifests != nil {
			t.Fatalf("manifest %s without config, or with manifests", p.MediaType)
		}
		// What a second JSON reader sees must agree: a duplicate key that
		// the decoder resolved one way must not hide the other reading.
		var generic map[string]json.RawMessage
		if err := json.Unmarshal(body, &generic); err != nil {
			t.Fatalf("accepted a body that is not a JSON object: %v", err)
		}
		if err := jsondoc.Check(body); err != nil {
			t.Fatalf("accepted a body other readers may read differently: %v", err)
		}
		var all []descriptor
		if p.Config != nil {
			all = append(all, *p.Config)
		}
		all = append(all, p.Layers...)
		all = append(all, p.Manifests...)
		if p.Subject != nil {
			all = append(all, *p.Subject)
		}
		for _, d := range all {
			if _, err := parseDigest(string(d.Digest)); err != nil {
				t.Fatalf("accepted descriptor digest %q: %v", d.Digest, err)
			}
			if d.Size < 0 || d.MediaType == "" {
				t.Fatalf("accepted descriptor %+v", d)
			}
		}
	})
}

// fuzzRegistry is a registry on temporary stores, holding fuzzConfig and
// fuzzLayer (and, under their tags, the seed child manifest) in fuzzRepo.
type fuzzRegistry struct {
	reg  *Registry
	meta meta.Store
}

const fuzzRepo = "fuzz/repo"

func newFuzzRegistry(tb testing.TB) *fuzzRegistry {
	dir := fuzzTempDir(tb)
	blobs, err := fs.New(filepath.Join(dir, "data"))
	if err != nil {
		tb.Fatal(err)
	}
	md, err := sqlite.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { md.Close() })
	log := slog.New(slog.DiscardHandler)
	fr := &fuzzRegistry{reg: New(blobs, md, Options{Log: log}), meta: md}
	for _, b := range [][]byte{fuzzConfig, fuzzLayer} {
		rec := fr.do(http.MethodPost, "/v2/"+fuzzRepo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), "", b, int64(len(b)))
		if rec.Code != http.StatusCreated {
			tb.Fatalf("seeding blob: %d %s", rec.Code, rec.Body)
		}
	}
	child, _ := seedManifests()
	if rec := fr.do(http.MethodPut, "/v2/"+fuzzRepo+"/manifests/child", MediaTypeOCIManifest, child, int64(len(child))); rec.Code != http.StatusCreated {
		tb.Fatalf("seeding manifest: %d %s", rec.Code, rec.Body)
	}
	return fr
}

// fuzzTempDir is a temporary directory on tmpfs when /dev/shm exists:
// the stores fsync on every write, which would dominate each execution.
func fuzzTempDir(tb testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "custody-fuzz-"); err == nil {
			tb.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return tb.TempDir()
}

func (fr *fuzzRegistry) do(method, target, contentType string, body []byte, length int64) *httptest.ResponseRecorder {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	req.ContentLength = length
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	fr.reg.ServeHTTP(rec, req)
	return rec
}

var fuzzTagSeq atomic.Int64

// FuzzManifestPut PUTs fuzzed manifests through the whole handler onto
// real stores. mode selects the reference (bits 0-1: a new tag, the body's
// sha256, its sha512, or a digest that does not match), whether the length
// is announced (bit 2) and whether queryTag is sent as ?tag= (bit 3).
func FuzzManifestPut(f *testing.F) {
	_, seeds := seedManifests()
	for i, s := range seeds {
		f.Add(uint8(i), s[0], []byte(s[1]), "")
		f.Add(uint8(i|8), s[0], []byte(s[1]), "latest")
	}
	f.Add(uint8(8), MediaTypeOCIManifest, []byte(seeds[0][1]), "bad:tag")
	f.Add(uint8(8), MediaTypeOCIManifest, []byte(seeds[0][1]), "child")
	fr := newFuzzRegistry(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, mode uint8, contentType string, body []byte, queryTag string) {
		tag := fmt.Sprintf("fz%d", fuzzTagSeq.Add(1))
		ref := tag
		switch mode & 3 {
		case 1:
			ref = digest.SHA256.FromBytes(body).String()
		case 2:
			ref = digest.SHA512.FromBytes(body).String()
		case 3:
			ref = digest.SHA256.FromBytes(append(body, 'x')).String()
		}
		length := int64(len(body))
		if mode&4 != 0 {
			length = -1
		}
		target := "/v2/" + fuzzRepo + "/manifests/" + ref
		if mode&8 != 0 {
			target += "?" + url.Values{"tag": {queryTag}}.Encode()
		}
		var want digest.Digest
		if mode&3 == 2 {
			want = digest.SHA512.FromBytes(body)
		} else {
			want = digest.SHA256.FromBytes(body)
		}
		before, beforeErr := fr.meta.ResolveTag(ctx, fuzzRepo, queryTag)
		_, hadManifest := fr.meta.GetManifest(ctx, fuzzRepo, want)

		rec := fr.do(http.MethodPut, target, contentType, body, length)

		switch {
		case rec.Code == http.StatusCreated:
			if mode&3 == 3 {
				t.Fatalf("manifest accepted under a digest it does not have")
			}
			if got := rec.Header().Get("Docker-Content-Digest"); got != want.String() {
				t.Fatalf("201 with Docker-Content-Digest %q, want %s", got, want)
			}
			tags := []string{}
			if mode&3 == 0 {
				tags = append(tags, tag)
			}
			if mode&8 != 0 {
				tags = append(tags, queryTag)
			}
			for _, tg := range tags {
				if d, err := fr.meta.ResolveTag(ctx, fuzzRepo, tg); err != nil || d != want {
					t.Fatalf("after 201, tag %q resolves to %s, %v; want %s", tg, d, err, want)
				}
			}
			get := fr.do(http.MethodGet, "/v2/"+fuzzRepo+"/manifests/"+want.String(), "", nil, 0)
			if get.Code != http.StatusOK || !bytes.Equal(get.Body.Bytes(), body) {
				t.Fatalf("after 201, GET by digest: %d, %d bytes (want %d)", get.Code, get.Body.Len(), len(body))
			}
		case rec.Code >= 400 && rec.Code < 500:
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%d with Content-Type %q", rec.Code, ct)
			}
			var eb errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || len(eb.Errors) == 0 || eb.Errors[0].Code == "" {
				t.Fatalf("%d with error body %q (%v)", rec.Code, rec.Body, err)
			}
			if d, err := fr.meta.ResolveTag(ctx, fuzzRepo, tag); !errors.Is(err, meta.ErrNotFound) {
				t.Fatalf("after %d %s, tag %s resolves to %s, %v", rec.Code, eb.Errors[0].Code, tag, d, err)
			}
			after, afterErr := fr.meta.ResolveTag(ctx, fuzzRepo, queryTag)
			if after != before || (beforeErr == nil) != (afterErr == nil) {
				t.Fatalf("after %d %s, tag %q moved from %s (%v) to %s (%v)", rec.Code, eb.Errors[0].Code, queryTag, before, beforeErr, after, afterErr)
			}
			if _, err := fr.meta.GetManifest(ctx, fuzzRepo, want); hadManifest != nil && err == nil {
				t.Fatalf("after %d %s, manifest %s is recorded", rec.Code, eb.Errors[0].Code, want)
			}
		default:
			t.Fatalf("PUT %s (Content-Type %q, %d bytes, length %d): status %d: %s", target, contentType, len(body), length, rec.Code, rec.Body)
		}
	})
}

// A Content-Range whose length does not fit in an int64 must be refused,
// not taken for "length unknown" (which acknowledged any body).
func TestPatchContentRangeOverflow(t *testing.T) {
	fr := newFuzzRegistry(t)
	rec := fr.do(http.MethodPost, "/v2/"+fuzzRepo+"/blobs/uploads/", "", nil, 0)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("start upload: %d %s", rec.Code, rec.Body)
	}
	loc := rec.Header().Get("Location")
	req := httptest.NewRequest(http.MethodPatch, loc, strings.NewReader("abc"))
	req.ContentLength = -1
	req.Header.Set("Content-Range", fmt.Sprintf("0-%d", int64(math.MaxInt64)))
	rec = httptest.NewRecorder()
	fr.reg.ServeHTTP(rec, req)
	if rec.Code == http.StatusAccepted {
		t.Fatalf("PATCH of 3 bytes claiming Content-Range 0-%d acknowledged with Range %s", int64(math.MaxInt64), rec.Header().Get("Range"))
	}
	if rec.Code/100 != 4 {
		t.Fatalf("PATCH with an overflowing Content-Range: %d %s", rec.Code, rec.Body)
	}
}
