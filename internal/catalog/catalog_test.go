package catalog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/catalog"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/retention"
)

type fixture struct {
	t   testing.TB
	st  *sqlite.Store
	mux *http.ServeMux
}

func newFixture(t testing.TB, canRead func(string) bool) *fixture {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if canRead == nil {
		canRead = func(string) bool { return true }
	}
	h := &catalog.Handler{Meta: st, Locks: st, CanRead: func(_ context.Context, repo string) bool { return canRead(repo) },
		Immutable: func(repo, tag string) string {
			if strings.HasPrefix(tag, "v") {
				return "versions are immutable"
			}
			return ""
		}}
	mux := http.NewServeMux()
	h.Register(mux)
	return &fixture{t: t, st: st, mux: mux}
}

// push records an image manifest with one layer of layerSize bytes,
// tagged tags.
func (f *fixture) push(repo string, layerSize int64, annotations map[string]string, tags ...string) digest.Digest {
	f.t.Helper()
	ctx := context.Background()
	layer := digest.FromString(repo + fmt.Sprint(layerSize, annotations))
	if err := f.st.LinkBlob(ctx, repo, layer, layerSize); err != nil {
		f.t.Fatal(err)
	}
	m := meta.Manifest{Repo: repo, Digest: digest.FromString("m" + repo + fmt.Sprint(layerSize, annotations)), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size: 500, Annotations: annotations, Blobs: []digest.Digest{layer}, Created: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	if err := f.st.PutManifest(ctx, m, tags, nil); err != nil {
		f.t.Fatal(err)
	}
	return m.Digest
}

func (f *fixture) get(path string, out any) int {
	f.t.Helper()
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	if w.Code == 200 {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			f.t.Fatal(err)
		}
	}
	return w.Code
}

