package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/testserver"
)

// TestUploadSessionLostInCrash: an upload session's bookkeeping and bytes
// are not flushed before the closing PUT (a crash of the machine may lose
// them; blob.Store, meta.FlushLater). Each way such a crash can leave a
// session, made here by editing the data directory of a killed server, is
// answered after the restart with BLOB_UPLOAD_UNKNOWN or a digest error,
// and the blob never becomes visible.
func TestUploadSessionLostInCrash(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	ctx := context.Background()
	const repo = "crash/session"
	content := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	half := int64(len(content) / 2)

	type session struct {
		name, loc, id string
		d             digest.Digest
	}
	// start opens a session and acknowledges its first half.
	start := func(c *crashClient, name string) session {
		t.Helper()
		body := append([]byte(name+":"), content...)
		s := session{name: name, d: digest.FromBytes(body)}
		resp, b, err := c.do(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil, 0)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: POST: %v %s", name, err, b)
		}
		s.loc, s.id = resp.Header.Get("Location"), resp.Header.Get("Docker-Upload-UUID")
		resp, b, err = c.do(ctx, http.MethodPatch, s.loc,
			map[string]string{"Content-Type": "application/octet-stream", "Content-Range": fmt.Sprintf("0-%d", half-1)},
			bytes.NewReader(body[:half]), half)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: PATCH: %v %s", name, err, b)
		}
		s.loc = resp.Header.Get("Location")
		return s
	}
	// finish sends the second half and the closing PUT, and expects the
	// session to fail with code, and the blob to stay invisible.
	finish := func(c *crashClient, s session, code string) {
		t.Helper()
		body := append([]byte(s.name+":"), content...)
		rest := body[half:]
		resp, b, err := c.do(ctx, http.MethodPut, s.loc+"?digest="+s.d.String(),
			map[string]string{"Content-Type": "application/octet-stream", "Content-Range": fmt.Sprintf("%d-%d", half, int64(len(body))-1)},
			bytes.NewReader(rest), int64(len(rest)))
		if err != nil {
			t.Fatalf("%s: closing PUT: %v", s.name, err)
		}
		if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			// The session is at an older offset: the client resends from
			// there (Range), and without the bytes it lost the digest fails.
			resp, b, err = c.do(ctx, http.MethodPut, s.loc+"?digest="+s.d.String(),
				map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(rest), int64(len(rest)))
			if err != nil {
				t.Fatalf("%s: closing PUT: %v", s.name, err)
			}
		}
		if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(string(b), code) {
			t.Errorf("%s: closing PUT after the crash: %s %s, want %s", s.name, resp.Status, b, code)
		}
		resp, _, err = c.do(ctx, http.MethodHead, "/v2/"+repo+"/blobs/"+s.d.String(), nil, nil, 0)
		if err != nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: blob after a failed session: %v %v, want 404", s.name, resp.Status, err)
		}
	}

	c := newCrashClient(srv.URL)
	rowLost := start(c, "row lost")
	bytesLost := start(c, "bytes lost")
	bytesOther := start(c, "bytes replaced")
	offsetLost := start(c, "offset lost")
	fileLost := start(c, "file lost")
	intact := start(c, "intact")
	c.close()
	srv.Kill()

	// What a crash of the machine may leave of each session.
	md, err := sqlite.Open(filepath.Join(srv.Data, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := md.DeleteUpload(ctx, rowLost.id); err != nil {
		t.Fatal(err)
	}
	if err := md.UpdateUpload(ctx, offsetLost.id, half/2); err != nil {
		t.Fatal(err)
	}
	if err := md.Close(); err != nil {
		t.Fatal(err)
	}
	file := func(s session) string { return filepath.Join(srv.Data, "uploads", s.id) }
	if err := os.Truncate(file(bytesLost), half/2); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file(bytesOther), make([]byte, half), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file(fileLost)); err != nil {
		t.Fatal(err)
	}

	srv.Restart()
	c = newCrashClient(srv.URL)
	defer c.close()
	finish(c, rowLost, "BLOB_UPLOAD_UNKNOWN")
	finish(c, bytesLost, "BLOB_UPLOAD_UNKNOWN")
	// Discarded: it stays unknown.
	if resp, b, err := c.do(ctx, http.MethodGet, bytesLost.loc, nil, nil, 0); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("bytes lost: status after the failed PUT: %v %s", err, b)
	}
	finish(c, bytesOther, "DIGEST_INVALID")
	finish(c, offsetLost, "DIGEST_INVALID")
	finish(c, fileLost, "BLOB_UPLOAD_UNKNOWN")

	// The session the crash left alone completes.
	body := append([]byte("intact:"), content...)
	resp, b, err := c.do(ctx, http.MethodPut, intact.loc+"?digest="+digest.FromBytes(body).String(),
		map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(body[half:]), int64(len(body))-half)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("intact session: closing PUT: %v %s", err, b)
	}
	if t.Failed() {
		t.Logf("server log:\n%s", tail(srv.Logs(), 4000))
	}
}
