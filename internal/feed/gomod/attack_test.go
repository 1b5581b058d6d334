package gomod

import (
	"net/http"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/feed/feedtest"
)

// TestPublishZipDirectoryBomb: golang.org/x/mod/zip.CheckZip lists a
// zip's whole directory, which archive/zip keeps in memory at about five
// times its size, so a 500 MiB publish of bare directory records held
// gigabytes. The directory is read with feed.OpenZip's budget first: a
// 400 naming the directory, and nothing stored.
func TestPublishZipDirectoryBomb(t *testing.T) {
	srv := handler(t)
	resp, out := call(t, "PUT", srv.URL+"/go/f/example.test/mod/@v/v1.0.0.zip", feedtest.BareZipDirectory(1_000_000))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(out, "directory is larger than") || !strings.Contains(out, "nothing was stored") {
		t.Errorf("publish: %d %s; want 400 naming the directory", resp.StatusCode, out)
	}
	if resp, out := call(t, "GET", srv.URL+"/go/f/example.test/mod/@v/list", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("@v/list after the refusal: %d %s", resp.StatusCode, out)
	}
}
