package apiclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/apiclient"
)

func newClient(t *testing.T, base string, o apiclient.Options) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(base, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDoSendsJSONCredentialAndUserAgent(t *testing.T) {
	var got struct {
		method, path, auth, ua, ctype string
		body                          map[string]string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path = r.Method, r.URL.RequestURI()
		got.auth, got.ua, got.ctype = r.Header.Get("Authorization"), r.Header.Get("User-Agent"), r.Header.Get("Content-Type")
		_ = json.NewDecoder(r.Body).Decode(&got.body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"user":"alice"}`+"\n")
	}))
	defer srv.Close()

	c := newClient(t, srv.URL+"/", apiclient.Options{Authorization: "Bearer s3cret", UserAgent: "custody/1.2.3"})
	var out struct{ User string }
	if err := c.Do(context.Background(), http.MethodPost, "/api/v1/tokens?x=1", map[string]string{"name": "ci"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.User != "alice" {
		t.Errorf("decoded %+v, want user alice", out)
	}
	if got.method != http.MethodPost || got.path != "/api/v1/tokens?x=1" {
		t.Errorf("request %s %s, want POST /api/v1/tokens?x=1", got.method, got.path)
	}
	if got.auth != "Bearer s3cret" || got.ua != "custody/1.2.3" || got.ctype != "application/json" {
		t.Errorf("headers: Authorization %q, User-Agent %q, Content-Type %q", got.auth, got.ua, got.ctype)
	}
	if got.body["name"] != "ci" {
		t.Errorf("body %v, want name ci", got.body)
	}

	// A *[]byte receives the answer as sent, for -o json.
	var raw []byte
	if err := c.Do(context.Background(), http.MethodGet, "/api/v1/whoami", nil, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"user":"alice"}`+"\n" {
		t.Errorf("raw answer %q", raw)
	}
	if got.ctype != "" {
		t.Errorf("a request without a body sent Content-Type %q", got.ctype)
	}
}

func TestNoCredentialSendsNoAuthorization(t *testing.T) {
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Values("Authorization")
		_, _ = io.WriteString(w, "{}")
	}))
	defer srv.Close()
	if err := newClient(t, srv.URL, apiclient.Options{}).Do(context.Background(), http.MethodGet, "/api/v1/whoami", nil, nil); err != nil {
		t.Fatal(err)
	}
	if len(auth) != 0 {
		t.Errorf("sent Authorization %q without a credential", auth)
	}
}

func TestProblemDecoded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusConflict)
		_, _ = io.WriteString(w, `{"type":"https://custody.dev/problems/retention-locked","title":"Retention locked","status":409,"detail":"locked until 2030","outcome":{"x":1}}`)
	}))
	defer srv.Close()
	err := newClient(t, srv.URL, apiclient.Options{}).Do(context.Background(), http.MethodDelete, "/api/v1/x", nil, nil)
	var e *apiclient.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *apiclient.Error", err, err)
	}
	if e.Status != 409 || e.Type != "https://custody.dev/problems/retention-locked" || e.Title != "Retention locked" || e.Detail != "locked until 2030" {
		t.Errorf("decoded %+v", e)
	}
	if !strings.Contains(string(e.Body), `"outcome"`) {
		t.Errorf("the error lost the answer's other members: %q", e.Body)
	}
	if want := "Retention locked (409): locked until 2030"; err.Error() != want {
		t.Errorf("error reads %q, want %q", err, want)
	}
}

