package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/custody-dev/custody/internal/config"
	custodyserver "github.com/custody-dev/custody/internal/server"
)

// feedServer is an in-process custody serving feeds on loopback (the
// npm-proxy-* and maven-proxy-* rows).
type feedServer struct {
	srv *custodyserver.Server
	hs  *httptest.Server
}

func (s *feedServer) close() {
	s.hs.Close()
	_ = s.srv.Close()
}

func startFeedServer(dir string, feeds []config.Feed) (*feedServer, error) {
	cfg := config.Default()
	cfg.Data, cfg.Auth.Mode, cfg.Log.Level, cfg.Feeds = dir, "none", "error", feeds
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	srv, err := custodyserver.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	return &feedServer{srv: srv, hs: httptest.NewServer(srv.Handler())}, nil
}

// proxyRows is what the *-proxy-* rows of one ecosystem measure with.
type proxyRows struct {
	ecosystem string // the feeds' ecosystem (config.FeedEcosystemNPM)
	mount     string // where the ecosystem's feeds are served ("/npm/")
	name      string // the feeds' names: <name>up, <name>proxy
	warm      string // the row whose proxy is warmed before it is measured
	// fill publishes the dependency tree to the upstream hosted feed at
	// url (ending in /).
	fill func(ctx context.Context, url string) error
	// install installs the tree from the feed at url (ending in /) with
	// the ecosystem's client, working in dir, and returns the seconds it
	// took.
	install func(ctx context.Context, dir, url string) (float64, error)
	// items is how many packages the tree has; unit names the rate
	// ("packages/s").
	items int
	unit  string
}

// measureProxy runs one of p's rows once, measuring the rate of one
// install: the custody target installs through a proxy feed (warmed
// first by one install for the warm row), the reference target straight
// from the upstream hosted feed, both on in-process servers.
func (h *harness) measureProxy(row, target string, p proxyRows) (sample, error) {
	secs, err := h.proxyInstall(row, target, p)
	if err != nil {
		return sample{}, err
	}
	return sample{unit: p.unit, value: float64(p.items) / secs, ops: p.items, seconds: secs}, nil
}

// proxyInstall sets up the servers of measureProxy and returns the
// seconds of the measured install.
func (h *harness) proxyInstall(row, target string, p proxyRows) (float64, error) {
	h.seq++
	dir := filepath.Join(h.work, fmt.Sprintf("%03d-%s-%s", h.seq, row, target))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	if !h.o.keep {
		defer os.RemoveAll(dir)
	}
	up, err := startFeedServer(filepath.Join(dir, "upstream"), []config.Feed{{Name: p.name + "up", Ecosystem: p.ecosystem, Kind: config.FeedKindHosted}})
	if err != nil {
		return 0, err
	}
	defer up.close()
	upURL := up.hs.URL + p.mount + p.name + "up/"
	if err := p.fill(h.ctx, upURL); err != nil {
		return 0, err
	}
	url := upURL
	if target == targetCustody {
		px, err := startFeedServer(filepath.Join(dir, "proxy"), []config.Feed{{Name: p.name + "proxy", Ecosystem: p.ecosystem,
			Kind: config.FeedKindProxy, Upstream: upURL}})
		if err != nil {
			return 0, err
		}
		defer px.close()
		url = px.hs.URL + p.mount + p.name + "proxy/"
		if row == p.warm {
			if _, err := p.install(h.ctx, dir, url); err != nil {
				return 0, fmt.Errorf("warming the proxy: %w", err)
			}
		}
	}
	return p.install(h.ctx, dir, url)
}

// send sends a request of method to url with body, prepared by prepare
// (headers, credentials) when set, and returns an error naming what and
// the answer unless its status is want.
func send(ctx context.Context, method, url string, body []byte, want int, what string, prepare func(*http.Request)) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if prepare != nil {
		prepare(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s: %s %s", what, resp.Status, b)
	}
	return nil
}
