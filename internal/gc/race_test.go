package gc_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/gc"
	"github.com/custody-dev/custody/internal/testserver"
)

// startGCServer runs a real server with no grace period, so that only the
// locks and transactional re-checks stand between GC and a push.
func startGCServer(t *testing.T) (*testserver.Server, client) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "custody.yaml")
	if err := os.WriteFile(cfg, []byte("gc:\n  grace: 0s\n  untaggedManifests: [\"race/**\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Args: []string{"--config", cfg}})
	return srv, client{t: t, base: srv.URL}
}

func (c client) gc(dryRun bool) (*gc.Report, error) {
	path := "/api/v1/gc"
	if dryRun {
		path += "?dryRun=true"
	}
	resp, body, err := c.do(http.MethodPost, path, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("gc: %s: %s", resp.Status, body)
	}
	var rep gc.Report
	return &rep, json.Unmarshal(body, &rep)
}

func blobFile(data string, d digest.Digest) string {
	return filepath.Join(data, "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestGCRacingPushes pushes images (monolithic and chunked uploads, a
// layer shared by every pusher, garbage blobs unlinked right after upload)
// from several clients while GC runs in a loop with no grace period. Every
// acknowledged push must stay fully pullable; the garbage must go.
func TestGCRacingPushes(t *testing.T) {
	srv, c := startGCServer(t)
	shared := randomBytes(4096)
	type pushed struct {
		repo, tag string
		d         digest.Digest
	}
	var (
		mu      sync.Mutex
		acked   []pushed
		garbage []digest.Digest
		wg      sync.WaitGroup
		stop    = make(chan struct{})
	)
	deadline := time.Now().Add(4 * time.Second)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("race/w%d", w)
			for i := 0; time.Now().Before(deadline); i++ {
				chunked := i%2 == 1
				// Garbage: uploaded, then unlinked.
				g := randomBytes(1000 + i)
				gd, err := c.pushBlob(repo, g, chunked)
				if err != nil {
					t.Errorf("garbage upload: %v", err)
					return
				}
				if resp, body, err := c.do(http.MethodDelete, "/v2/"+repo+"/blobs/"+gd.String(), nil); err != nil || resp.StatusCode != http.StatusAccepted {
					t.Errorf("unlink garbage: %v %v %s", err, resp, body)
					return
				}
				mu.Lock()
				garbage = append(garbage, gd)
				mu.Unlock()

				layer := randomBytes(2000 + i)
				config := []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))
				ok := true
				for _, b := range [][]byte{shared, layer, config} {
					if _, err := c.pushBlob(repo, b, chunked); err != nil {
						t.Logf("blob upload refused (not acknowledged): %v", err)
						ok = false
						break
					}
				}
				if !ok {
					continue
				}
				// The HEAD-then-PUT pattern: the client checks that the
				// blobs exist, then refers to them.
				for _, b := range [][]byte{shared, layer, config} {
					resp, _, err := c.do(http.MethodHead, "/v2/"+repo+"/blobs/"+digest.FromBytes(b).String(), nil)
					if err != nil || resp.StatusCode != http.StatusOK {
						t.Errorf("HEAD of an uploaded blob: %v %v", err, resp)
						return
					}
				}
				body := manifest(config, shared, layer)
				tag := fmt.Sprintf("t%d", i)
				resp, rb, err := c.putManifest(repo, tag, body)
				if err != nil {
					t.Errorf("put manifest: %v", err)
					return
				}
				if resp.StatusCode != http.StatusCreated {
					t.Errorf("put manifest %s:%s: %s: %s", repo, tag, resp.Status, rb)
					return
				}
				// An untagged manifest pushed by digest: collectable.
				untagged := manifest([]byte(fmt.Sprintf(`{"untagged":%d}`, i)), shared)
				if _, err := c.pushBlob(repo, []byte(fmt.Sprintf(`{"untagged":%d}`, i)), false); err == nil {
					_, _, _ = c.putManifest(repo, digest.FromBytes(untagged).String(), untagged)
				}
				mu.Lock()
				acked = append(acked, pushed{repo, tag, digest.FromBytes(body)})
				mu.Unlock()
			}
		}()
	}
	var gcRuns, blobsDeleted int
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := c.gc(false)
			if err != nil {
				t.Errorf("gc: %v", err)
				return
			}
			gcRuns++
			blobsDeleted += len(rep.Blobs)
		}
	}()
	wg.Wait()
	close(stop)
	<-gcDone
	if t.Failed() {
		t.Logf("server logs:\n%s", srv.Logs())
		return
	}
	t.Logf("%d pushes acknowledged, %d gc runs deleted %d blobs concurrently", len(acked), gcRuns, blobsDeleted)
	if len(acked) < 8 || gcRuns < 2 {
		t.Fatalf("too little concurrency to mean anything: %d pushes, %d gc runs", len(acked), gcRuns)
	}
	for _, p := range acked {
		if err := c.pullOK(p.repo, p.tag, p.d); err != nil {
			t.Errorf("acknowledged push lost: %v", err)
		}
	}

	// Dry run: reports, deletes nothing.
	left := 0
	for _, g := range garbage {
		if exists(blobFile(srv.Data, g)) {
			left++
		}
	}
	dry, err := c.gc(true)
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || len(dry.Blobs) < left {
		t.Errorf("dry run reported %d blobs, %d garbage blobs remain", len(dry.Blobs), left)
	}
	for _, b := range dry.Blobs {
		if !exists(blobFile(srv.Data, b.Digest)) {
			t.Errorf("dry run deleted %s", b.Digest)
		}
	}
	if _, err := c.gc(false); err != nil {
		t.Fatal(err)
	}
	for _, g := range garbage {
		if exists(blobFile(srv.Data, g)) {
			t.Errorf("garbage blob %s survived GC", g)
		}
	}
	for _, p := range acked {
		if err := c.pullOK(p.repo, p.tag, p.d); err != nil {
			t.Errorf("after final gc: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(srv.Data, "blobs")); err != nil {
		t.Fatal(err)
	}
}

// TestHeadThenPut: a blob that a client saw with HEAD survives GC until
// the manifest naming it is pushed. A blob unlinked meanwhile is collected,
// and the manifest PUT then fails cleanly with MANIFEST_BLOB_UNKNOWN
// instead of recording a manifest whose content is gone.
func TestHeadThenPut(t *testing.T) {
	srv, c := startGCServer(t)
	repo := "race/head"
	layer, config := randomBytes(5000), []byte(`{"head":1}`)
	for _, b := range [][]byte{layer, config} {
		if _, err := c.pushBlob(repo, b, false); err != nil {
			t.Fatal(err)
		}
	}
	resp, _, err := c.do(http.MethodHead, "/v2/"+repo+"/blobs/"+digest.FromBytes(layer).String(), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %v %v", err, resp)
	}
	rep, err := c.gc(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rep.Blobs {
		if b.Digest == digest.FromBytes(layer) {
			t.Fatal("GC deleted a blob linked into a repository")
		}
	}
	body := manifest(config, layer)
	resp, rb, err := c.putManifest(repo, "v1", body)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest after HEAD and GC: %v %v %s", err, resp, rb)
	}
	if err := c.pullOK(repo, "v1", digest.FromBytes(body)); err != nil {
		t.Fatal(err)
	}

	// Unlinked, then collected: the PUT must fail, not dangle.
	other := randomBytes(3000)
	od, err := c.pushBlob(repo, other, true)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _, _ := c.do(http.MethodDelete, "/v2/"+repo+"/blobs/"+od.String(), nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("unlink: %v", resp.Status)
	}
	if _, err := c.gc(false); err != nil {
		t.Fatal(err)
	}
	if exists(blobFile(srv.Data, od)) {
		t.Fatal("unlinked blob not collected")
	}
	body2 := manifest(config, other)
	resp, rb, _ = c.putManifest(repo, "v2", body2)
	if resp.StatusCode != http.StatusBadRequest || !json.Valid(rb) || !containsCode(rb, "MANIFEST_BLOB_UNKNOWN") {
		t.Fatalf("PUT referencing a collected blob: %s %s", resp.Status, rb)
	}
	// Re-uploading makes it pushable again.
	if _, err := c.pushBlob(repo, other, false); err != nil {
		t.Fatal(err)
	}
	if resp, rb, _ = c.putManifest(repo, "v2", body2); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT after re-upload: %s %s", resp.Status, rb)
	}
	if err := c.pullOK(repo, "v2", digest.FromBytes(body2)); err != nil {
		t.Fatal(err)
	}
}

func containsCode(body []byte, code string) bool {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	for _, x := range e.Errors {
		if x.Code == code {
			return true
		}
	}
	return false
}
