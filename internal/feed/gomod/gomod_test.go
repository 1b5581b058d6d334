package gomod

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/module"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/feed/feedtest"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/store/storetest"
	"github.com/custody-dev/custody/internal/testserver"
)

func TestModuleRepository(t *testing.T) {
	for path, want := range map[string]string{
		"example.test/mod":                "f/example.test/mod",
		"github.com/Azure/go-autorest":    "f/github.com/0_21azure/go-autorest",
		"golang.org/x/mod/v2":             "f/golang.org/x/mod/v2",
		"example.test/a_b":                "f/example.test/0a_5fb",
		"example.test/-x/y~z/a..b/_":      "f/example.test/0_2dx/0y_7ez/0a_2e_2eb/0_5f",
		"example.test/UPPER/x.y-z":        "f/example.test/0_21u_21p_21p_21e_21r/x.y-z",
		"gopkg.in/yaml.v3":                "f/gopkg.in/yaml.v3",
		"example.test/a--b":               "f/example.test/a--b",
		"example.test/0mod":               "f/example.test/0mod",
		"example.test/with.dots.and-dash": "f/example.test/with.dots.and-dash",
	} {
		repo, err := ModuleRepository("f", path)
		if err != nil || repo != want {
			t.Errorf("ModuleRepository(%q) = %q, %v; want %q", path, repo, err, want)
			continue
		}
		back, ok := ModulePath("f", repo)
		if !ok || back != path {
			t.Errorf("ModulePath(%q) = %q, %v; want %q", repo, back, ok, path)
		}
	}
	for _, path := range []string{"", "../x", "example.test/../x", "example.test//x", "/abs", "example.test/x y", "example.test/%2e", "Example.test/x", "example.test/x.", "example.test/" + strings.Repeat("a", 300)} {
		if repo, err := ModuleRepository("f", path); err == nil {
			t.Errorf("ModuleRepository(%q) = %q; want an error", path, repo)
		}
	}
	for _, repo := range []string{"f/example.test/0_41", "f/example.test/x_5fy", "g/example.test/mod", "f/example.test/0a_2eb", "f"} {
		if path, ok := ModulePath("f", repo); ok {
			t.Errorf("ModulePath(%q) = %q; want not ok (not a canonical encoding)", repo, path)
		}
	}
}

func FuzzModulePath(f *testing.F) {
	for _, s := range []string{"example.test/mod", "github.com/Azure/go-autorest", "example.test/a_b/~c/-d", "example.test/x..y", "f/example.test/0_21azure"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if repo, err := ModuleRepository("f", s); err == nil {
			if !registry.ValidName(repo) {
				t.Fatalf("ModuleRepository(%q) = %q: not a repository name", s, repo)
			}
			segs, _ := feed.Segments("f", repo)
			for _, seg := range segs {
				if !feed.ValidComponent(seg) {
					t.Fatalf("segment %q of %q is not a name component", seg, repo)
				}
			}
			if back, ok := ModulePath("f", repo); !ok || back != s {
				t.Fatalf("ModulePath(ModuleRepository(%q) = %q) = %q, %v", s, repo, back, ok)
			}
		}
		// Any repository that decodes encodes back to itself.
		repo := "f/" + s
		if p, ok := ModulePath("f", repo); ok {
			if r, err := ModuleRepository("f", p); err != nil || r != repo {
				t.Fatalf("ModuleRepository(ModulePath(%q) = %q) = %q, %v", repo, p, r, err)
			}
		}
	})
}

func writeTemp(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.zip")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const modV1 = "example.test/mod@v1.0.0/"

func TestCheckModule(t *testing.T) {
	good := feedtest.Zip(t, map[string]string{modV1 + "go.mod": "module example.test/mod\n\ngo 1.21\n", modV1 + "mod.go": "package mod\n"})
	m, err := CheckModule("example.test/mod", "v1.0.0", writeTemp(t, good))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Mod) != "module example.test/mod\n\ngo 1.21\n" || !strings.HasPrefix(m.ZipHash, "h1:") || !strings.HasPrefix(m.ModHash, "h1:") {
		t.Errorf("CheckModule = %+v", m)
	}
	// Without go.mod the module's go.mod is "module <path>".
	m, err = CheckModule("example.test/old", "v1.0.0", writeTemp(t, feedtest.Zip(t, map[string]string{"example.test/old@v1.0.0/a.go": "package old\n"})))
	if err != nil || string(m.Mod) != "module example.test/old\n" {
		t.Errorf("CheckModule without go.mod = %+v, %v", m, err)
	}
	for name, c := range map[string]struct {
		path, version string
		zip           []byte
		want          string
	}{
		"file outside the module directory": {"example.test/mod", "v1.0.0", feedtest.Zip(t, map[string]string{modV1 + "go.mod": "module example.test/mod\n", "evil.go": "x"}), "prefix"},
		"traversal":                         {"example.test/mod", "v1.0.0", feedtest.Zip(t, map[string]string{modV1 + "go.mod": "module example.test/mod\n", modV1 + "../../x": "x"}), "example.test/mod@v1.0.0/../../x"},
		"module path mismatch":              {"example.test/mod", "v1.0.0", feedtest.Zip(t, map[string]string{modV1 + "go.mod": "module example.test/other\n"}), "declares module \"example.test/other\""},
		"go.mod does not parse":             {"example.test/mod", "v1.0.0", feedtest.Zip(t, map[string]string{modV1 + "go.mod": "module example.test/mod\nrequire (\n"}), "does not parse"},
		"non-canonical version":             {"example.test/mod", "v1.0", feedtest.Zip(t, map[string]string{"example.test/mod@v1.0/go.mod": "module example.test/mod\n"}), "canonical"},
		"major version without suffix":      {"example.test/mod", "v2.0.0", feedtest.Zip(t, map[string]string{"example.test/mod@v2.0.0/go.mod": "module example.test/mod\n"}), "v2"},
		"go.mod in a subdirectory":          {"example.test/mod", "v1.0.0", feedtest.Zip(t, map[string]string{modV1 + "go.mod": "module example.test/mod\n", modV1 + "sub/go.mod": "module x\n"}), "go.mod"},
		"not a zip":                         {"example.test/mod", "v1.0.0", []byte("not a zip"), "not valid"},
	} {
		if m, err := CheckModule(c.path, c.version, writeTemp(t, c.zip)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: CheckModule = %+v, %v; want an error naming %q", name, m, err, c.want)
		}
	}
}

