package pullthrough_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob/fs"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/pullthrough"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stores returns fresh blob and metadata stores.
func stores(t *testing.T) (*fs.Store, *sqlite.Store) {
	t.Helper()
	b, m := storetest.Embedded(t)
	return b, m
}

// upstreamServer is a real registry on loopback counting the requests it
// answers; wrap (optional) stands in front of it.
type upstreamServer struct {
	*httptest.Server
	requests, manifestGets atomic.Int64
}

func startUpstream(t *testing.T, wrap func(http.Handler) http.Handler) *upstreamServer {
	t.Helper()
	b, m := stores(t)
	var h http.Handler = registry.New(b, m, registry.Options{Log: quiet})
	if wrap != nil {
		h = wrap(h)
	}
	u := &upstreamServer{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
			u.manifestGets.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstreamServer) host() string { return strings.TrimPrefix(u.URL, "http://") }

// proxy is a custody registry with an OCI proxy feed "hub" of upstream.
type proxy struct {
	host string
	meta *sqlite.Store
}

type denyAll struct{}

func (denyAll) Authorize(_ http.ResponseWriter, r *http.Request, _ []registry.Access) (*http.Request, error) {
	return r, registry.ErrUnauthenticated
}

func startProxy(t *testing.T, feed config.Feed, authz registry.Authorizer, getenv func(string) string) *proxy {
	return startProxyWith(t, feed, authz, getenv, nil)
}

func startProxyWith(t *testing.T, feed config.Feed, authz registry.Authorizer, getenv func(string) string, policy registry.Policy) *proxy {
	t.Helper()
	// As in the server: an internal registry the handler stores through
	// (reached over loopback here) and the public one, with the
	// authorizer and the handler in front, over the same stores.
	b, m := stores(t)
	in := httptest.NewServer(registry.New(b, m, registry.Options{Log: quiet, Policy: policy}))
	t.Cleanup(in.Close)
	h, err := pullthrough.New(pullthrough.Options{Feeds: []config.Feed{feed}, Local: http.DefaultTransport,
		Host: strings.TrimPrefix(in.URL, "http://"), Log: quiet, Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(b, m, registry.Options{Log: quiet, Authorizer: authz, Front: h.Front}))
	t.Cleanup(srv.Close)
	return &proxy{host: strings.TrimPrefix(srv.URL, "http://"), meta: m}
}

func hubFeed(upstream string) config.Feed {
	return config.Feed{Name: "hub", Ecosystem: config.FeedEcosystemOCI, Kind: config.FeedKindProxy, Upstream: upstream}
}

func push(t *testing.T, host, ref string) v1.Hash {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

func digestOf(t *testing.T, ref string) (v1.Hash, error) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return v1.Hash{}, err
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return v1.Hash{}, err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return v1.Hash{}, err
		}
	}
	return img.Digest()
}

// TestTagFollowsUpstream: a tag read re-resolves the tag upstream, moves
// the local tag when upstream moved it (the tag history keeps the first
// digest and the move), keeps it when upstream drops the tag or is gone,
// and manifests by digest stay served without upstream.
func TestTagFollowsUpstream(t *testing.T) {
	up := startUpstream(t, nil)
	px := startProxy(t, hubFeed(up.URL), nil, nil)
	ctx := context.Background()

	d1 := push(t, up.host(), "library/app:v1")
	if got, err := digestOf(t, px.host+"/hub/library/app:v1"); err != nil || got != d1 {
		t.Fatalf("first pull: %v %v, want %v", got, err, d1)
	}
	d2 := push(t, up.host(), "library/app:v1")
	if got, err := digestOf(t, px.host+"/hub/library/app:v1"); err != nil || got != d2 {
		t.Fatalf("pull after the upstream tag moved: %v %v, want %v", got, err, d2)
	}
	hist, err := px.meta.TagHistory(ctx, "hub/library/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Digest.String() != d1.String() || hist[1].Digest.String() != d2.String() {
		t.Fatalf("tag history %+v, want %s then %s", hist, d1, d2)
	}
	// Upstream drops the tag: the stored one stays.
	del, _ := http.NewRequest(http.MethodDelete, up.URL+"/v2/library/app/manifests/v1", nil)
	resp, err := http.DefaultClient.Do(del)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete upstream tag: %v %v", err, resp)
	}
	resp.Body.Close()
	if got, err := digestOf(t, px.host+"/hub/library/app:v1"); err != nil || got != d2 {
		t.Fatalf("pull after upstream dropped the tag: %v %v, want %v", got, err, d2)
	}
	// Upstream gone: tag and both digests are served from storage.
	up.Close()
	if got, err := digestOf(t, px.host+"/hub/library/app:v1"); err != nil || got != d2 {
		t.Fatalf("air-gapped tag pull: %v %v, want %v", got, err, d2)
	}
	if got, err := digestOf(t, px.host+"/hub/library/app@"+d1.String()); err != nil || got != d1 {
		t.Fatalf("air-gapped pull of the first digest: %v %v", got, err)
	}
	hist, _ = px.meta.TagHistory(ctx, "hub/library/app", "v1")
	if len(hist) != 2 {
		t.Fatalf("tag history changed without upstream: %+v", hist)
	}
	// Something never fetched: a clear 502, not a 500.
	resp, err = http.Get("http://" + px.host + "/v2/hub/library/app/manifests/v9")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("miss with upstream gone: %d, want 502", resp.StatusCode)
	}
}

