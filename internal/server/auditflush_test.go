package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
)

// TestChangeCostsOneFlush: with the audit log on (the default), an
// acknowledged change's entries are stored in the transaction of its
// (last) metadata write, which commits durably: a blob push, a manifest
// push and a tag deletion each cost one flushing commit and no other
// transaction, except that the closing PUT of an upload session first
// links the blob with a deferred commit that the flushing one flushes.
// With the audit log off, the change's own commits flush.
func TestChangeCostsOneFlush(t *testing.T) {
	for _, auditOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("audit=%v", auditOn), func(t *testing.T) {
			_, hs, counts := embeddedCounting(t, auditOn)
			do := func(method, path, ctype string, body []byte, want int) *http.Response {
				t.Helper()
				req, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
				if ctype != "" {
					req.Header.Set("Content-Type", ctype)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Fatalf("%s %s: %s, want %d", method, path, resp.Status, want)
				}
				return resp
			}
			// change runs one request and checks the commits it made.
			// deferredWant is the change's commits before its last write
			// with the audit log on.
			change := func(name string, deferredWant uint64, req func()) {
				t.Helper()
				f0, d0 := counts.Commits()
				req()
				f1, d1 := counts.Commits()
				flushed, deferred := f1-f0, d1-d0
				switch {
				case auditOn && (flushed != 1 || deferred != deferredWant):
					t.Errorf("%s: %d flushing and %d deferred commits; want 1 flushing (the change's, with its entries) and %d deferred", name, flushed, deferred, deferredWant)
				case !auditOn && (flushed == 0 || deferred != 0):
					t.Errorf("%s without audit log: %d flushing and %d deferred commits; want only flushing ones", name, flushed, deferred)
				}
			}

			const repo = "flush/r"
			cfgBlob := []byte(`{"architecture":"amd64","os":"linux"}`)
			cd := digest.FromBytes(cfgBlob)
			change("monolithic blob push", 0, func() {
				do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+cd.String(), "application/octet-stream", cfgBlob, http.StatusCreated)
			})
			layer := bytes.Repeat([]byte("layer"), 1000)
			ld := digest.FromBytes(layer)
			resp := do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
			loc := resp.Header.Get("Location")
			resp = do(http.MethodPatch, loc, "application/octet-stream", layer, http.StatusAccepted)
			loc = resp.Header.Get("Location")
			change("closing PUT of an upload session", 1, func() {
				do(http.MethodPut, loc+"?digest="+ld.String(), "", nil, http.StatusCreated)
			})
			doc, _ := json.Marshal(map[string]any{
				"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
				"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfgBlob)},
				"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}},
			})
			change("manifest push by tag", 0, func() {
				do(http.MethodPut, "/v2/"+repo+"/manifests/v1", "application/vnd.oci.image.manifest.v1+json", doc, http.StatusCreated)
			})
			change("tag deletion", 0, func() {
				do(http.MethodDelete, "/v2/"+repo+"/manifests/v1", "", nil, http.StatusAccepted)
			})
			if !auditOn {
				return
			}
			// Every change is in the log.
			code, body, _ := get(t, hs.URL+"/api/v1/audit/entries?start=0&end=100")
			var got tlog.EntriesResponse
			if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil {
				t.Fatalf("audit entries: %d %v", code, err)
			}
			var actions []string
			for _, e := range got.Entries {
				ent, err := tlog.ParseEntry([]byte(e.Entry))
				if err != nil {
					t.Fatal(err)
				}
				if ent.Repo == repo {
					actions = append(actions, ent.Action)
				}
			}
			want := []string{"blob.upload", "blob.upload", "manifest.put", "tag.set", "tag.delete"}
			if fmt.Sprint(actions) != fmt.Sprint(want) {
				t.Fatalf("audit entries of %s: %v, want %v", repo, actions, want)
			}
		})
	}
}

// TestUploadSessionFlushes: the requests of a blob upload session that
// acknowledge no blob (POST starting it, PATCH adding a chunk) make no
// flush at all, neither of the metadata database (their bookkeeping is
// written under meta.FlushLater) nor of the blob store (an upload's bytes
// are fsync'd when it is committed); the closing PUT flushes the blob
// (its file and directory) and its metadata (with the audit log's commit,
// or its own without it) before it answers.
func TestUploadSessionFlushes(t *testing.T) {
	for _, auditOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("audit=%v", auditOn), func(t *testing.T) {
			st, hs, commits := embeddedCounting(t, auditOn)
			syncs, ok := st.Blobs.(interface{ Syncs() uint64 })
			if !ok {
				t.Fatalf("embedded blob store %T does not count its fsyncs", st.Blobs)
			}
			// request runs one request and returns the response with the
			// flushes it cost: flushing metadata commits and blob fsyncs.
			request := func(method, path string, body []byte, want int) (resp *http.Response, flushed, blobSyncs uint64) {
				t.Helper()
				f0, _ := commits.Commits()
				s0 := syncs.Syncs()
				req, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
				if body != nil {
					req.Header.Set("Content-Type", "application/octet-stream")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Fatalf("%s %s: %s, want %d", method, path, resp.Status, want)
				}
				f1, _ := commits.Commits()
				return resp, f1 - f0, syncs.Syncs() - s0
			}
			const repo = "flush/session"
			layer := bytes.Repeat([]byte("chunk"), 1000)
			ld := digest.FromBytes(layer)

			resp, flushed, blobSyncs := request(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, http.StatusAccepted)
			if flushed != 0 || blobSyncs != 0 {
				t.Errorf("POST starting a session: %d flushing commits and %d blob fsyncs, want none", flushed, blobSyncs)
			}
			loc := resp.Header.Get("Location")
			for i, chunk := range [][]byte{layer[:3000], layer[3000:]} {
				resp, flushed, blobSyncs = request(http.MethodPatch, loc, chunk, http.StatusAccepted)
				if flushed != 0 || blobSyncs != 0 {
					t.Errorf("PATCH of chunk %d: %d flushing commits and %d blob fsyncs, want none", i, flushed, blobSyncs)
				}
				loc = resp.Header.Get("Location")
			}
			_, flushed, blobSyncs = request(http.MethodPut, loc+"?digest="+ld.String(), nil, http.StatusCreated)
			// The file, the directory it is renamed into, and that
			// directory's entry in its parent when it is new.
			if blobSyncs < 2 || blobSyncs > 3 {
				t.Errorf("closing PUT: %d blob fsyncs, want 2 or 3", blobSyncs)
			}
			if flushed == 0 || (auditOn && flushed != 1) {
				t.Errorf("closing PUT: %d flushing commits, want 1 (audit on) or at least 1", flushed)
			}
			_, _, _ = request(http.MethodHead, "/v2/"+repo+"/blobs/"+ld.String(), nil, http.StatusOK)
		})
	}
}

// commitCounter is the embedded metadata store's count of its commits.
type commitCounter interface {
	Commits() (flushed, deferred uint64)
}

// embeddedCounting serves a fresh embedded custody (auth off, the audit
// log on or off) and returns its stores, its server and the metadata
// store's commit counter.
func embeddedCounting(t *testing.T, auditOn bool) (*store.Set, *httptest.Server, commitCounter) {
	t.Helper()
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = t.TempDir()
	cfg.Audit.DisableUnsafe = !auditOn
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.NewWith(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), st)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	counts, ok := st.Meta.(commitCounter)
	if !ok {
		t.Fatalf("embedded metadata store %T does not count its commits", st.Meta)
	}
	return st, hs, counts
}