func FuzzCheckModule(f *testing.F) {
	f.Add(feedtest.Zip(f, map[string]string{modV1 + "go.mod": "module example.test/mod\n", modV1 + "a.go": "package mod\n"}))
	f.Add(feedtest.Zip(f, map[string]string{modV1 + "../x": "x"}))
	f.Add(feedtest.Zip(f, map[string]string{modV1 + "go.mod": "module other\n"}))
	f.Add([]byte("PK\x03\x04"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "fuzz.zip")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := CheckModule("example.test/mod", "v1.0.0", p)
		if err != nil {
			return
		}
		// What passes is a zip the go command accepts: every file inside
		// the module directory, with a clean name.
		zr, err := zip.OpenReader(p)
		if err != nil {
			t.Fatalf("accepted, but does not open: %v", err)
		}
		defer zr.Close()
		for _, zf := range zr.File {
			name, ok := strings.CutPrefix(zf.Name, modV1)
			name = strings.TrimSuffix(name, "/")
			if !ok || name != "" && module.CheckFilePath(name) != nil {
				t.Fatalf("accepted entry %q", zf.Name)
			}
		}
		if !strings.HasPrefix(m.ZipHash, "h1:") || !strings.Contains(string(m.Mod), "example.test/mod") {
			t.Fatalf("accepted with %+v", m)
		}
	})
}

func handler(t *testing.T) *httptest.Server {
	t.Helper()
	s, _ := handlerMeta(t)
	return s
}

func handlerMeta(t *testing.T) (*httptest.Server, *sqlite.Store) {
	t.Helper()
	blobs, md := storetest.Embedded(t)
	h := New([]config.Feed{{Name: "f", Ecosystem: "go", Kind: "hosted"}}, blobs, md, registry.Options{})
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s, md
}

func call(t *testing.T, method, url string, b []byte) (*http.Response, string) {
	t.Helper()
	resp, out := testserver.Do(t, method, url, "", b)
	return resp, string(out)
}

