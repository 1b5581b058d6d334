package server_test

import (
	"bytes"
	"context"
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
	"github.com/custody-dev/custody/internal/server"
)

func send(t *testing.T, method, url, ct string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGCKeepsHeldContent: an untagged manifest under legal hold, and its
// layers, survive GC; once the hold is lifted they are collected.
func TestGCKeepsHeldContent(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = t.TempDir()
	cfg.GC.Grace = 0
	cfg.GC.UntaggedManifests = []string{"tmp/**"}
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)

	config, layer := []byte(`{"held":1}`), []byte("held layer")
	for _, b := range [][]byte{config, layer} {
		if code, body := send(t, http.MethodPost, hs.URL+"/v2/tmp/x/blobs/uploads/?digest="+digest.FromBytes(b).String(), "application/octet-stream", b); code != http.StatusCreated {
			t.Fatalf("upload: %d %s", code, body)
		}
	}
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		digest.FromBytes(config).String() + `","size":10},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` +
		digest.FromBytes(layer).String() + `","size":10}]}`)
	md := digest.FromBytes(m)
	if code, body := send(t, http.MethodPut, hs.URL+"/v2/tmp/x/manifests/"+md.String(), "application/vnd.oci.image.manifest.v1+json", m); code != http.StatusCreated {
		t.Fatalf("put manifest: %d %s", code, body)
	}
	if code, body := send(t, http.MethodPut, hs.URL+"/api/v1/hold/tmp/x/@"+md.String(), "application/json", nil); code/100 != 2 {
		t.Fatalf("hold: %d %s", code, body)
	}
	rep, err := s.GC(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Manifests) != 0 || rep.Protected == 0 {
		t.Fatalf("held manifest collected: %+v", rep)
	}
	if code, _ := send(t, http.MethodGet, hs.URL+"/v2/tmp/x/manifests/"+md.String(), "", nil); code != http.StatusOK {
		t.Fatalf("held manifest gone: %d", code)
	}
	if code, body := send(t, http.MethodDelete, hs.URL+"/api/v1/hold/tmp/x/@"+md.String(), "", nil); code/100 != 2 {
		t.Fatalf("release hold: %d %s", code, body)
	}
	rep, err = s.GC(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Manifests) != 1 || rep.Manifests[0].Digest != md {
		t.Fatalf("released manifest not collected: %+v", rep)
	}
	// The metrics saw both runs.
	code, body := send(t, http.MethodGet, hs.URL+"/metrics", "", nil)
	if code != http.StatusOK || !strings.Contains(body, `custody_gc_runs_total{result="ok"} 2`) ||
		!strings.Contains(body, "custody_gc_manifests_deleted_total 1") {
		t.Fatalf("gc metrics missing:\n%s", body)
	}
}

// TestScrubMetrics: the server's scrub reports damage in /metrics.
func TestScrubMetrics(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = t.TempDir()
	cfg.Scrub.Buckets = 3
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	b := []byte("some layer")
	d := digest.FromBytes(b)
	if code, body := send(t, http.MethodPost, hs.URL+"/v2/r/blobs/uploads/?digest="+d.String(), "application/octet-stream", b); code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, body)
	}
	rep, err := s.Scrub(context.Background())
	if err != nil || !rep.OK() || rep.Subset != "1/3" {
		t.Fatalf("scrub of a healthy store: %v %+v", err, rep)
	}
	if err := os.Remove(filepath.Join(cfg.Data, "blobs", "sha256", d.Encoded()[:2], d.Encoded())); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Scrub(context.Background())
	if err != nil || rep.OK() || rep.Subset != "2/3" {
		t.Fatalf("scrub after deleting a linked blob: %v %+v", err, rep)
	}
	_, body := send(t, http.MethodGet, hs.URL+"/metrics", "", nil)
	if !strings.Contains(body, "custody_scrub_damaged_objects 1") || strings.Contains(body, "custody_scrub_last_run_timestamp_seconds 0\n") {
		t.Fatalf("scrub metrics:\n%s", body)
	}
}
