package cli

import (
	"bytes"

	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/scrub"
	"github.com/custody-dev/custody/internal/server"
)

// mtServer runs an in-process custody server on data.
func mtServer(t *testing.T, data string) (*server.Server, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = data
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return srv, hs.URL
}

func mtDo(t *testing.T, method, url string, body []byte, ct string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// mtPush pushes an image of config and layers to repo:tag and returns the
// manifest digest.
func mtPush(t *testing.T, base, repo, tag string, config []byte, layers ...[]byte) digest.Digest {
	t.Helper()
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int           `json:"size"`
	}
	var ls []desc
	for _, b := range append([][]byte{config}, layers...) {
		d := digest.FromBytes(b)
		if code, body := mtDo(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b, "application/octet-stream"); code != http.StatusCreated {
			t.Fatalf("upload: %d %s", code, body)
		}
		ls = append(ls, desc{"application/vnd.oci.image.layer.v1.tar", d, len(b)})
	}
	ls[0].MediaType = "application/vnd.oci.image.config.v1+json"
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": ls[0], "layers": ls[1:]})
	if code, body := mtDo(t, http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, m, "application/vnd.oci.image.manifest.v1+json"); code != http.StatusCreated {
		t.Fatalf("put manifest: %d %s", code, body)
	}
	return digest.FromBytes(m)
}

func mtBlobPath(data string, d digest.Digest) string {
	return filepath.Join(data, "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())
}

func mtRandom(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + n)
	}
	copy(b, fmt.Sprintf("%d-%d", n, len(b)))
	return b
}

// TestScrubFindsInjectedDamage flips a bit, truncates, deletes and swaps
// blob files directly on disk while the server runs, and checks that scrub
// reports each with its digest and repository, exits non-zero, and that
// its JSON parses.
func TestScrubFindsInjectedDamage(t *testing.T) {
	data := t.TempDir()
	_, base := mtServer(t, data)
	layers := make([][]byte, 5)
	for i := range layers {
		layers[i] = mtRandom(10000 + i)
	}
	mtPush(t, base, "scrub/a", "v1", []byte(`{"a":1}`), layers[0], layers[1])
	mtPush(t, base, "scrub/b", "v1", []byte(`{"b":1}`), layers[2], layers[3], layers[4])

	if code, out, errs := run(t, "scrub", "--data", data); code != 0 {
		t.Fatalf("scrub of a healthy store: %d\n%s%s", code, out, errs)
	}

	d := func(i int) digest.Digest { return digest.FromBytes(layers[i]) }
	// File timestamps are coarse (a jiffy on many kernels): let a rewrite
	// land on a later mtime than the commit, as any real damage would.
	time.Sleep(20 * time.Millisecond)
	// Bit flip.
	p := mtBlobPath(data, d(0))
	b, _ := os.ReadFile(p)
	b[100] ^= 0x01
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	// Truncation.
	if err := os.Truncate(mtBlobPath(data, d(1)), 10); err != nil {
		t.Fatal(err)
	}
	// Deletion.
	if err := os.Remove(mtBlobPath(data, d(2))); err != nil {
		t.Fatal(err)
	}
	// Swapped files.
	p3, p4 := mtBlobPath(data, d(3)), mtBlobPath(data, d(4))
	if err := os.Rename(p3, p3+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p4, p3); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p3+".tmp", p4); err != nil {
		t.Fatal(err)
	}

	code, out, errs := run(t, "scrub", "--data", data, "-o", "json")
	if code == 0 {
		t.Fatalf("scrub exited 0 on a damaged store:\n%s", out)
	}
	var rep scrub.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("scrub -o json: %v\n%s\n%s", err, out, errs)
	}
	want := map[digest.Digest]string{d(0): "scrub/a", d(1): "scrub/a", d(2): "scrub/b", d(3): "scrub/b", d(4): "scrub/b"}
	for dg, repo := range want {
		found := false
		for _, p := range rep.Problems {
			if p.Digest == dg && slices.Contains(p.Repos, repo) {
				found = true
			}
		}
		if !found {
			t.Errorf("scrub did not report %s in %s; problems: %+v", dg, repo, rep.Problems)
		}
	}
	if rep.DamagedCount != len(want) {
		t.Errorf("damaged count %d, want %d: %+v", rep.DamagedCount, len(want), rep.Problems)
	}

	// The same store named by a configuration file.
	cfgPath := filepath.Join(t.TempDir(), "custody.yaml")
	if err := os.WriteFile(cfgPath, []byte("data: "+data+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, "scrub", "--config", cfgPath, "-o", "json")
	var viaConfig scrub.Report
	if err := json.Unmarshal([]byte(out), &viaConfig); err != nil || code == 0 || viaConfig.DamagedCount != len(want) {
		t.Errorf("scrub --config: exit %d, %d damaged, %v", code, viaConfig.DamagedCount, err)
	}

	// Subsets: the buckets 1/3..3/3 together hash every blob once, and
	// references are checked in each.
	hashed, missing := 0, 0
	for n := 1; n <= 3; n++ {
		code, out, _ := run(t, "scrub", "--data", data, "--read-data-subset", fmt.Sprintf("%d/3", n), "-o", "json")
		var r scrub.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil || code == 0 {
			t.Fatalf("subset %d/3: code %d, %v", n, code, err)
		}
		hashed += r.BlobsHashed - r.Manifests
		if slices.ContainsFunc(r.Problems, func(p scrub.Problem) bool { return p.Digest == d(2) }) {
			missing++
		}
	}
	if missing != 3 {
		t.Errorf("the deleted blob was reported in %d of 3 subsets, want all", missing)
	}
	if hashed != rep.BlobsHashed-rep.Manifests {
		t.Errorf("subsets hashed %d non-manifest blobs, the full scrub %d", hashed, rep.BlobsHashed-rep.Manifests)
	}
}

