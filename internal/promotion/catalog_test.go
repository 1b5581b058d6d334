package promotion_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/blob/fs"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/registry"
)

// inProcess serves requests with a handler, whatever their scheme, as the
// server's own in-process transport does.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// TestEnvironmentAtCatalogPages: an environment's repositories are found
// on every page of the catalog when the registry is reached in process
// (where go-containerregistry's https probe succeeds, so a catalog page's
// Link header did not match the registry's http scheme and a project over
// more repositories than one page, 10,000 by default, failed).
func TestEnvironmentAtCatalogPages(t *testing.T) {
	dir := t.TempDir()
	b, err := fs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sqlite.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	reg := registry.New(b, m, registry.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxPageSize: 2})
	opts := []remote.Option{remote.WithTransport(inProcess{reg})}
	const host = "custody.internal"
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	repos := []string{"apps/a", "apps/b", "apps/c", "apps/d", "apps/e"}
	for _, r := range repos {
		tag, err := name.NewTag(host+"/"+r+":1.0", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(tag, img, opts...); err != nil {
			t.Fatal(err)
		}
	}
	svc := &promotion.Service{
		Projects: []promotion.Project{{Repositories: "apps/**", Environments: []promotion.Environment{{Name: "dev"}}}},
		Host:     host, Remote: opts, Tags: m,
	}
	if _, err := svc.EnvironmentAt(context.Background(), "", "dev", time.Now()); err != nil {
		t.Fatalf("environment over %d repositories, 2 a catalog page: %v", len(repos), err)
	}
}
