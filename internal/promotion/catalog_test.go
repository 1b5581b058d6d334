package promotion_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"

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

// TestEnvironmentRepositories: an environment's repositories are those
// of the project whose environment tag ever moved, read from the tag
// index (not from the catalog, page after page, and one tag history per
// repository), including one whose environment tag was since deleted,
// and not another project's nor one where only another tag moved.
func TestEnvironmentRepositories(t *testing.T) {
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
	push := func(ref string) {
		tag, err := name.NewTag(host+"/"+ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(tag, img, opts...); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []string{"apps/a", "apps/b", "apps/c", "apps/d", "apps/e", "other/x"} {
		push(r + ":1.0")
	}
	push("apps/e:dev")
	push("apps/b:dev")
	push("apps/d:dev")
	push("other/x:dev")
	del, err := name.NewTag(host+"/apps/d:dev", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(del, opts...); err != nil {
		t.Fatal(err)
	}
	svc := &promotion.Service{
		Projects: []promotion.Project{
			{Repositories: "apps/**", Environments: []promotion.Environment{{Name: "dev"}}},
			{Repositories: "other/**", Environments: []promotion.Environment{{Name: "dev"}}},
		},
		Host: host, Remote: opts, Tags: m,
	}
	_, repos, err := svc.Repositories(context.Background(), "apps/**", "dev")
	if want := []string{"apps/b", "apps/d", "apps/e"}; err != nil || !slices.Equal(repos, want) {
		t.Fatalf("Repositories(apps, dev) = %q, %v; want %q", repos, err, want)
	}
}
