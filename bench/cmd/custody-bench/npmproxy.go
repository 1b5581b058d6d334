package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1" //nolint:gosec // npm's shasum
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/config"
)

// npmProxyRows compare an npm install through a proxy feed with the same
// install straight from its upstream (a custody hosted feed on the same
// machine), not custody with a peer: the custody column installs through
// the proxy, the reference column from the upstream. npm-proxy-warm has
// every tarball stored in the proxy already (packuments are still asked
// of upstream, as a proxy does while upstream answers); npm-proxy-cold
// starts from an empty proxy, so every tarball is fetched, checked and
// sealed on the way.
var npmProxyRows = []string{"npm-proxy-warm", "npm-proxy-cold"}

// npmTreePackages is how many packages the installed dependency tree has.
const npmTreePackages = 500

// npmTreeName is the i-th package of the tree; package i depends on
// packages 2i+1 and 2i+2 (a binary tree), so installing package 0
// installs all of them.
func npmTreeName(i int) string { return fmt.Sprintf("bench-pkg-%03d", i) }

// publishNPMTree publishes the tree's packages to the hosted feed at reg.
func publishNPMTree(ctx context.Context, reg string) error {
	for i := range npmTreePackages {
		name := npmTreeName(i)
		deps := map[string]string{}
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < npmTreePackages {
				deps[npmTreeName(c)] = "^1.0.0"
			}
		}
		pj, _ := json.Marshal(map[string]any{"name": name, "version": "1.0.0", "main": "index.js", "dependencies": deps})
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for _, f := range [][2]string{{"package/package.json", string(pj)}, {"package/index.js", "module.exports = " + fmt.Sprint(i) + ";\n" + strings.Repeat("// padding\n", 400)}} {
			_ = tw.WriteHeader(&tar.Header{Name: f[0], Mode: 0o644, Size: int64(len(f[1])), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
			_, _ = tw.Write([]byte(f[1]))
		}
		_ = tw.Close()
		_ = zw.Close()
		tgz := buf.Bytes()
		s512, s1 := sha512.Sum512(tgz), sha1.Sum(tgz) //nolint:gosec // npm's shasum
		doc := map[string]any{
			"_id": name, "name": name, "dist-tags": map[string]string{"latest": "1.0.0"},
			"versions": map[string]any{"1.0.0": map[string]any{"name": name, "version": "1.0.0", "main": "index.js", "dependencies": deps,
				"dist": map[string]string{"integrity": "sha512-" + base64.StdEncoding.EncodeToString(s512[:]), "shasum": hex.EncodeToString(s1[:])}}},
			"_attachments": map[string]any{name + "-1.0.0.tgz": map[string]any{"content_type": "application/octet-stream",
				"data": base64.StdEncoding.EncodeToString(tgz), "length": len(tgz)}},
		}
		body, _ := json.Marshal(doc)
		if err := send(ctx, http.MethodPut, reg+name, body, http.StatusOK, "publish "+name,
			func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }); err != nil {
			return err
		}
	}
	return nil
}

// npmInstall installs the tree's root with the npm CLI from reg, with an
// empty npm cache (so every packument and tarball is fetched), and
// returns the seconds it took.
func npmInstall(ctx context.Context, npm, dir, reg string) (float64, error) {
	app := filepath.Join(dir, fmt.Sprintf("app-%d", time.Now().UnixNano()))
	if err := os.MkdirAll(app, 0o755); err != nil {
		return 0, err
	}
	state := app + "-state"
	files := map[string]string{
		"package.json": `{"name":"bench-app","version":"0.0.0","private":true,"dependencies":{"` + npmTreeName(0) + `":"^1.0.0"}}`,
		".npmrc":       "registry=" + reg + "\naudit=false\nfund=false\nupdate-notifier=false\nfetch-retries=0\npackage-lock=false\ncache=" + filepath.Join(state, "cache") + "\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(app, n), []byte(c), 0o644); err != nil {
			return 0, err
		}
	}
	cmd := exec.CommandContext(ctx, npm, "install", "--no-progress")
	cmd.Dir = app
	cmd.Env = append(os.Environ(), "HOME="+filepath.Join(state, "home"), "npm_config_userconfig="+filepath.Join(app, ".npmrc"),
		"npm_config_globalconfig="+filepath.Join(state, "npmrc"), "NO_UPDATE_NOTIFIER=1", "NO_PROXY=127.0.0.1,localhost")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	secs := time.Since(start).Seconds()
	if err != nil {
		return 0, fmt.Errorf("npm install: %w\n%s", err, out)
	}
	entries, err := os.ReadDir(filepath.Join(app, "node_modules"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "bench-pkg-") {
			n++
		}
	}
	if n != npmTreePackages {
		return 0, fmt.Errorf("npm installed %d of %d packages", n, npmTreePackages)
	}
	return secs, nil
}

// measureNPMProxy runs one npm-proxy-* row once: the custody target
// installs through a proxy feed (warmed first by one install for the warm
// row), the reference target straight from the upstream hosted feed.
func (h *harness) measureNPMProxy(row, target string) (sample, error) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return sample{}, fmt.Errorf("the %s row runs the npm CLI: %w", row, err)
	}
	return h.measureProxy(row, target, proxyRows{ecosystem: config.FeedEcosystemNPM, mount: "/npm/", name: "npm", warm: "npm-proxy-warm",
		fill:    publishNPMTree,
		install: func(ctx context.Context, dir, reg string) (float64, error) { return npmInstall(ctx, npm, dir, reg) },
		items:   npmTreePackages, unit: "packages/s"})
}