// TestCorruptBlobNeverServed: a blob whose bytes no longer match its
// digest is refused on GET (HEAD still answers from metadata).
func TestCorruptBlobNeverServed(t *testing.T) {
	data := t.TempDir()
	_, base := mtServer(t, data)
	layer := mtRandom(50000)
	mtPush(t, base, "verify/a", "v1", []byte(`{"v":1}`), layer)
	d := digest.FromBytes(layer)
	url := base + "/v2/verify/a/blobs/" + d.String()
	if code, body := mtDo(t, http.MethodGet, url, nil, ""); code != http.StatusOK || !bytes.Equal(body, layer) {
		t.Fatalf("GET intact blob: %d", code)
	}
	p := mtBlobPath(data, d)
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0x80
	time.Sleep(20 * time.Millisecond) // see TestScrubFindsInjectedDamage
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	code, body := mtDo(t, http.MethodGet, url, nil, "")
	if code == http.StatusOK || bytes.Equal(body, b) {
		t.Fatalf("corrupted blob served: %d (%d bytes)", code, len(body))
	}
	if code, _ := mtDo(t, http.MethodHead, url, nil, ""); code != http.StatusOK {
		t.Fatalf("HEAD of a corrupted blob: %d", code)
	}
	// Once repaired (same bytes back), it is served again.
	if err := os.WriteFile(p, layer, 0o640); err != nil {
		t.Fatal(err)
	}
	if code, body := mtDo(t, http.MethodGet, url, nil, ""); code != http.StatusOK || !bytes.Equal(body, layer) {
		t.Fatalf("GET repaired blob: %d", code)
	}
}

// TestGCCommandOffline: `custody gc --data` refuses a directory a server
// uses (pointing at --server), and collects an unlinked blob once it is
// free; --dry-run deletes nothing.
func TestGCCommandOffline(t *testing.T) {
	data := t.TempDir()
	srv, base := mtServer(t, data)
	b := mtRandom(3000)
	d := digest.FromBytes(b)
	if code, body := mtDo(t, http.MethodPost, base+"/v2/g/blobs/uploads/?digest="+d.String(), b, "application/octet-stream"); code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, body)
	}
	if code, _ := mtDo(t, http.MethodDelete, base+"/v2/g/blobs/"+d.String(), nil, ""); code != http.StatusAccepted {
		t.Fatalf("unlink: %d", code)
	}
	code, _, errs := run(t, "gc", "--data", data)
	if code == 0 || !bytes.Contains([]byte(errs), []byte("--server")) {
		t.Fatalf("gc on a directory in use: %d %s", code, errs)
	}
	srv.Close()
	for _, dry := range []bool{true, false} {
		args := []string{"gc", "--data", data, "--grace", "0s", "-o", "json"}
		if dry {
			args = append(args, "--dry-run")
		}
		code, out, errs := run(t, args...)
		if code != 0 {
			t.Fatalf("gc %v: %d %s", args, code, errs)
		}
		var rep struct {
			DryRun bool `json:"dryRun"`
			Blobs  []struct {
				Digest digest.Digest `json:"digest"`
			} `json:"blobs"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.DryRun != dry || len(rep.Blobs) != 1 || rep.Blobs[0].Digest != d {
			t.Fatalf("gc %v: %v %s", args, err, out)
		}
		_, err := os.Stat(mtBlobPath(data, d))
		if dry && err != nil {
			t.Fatal("dry run deleted the blob")
		}
		if !dry && err == nil {
			t.Fatal("gc kept the unlinked blob")
		}
	}
}
