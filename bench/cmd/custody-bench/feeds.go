package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1" //nolint:gosec // npm's shasum is SHA-1
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The feed rows install a dependency tree of npmPackages generated npm
// packages (package i depends on 2i+1 and 2i+2, so one root dependency
// pulls in all of them) with the real npm client, from an empty npm cache
// and node_modules each run:
//
//   - reference: straight from the upstream, a custody serving them from a
//     hosted npm feed (seeded once per harness run, kept between runs);
//   - custody: through a second custody's proxy feed of that upstream,
//     warm (npm-install-warm: one untimed install through the proxy first,
//     so every tarball is stored and served locally) or cold
//     (npm-install-cold: a fresh proxy, so every tarball is fetched
//     upstream, checked and stored on the way).
//
// The unit is packages installed per second; the ratio is custody's
// throughput over the direct install's, so the overhead of going through
// the proxy is 1/ratio.
const npmPackages = 500

// feedRows are the rows measureFeed answers.
var feedRows = []string{"npm-install-warm", "npm-install-cold"}

// npmUpstream is the feed rows' upstream, started once.
type npmUpstream struct {
	srv *server
	dir string
	url string // the hosted feed's registry URL
}

const npmUpstreamFeed = "upstream"

func (h *harness) npmUpstream() (*npmUpstream, error) {
	if h.npm != nil {
		return h.npm, nil
	}
	dir := filepath.Join(h.work, "npm-upstream")
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "custody.yaml")
	if err := os.WriteFile(cfg, []byte("feeds:\n- {name: "+npmUpstreamFeed+", ecosystem: npm}\n"), 0o644); err != nil {
		return nil, err
	}
	srv, err := h.startCustody(dir, data, "CUSTODY_BENCH_CONFIG="+cfg)
	if err != nil {
		return nil, err
	}
	u := &npmUpstream{srv: srv, dir: dir, url: "http://" + srv.addr + "/npm/" + npmUpstreamFeed}
	logf("npm rows: publishing %d packages to the upstream", npmPackages)
	for i := range npmPackages {
		if err := publishNPM(h, u.url, i); err != nil {
			srv.stop()
			return nil, err
		}
	}
	h.npm = u
	return u, nil
}

func npmName(i int) string { return fmt.Sprintf("bench-pkg-%03d", i) }

// publishNPM publishes package i, version 1.0.0, as npm publish does.
func publishNPM(h *harness, registry string, i int) error {
	name := npmName(i)
	deps := map[string]string{}
	for _, d := range []int{2*i + 1, 2*i + 2} {
		if d < npmPackages {
			deps[npmName(d)] = "^1.0.0"
		}
	}
	pkg, _ := json.Marshal(map[string]any{"name": name, "version": "1.0.0", "main": "index.js", "dependencies": deps})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range []struct{ name, body string }{
		{"package/package.json", string(pkg)},
		{"package/index.js", fmt.Sprintf("module.exports = %d;\n%s", i, strings.Repeat("// padding\n", 200))},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, _ = io.WriteString(tw, f.body)
	}
	_ = tw.Close()
	_ = zw.Close()
	data := buf.Bytes()
	s512 := sha512.Sum512(data)
	s1 := sha1.Sum(data) //nolint:gosec // npm's shasum
	doc := map[string]any{
		"_id": name, "name": name,
		"dist-tags": map[string]string{"latest": "1.0.0"},
		"versions": map[string]any{"1.0.0": map[string]any{
			"name": name, "version": "1.0.0", "main": "index.js", "dependencies": deps,
			"dist": map[string]string{"integrity": "sha512-" + base64.StdEncoding.EncodeToString(s512[:]), "shasum": hex.EncodeToString(s1[:]), "tarball": registry + "/" + name + "/-/" + name + "-1.0.0.tgz"},
		}},
		"_attachments": map[string]any{name + "-1.0.0.tgz": map[string]any{
			"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(data), "length": len(data),
		}},
	}
	body, _ := json.Marshal(doc)
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPut, registry+"/"+name, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("publish %s: %s: %s", name, resp.Status, b)
	}
	return nil
}

func (h *harness) measureFeed(row, target string) (sample, error) {
	if _, err := exec.LookPath("npm"); err != nil {
		return sample{}, fmt.Errorf("%s needs the npm client (Debian's npm): %w", row, err)
	}
	up, err := h.npmUpstream()
	if err != nil {
		return sample{}, err
	}
	h.seq++
	dir := filepath.Join(h.work, fmt.Sprintf("%03d-%s-%s", h.seq, row, target))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sample{}, err
	}
	if !h.o.keep {
		defer os.RemoveAll(dir)
	}
	if target == targetReference {
		secs, err := npmInstall(h, dir, "direct", up.url)
		if err != nil {
			return sample{}, err
		}
		return sample{unit: "pkg/s", ops: npmPackages, seconds: secs, value: npmPackages / secs}, nil
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return sample{}, err
	}
	cfg := filepath.Join(dir, "custody.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "feeds:\n- {name: npmjs, ecosystem: npm, kind: proxy, upstream: %q}\n", up.url), 0o644); err != nil {
		return sample{}, err
	}
	srv, err := h.startCustody(dir, data, "CUSTODY_BENCH_CONFIG="+cfg)
	if err != nil {
		return sample{}, err
	}
	defer func() { srv.stop() }()
	registry := "http://" + srv.addr + "/npm/npmjs"
	if row == "npm-install-warm" {
		if _, err := npmInstall(h, dir, "warm-up", registry); err != nil {
			return sample{}, err
		}
	}
	cpu0 := srv.cpuSeconds()
	secs, err := npmInstall(h, dir, "measured", registry)
	if err != nil {
		return sample{}, err
	}
	s := sample{unit: "pkg/s", ops: npmPackages, seconds: secs, value: npmPackages / secs}
	s.cpu = math.Round((srv.cpuSeconds()-cpu0)*100) / 100
	if rss, err := srv.peakRSS(); err == nil {
		s.rssMiB = float64(rss) / (1 << 20)
	}
	return s, nil
}

// npmInstall runs npm install of the tree's root from registry in a new
// project directory under dir with an empty cache, and returns its wall
// time in seconds after checking that every package was installed.
func npmInstall(h *harness, dir, name, registry string) (float64, error) {
	proj := filepath.Join(dir, name)
	if err := os.MkdirAll(proj, 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(proj, "package.json"), fmt.Appendf(nil, `{"name":"bench-app","version":"1.0.0","private":true,"dependencies":{%q:"^1.0.0"}}`, npmName(0)), 0o644); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(h.ctx, "npm", "install", "--registry", registry+"/", "--cache", filepath.Join(proj, ".npm-cache"),
		"--no-audit", "--no-fund", "--ignore-scripts", "--no-update-notifier", "--loglevel", "error")
	cmd.Dir = proj
	cmd.Env = append(os.Environ(), "npm_config_userconfig="+filepath.Join(proj, ".npmrc"), "HOME="+proj)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("npm install from %s: %v\n%s", registry, err, out.Bytes())
	}
	secs := time.Since(start).Seconds()
	entries, err := os.ReadDir(filepath.Join(proj, "node_modules"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "bench-pkg-") {
			n++
		}
	}
	if n != npmPackages {
		return 0, fmt.Errorf("npm install from %s installed %d of %d packages", registry, n, npmPackages)
	}
	return secs, nil
}
