package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// push pushes a small random image as admin and returns its digest.
func (s *site) push(repo, tag string, annotations map[string]string) v1.Hash {
	s.t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		s.t.Fatal(err)
	}
	if annotations != nil {
		img = mutate.Annotations(img, annotations).(v1.Image)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(s.url, "http://")+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		s.t.Fatal(err)
	}
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "admin", Password: s.admin}))
	if err := remote.Write(ref, img, auth); err != nil {
		s.t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return d
}

// api calls the API as admin.
func (s *site) api(method, path string, body any, want int) {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, s.url+path, bytes.NewReader(b))
	req.SetBasicAuth("admin", s.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
	}
}

const readerPassword = "reader-password-1234"

// reader creates the user "reader" with the reader role on pattern.
func (s *site) reader(pattern string) {
	s.api("POST", "/api/v1/users", map[string]any{"name": "reader", "password": readerPassword}, http.StatusCreated)
	s.api("POST", "/api/v1/grants", map[string]any{"subject": "user:reader", "role": "reader", "repository": pattern}, http.StatusCreated)
}

func TestRepositoriesPage(t *testing.T) {
	s := newSite(t, true, nil)
	for i := range 52 {
		s.push(fmt.Sprintf("team/svc-%02d", i), "latest", nil)
	}
	s.push("other/secret", "latest", nil)
	s.reader("team/**")
	b := s.browser()
	b.signIn("reader", readerPassword)

	resp, body := b.do("GET", "/repositories", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `href="/repositories/team/svc-00"`) || strings.Contains(body, "other/secret") {
		t.Fatalf("first page: %d\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, `href="/admin"`) || strings.Contains(body, `href="/audit"`) {
		t.Error("a reader sees the Admin or Audit navigation")
	}
	if n := strings.Count(body, `<td><a href="/repositories/`); n != 50 {
		t.Errorf("first page lists %d repositories, want 50", n)
	}
	if !strings.Contains(body, `href="/repositories?after=team%2Fsvc-49" rel="next"`) {
		t.Fatalf("no next page link:\n%s", body)
	}
	_, body = b.do("GET", "/repositories?after=team%2Fsvc-49", nil)
	if n := strings.Count(body, `<td><a href="/repositories/`); n != 2 || !strings.Contains(body, "team/svc-51") || strings.Contains(body, `rel="next"`) {
		t.Fatalf("second page lists %d:\n%s", n, body)
	}
	// Search: by substring and by prefix.
	_, body = b.do("GET", "/repositories?q=svc-1", nil)
	if n := strings.Count(body, `<td><a href="/repositories/`); n != 10 || !strings.Contains(body, "team/svc-19") {
		t.Fatalf("q=svc-1 lists %d:\n%s", n, body)
	}
	_, body = b.do("GET", "/repositories?q=secret", nil)
	if !strings.Contains(body, "No repository you may read matches") {
		t.Fatalf("a search for a repository the reader may not read:\n%s", body)
	}
	_, body = b.do("GET", "/repositories?prefix="+url.QueryEscape("team/svc-5"), nil)
	if n := strings.Count(body, `<td><a href="/repositories/`); n != 2 {
		t.Fatalf("prefix team/svc-5 lists %d", n)
	}
	// The repository the reader may not read is refused, like the API.
	if resp, body := b.do("GET", "/repositories/other/secret", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another team's repository: %d\n%s", resp.StatusCode, body)
	}
}

func TestRepositoryPage(t *testing.T) {
	s := newSite(t, true, nil)
	first := s.push("team/app", "latest", map[string]string{"org.opencontainers.image.revision": "0123456789abcdef0123",
		"dev.custody.build.number": "41", "org.opencontainers.image.version": "1.0.0"})
	s.push("team/app", "v1.0.0", map[string]string{"org.opencontainers.image.revision": "0123456789abcdef0123",
		"dev.custody.build.number": "41", "org.opencontainers.image.version": "1.0.0"})
	second := s.push("team/app", "latest", map[string]string{"org.opencontainers.image.revision": "fedcba9876543210", "dev.custody.build.number": "42"})
	b := s.browser()
	b.signIn("admin", s.admin)
	resp, body := b.do("GET", "/repositories/team/app?tag=latest", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("repository page: %d\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{
		"<h1>team/app</h1>", `<th scope="row">latest</th>`, `<th scope="row">v1.0.0</th>`,
		second.String()[:19], ">fedcba987654<", ">42<", ">41<", ">1.0.0<", // digest, commit, build numbers, version
		`<span class="badge ok"`,                                 // v1.0.0 is immutable by the default rule
		"History of tag latest", first.String(), second.String(), // the history, both positions
		`data-copy="` + strings.TrimPrefix(s.url, "http://") + `/team/app@` + second.String() + `"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the repository page lacks %q", want)
		}
	}
	// Every copy button names what it copies (a screen reader hears more
	// than a column of "Copy"), and the history's digests open their
	// artifact page.
	if !strings.Contains(body, `hidden>Copy<span class="visually-hidden"> pull reference of latest</span>`) ||
		!strings.Contains(body, `<a href="/artifacts/team/app@`+first.String()+`"><code>`+first.String()+`</code></a>`) {
		t.Errorf("the repository page's copy buttons or history links:\n%s", body)
	}
	_, list := b.do("GET", "/repositories", nil)
	if !strings.Contains(list, `data-copy="`+strings.TrimPrefix(s.url, "http://")+`/team/app" hidden>Copy<span class="visually-hidden"> pull reference of team/app</span>`) {
		t.Errorf("the repositories list has no copy button for a pull reference:\n%s", list)
	}
	if resp, _ := b.do("GET", "/repositories/team/nothing", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown repository: %d, want 404", resp.StatusCode)
	}
}

// TestRepositoryTagsSort: the tags table sorts by name, size and pushed
// time through its column headers (links, no script), server-side.
func TestRepositoryTagsSort(t *testing.T) {
	s := newSite(t, true, nil)
	s.push("team/app", "latest", nil)
	s.push("team/app", "v1.0.0", nil)
	s.push("team/app", "latest", nil) // latest now points at the newest push
	b := s.browser()
	b.signIn("admin", s.admin)
	order := func(path string) (string, string) {
		t.Helper()
		resp, body := b.do("GET", path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d\n%s", path, resp.StatusCode, body)
		}
		l, v := strings.Index(body, `<th scope="row">latest</th>`), strings.Index(body, `<th scope="row">v1.0.0</th>`)
		if l < 0 || v < 0 {
			t.Fatalf("%s: a tag is missing\n%s", path, body)
		}
		if l < v {
			return "latest, v1.0.0", body
		}
		return "v1.0.0, latest", body
	}
	got, body := order("/repositories/team/app")
	if got != "latest, v1.0.0" || !strings.Contains(body, `<th scope="col" aria-sort="ascending"><a href="/repositories/team/app?order=desc&amp;sort=name#tags">Tag</a></th>`) ||
		!strings.Contains(body, `<a href="/repositories/team/app?sort=pushed#tags">Pushed</a>`) {
		t.Fatalf("by name: %s\n%s", got, body)
	}
	if got, body := order("/repositories/team/app?sort=pushed"); got != "v1.0.0, latest" ||
		!strings.Contains(body, `aria-sort="ascending"><a href="/repositories/team/app?order=desc&amp;sort=pushed#tags">Pushed</a>`) {
		t.Fatalf("by pushed: %s\n%s", got, body)
	}
	if got, _ := order("/repositories/team/app?sort=pushed&order=desc"); got != "latest, v1.0.0" {
		t.Fatalf("by pushed, newest first: %s", got)
	}
	if got, _ := order("/repositories/team/app?sort=name&order=desc"); got != "v1.0.0, latest" {
		t.Fatalf("by name, descending: %s", got)
	}
	if got, _ := order("/repositories/team/app?sort=bogus"); got != "latest, v1.0.0" {
		t.Fatalf("an unknown sort falls back to name: %s", got)
	}
}