func TestOCIErrorDecoded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"tag":"v1"}}]}`)
	}))
	defer srv.Close()
	err := newClient(t, srv.URL, apiclient.Options{}).Do(context.Background(), http.MethodGet, "/v2/a/manifests/v1", nil, nil)
	var e *apiclient.Error
	if !errors.As(err, &e) || e.Status != 404 || len(e.OCI) != 1 || e.OCI[0].Code != "MANIFEST_UNKNOWN" {
		t.Fatalf("error %#v", err)
	}
	if want := "Not Found (404): MANIFEST_UNKNOWN: manifest unknown"; err.Error() != want {
		t.Errorf("error reads %q, want %q", err, want)
	}
}

func TestOtherErrorAnswerKeepsStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream exploded: /var/secret/path", http.StatusBadGateway)
	}))
	defer srv.Close()
	err := newClient(t, srv.URL, apiclient.Options{}).Do(context.Background(), http.MethodGet, "/api/v1/x", nil, nil)
	var e *apiclient.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Title != "" {
		t.Fatalf("error %#v", err)
	}
	if want := "server answered 502 Bad Gateway"; err.Error() != want {
		t.Errorf("error reads %q, want %q", err, want)
	}
}

func TestUndecodableAnswerIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<html>proxy login</html>")
	}))
	defer srv.Close()
	var out struct{}
	err := newClient(t, srv.URL, apiclient.Options{}).Do(context.Background(), http.MethodGet, "/api/v1/x", nil, &out)
	if err == nil || !strings.Contains(err.Error(), "decoding the answer") {
		t.Fatalf("error %v, want a decoding error", err)
	}
}

func TestAnswerTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 101))
	}))
	defer srv.Close()
	var raw []byte
	err := newClient(t, srv.URL, apiclient.Options{MaxBody: 100}).Do(context.Background(), http.MethodGet, "/api/v1/x", nil, &raw)
	if err == nil || !strings.Contains(err.Error(), "larger than 100 bytes") || raw != nil {
		t.Fatalf("error %v, answer %d bytes; want refusal and nothing", err, len(raw))
	}
}

// hangingServer accepts requests and never answers until the test ends.
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		close(done)
		srv.Close()
	})
	return srv
}

func TestHeaderTimeout(t *testing.T) {
	srv := hangingServer(t)
	c := newClient(t, srv.URL, apiclient.Options{HeaderTimeout: 200 * time.Millisecond})
	start := time.Now()
	err := c.Do(context.Background(), http.MethodGet, "/api/v1/x", nil, nil)
	if err == nil {
		t.Fatal("a server that never answers did not fail the request")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("gave up after %s, want about 200ms", d)
	}
	if !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Errorf("error %v does not say it timed out", err)
	}
}

func TestTotalTimeout(t *testing.T) {
	srv := hangingServer(t)
	c := newClient(t, srv.URL, apiclient.Options{Timeout: 200 * time.Millisecond})
	start := time.Now()
	if err := c.Do(context.Background(), http.MethodGet, "/api/v1/x", nil, nil); err == nil {
		t.Fatal("a server that never answers did not fail the request")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("gave up after %s, want about 200ms", d)
	}
}

func TestSlowBodyNotCutByHeaderTimeout(t *testing.T) {
	// The header timeout bounds the wait for the server, not a download
	// that is making progress.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"a":`)
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, `1}`)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, apiclient.Options{HeaderTimeout: 50 * time.Millisecond})
	errc := make(chan error, 1)
	var out struct{ A int }
	go func() { errc <- c.Do(context.Background(), http.MethodGet, "/api/v1/x", nil, &out) }()
	// Wait past the header timeout while the body is pending.
	time.Sleep(300 * time.Millisecond)
	close(release)
	if err := <-errc; err != nil || out.A != 1 {
		t.Fatalf("slow body: %v, decoded %+v", err, out)
	}
}

func TestRedirectKeepsCredentialOnOrigin(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{}
	record := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[name] = r.Header.Get("Authorization")
			mu.Unlock()
			_, _ = io.WriteString(w, "{}")
		}
	}
	other := httptest.NewServer(record("other"))
	defer other.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/landing", http.StatusFound)
	})
	mux.HandleFunc("/home", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/landing", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/landing", record("origin"))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c := newClient(t, srv.URL, apiclient.Options{Authorization: "Bearer s3cret"})
	if err := c.Do(context.Background(), http.MethodGet, "/home", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(context.Background(), http.MethodGet, "/away", nil, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["origin"] != "Bearer s3cret" {
		t.Errorf("a redirect within the server lost the credential: %q", seen["origin"])
	}
	// Both servers listen on 127.0.0.1: only the port differs, which is
	// another origin all the same.
	if got, ok := seen["other"]; !ok || got != "" {
		t.Errorf("the other host got Authorization %q (reached: %v)", got, ok)
	}
}

func TestRedirectLoopStops(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	}))
	defer srv.Close()
	err := newClient(t, srv.URL, apiclient.Options{}).Do(context.Background(), http.MethodGet, "/loop", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Fatalf("error %v, want a refusal to follow more redirects", err)
	}
}

func TestNewRefusesBadBase(t *testing.T) {
	for _, base := range []string{"", "127.0.0.1:5000", "ftp://x", "http://"} {
		if _, err := apiclient.New(base, apiclient.Options{}); err == nil {
			t.Errorf("New(%q) accepted", base)
		}
	}
}

func TestSendStreamsBody(t *testing.T) {
	var ctype, body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctype = r.Header.Get("Content-Type")
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		_, _ = io.WriteString(w, "{}")
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, apiclient.Options{})
	req := apiclient.Request{Method: http.MethodPost, Path: "/api/v1/vulndb", Body: strings.NewReader("PK\x03\x04zip"), ContentType: "application/zip",
		Header: http.Header{"X-Custody-Bypass-Governance": {"INC-1"}}}
	if err := c.Send(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if ctype != "application/zip" || body != "PK\x03\x04zip" {
		t.Errorf("server got Content-Type %q, body %q", ctype, body)
	}
}