// TestConcurrentFirstPull: many first pulls of one tag at once make one
// upstream fetch.
func TestConcurrentFirstPull(t *testing.T) {
	up := startUpstream(t, nil)
	px := startProxy(t, hubFeed(up.URL), nil, nil)
	d := push(t, up.host(), "library/app:v1")
	up.manifestGets.Store(0)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := digestOf(t, px.host+"/hub/library/app:v1")
			if err == nil && got != d {
				err = io.ErrUnexpectedEOF
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// One GET of the manifest (the HEADs resolving the tag are not
	// fetches) and, later, none.
	if n := up.manifestGets.Load(); n != 1 {
		t.Fatalf("upstream manifest GETs = %d, want 1", n)
	}
	if _, err := digestOf(t, px.host+"/hub/library/app@"+d.String()); err != nil {
		t.Fatal(err)
	}
	if n := up.manifestGets.Load(); n != 1 {
		t.Fatalf("upstream manifest GETs after a pull by digest = %d, want 1", n)
	}
}

// TestOnlyReadersFetch: a request the authorizer refuses causes no
// upstream request and stores nothing.
func TestOnlyReadersFetch(t *testing.T) {
	up := startUpstream(t, nil)
	push(t, up.host(), "library/app:v1")
	px := startProxy(t, hubFeed(up.URL), denyAll{}, nil)
	up.requests.Store(0)
	resp, err := http.Get("http://" + px.host + "/v2/hub/library/app/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous read: %d, want 401", resp.StatusCode)
	}
	if n := up.requests.Load(); n != 0 {
		t.Fatalf("upstream saw %d requests for a refused reader", n)
	}
	repos, err := px.meta.Repositories(context.Background(), "", 10)
	if err != nil || len(repos) != 0 {
		t.Fatalf("repositories after a refused read: %v %v", repos, err)
	}
}

// TestUpstreamBasicAuth: upstreamAuth's credentials, read from the
// environment, reach an upstream that requires them; an unset variable
// is refused when the handler is built.
func TestUpstreamBasicAuth(t *testing.T) {
	up := startUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "mirror" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="upstream"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	img, _ := random.Image(512, 1)
	ref, _ := name.ParseReference(up.host()+"/library/app:v1", name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(basicAuth{})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	f := hubFeed(up.URL)
	f.UpstreamAuth = config.FeedUpstreamAuth{Username: "mirror", PasswordEnv: "HUB_PASSWORD"}
	px := startProxy(t, f, nil, func(k string) string {
		if k == "HUB_PASSWORD" {
			return "s3cret"
		}
		return ""
	})
	if got, err := digestOf(t, px.host+"/hub/library/app:v1"); err != nil || got != d {
		t.Fatalf("pull through an authenticated upstream: %v %v", got, err)
	}
	if _, err := pullthrough.New(pullthrough.Options{Feeds: []config.Feed{f}, Getenv: func(string) string { return "" }}); err == nil ||
		!strings.Contains(err.Error(), "HUB_PASSWORD") {
		t.Fatalf("unset password variable: %v", err)
	}
}

type basicAuth struct{}

func (basicAuth) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: "mirror", Password: "s3cret"}, nil
}

