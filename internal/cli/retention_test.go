package cli

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/server"
)

func TestRetentionCommands(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = t.TempDir()
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()

	cfgBlob := []byte("{}")
	cd := digest.FromBytes(cfgBlob)
	resp, err := http.Post(fmt.Sprintf("%s/v2/app/blobs/uploads/?digest=%s", hs.URL, cd), "application/octet-stream", bytes.NewReader(cfgBlob))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("blob: %v %v", err, resp)
	}
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":2},"layers":[]}`, cd)
	req, _ := http.NewRequest(http.MethodPut, hs.URL+"/v2/app/manifests/latest", strings.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("manifest: %v %v", err, resp)
	}
	ref := "app@" + digest.FromString(m).String()

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(append(args, "--server", hs.URL), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := run("retention", "set", ref, "--mode", "compliance", "--for", "1h"); code != 0 || !strings.Contains(out, "compliance until") {
		t.Fatalf("set: %d %s %s", code, out, errs)
	}
	if code, _, errs := run("retention", "set", ref, "--mode", "compliance", "--for", "1m"); code != 1 || !strings.Contains(errs, "cannot shorten compliance retention") {
		t.Fatalf("shorten: %d %s", code, errs)
	}
	if code, out, errs := run("hold", "set", ref, "-o", "json"); code != 0 || !strings.Contains(out, `"legalHold": true`) {
		t.Fatalf("hold set: %d %s %s", code, out, errs)
	}
	if code, out, _ := run("retention", "show", ref); code != 0 || !strings.Contains(out, "legal hold: on") {
		t.Fatalf("show: %d %s", code, out)
	}
	if code, out, _ := run("hold", "clear", ref); code != 0 || !strings.Contains(out, "legal hold: off") {
		t.Fatalf("hold clear: %d %s", code, out)
	}
	if code, _, errs := run("retention", "show", "app"); code != 1 || !strings.Contains(errs, "<repository>@<digest>") {
		t.Fatalf("bad ref: %d %s", code, errs)
	}
}

func TestParsePeriodAndArtifactPath(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"720h": 720 * time.Hour, "730d": 730 * 24 * time.Hour, "2y": 2 * 365 * 24 * time.Hour,
		"292y": 292 * 365 * 24 * time.Hour, "106751d": 106751 * 24 * time.Hour,
	} {
		if got, err := parsePeriod(in); err != nil || got != want {
			t.Errorf("parsePeriod(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// Longer than a duration holds: refused, not wrapped around.
	for _, bad := range []string{"", "0d", "-3d", "soon", "1.5y", "-1h", "293y", "300y", "106752d", "3000000h", "99999999999999999999y"} {
		if _, err := parsePeriod(bad); err == nil {
			t.Errorf("parsePeriod(%q) accepted", bad)
		}
	}
	d := "sha256:" + strings.Repeat("a", 64)
	for _, in := range []string{"team/app@" + d, "127.0.0.1:5000/team/app@" + d, "localhost/team/app@" + d, "reg.example/team/app@" + d} {
		if got, err := artifactPath(in); err != nil || got != "team/app/@"+d {
			t.Errorf("artifactPath(%q) = %q, %v", in, got, err)
		}
	}
}
