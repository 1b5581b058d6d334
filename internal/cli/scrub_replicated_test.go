package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/scrub"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/testserver"
)

// TestScrubAndGCOnReplicatedStore: `custody scrub --config` and `custody
// gc --config` open a PostgreSQL + S3 store (the one docs/deploy.md says
// to scrub after a database restore) while a server runs on it; scrub
// reports a blob missing from the bucket, and GC deletes an unlinked one.
func TestScrubAndGCOnReplicatedStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	rep := testserver.NewReplicated(t, "scrub")
	for _, kv := range rep.CredEnv() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	srv := testserver.Start(t, testserver.Options{Data: rep.Data, Env: rep.Env()})
	layers := [][]byte{mtRandom(7000), mtRandom(7001)}
	mtPush(t, srv.URL, "scrub/r", "v1", []byte(`{"r":1}`), layers...)

	code, out, errs := run(t, "scrub", "--config", rep.Config)
	if code != 0 || !strings.Contains(out, "0 damaged or missing") {
		t.Fatalf("scrub of a healthy replicated store: exit %d\n%s%s", code, out, errs)
	}

	// Remove a layer from the bucket behind custody's back.
	cfg, err := config.Load(rep.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	view, err := store.OpenView(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()
	gone := digest.FromBytes(layers[1])
	if err := view.Blobs.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	code, out, errs = run(t, "scrub", "--config", rep.Config, "-o", "json")
	if code == 0 {
		t.Fatalf("scrub exited 0 with a blob missing from the bucket:\n%s", out)
	}
	var r scrub.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("scrub -o json: %v\n%s%s", err, out, errs)
	}
	found := false
	for _, p := range r.Problems {
		if p.Digest == gone && strings.Join(p.Repos, ",") == "scrub/r" {
			found = true
		}
	}
	if !found || r.DamagedCount != 1 {
		t.Fatalf("scrub did not report %s missing in scrub/r (and only it): %+v", gone, r)
	}

	// GC, offline on the shared store while the server runs (no lock:
	// replicas share it), deletes an unlinked blob.
	b := mtRandom(3000)
	d := digest.FromBytes(b)
	if code, body := mtDo(t, http.MethodPost, srv.URL+"/v2/g/blobs/uploads/?digest="+d.String(), b, "application/octet-stream"); code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, body)
	}
	if code, _ := mtDo(t, http.MethodDelete, srv.URL+"/v2/g/blobs/"+d.String(), nil, ""); code != http.StatusAccepted {
		t.Fatalf("unlink: %d", code)
	}
	code, out, errs = run(t, "gc", "--config", rep.Config, "--grace", "0s", "-o", "json")
	if code != 0 {
		t.Fatalf("gc --config on a replicated store: exit %d %s", code, errs)
	}
	var g struct {
		Blobs []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"blobs"`
	}
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("gc -o json: %v\n%s", err, out)
	}
	deleted := false
	for _, x := range g.Blobs {
		deleted = deleted || x.Digest == d
	}
	if !deleted {
		t.Fatalf("gc did not delete the unlinked blob %s: %s", d, out)
	}
	if _, err := view.Blobs.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("unlinked blob still in the bucket after gc: %v", err)
	}
	// The linked layer is still there.
	if _, err := view.Blobs.Stat(ctx, digest.FromBytes(layers[0])); err != nil {
		t.Fatalf("gc removed a live layer: %v", err)
	}
}
