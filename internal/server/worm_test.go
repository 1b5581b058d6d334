package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/testserver"
)

const manifestType = "application/vnd.oci.image.manifest.v1+json"

type wormServer struct {
	t    *testing.T
	url  string
	srv  *server.Server
	logs *bytes.Buffer
	mu   *sync.Mutex
}

type lockedBuf struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func newWorm(t *testing.T, mutate func(*config.Config)) *wormServer {
	t.Helper()
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = t.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	w := &wormServer{t: t, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(lockedBuf{w.mu, w.logs}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	w.url, w.srv = hs.URL, s
	return w
}

func (w *wormServer) log() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.String()
}

func do(t *testing.T, method, url string, body []byte, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pushBlob uploads content monolithically and returns its digest.
func pushBlob(t *testing.T, base, repo string, content []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(content)
	code, body := do(t, http.MethodPost, fmt.Sprintf("%s/v2/%s/blobs/uploads/?digest=%s", base, repo, d), content,
		"Content-Type", "application/octet-stream")
	if code != http.StatusCreated {
		t.Fatalf("push blob: %d %s", code, body)
	}
	return d
}

// image pushes a config and one layer and returns a manifest referencing them.
func image(t *testing.T, base, repo, seed string) ([]byte, digest.Digest, digest.Digest) {
	t.Helper()
	cfg := []byte(`{"seed":"` + seed + `"}`)
	layer := []byte("layer " + seed)
	cd := pushBlob(t, base, repo, cfg)
	ld := pushBlob(t, base, repo, layer)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		manifestType, cd, len(cfg), ld, len(layer))
	return []byte(m), digest.FromBytes([]byte(m)), ld
}

func putManifest(t *testing.T, base, repo, ref string, m []byte) (int, string) {
	t.Helper()
	return do(t, http.MethodPut, fmt.Sprintf("%s/v2/%s/manifests/%s", base, repo, ref), m, "Content-Type", manifestType)
}

func resolve(t *testing.T, base, repo, ref string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, fmt.Sprintf("%s/v2/%s/manifests/%s", base, repo, ref), nil)
	req.Header.Set("Accept", manifestType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprint(resp.StatusCode)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// served checks that blob d is still served with the expected bytes.
func served(t *testing.T, base, repo string, d digest.Digest) {
	t.Helper()
	code, body := do(t, http.MethodGet, fmt.Sprintf("%s/v2/%s/blobs/%s", base, repo, d), nil)
	if code != http.StatusOK || digest.FromString(body) != d {
		t.Fatalf("blob %s no longer served: %d", d, code)
	}
}

func wantDenied(t *testing.T, code int, body, contains string) {
	t.Helper()
	if code != http.StatusForbidden || !strings.Contains(body, `"DENIED"`) || !strings.Contains(body, contains) {
		t.Fatalf("want 403 DENIED containing %q, got %d %s", contains, code, body)
	}
}

func wantProblem(t *testing.T, code int, body string, status int, contains string) {
	t.Helper()
	var p struct {
		Type, Title, Detail string
		Status              int
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil || code != status || p.Status != status || p.Type == "" || p.Title == "" || !strings.Contains(p.Detail, contains) {
		t.Fatalf("want problem %d containing %q, got %d %s", status, contains, code, body)
	}
}

func TestImmutableVersionTag(t *testing.T) {
	w := newWorm(t, nil)
	m1, d1, _ := image(t, w.url, "app", "1")
	m2, _, _ := image(t, w.url, "app", "2")
	if code, body := putManifest(t, w.url, "app", "v1.2.3", m1); code != http.StatusCreated {
		t.Fatalf("first push: %d %s", code, body)
	}
	// Idempotent re-push of the same digest.
	if code, body := putManifest(t, w.url, "app", "v1.2.3", m1); code != http.StatusCreated {
		t.Fatalf("re-push: %d %s", code, body)
	}
	code, body := putManifest(t, w.url, "app", "v1.2.3", m2)
	wantDenied(t, code, body, `tag \"v1.2.3\" is immutable (rule: default version tags)`)
	if got := resolve(t, w.url, "app", "v1.2.3"); got != d1.String() {
		t.Fatalf("tag moved to %s", got)
	}
	code, body = do(t, http.MethodDelete, w.url+"/v2/app/manifests/v1.2.3", nil)
	wantDenied(t, code, body, "is immutable")
	code, body = do(t, http.MethodDelete, w.url+"/v2/app/manifests/"+d1.String(), nil)
	wantDenied(t, code, body, `carries tag \"v1.2.3\"`)
	if got := resolve(t, w.url, "app", "v1.2.3"); got != d1.String() {
		t.Fatalf("tag changed to %s", got)
	}
	// latest and build-suffixed tags.
	for _, tag := range []string{"latest", "main"} {
		putManifest(t, w.url, "app", tag, m1)
		if code, body := putManifest(t, w.url, "app", tag, m2); code != http.StatusCreated {
			t.Fatalf("%s is mutable: %d %s", tag, code, body)
		}
	}
	putManifest(t, w.url, "app", "1.0.0-rc.1_build.5", m1)
	code, body = putManifest(t, w.url, "app", "1.0.0-rc.1_build.5", m2)
	wantDenied(t, code, body, "default version tags")
}

func TestPolicyAPI(t *testing.T) {
	w := newWorm(t, func(c *config.Config) {
		c.Policies = []config.Policy{{Repository: "team/**", ImmutableTags: []string{"release-*"}}}
	})
	// Configured policy: release-* immutable, version tags no longer (the
	// policy replaces the default).
	code, body := do(t, http.MethodGet, w.url+"/api/v1/policies/team/**", nil)
	if code != 200 || !strings.Contains(body, `"source": "config"`) {
		t.Fatalf("GET configured: %d %s", code, body)
	}
	put := func(pattern, js string) (int, string) {
		return do(t, http.MethodPut, w.url+"/api/v1/policies/"+pattern, []byte(js), "Content-Type", "application/json")
	}
	code, body = put("team/*", `{"immutableTags":["^v.*$"],"allowedMediaTypes":["`+manifestType+`","application/vnd.oci.image.config.v1+json"],"maxArtifactSize":100}`)
	if code != 200 || !strings.Contains(body, `"version": 1`) {
		t.Fatalf("PUT: %d %s", code, body)
	}
	code, body = put("team/*", `{"immutableTags":["^v.*$"],"noDelete":true}`)
	if code != 200 || !strings.Contains(body, `"version": 2`) {
		t.Fatalf("PUT v2: %d %s", code, body)
	}
	code, body = do(t, http.MethodGet, w.url+"/api/v1/policies/team/*?version=1", nil)
	if code != 200 || !strings.Contains(body, `"maxArtifactSize": 100`) || !strings.Contains(body, `"version": 1`) {
		t.Fatalf("GET ?version=1: %d %s", code, body)
	}
	code, body = do(t, http.MethodGet, w.url+"/api/v1/policies/team/*", nil)
	if code != 200 || !strings.Contains(body, `"noDelete": true`) || !strings.Contains(body, `"version": 2`) {
		t.Fatalf("GET current: %d %s", code, body)
	}
	code, body = do(t, http.MethodGet, w.url+"/api/v1/policies/team/*?version=9", nil)
	wantProblem(t, code, body, 404, "version 9")
	code, body = put("team/*", `{"immutableTags":["^(unclosed"]}`)
	wantProblem(t, code, body, 400, "regex")
	code, body = put("Team/*", `{}`)
	wantProblem(t, code, body, 400, "not allowed")
	// A repeated name would be read one way here and another way by other
	// readers of the policy: refused, and the current version stays.
	code, body = put("team/*", `{"noDelete":true,"noDelete":false}`)
	wantProblem(t, code, body, 400, "duplicate key")
	code, body = put("team/*", `{"immutableTags":["^v.*$"],"ImmutableTags":[]}`)
	wantProblem(t, code, body, 400, "duplicate key")
	code, body = do(t, http.MethodGet, w.url+"/api/v1/policies/team/*", nil)
	if code != 200 || !strings.Contains(body, `"noDelete": true`) || !strings.Contains(body, `"version": 2`) {
		t.Fatalf("GET after refused PUTs: %d %s", code, body)
	}

	// team/app: noDelete and ^v.*$ from "team/*" (more specific than team/**).
	m1, d1, ld := image(t, w.url, "team/app", "1")
	m2, _, _ := image(t, w.url, "team/app", "2")
	putManifest(t, w.url, "team/app", "vnext", m1)
	code, body = putManifest(t, w.url, "team/app", "vnext", m2)
	wantDenied(t, code, body, `policy \"team/*\" immutableTags \"^v.*$\"`)
	code, body = do(t, http.MethodDelete, w.url+"/v2/team/app/blobs/"+ld.String(), nil)
	wantDenied(t, code, body, "noDelete")
	served(t, w.url, "team/app", ld)
	code, body = do(t, http.MethodDelete, w.url+"/v2/team/app/manifests/"+d1.String(), nil)
	wantDenied(t, code, body, "noDelete")

	// Media types and size (version 3).
	put("team/*", `{"allowedMediaTypes":["application/vnd.oci.image.manifest.v1+json","application/vnd.oci.image.config.v1+json"]}`)
	code, body = putManifest(t, w.url, "team/app", "x", m2)
	wantDenied(t, code, body, "application/vnd.oci.image.layer.v1.tar")
	put("team/*", `{"maxArtifactSize":10}`)
	code, body = putManifest(t, w.url, "team/app", "x", m2)
	wantDenied(t, code, body, "maxArtifactSize")
	if got := resolve(t, w.url, "team/app", "x"); got != "404" {
		t.Fatalf("refused manifest got tagged: %s", got)
	}
	// team/deep/app: only team/** applies.
	m3, _, _ := image(t, w.url, "team/deep/app", "3")
	m4, _, _ := image(t, w.url, "team/deep/app", "4")
	putManifest(t, w.url, "team/deep/app", "release-1", m3)
	code, body = putManifest(t, w.url, "team/deep/app", "release-1", m4)
	wantDenied(t, code, body, `policy \"team/**\"`)
}

// TestImmutableTagRace: 16 clients race to create the same new immutable
// tag with different manifests against a real server; exactly one wins.
func TestImmutableTagRace(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	const n = 16
	manifests := make([][]byte, n)
	digests := make([]digest.Digest, n)
	for i := range manifests {
		manifests[i], digests[i], _ = image(t, s.URL, "race", fmt.Sprint(i))
	}
	codes := make([]int, n)
	bodies := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest(http.MethodPut, s.URL+"/v2/race/manifests/v1.0.0", bytes.NewReader(manifests[i]))
			req.Header.Set("Content-Type", manifestType)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				bodies[i] = err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			codes[i], bodies[i] = resp.StatusCode, string(b)
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i := range n {
		switch codes[i] {
		case http.StatusCreated:
			if winner >= 0 {
				t.Fatalf("two winners: %d and %d", winner, i)
			}
			winner = i
		case http.StatusForbidden:
			wantDenied(t, codes[i], bodies[i], "default version tags")
		default:
			t.Fatalf("client %d: %d %s", i, codes[i], bodies[i])
		}
	}
	if winner < 0 {
		t.Fatal("no winner")
	}
	if got := resolve(t, s.URL, "race", "v1.0.0"); got != digests[winner].String() {
		t.Fatalf("tag points at %s, winner pushed %s", got, digests[winner])
	}
}

func setRetention(t *testing.T, base, repo string, d digest.Digest, mode string, until time.Time, hdr ...string) (int, string) {
	t.Helper()
	js := fmt.Sprintf(`{"mode":%q,"retainUntil":%q}`, mode, until.UTC().Format(time.RFC3339))
	return do(t, http.MethodPut, fmt.Sprintf("%s/api/v1/retention/%s/@%s", base, repo, d), []byte(js), hdr...)
}

func TestComplianceRetention(t *testing.T) {
	w := newWorm(t, func(c *config.Config) { c.Retention.AllowGovernanceBypass = true })
	m, d, ld := image(t, w.url, "comp", "1")
	if code, body := putManifest(t, w.url, "comp", "latest", m); code != 201 {
		t.Fatalf("%d %s", code, body)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if code, body := setRetention(t, w.url, "comp", d, "compliance", until); code != 200 {
		t.Fatalf("set: %d %s", code, body)
	}
	bypass := []string{retention.BypassHeader, "ticket-1"}
	// Manifest and referenced blob: refused via /v2/, even with bypass.
	code, body := do(t, http.MethodDelete, w.url+"/v2/comp/manifests/"+d.String(), nil, bypass...)
	wantDenied(t, code, body, "compliance retention until")
	code, body = do(t, http.MethodDelete, w.url+"/v2/comp/blobs/"+ld.String(), nil, bypass...)
	wantDenied(t, code, body, "compliance retention until")
	// Via the guarded blob store directly (what GC uses).
	ctx := retention.WithBypass(context.Background(), "gc")
	for _, b := range []digest.Digest{ld, d} {
		err := w.srv.Blobs().Delete(ctx, b)
		if !errors.Is(err, retention.ErrLocked) || !errors.Is(err, registry.ErrDenied) {
			t.Fatalf("guarded Delete(%s) = %v", b, err)
		}
	}
	served(t, w.url, "comp", ld)
	if got := resolve(t, w.url, "comp", d.String()); got != d.String() {
		t.Fatalf("manifest gone: %s", got)
	}
	// Shorten and mode change refused, with or without bypass.
	code, body = setRetention(t, w.url, "comp", d, "compliance", until.Add(-time.Minute), bypass...)
	wantProblem(t, code, body, 403, "cannot shorten compliance retention")
	code, body = setRetention(t, w.url, "comp", d, "governance", until.Add(time.Hour), bypass...)
	wantProblem(t, code, body, 403, "change the mode")
	// Nothing changed.
	code, body = do(t, http.MethodGet, fmt.Sprintf("%s/api/v1/retention/comp/@%s", w.url, d), nil)
	if code != 200 || !strings.Contains(body, until.UTC().Format(time.RFC3339)) || !strings.Contains(body, `"compliance"`) {
		t.Fatalf("lock changed: %d %s", code, body)
	}
	// Extending is allowed.
	if code, body := setRetention(t, w.url, "comp", d, "compliance", until.Add(time.Hour)); code != 200 {
		t.Fatalf("extend: %d %s", code, body)
	}
	// Removing the tag is allowed (a delete marker); the content stays.
	if code, body := do(t, http.MethodDelete, w.url+"/v2/comp/manifests/latest", nil); code != 202 {
		t.Fatalf("untag: %d %s", code, body)
	}
	served(t, w.url, "comp", ld)
	// Unknown artifact.
	code, body = setRetention(t, w.url, "comp", digest.FromString("x"), "compliance", until)
	wantProblem(t, code, body, 404, "no such manifest")
}

func TestGovernanceRetentionAndHold(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprint("allowBypass=", allow), func(t *testing.T) {
			w := newWorm(t, func(c *config.Config) { c.Retention.AllowGovernanceBypass = allow })
			m, d, ld := image(t, w.url, "gov", "1")
			putManifest(t, w.url, "gov", d.String(), m)
			until := time.Now().Add(time.Hour)
			if code, body := setRetention(t, w.url, "gov", d, "governance", until); code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			code, body := do(t, http.MethodDelete, w.url+"/v2/gov/manifests/"+d.String(), nil)
			wantDenied(t, code, body, "governance retention until")
			code, body = setRetention(t, w.url, "gov", d, "governance", until.Add(-time.Minute))
			wantProblem(t, code, body, 403, "cannot shorten governance retention")

			// Legal hold blocks even with bypass.
			if code, body := do(t, http.MethodPut, fmt.Sprintf("%s/api/v1/hold/gov/@%s", w.url, d), nil); code != 200 {
				t.Fatalf("hold: %d %s", code, body)
			}
			code, body = do(t, http.MethodDelete, w.url+"/v2/gov/blobs/"+ld.String(), nil, retention.BypassHeader, "cleanup")
			wantDenied(t, code, body, "legal hold")
			if code, body := do(t, http.MethodDelete, fmt.Sprintf("%s/api/v1/hold/gov/@%s", w.url, d), nil); code != 200 {
				t.Fatalf("clear hold: %d %s", code, body)
			}

			code, body = do(t, http.MethodDelete, w.url+"/v2/gov/manifests/"+d.String(), nil, retention.BypassHeader, "ticket-42")
			if !allow {
				wantDenied(t, code, body, "lacks the bypass permission")
				served(t, w.url, "gov", ld)
				return
			}
			if code != 202 {
				t.Fatalf("bypass delete: %d %s", code, body)
			}
			if !strings.Contains(w.log(), "retention.bypass") || !strings.Contains(w.log(), "ticket-42") {
				t.Fatalf("bypass not audited:\n%s", w.log())
			}
		})
	}
}

func TestDefaultRetentionCannotBeSwitchedOff(t *testing.T) {
	w := newWorm(t, nil)
	put := func(js string) (int, string) {
		return do(t, http.MethodPut, w.url+"/api/v1/policies/locked/*", []byte(js))
	}
	if code, body := put(`{"retention":{"mode":"compliance","period":"24h"}}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	m, d, ld := image(t, w.url, "locked/a", "1")
	putManifest(t, w.url, "locked/a", "latest", m)
	code, body := do(t, http.MethodGet, fmt.Sprintf("%s/api/v1/retention/locked/a/@%s", w.url, d), nil)
	if code != 200 || !strings.Contains(body, `"compliance"`) {
		t.Fatalf("default not applied: %d %s", code, body)
	}
	code, body = put(`{"noDelete":true}`)
	wantProblem(t, code, body, 409, "cannot be switched off")
	_, body = do(t, http.MethodGet, w.url+"/api/v1/policies/locked/*", nil)
	if !strings.Contains(body, `"version": 1`) {
		t.Fatalf("policy changed: %s", body)
	}
	// Changing the default (shorter period) is allowed and leaves
	// existing artifacts alone.
	if code, body := put(`{"retention":{"mode":"governance","period":"1h"}}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	_, body = do(t, http.MethodGet, fmt.Sprintf("%s/api/v1/retention/locked/a/@%s", w.url, d), nil)
	if !strings.Contains(body, `"compliance"`) {
		t.Fatalf("existing lock touched: %s", body)
	}
	code, body = do(t, http.MethodDelete, w.url+"/v2/locked/a/blobs/"+ld.String(), nil)
	wantDenied(t, code, body, "compliance retention")
}

// TestGCKeepsLockedContent: garbage collection collects untagged content
// but leaves a locked artifact, its manifest record and its blobs alone.
func TestGCKeepsLockedContent(t *testing.T) {
	w := newWorm(t, func(c *config.Config) {
		c.GC.Grace = config.Duration(time.Nanosecond)
		c.GC.UntaggedManifests = []string{"**"}
	})
	mk, dk, lk := image(t, w.url, "keep", "k")
	mf, df, _ := image(t, w.url, "free", "f")
	putManifest(t, w.url, "keep", dk.String(), mk)
	putManifest(t, w.url, "free", df.String(), mf)
	if code, body := setRetention(t, w.url, "keep", dk, "compliance", time.Now().Add(time.Hour)); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	time.Sleep(20 * time.Millisecond)
	code, body := do(t, http.MethodPost, w.url+"/api/v1/gc", nil)
	if code != 200 || strings.Contains(body, `"protected":0`) {
		t.Fatalf("gc: %d %s", code, body)
	}
	if got := resolve(t, w.url, "keep", dk.String()); got != dk.String() {
		t.Fatalf("locked manifest collected: %s (gc report %s)", got, body)
	}
	served(t, w.url, "keep", lk)
	if got := resolve(t, w.url, "free", df.String()); got != "404" {
		t.Fatalf("unlocked untagged manifest kept: %s (gc report %s)", got, body)
	}
}