// FuzzSplit: a repository is under a proxy feed exactly when its first
// component is the feed's name, and the parts rebuild it.
func FuzzSplit(f *testing.F) {
	h, err := pullthrough.New(pullthrough.Options{Feeds: []config.Feed{hubFeed("https://registry-1.docker.io")}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"hub/library/alpine", "hub", "hub/", "hubx/a", "other/hub/a", "", "/hub", "hub//a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, repo string) {
		feed, rest, ok := h.Split(repo)
		if ok != (feed == "hub") {
			t.Fatalf("Split(%q) = %q, %q, %v", repo, feed, rest, ok)
		}
		if ok && rest != "" && feed+"/"+rest != repo {
			t.Fatalf("Split(%q) = %q + %q", repo, feed, rest)
		}
		if ok && rest == "" && repo != "hub" && repo != "hub/" {
			t.Fatalf("Split(%q): empty rest", repo)
		}
	})
}

// frozenTags refuses every move of an existing tag, as an immutable-tag
// rule does.
type frozenTags struct{ registry.AllowAll }

func (frozenTags) CheckTag(_ context.Context, _, tag string, current, _ digest.Digest) error {
	if current != "" {
		return fmt.Errorf("%w: tag %s is immutable", registry.ErrDenied, tag)
	}
	return nil
}

// TestRefusedTagMoveKeepsStored: when a policy refuses to follow an
// upstream tag move, the stored tag is still served (not a 502), and the
// refused fetch leaves no blobs of the new image behind.
func TestRefusedTagMoveKeepsStored(t *testing.T) {
	up := startUpstream(t, nil)
	px := startProxyWith(t, hubFeed(up.URL), nil, nil, frozenTags{})
	d1 := push(t, up.host(), "library/app:v1")
	if got, err := digestOf(t, px.host+"/hub/library/app:v1"); err != nil || got != d1 {
		t.Fatalf("first pull: %v %v", got, err)
	}
	img, _ := random.Image(2048, 1)
	ref, _ := name.ParseReference(up.host()+"/library/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	if got, err := digestOf(t, px.host+"/hub/library/app:v1"); err != nil || got != d1 {
		t.Fatalf("pull after a refused move: %v %v, want %v", got, err, d1)
	}
	ls, _ := img.Layers()
	ld, _ := ls[0].Digest()
	if _, err := px.meta.BlobSize(context.Background(), "hub/library/app", digest.Digest(ld.String())); err == nil {
		t.Fatalf("layer %s of the refused image is linked in the repository", ld)
	}
}

// TestUnreachableUpstreamNotAskedAgain: once upstream drops a connection,
// tag reads are served from storage without asking it for a while (a
// warm proxy on a network that drops packets answers promptly).
func TestUnreachableUpstreamNotAskedAgain(t *testing.T) {
	var broken atomic.Bool
	up := startUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if broken.Load() {
				panic(http.ErrAbortHandler) // the connection drops
			}
			next.ServeHTTP(w, r)
		})
	})
	px := startProxy(t, hubFeed(up.URL), nil, nil)
	d := push(t, up.host(), "library/app:v1")
	if got, err := digestOf(t, px.host+"/hub/library/app:v1"); err != nil || got != d {
		t.Fatalf("first pull: %v %v", got, err)
	}
	broken.Store(true)
	up.requests.Store(0)
	for range 3 {
		if got, err := digestOf(t, px.host+"/hub/library/app:v1"); err != nil || got != d {
			t.Fatalf("pull with upstream dropping connections: %v %v", got, err)
		}
	}
	// The first tag read asked (and failed, perhaps after the client's
	// retries); the others did not ask.
	first := up.requests.Load()
	if first == 0 {
		t.Fatal("upstream was never asked")
	}
	if _, err := digestOf(t, px.host+"/hub/library/app:v1"); err != nil {
		t.Fatal(err)
	}
	if n := up.requests.Load(); n != first {
		t.Fatalf("upstream asked %d more times while marked unreachable", n-first)
	}
}