func TestListSearchesAndPages(t *testing.T) {
	hidden := func(repo string) bool { return !strings.HasPrefix(repo, "secret/") }
	f := newFixture(t, hidden)
	for _, r := range []string{"apps/api", "apps/web", "apps/worker", "base/alpine", "base/debian", "secret/apps-keys", "tools/apps-cli"} {
		f.push(r, 10, nil, "latest")
	}
	cases := []struct {
		query string
		want  []string
		next  string
	}{
		{"", []string{"apps/api", "apps/web", "apps/worker", "base/alpine", "base/debian", "tools/apps-cli"}, ""},
		{"?q=apps", []string{"apps/api", "apps/web", "apps/worker", "tools/apps-cli"}, ""}, // not secret/apps-keys
		{"?q=APPS&n=2", []string{"apps/api", "apps/web"}, "apps/web"},
		{"?q=apps&n=2&after=apps/web", []string{"apps/worker", "tools/apps-cli"}, ""},
		{"?prefix=base/", []string{"base/alpine", "base/debian"}, ""},
		{"?prefix=apps/w", []string{"apps/web", "apps/worker"}, ""},
		{"?prefix=apps/&q=er", []string{"apps/worker"}, ""},
		{"?prefix=apps/api", []string{"apps/api"}, ""},
		{"?prefix=secret/", []string{}, ""},
		{"?q=nothing", []string{}, ""},
		{"?n=6", []string{"apps/api", "apps/web", "apps/worker", "base/alpine", "base/debian", "tools/apps-cli"}, ""},
		{"?n=5", []string{"apps/api", "apps/web", "apps/worker", "base/alpine", "base/debian"}, "base/debian"},
	}
	for _, tc := range cases {
		var l catalog.List
		if code := f.get("/api/v1/repositories"+tc.query, &l); code != 200 || !reflect.DeepEqual(l.Repositories, tc.want) || l.Next != tc.next {
			t.Errorf("%s: %d %+v, want %v next %q", tc.query, code, l, tc.want, tc.next)
		}
	}
	for _, bad := range []string{"?n=0", "?n=1001", "?n=x", "?prefix=Apps", "?q=" + strings.Repeat("a", 257)} {
		var l catalog.List
		if code := f.get("/api/v1/repositories"+bad, &l); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
}

func TestTags(t *testing.T) {
	f := newFixture(t, nil)
	ann := map[string]string{builds.AnnotationRevision: "abc123", builds.AnnotationBuildNumber: "42", builds.AnnotationVersion: "1.2.0",
		builds.AnnotationSource: "https://git.example/app", builds.AnnotationCreated: "2026-03-01T11:00:00Z"}
	d1 := f.push("team/app", 1000, ann, "v1.2.0", "latest")
	d2 := f.push("team/app", 2000, nil, "dev")
	until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := f.st.SetLock(context.Background(), "team/app", d1, func(*retention.Lock) (retention.Lock, error) {
		return retention.Lock{Repo: "team/app", Digest: d1, Mode: "compliance", RetainUntil: until, LegalHold: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	var ts catalog.Tags
	if code := f.get("/api/v1/repositories/team/app/tags", &ts); code != 200 || len(ts.Tags) != 3 || ts.Next != "" {
		t.Fatalf("tags: %d %+v", code, ts)
	}
	dev, latest, v := ts.Tags[0], ts.Tags[1], ts.Tags[2]
	if dev.Name != "dev" || dev.Digest != d2 || dev.Size != 2500 || dev.Retention != nil || dev.Immutable != "" || dev.Revision != "" {
		t.Errorf("dev = %+v", dev)
	}
	if latest.Digest != d1 || latest.Size != 1500 || latest.Revision != "abc123" || latest.BuildNumber != "42" || latest.Version != "1.2.0" ||
		latest.Source != "https://git.example/app" || latest.Created != "2026-03-01T11:00:00Z" || latest.Retention == nil ||
		latest.Retention.Mode != "compliance" || !latest.Retention.LegalHold || !latest.Retention.RetainUntil.Equal(until) || latest.Immutable != "" {
		t.Errorf("latest = %+v", latest)
	}
	if v.Name != "v1.2.0" || v.Immutable == "" || !v.Pushed.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("v1.2.0 = %+v", v)
	}
	// Pages.
	ts = catalog.Tags{}
	if code := f.get("/api/v1/repositories/team/app/tags?n=2", &ts); code != 200 || len(ts.Tags) != 2 || ts.Next != "latest" {
		t.Fatalf("first page: %d %+v", code, ts)
	}
	ts = catalog.Tags{}
	if code := f.get("/api/v1/repositories/team/app/tags?n=2&after=latest", &ts); code != 200 || len(ts.Tags) != 1 || ts.Tags[0].Name != "v1.2.0" || ts.Next != "" {
		t.Fatalf("second page: %d %+v", code, ts)
	}
	for path, want := range map[string]int{
		"/api/v1/repositories/no/such/tags":      404,
		"/api/v1/repositories/Bad/Name/tags":     400,
		"/api/v1/repositories/team/app":          404,
		"/api/v1/repositories/team/app/tags?n=0": 400,
	} {
		if code := f.get(path, &ts); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
}

// TestTagsSorted: tags sorted by size or pushed time, either way, and by
// name descending, paged by ?page=; a bad sort, order or page is a 400.
func TestTagsSorted(t *testing.T) {
	f := newFixture(t, nil)
	f.push("team/app", 1000, nil, "b", "c")
	f.push("team/app", 2000, nil, "a")
	f.push("team/app", 3000, nil, "d")
	names := func(path string) ([]string, catalog.Tags) {
		t.Helper()
		var ts catalog.Tags
		if code := f.get(path, &ts); code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		var out []string
		for _, tg := range ts.Tags {
			out = append(out, tg.Name)
		}
		return out, ts
	}
	for path, want := range map[string][]string{
		"/api/v1/repositories/team/app/tags?sort=size":             {"b", "c", "a", "d"},
		"/api/v1/repositories/team/app/tags?sort=size&order=desc":  {"d", "a", "c", "b"},
		"/api/v1/repositories/team/app/tags?sort=name&order=desc":  {"d", "c", "b", "a"},
		"/api/v1/repositories/team/app/tags?sort=size&n=3&page=2":  {"d"},
		"/api/v1/repositories/team/app/tags?sort=size&n=3&page=9":  nil,
		"/api/v1/repositories/team/app/tags?sort=pushed&order=asc": {"a", "b", "c", "d"}, // one push time: by name
	} {
		got, ts := names(path)
		if !slices.Equal(got, want) || ts.Next != "" || ts.Page == 0 || ts.Pages == 0 {
			t.Errorf("%s: %q (page %d of %d, next %q), want %q", path, got, ts.Page, ts.Pages, ts.Next, want)
		}
	}
	if _, ts := names("/api/v1/repositories/team/app/tags?sort=size&n=3"); ts.Pages != 2 || ts.Page != 1 {
		t.Errorf("pages of 3: page %d of %d, want 1 of 2", ts.Page, ts.Pages)
	}
	var ts catalog.Tags
	for _, path := range []string{
		"/api/v1/repositories/team/app/tags?sort=digest",
		"/api/v1/repositories/team/app/tags?sort=size&order=up",
		"/api/v1/repositories/team/app/tags?sort=size&page=0",
		"/api/v1/repositories/team/app/tags?sort=size&page=x",
		"/api/v1/repositories/team/app/tags?sort=size&after=a",
	} {
		if code := f.get(path, &ts); code != 400 {
			t.Errorf("%s: %d, want 400", path, code)
		}
	}
	if code := f.get("/api/v1/repositories/no/such/tags?sort=size", &ts); code != 404 {
		t.Errorf("sorted tags of no repository: %d, want 404", code)
	}
}

// TestListTenThousand: with 10,000 repositories a search that matches
// few of them, and a page deep in the list, stay fast.
func TestListTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 10,000 repositories")
	}
	f := newFixture(t, nil)
	fill(t, f.st, 10000)
	for _, q := range []string{"?q=team-0042", "?prefix=team-09", "?after=team-05000/app", "?q=nomatch", ""} {
		start := time.Now()
		var l catalog.List
		if code := f.get("/api/v1/repositories"+q, &l); code != 200 {
			t.Fatalf("%s: %d", q, code)
		}
		took := time.Since(start)
		t.Logf("%-28s %3d results in %v", q, len(l.Repositories), took)
		if took > 2*time.Second {
			t.Errorf("%s took %v", q, took)
		}
	}
}

// fill creates n repositories named team-NNNNN/app directly in the store.
func fill(t testing.TB, st *sqlite.Store, n int) {
	ctx := context.Background()
	for i := range n {
		if err := st.LinkBlob(ctx, fmt.Sprintf("team-%05d/app", i), digest.FromString("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkListTenThousand(b *testing.B) {
	f := newFixture(b, nil)
	fill(b, f.st, 10000)
	for _, q := range []string{"", "?q=team-0042", "?q=nomatch", "?prefix=team-09"} {
		b.Run(strings.TrimPrefix(q, "?"), func(b *testing.B) {
			for b.Loop() {
				var l catalog.List
				f.get("/api/v1/repositories"+q, &l)
			}
		})
	}
}

// FuzzPrefix: a prefix search lists exactly the repositories whose name
// starts with the prefix, whatever the prefix.
func FuzzPrefix(f *testing.F) {
	fx := newFixture(f, nil)
	names := []string{"a", "a-b", "a/b", "a0", "a9/x", "ab", "b", "b.c", "b/c/d", "team/app", "team/app-x", "team/b", "z_z", "zz"}
	for _, n := range names {
		fx.push(n, 1, nil, "t")
	}
	for _, s := range []string{"a", "a/", "team/", "team/app", "z", "0", "-", "/", "b.", "zzz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prefix string) {
		if prefix == "" || len(prefix) > 256 || strings.Trim(prefix, "abcdefghijklmnopqrstuvwxyz0123456789._/-") != "" {
			return
		}
		var l catalog.List
		fx.t = t
		if code := fx.get("/api/v1/repositories?prefix="+url.QueryEscape(prefix), &l); code != 200 {
			t.Fatalf("prefix %q: %d", prefix, code)
		}
		want := []string{}
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				want = append(want, n)
			}
		}
		if !reflect.DeepEqual(l.Repositories, want) {
			t.Fatalf("prefix %q lists %v, want %v", prefix, l.Repositories, want)
		}
	})
}