func TestProtocol(t *testing.T) {
	s := handler(t)
	base := s.URL + "/go/f/example.test/!upper"
	mk := func(version, body string) []byte {
		pre := "example.test/Upper@" + version + "/"
		return feedtest.Zip(t, map[string]string{pre + "go.mod": "module example.test/Upper\n", pre + "u.go": body})
	}
	for _, c := range []struct {
		method, url string
		body        []byte
		code        int
		want        string
	}{
		{"GET", base + "/@v/list", nil, 404, "not found"},
		{"GET", base + "/@latest", nil, 404, "not found"},
		{"PUT", base + "/@v/v1.0.0.zip", mk("v1.0.0", "package upper\n"), 201, "published example.test/Upper@v1.0.0 h1:"},
		{"PUT", base + "/@v/v1.0.0.zip", mk("v1.0.0", "package upper\n"), 200, "already published"},
		{"PUT", base + "/@v/v1.0.0.zip", mk("v1.0.0", "package upper // changed\n"), 409, "immutable"},
		{"PUT", base + "/@v/v1.1.0-rc.1.zip", mk("v1.1.0-rc.1", "package upper\n"), 201, "published"},
		{"PUT", base + "/@v/v0.0.0-20200101000000-abcdefabcdef.zip", mk("v0.0.0-20200101000000-abcdefabcdef", "package upper\n"), 201, "published"},
		{"GET", base + "/@v/list", nil, 200, "v1.0.0\nv1.1.0-rc.1\n"},
		{"GET", base + "/@latest", nil, 200, `"Version":"v1.0.0"`},
		{"GET", base + "/@v/v1.0.0.info", nil, 200, `"Version":"v1.0.0"`},
		{"GET", base + "/@v/v1.0.0.mod", nil, 200, "module example.test/Upper\n"},
		{"GET", base + "/@v/v1.0.0.zip", nil, 200, "PK"},
		{"GET", base + "/@v/v9.0.0.info", nil, 404, "not found"},
		{"GET", base + "/@v/v1.0.info", nil, 404, "invalid version"},
		{"GET", s.URL + "/go/f/example.test/Upper/@v/list", nil, 404, "invalid module path"},
		{"GET", s.URL + "/go/nofeed/example.test/x/@v/list", nil, 404, "no Go module feed"},
		{"GET", s.URL + "/go/f/example.test/%2e%2e/@v/list", nil, 404, "percent"},
		{"PUT", base + "/@v/v1.0.0.mod", []byte("module x\n"), 400, "module zip"},
		{"DELETE", base + "/@v/v1.0.0.zip", nil, 405, "not allowed"},
		{"GET", s.URL + "/go/f/sumdb/sum.golang.org/supported", nil, 404, "not found"},
	} {
		resp, out := call(t, c.method, c.url, c.body)
		if resp.StatusCode != c.code || !strings.Contains(out, c.want) || !strings.HasPrefix(resp.Header.Get("Content-Type"), map[bool]string{true: "text/plain", false: ""}[c.code >= 400]) {
			t.Errorf("%s %s: %d %q (%s); want %d and %q", c.method, c.url, resp.StatusCode, out, resp.Header.Get("Content-Type"), c.code, c.want)
		}
	}
	// With only a pseudo-version, @latest names it; list is empty.
	pseudo := s.URL + "/go/f/example.test/p"
	v := "v0.0.0-20200101000000-abcdefabcdef"
	resp, out := call(t, "PUT", pseudo+"/@v/"+v+".zip", feedtest.Zip(t, map[string]string{"example.test/p@" + v + "/go.mod": "module example.test/p\n"}))
	if resp.StatusCode != 201 {
		t.Fatalf("publish pseudo-version: %d %s", resp.StatusCode, out)
	}
	if resp, out := call(t, "GET", pseudo+"/@v/list", nil); resp.StatusCode != 200 || out != "" {
		t.Errorf("list with only a pseudo-version: %d %q", resp.StatusCode, out)
	}
	resp, out = call(t, "GET", pseudo+"/@latest", nil)
	var info Info
	if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &info) != nil || info.Version != v || info.Time.IsZero() {
		t.Errorf("@latest with only a pseudo-version: %d %q", resp.StatusCode, out)
	}
}

// TestConcurrentPublish: of concurrent publishes of one version, one
// stores it; the others with the same content get 200, with other
// content 409, and the version is the winner's.
func TestConcurrentPublish(t *testing.T) {
	s := handler(t)
	url := s.URL + "/go/f/example.test/race/@v/v1.0.0.zip"
	zips := [][]byte{
		feedtest.Zip(t, map[string]string{"example.test/race@v1.0.0/go.mod": "module example.test/race\n", "example.test/race@v1.0.0/a.go": "package race // a\n"}),
		feedtest.Zip(t, map[string]string{"example.test/race@v1.0.0/go.mod": "module example.test/race\n", "example.test/race@v1.0.0/a.go": "package race // b\n"}),
	}
	const n = 8
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("PUT", url, bytes.NewReader(zips[i%2]))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	created, winner := 0, -1
	for i, c := range codes {
		if c == http.StatusCreated {
			created++
			winner = i % 2
		}
	}
	if created != 1 {
		t.Fatalf("codes %v: want exactly one 201", codes)
	}
	for i, c := range codes {
		want := http.StatusOK
		if i%2 != winner {
			want = http.StatusConflict
		}
		if c != want && c != http.StatusCreated {
			t.Errorf("publish %d (content %d, winner %d): %d, want %d", i, i%2, winner, c, want)
		}
	}
	_, got := call(t, "GET", s.URL+"/go/f/example.test/race/@v/v1.0.0.zip", nil)
	if got != string(zips[winner]) {
		t.Errorf("the stored zip is not the winner's")
	}
}

// TestInternalErrorsDoNotLeak: a failing store answers 500 naming only
// the request ID.
func TestInternalErrorsDoNotLeak(t *testing.T) {
	s, md := handlerMeta(t)
	md.Close()
	for _, u := range []string{"/go/f/example.test/x/@v/list", "/go/f/example.test/x/@v/v1.0.0.info"} {
		resp, out := call(t, "GET", s.URL+u, nil)
		if resp.StatusCode != http.StatusInternalServerError || !strings.HasPrefix(out, "internal error; request ID ") || strings.Contains(out, "sql") || strings.Contains(out, "closed") {
			t.Errorf("GET %s on a closed store: %d %q", u, resp.StatusCode, out)
		}
	}
}
