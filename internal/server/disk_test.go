package server_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/custody-dev/custody/internal/reserve"
	"github.com/custody-dev/custody/internal/testserver"
)

// smallDisk mounts a tmpfs of size bytes for the test, or skips it when
// mounting is not allowed (not root, no CAP_SYS_ADMIN).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	free, err := reserve.Statfs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return free
}

// tryPush uploads content monolithically and returns its digest and the
// response.
func tryPush(t *testing.T, base, repo string, content []byte) (string, *http.Response, string) {
	t.Helper()
	d := fmt.Sprintf("sha256:%x", sha256.Sum256(content))
	resp, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/?digest="+d, "application/octet-stream", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return d, resp, string(b)
}

// call is do with an optional Content-Type.
func call(t *testing.T, method, url, ctype string, body []byte) (int, string) {
	t.Helper()
	if ctype == "" {
		return do(t, method, url, body)
	}
	return do(t, method, url, body, "Content-Type", ctype)
}

// TestFullDiskRecoversThroughTheAPI: below the disk reserve, pushes are
// refused with 507 and a clear message (and store nothing); when the disk
// then fills up completely anyway, deleting a manifest and garbage
// collection still work and give the space back; /readyz and /metrics
// report the free space throughout.
func TestFullDiskRecoversThroughTheAPI(t *testing.T) {
	data := smallDisk(t, "64m")
	cfg := filepath.Join(t.TempDir(), "custody.yaml")
	if err := os.WriteFile(cfg, []byte("gc:\n  grace: 0s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const reserveBytes = 16 << 20
	srv := testserver.Start(t, testserver.Options{
		Data: data,
		Args: []string{"--config", cfg},
		Env:  []string{fmt.Sprintf("CUSTODY_DISK_RESERVE=%d", reserveBytes)},
	})
	const repo = "full/app"
	layer := make([]byte, 4<<20)
	rand.Read(layer)
	ld, resp, body := tryPush(t, srv.URL, repo, layer)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push layer = %d %s", resp.StatusCode, body)
	}
	cd, resp, body := tryPush(t, srv.URL, repo, []byte("{}"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push config = %d %s", resp.StatusCode, body)
	}
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":2},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`, cd, ld, len(layer))
	md := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(manifest)))
	if code, body := call(t, http.MethodPut, srv.URL+"/v2/"+repo+"/manifests/v1", "application/vnd.oci.image.manifest.v1+json", []byte(manifest)); code != http.StatusCreated {
		t.Fatalf("push manifest = %d %s", code, body)
	}

	// Something else fills the disk to below the reserve.
	filler := filepath.Join(data, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, freeBytes(t, data)-8<<20); err != nil {
		t.Fatal(err)
	}
	other := make([]byte, 1<<20)
	rand.Read(other)
	od, resp, body := tryPush(t, srv.URL, repo, other)
	if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(body, `"code":"DENIED"`) || !strings.Contains(body, "insufficient storage") {
		t.Fatalf("push below the reserve = %d %s; want 507 DENIED insufficient storage", resp.StatusCode, body)
	}
	t.Logf("refusal: %s", strings.TrimSpace(body))
	if code, _ := call(t, http.MethodHead, srv.URL+"/v2/"+repo+"/blobs/"+od, "", nil); code != http.StatusNotFound {
		t.Fatalf("refused blob: HEAD = %d, want 404", code)
	}
	if code, body := call(t, http.MethodPut, srv.URL+"/v2/"+repo+"/manifests/v2", "application/vnd.oci.image.manifest.v1+json", []byte(manifest)); code != http.StatusInsufficientStorage {
		t.Fatalf("tagging below the reserve = %d %s", code, body)
	}
	if code, _ := call(t, http.MethodGet, srv.URL+"/v2/"+repo+"/manifests/v2", "", nil); code != http.StatusNotFound {
		t.Fatalf("refused tag exists: GET = %d", code)
	}
	code, ready := call(t, http.MethodGet, srv.URL+"/readyz", "", nil)
	if code != http.StatusOK || !strings.Contains(ready, "disk_free_bytes ") || !strings.Contains(ready, "uploads refused") {
		t.Fatalf("/readyz below the reserve = %d %q", code, ready)
	}
	_, m := call(t, http.MethodGet, srv.URL+"/metrics", "", nil)
	if free := metric(m, "custody_disk_free_bytes"); free <= 0 || free >= reserveBytes {
		t.Fatalf("custody_disk_free_bytes = %v below the reserve", free)
	}
	if r := metric(m, "custody_disk_reserve_bytes"); r != reserveBytes {
		t.Fatalf("custody_disk_reserve_bytes = %v", r)
	}

	// Then the disk fills up completely (past the ballast the server
	// keeps for this).
	if _, err := os.Stat(filepath.Join(data, reserve.BallastName)); err != nil {
		t.Fatalf("no ballast kept in the data directory: %v", err)
	}
	fill := make([]byte, 64<<10)
	for {
		if _, err := f.Write(fill); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(fill[:n]); err != nil {
				break
			}
		}
	}
	t.Logf("free before the delete: %d bytes", freeBytes(t, data))
	if code, body := call(t, http.MethodDelete, srv.URL+"/v2/"+repo+"/manifests/"+md, "", nil); code != http.StatusAccepted {
		t.Fatalf("DELETE manifest on a full disk = %d %s\n%s", code, body, srv.Logs())
	}
	if code, _ := call(t, http.MethodGet, srv.URL+"/v2/"+repo+"/manifests/v1", "", nil); code != http.StatusNotFound {
		t.Fatalf("deleted manifest: GET = %d", code)
	}
	for _, d := range []string{ld, cd} {
		if code, body := call(t, http.MethodDelete, srv.URL+"/v2/"+repo+"/blobs/"+d, "", nil); code != http.StatusAccepted {
			t.Fatalf("DELETE blob on a full disk = %d %s", code, body)
		}
	}
	before := freeBytes(t, data)
	code, body = call(t, http.MethodPost, srv.URL+"/api/v1/gc", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GC on a full disk = %d %s", code, body)
	}
	if code, _ := call(t, http.MethodHead, srv.URL+"/v2/"+repo+"/blobs/"+ld, "", nil); code != http.StatusNotFound {
		t.Fatalf("GC left the layer: HEAD = %d (%s)", code, body)
	}
	// The layer's space comes back, less the little the metadata store
	// wrote meanwhile.
	if after := freeBytes(t, data); after < before+int64(len(layer))-64<<10 {
		t.Fatalf("GC freed %d bytes, want about the %d-byte layer", after-before, len(layer))
	}

	// With the filler gone, pushes work again and the ballast is back.
	f.Close()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, resp, body := tryPush(t, srv.URL, repo, other); resp.StatusCode != http.StatusCreated {
		t.Fatalf("push after freeing space = %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(filepath.Join(data, reserve.BallastName)); err != nil {
		t.Fatalf("the ballast was not put back: %v", err)
	}
}

// metric returns the value of an unlabelled metric in Prometheus text, or
// -1 when it is absent.
func metric(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
