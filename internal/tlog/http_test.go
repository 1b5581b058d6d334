package tlog_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/internal/tlog"
)

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v\n%s", url, err, b)
		}
	}
	return resp.StatusCode
}

// TestVerifyEndpoint: GET /api/v1/audit/verify runs Verify over the
// stored log with the log's key: 404 before any checkpoint, OK over an
// intact log, and the edited entry named once the store is tampered with.
func TestVerifyEndpoint(t *testing.T) {
	dir := t.TempDir()
	l, st := openLog(t, dir)
	t.Cleanup(func() { l.Close(); st.Close() })
	mux := http.NewServeMux()
	(&tlog.Handler{Log: l}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	for i := range 30 {
		l.Append(entry(i))
	}
	l.Flush()
	if code := getJSON(t, srv.URL+"/api/v1/audit/verify", nil); code != http.StatusNotFound {
		t.Fatalf("verify without a checkpoint: %d, want 404", code)
	}
	if _, err := l.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Append(entry(30))
	l.Flush()
	var v tlog.VerifyResponse
	if code := getJSON(t, srv.URL+"/api/v1/audit/verify", &v); code != 200 || !v.OK || v.Size != 30 || v.Uncovered != 1 || len(v.Root) != 32 || v.Origin != "custody/test" || v.TrustOnFirstUse {
		t.Fatalf("intact log: %d %+v", code, v)
	}
	execSQL(t, dir, `UPDATE tlog_leaves SET entry = replace(entry, 'anonymous', 'mallory') WHERE idx = 12`)
	v = tlog.VerifyResponse{}
	getJSON(t, srv.URL+"/api/v1/audit/verify", &v)
	if v.OK || len(v.Problems) == 0 || v.Problems[0].Kind != tlog.ProblemEntry || v.Problems[0].Index == nil || *v.Problems[0].Index != 12 {
		t.Fatalf("tampered log: %+v", v)
	}
}

// TestProofsOfEverySize grows a log one entry at a time to 70 and signs a
// checkpoint of each size (POST /api/v1/audit/checkpoint). At each size it
// checks the inclusion proofs of the entries after the last multiple of
// 16 (whose proofs need the lowest levels at the log's end), of the first
// and a middle one, and the consistency proofs from the previous size and
// those around the last multiple of 16; at the end, the consistency proof
// from every checkpoint. (Every pair is a few thousand requests: under
// -race, minutes.) Each proof, as served, must verify against the signed
// checkpoints with transparency-dev's proof package: levels 1 to 3 of the
// tree are computed from the level-0 nodes (tlog.Derived).
func TestProofsOfEverySize(t *testing.T) {
	l, srv := servedLog(t)

	const n = 70
	roots := make([][]byte, n+1) // by size, from the signed checkpoints
	leafHashes := make([][]byte, n)
	inclusion := func(i, size uint64) {
		t.Helper()
		var p tlog.ProofResponse
		if code := getJSON(t, fmt.Sprintf("%s/api/v1/audit/proof/inclusion?index=%d&size=%d", srv.URL, i, size), &p); code != 200 {
			t.Fatalf("inclusion proof of %d in %d: %d", i, size, code)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, leafHashes[i], p.Hashes, roots[size]); err != nil {
			t.Fatalf("inclusion proof of %d in the checkpoint of size %d: %v", i, size, err)
		}
		if !bytes.Equal(p.Root, roots[size]) || p.LeafHash != hex.EncodeToString(leafHashes[i]) {
			t.Fatalf("inclusion proof of %d in %d names root %x and leaf %s", i, size, p.Root, p.LeafHash)
		}
	}
	consistency := func(from, to uint64) {
		t.Helper()
		var p tlog.ProofResponse
		if code := getJSON(t, fmt.Sprintf("%s/api/v1/audit/proof/consistency?from=%d&to=%d", srv.URL, from, to), &p); code != 200 {
			t.Fatalf("consistency proof %d -> %d: %d", from, to, code)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, to, p.Hashes, roots[from], roots[to]); err != nil {
			t.Fatalf("consistency proof %d -> %d between the checkpoints: %v", from, to, err)
		}
	}
	for size := uint64(1); size <= n; size++ {
		e := entry(int(size)).Canonical()
		if err := l.AppendRaw(e); err != nil {
			t.Fatal(err)
		}
		leafHashes[size-1] = tlog.LeafHash(e)
		resp, err := http.Post(srv.URL+"/api/v1/audit/checkpoint", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		note, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cp, err := tlog.OpenCheckpoint(l.VerifierKey(), note)
		if err != nil || cp.Size != size {
			t.Fatalf("checkpoint of size %d: %+v, %v\n%s", size, cp, err, note)
		}
		roots[size] = cp.Root
		edge := size &^ 15
		for _, i := range []uint64{0, size / 2} {
			inclusion(i, size)
		}
		for i := edge; i < size; i++ {
			inclusion(i, size)
		}
		for _, from := range []uint64{size - 1, edge - 1, edge, edge + 1} {
			if from >= 1 && from < size {
				consistency(from, size)
			}
		}
	}
	for from := uint64(1); from < n; from++ {
		consistency(from, n)
	}
}

// TestSearchParameters: action, newest-first order, the before cursor and
// limit, and clear refusals of bad values.
func TestSearchParameters(t *testing.T) {
	l, srv := servedLog(t)
	for i := range 10 {
		e := entry(i)
		if i%3 == 0 {
			e.Action = "tag.set"
		}
		l.Append(e)
	}
	l.Flush()
	idx := func(q string) string {
		t.Helper()
		var r tlog.EntriesResponse
		if code := getJSON(t, srv.URL+"/api/v1/audit/search?"+q, &r); code != 200 {
			t.Fatalf("search %s: %d", q, code)
		}
		var out []uint64
		for _, e := range r.Entries {
			out = append(out, e.Index)
		}
		return fmt.Sprint(out)
	}
	for q, want := range map[string]string{
		"action=tag.set":                       "[0 3 6 9]",
		"action=tag.set&order=newest":          "[9 6 3 0]",
		"action=tag.set&order=newest&limit=2":  "[9 6]",
		"action=tag.set&order=newest&before=6": "[3 0]",
		"order=newest&limit=3&before=5":        "[4 3 2]",
		"action=manifest.put&repo=team/app1":   "[1 8]",
		"action=nothing":                       "[]",
	} {
		if got := idx(q); got != want {
			t.Errorf("search %s = %s, want %s", q, got, want)
		}
	}
	for _, q := range []string{"order=sideways", "before=x", "before=0", "limit=0", "limit=1001", "limit=-1"} {
		if code := getJSON(t, srv.URL+"/api/v1/audit/search?"+q, nil); code != http.StatusBadRequest {
			t.Errorf("search %s: %d, want 400", q, code)
		}
	}
}

// BenchmarkAuditPage100k measures what the web interface's Audit page and
// its Verify ask of a log of 100,000 entries: the newest page, a page
// filtered by an action that matches few entries, and Verify of the
// stored log.
func BenchmarkAuditPage100k(b *testing.B) {
	ctx := context.Background()
	l, st := openLog(b, b.TempDir())
	defer st.Close()
	defer l.Close()
	appendAll(b, l, 100_000)
	rare := entry(0)
	rare.Action = "revoke"
	l.Append(rare)
	l.Flush()
	if _, err := l.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	for name, q := range map[string]tlog.Query{
		"newest":        {Newest: true, Limit: 51},
		"newest-before": {Newest: true, Limit: 51, Before: 50_000},
		"rare-action":   {Action: "revoke", Newest: true, Limit: 51},
		"repo":          {Repo: "team/app3", Newest: true, Limit: 51},
	} {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				if _, err := l.Search(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("verify", func(b *testing.B) {
		for range b.N {
			v, err := tlog.Verify(ctx, l.Source(), tlog.VerifyOptions{Key: l.VerifierKey()})
			if err != nil || !v.OK() {
				b.Fatal(err, v)
			}
		}
	})
}

// servedLog opens a log in a fresh directory and serves its API.
func servedLog(t *testing.T) (*tlog.Log, *httptest.Server) {
	t.Helper()
	l, st := openLog(t, t.TempDir())
	t.Cleanup(func() { l.Close(); st.Close() })
	mux := http.NewServeMux()
	(&tlog.Handler{Log: l}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return l, srv
}
