package feed_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
)

func proxyFeed(upstream string) config.Feed {
	return config.Feed{Name: "up", Ecosystem: config.FeedEcosystemNPM, Kind: config.FeedKindProxy, Upstream: upstream}
}

func TestUpstreamCredentialsOnlyToItsOrigin(t *testing.T) {
	var otherAuth atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherAuth.Store(r.Header.Get("Authorization"))
		_, _ = io.WriteString(w, "moved")
	}))
	defer other.Close()
	var gotAuth, gotUA string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/base/doc":
			gotAuth, gotUA = r.Header.Get("Authorization"), r.Header.Get("User-Agent")
			_, _ = io.WriteString(w, "doc")
		case "/base/away":
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
		case "/base/file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()
	f := proxyFeed(up.URL + "/base/")
	f.UpstreamAuth = config.FeedUpstreamAuth{TokenEnv: "UP_TOKEN"}
	env := map[string]string{"UP_TOKEN": "s3cret"}
	u, err := feed.NewUpstream(f, feed.UpstreamOptions{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, _, err := u.GetDocument(ctx, u.URL("doc"), "")
	if err != nil || string(b) != "doc" {
		t.Fatalf("GetDocument = %q, %v", b, err)
	}
	if gotAuth != "Bearer s3cret" || !strings.HasPrefix(gotUA, "custody/") {
		t.Fatalf("upstream saw Authorization %q, User-Agent %q", gotAuth, gotUA)
	}
	// A redirect off upstream's origin loses the credentials; an absolute
	// URL elsewhere never gets them.
	if _, _, err := u.GetDocument(ctx, u.URL("away"), ""); err != nil {
		t.Fatal(err)
	}
	if a := otherAuth.Load(); a != "" {
		t.Fatalf("redirect carried Authorization %q to another origin", a)
	}
	otherAuth.Store("unset")
	if _, _, err := u.GetDocument(ctx, other.URL+"/y", ""); err != nil {
		t.Fatal(err)
	}
	if a := otherAuth.Load(); a != "" {
		t.Fatalf("a file URL on another origin got Authorization %q", a)
	}
	// Redirects leave http(s) never.
	if _, _, err := u.GetDocument(ctx, u.URL("file"), ""); err == nil {
		t.Fatal("followed a redirect to file://")
	}
	if _, _, err := u.GetDocument(ctx, u.URL("nothing"), ""); !errors.Is(err, feed.ErrUpstreamNotFound) {
		t.Fatalf("404 = %v, want ErrUpstreamNotFound", err)
	}
	if _, _, err := u.GetDocument(ctx, "file:///etc/passwd", ""); err == nil {
		t.Fatal("fetched a file: URL")
	}
}

func TestUpstreamBasicAuthAndMissingSecret(t *testing.T) {
	var user, pw string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, _ = r.BasicAuth()
	}))
	defer up.Close()
	f := proxyFeed(up.URL)
	f.UpstreamAuth = config.FeedUpstreamAuth{Username: "bot", PasswordEnv: "UP_PW"}
	if _, err := feed.NewUpstream(f, feed.UpstreamOptions{Getenv: func(string) string { return "" }}); err == nil || !strings.Contains(err.Error(), "UP_PW") {
		t.Fatalf("missing secret: %v, want an error naming UP_PW", err)
	}
	u, err := feed.NewUpstream(f, feed.UpstreamOptions{Getenv: func(k string) string { return map[string]string{"UP_PW": "pw"}[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := u.GetDocument(context.Background(), u.URL("x"), ""); err != nil {
		t.Fatal(err)
	}
	if user != "bot" || pw != "pw" {
		t.Fatalf("upstream saw %q:%q", user, pw)
	}
}

func TestUpstreamSizeCap(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No Content-Length: the cap applies while reading.
		w.(http.Flusher).Flush()
		_, _ = w.Write(bytes.Repeat([]byte("x"), 100))
	}))
	defer up.Close()
	u, err := feed.NewUpstream(proxyFeed(up.URL), feed.UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := u.Get(context.Background(), u.URL("f"), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, feed.ErrUpstreamTooLarge) {
		t.Fatalf("read = %v, want ErrUpstreamTooLarge", err)
	}
	rc2, _, err := u.Get(context.Background(), u.URL("f"), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer rc2.Close()
	if b, err := io.ReadAll(rc2); err != nil || len(b) != 100 {
		t.Fatalf("read at the cap = %d, %v", len(b), err)
	}
}

// Concurrent first fetches of one key run one fetch (run with -race): as
// the protocols use it, the fetch re-checks what is stored first, so a
// caller arriving after the shared fetch ended finds the version stored.
func TestUpstreamCollapse(t *testing.T) {
	u, err := feed.NewUpstream(proxyFeed("http://127.0.0.1:1"), feed.UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var mu sync.Mutex
	stored := false
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			errs <- u.Collapse(context.Background(), "pkg@1.0.0", func(context.Context) error {
				mu.Lock()
				done := stored
				mu.Unlock()
				if done {
					return nil
				}
				calls.Add(1)
				once.Do(func() { close(started) })
				<-release
				mu.Lock()
				stored = true
				mu.Unlock()
				return nil
			})
		})
	}
	<-started
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("upstream fetched %d times for 16 concurrent first requests", n)
	}

	// Callers joining a running fetch get its result; one whose context
	// ends stops waiting without ending the fetch.
	block, in := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- u.Collapse(context.Background(), "k", func(ctx context.Context) error {
			close(in)
			<-block
			return ctx.Err() // not cancelled by the caller below
		})
	}()
	<-in
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := u.Collapse(ctx, "k", func(context.Context) error { return errors.New("ran a second fetch") }); !errors.Is(err, context.Canceled) {
		t.Fatalf("a caller whose context ended: %v, want context.Canceled", err)
	}
	close(block)
	if err := <-first; err != nil {
		t.Fatalf("first = %v", err)
	}
}

func TestCheckAtEOF(t *testing.T) {
	bad := errors.New("mismatch")
	r := feed.CheckAtEOF(strings.NewReader("abc"), func() error { return bad })
	if b, err := io.ReadAll(r); !errors.Is(err, bad) || string(b) != "abc" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	r = feed.CheckAtEOF(strings.NewReader("abc"), func() error { return nil })
	if b, err := io.ReadAll(r); err != nil || string(b) != "abc" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
}

// The configuration example of docs/feeds.md's proxy section loads, and
// its upstream clients are built with the secrets it names.
func TestProxyDocsExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/feeds.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "## Proxy (pull-through) feeds")
	_, block, ok2 := strings.Cut(sec, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/feeds.md has no yaml example in its proxy section")
	}
	p := filepath.Join(t.TempDir(), "custody.yaml")
	if err := os.WriteFile(p, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p, nil)
	if err != nil {
		t.Fatalf("the documented example does not load: %v", err)
	}
	env := map[string]string{"CORP_NPM_TOKEN": "t", "CORP_PYPI_TOKEN": "p"}
	ups, err := feed.Upstreams(cfg.Feeds, feed.UpstreamOptions{Getenv: func(k string) string { return env[k] }})
	if err != nil || len(ups) != 5 {
		t.Fatalf("upstream clients of the example: %d, %v", len(ups), err)
	}
	if _, err := feed.Upstreams(cfg.Feeds, feed.UpstreamOptions{Getenv: func(string) string { return "" }}); err == nil {
		t.Fatal("the example's clients were built without their secrets")
	}
}
