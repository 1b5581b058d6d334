package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/server"
)

// BenchmarkRepositoriesPage10k measures the server-side time of the
// Repositories page (sign-in check, catalog call, render) with 10,000
// repositories: the first page, a search matching 10, a search matching
// none (a scan of every name), and a page deep in the list.
func BenchmarkRepositoriesPage10k(b *testing.B) {
	data := b.TempDir()
	st, err := sqlite.Open(filepath.Join(data, "meta.db"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		if err := st.LinkBlob(context.Background(), fmt.Sprintf("team-%05d/app", i), digest.FromString("x"), 1); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	cfg := config.Default()
	cfg.Auth.MFA.Roles = nil // passwords alone in these tests
	cfg.Data = data
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	pw, _ := os.ReadFile(filepath.Join(data, "admin-password"))
	s := &site{t: b, url: hs.URL, admin: strings.TrimSpace(string(pw))}
	br := s.browser()
	if resp := br.signIn("admin", s.admin); resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("sign-in: %d", resp.StatusCode)
	}
	for _, q := range []string{"", "?q=team-0042", "?q=nomatch", "?after=team-09000%2Fapp"} {
		b.Run(strings.TrimPrefix(q, "?"), func(b *testing.B) {
			for b.Loop() {
				resp, _ := br.do("GET", "/repositories"+q, nil)
				if resp.StatusCode != 200 {
					b.Fatalf("%d", resp.StatusCode)
				}
			}
		})
	}
}
