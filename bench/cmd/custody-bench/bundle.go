package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The bundle rows: an environment-sized set of 50 images of 20 layers
// (-bundle-layer bytes each: 1.03 GiB with the default 1075 KiB), pushed to
// a fresh custody, exported as one evidence bundle (bundle-export: the
// server streaming GET /api/v1/export to a file, MB/s of bundle and the
// server's peak RSS), then verified offline by the custody binary
// (bundle-verify: custody verify --bundle, MB/s of bundle and that
// process's peak RSS). No other registry writes evidence bundles, so the
// reference column holds no value (n/a).
const (
	bundleImages = 50
	bundleLayers = 20
)

// bundleRows are the rows measureBundle answers.
var bundleRows = []string{"bundle-export", "bundle-verify"}

func (h *harness) measureBundle(row, target string) (sample, error) {
	if target == targetReference {
		return sample{}, fmt.Errorf("%s has no peer", row)
	}
	h.seq++
	dir := filepath.Join(h.work, fmt.Sprintf("%03d-%s", h.seq, row))
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return sample{}, err
	}
	if !h.o.keep {
		defer os.RemoveAll(dir)
	}
	srv, err := h.startCustody(dir, data)
	if err != nil {
		return sample{}, err
	}
	defer func() { srv.stop() }()
	logf("%s: pushing %d images x %d layers of %s", row, bundleImages, bundleLayers, formatSize(h.o.bundleLayer))
	q := url.Values{}
	rng := rand.NewChaCha8([32]byte{byte(h.seq)})
	for i := range bundleImages {
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		for range bundleLayers {
			b := make([]byte, h.o.bundleLayer)
			_, _ = rng.Read(b)
			var err error
			if img, err = mutate.AppendLayers(img, static.NewLayer(b, types.OCIUncompressedLayer)); err != nil {
				return sample{}, err
			}
		}
		repo := fmt.Sprintf("bench/app-%02d", i)
		tag, err := name.NewTag(srv.addr+"/"+repo+":1.0", name.Insecure)
		if err != nil {
			return sample{}, err
		}
		if err := remote.Write(tag, img, remote.WithContext(h.ctx)); err != nil {
			return sample{}, err
		}
		q.Add("ref", repo+":1.0")
	}
	// A fresh process for the measured phase: its VmHWM is the export's.
	srv.stop()
	if srv, err = h.startCustody(dir, data); err != nil {
		return sample{}, err
	}
	file := filepath.Join(dir, "bundle.tar")
	cpu0 := srv.cpuSeconds()
	start := time.Now()
	n, err := download(h.ctx, "http://"+srv.addr+"/api/v1/export?"+q.Encode(), file)
	if err != nil {
		return sample{}, err
	}
	secs := time.Since(start).Seconds()
	s := sample{unit: "MB/s", ops: 1, bytes: n, seconds: secs, value: float64(n) / 1e6 / secs}
	s.cpu = math.Round((srv.cpuSeconds()-cpu0)*100) / 100
	rss, err := srv.peakRSS()
	if err != nil {
		return s, err
	}
	s.rssMiB = float64(rss) / (1 << 20)
	if row == "bundle-export" {
		return s, nil
	}
	trust, err := httpGet(h.ctx, "http://"+srv.addr+"/api/v1/keys/trust")
	if err != nil {
		return s, err
	}
	srv.stop() // offline from here
	sum := sha256.Sum256(trust)
	cmd := exec.CommandContext(h.ctx, h.custodyBin, "verify", "--bundle", file, "--trust-root-fingerprint", hex.EncodeToString(sum[:]))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start = time.Now()
	if err := cmd.Start(); err != nil {
		return s, err
	}
	// The peak RSS is the process's own VmHWM, sampled until it exits:
	// wait4's ru_maxrss would also count the harness's memory, which a
	// child started with CLONE_VM carries into its exec.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var hwm int64
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case err = <-done:
			running = false
		case <-tick.C:
			if n, rerr := peakRSS(cmd.Process.Pid); rerr == nil {
				hwm = max(hwm, n)
			}
		}
	}
	if err != nil {
		return s, fmt.Errorf("custody verify --bundle: %w\n%s", err, out.String())
	}
	secs = time.Since(start).Seconds()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{unit: "MB/s", ops: 1, bytes: n, seconds: secs, value: float64(n) / 1e6 / secs,
		rssMiB: float64(hwm) / (1 << 20),
		cpu:    math.Round((time.Duration(ru.Utime.Nano())+time.Duration(ru.Stime.Nano())).Seconds()*100) / 100}, nil
}

// download streams url into file and returns the bytes written.
func download(ctx context.Context, u, file string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func httpGet(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(resp.Body)
}
