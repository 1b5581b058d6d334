package server_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/internal/tlog"
)

func TestAuditAPI(t *testing.T) {
	hs := newInProcess(t)
	for _, repo := range []string{"team/a", "team/b", "team/a"} {
		req, _ := http.NewRequest(http.MethodPut, hs.URL+"/v2/"+repo+"/manifests/latest", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Post(hs.URL+"/api/v1/audit/checkpoint", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST checkpoint: %s", resp.Status)
	}
	_, key, _ := get(t, hs.URL+"/api/v1/audit/key")
	code, note, _ := get(t, hs.URL+"/api/v1/audit/checkpoint")
	if code != http.StatusOK {
		t.Fatalf("GET checkpoint: %d", code)
	}
	cp, err := tlog.OpenCheckpoint(key, []byte(note))
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 3 {
		t.Fatalf("checkpoint size %d, want 3", cp.Size)
	}

	var entries tlog.EntriesResponse
	_, body, _ := get(t, hs.URL+"/api/v1/audit/entries?start=0&end=10")
	if err := json.Unmarshal([]byte(body), &entries); err != nil || len(entries.Entries) != 3 {
		t.Fatalf("entries: %v\n%s", err, body)
	}
	var hashes [][]byte
	for _, e := range entries.Entries {
		if _, err := tlog.ParseEntry([]byte(e.Entry)); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, tlog.LeafHash([]byte(e.Entry)))
	}
	if !bytes.Equal(tlog.RootFromLeafHashes(hashes), cp.Root) {
		t.Fatal("entries do not hash to the checkpoint root")
	}

	var p tlog.ProofResponse
	_, body, _ = get(t, hs.URL+"/api/v1/audit/proof/inclusion?size=3&hash="+hex.EncodeToString(hashes[1]))
	if err := json.Unmarshal([]byte(body), &p); err != nil || p.Index == nil || *p.Index != 1 {
		t.Fatalf("inclusion by hash: %v\n%s", err, body)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 1, 3, hashes[1], p.Hashes, cp.Root); err != nil {
		t.Fatal(err)
	}
	_, body, _ = get(t, hs.URL+"/api/v1/audit/proof/consistency?from=1&to=3")
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 1, 3, p.Hashes, hashes[0], cp.Root); err != nil {
		t.Fatal(err)
	}

	_, body, _ = get(t, hs.URL+"/api/v1/audit/search?repo=team/a&actor=anonymous&since=2000-01-01T00:00:00Z")
	if err := json.Unmarshal([]byte(body), &entries); err != nil || len(entries.Entries) != 2 || entries.Entries[1].Index != 2 {
		t.Fatalf("search: %v\n%s", err, body)
	}
	if code, _, _ := get(t, hs.URL+"/api/v1/audit/proof/inclusion?index=5&size=3"); code != http.StatusBadRequest {
		t.Fatalf("out-of-range proof: %d", code)
	}
}
