package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/custody-dev/custody/internal/testserver"
)

// TestManifestDamagedInPlaceNotServed: a manifest's bytes are checked
// against its digest as they are served. A rewrite in place that keeps the
// file's size and modification time (which the blob store's verified
// attribute records) is refused with a 500 that carries none of the
// damaged bytes, and the store is left as it was.
func TestManifestDamagedInPlaceNotServed(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	const repo = "team/app"
	m, d, _ := image(t, srv.URL, repo, "damaged")
	if code, body := putManifest(t, srv.URL, repo, "v1", m); code != http.StatusCreated {
		t.Fatalf("put manifest: %d %s", code, body)
	}
	url := fmt.Sprintf("%s/v2/%s/manifests/%s", srv.URL, repo, d)
	if code, body := do(t, http.MethodGet, url, nil, "Accept", manifestType); code != http.StatusOK || body != string(m) {
		t.Fatalf("GET manifest: %d %q", code, body)
	}
	p := filepath.Join(srv.Data, "blobs", "sha256", d.Encoded()[:2], d.Encoded())
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(m, []byte("schemaVersion"), []byte("DAMAGEDersion"), 1)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bad, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	code, body := do(t, http.MethodGet, url, nil, "Accept", manifestType)
	if code != http.StatusInternalServerError || bytes.Contains([]byte(body), []byte("DAMAGED")) {
		t.Fatalf("GET of a damaged manifest: %d %q, want 500 without its content", code, body)
	}
	// Nothing changed: the file and the tag are as they were.
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, bad) {
		t.Fatalf("damaged file changed: %v", err)
	}
	if got := resolve(t, srv.URL, repo, "v1"); got != d.String() {
		t.Fatalf("tag v1 resolves to %s, want %s", got, d)
	}
}
