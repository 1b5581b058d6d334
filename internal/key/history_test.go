package key

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

// TestTrustRootHistory: every change of the ring is recorded, and the
// archived trust root keeps a retired key whose files left the ring,
// keeps its window from widening again, and keeps a revoked key revoked.
func TestTrustRootHistory(t *testing.T) {
	ring, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ring.Now = func() time.Time { return clock }
	a, err := ring.Create(Ed25519, "a", []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Hour)
	b, retired, err := ring.Rotate("", "", []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	vs, err := ring.Versions()
	if err != nil || len(vs) != 2 || vs[0].Digest == vs[1].Digest {
		t.Fatalf("history after create and rotate: %d versions, %v", len(vs), err)
	}
	// Nothing changed: Archive appends nothing.
	if _, appended, err := ring.Archive(); err != nil || appended {
		t.Fatalf("Archive of an unchanged ring: appended %v, %v", appended, err)
	}

	// A's files leave the ring; its metadata is not the one to trust.
	for _, f := range []string{a.ID + ".json", a.ID + ".pub", a.ID + ".key"} {
		if err := os.Remove(ring.Path(f)); err != nil {
			t.Fatal(err)
		}
	}
	arch, appended, err := ring.Archive()
	if err != nil || !appended {
		t.Fatalf("Archive after a key left: appended %v, %v", appended, err)
	}
	if len(arch.Keys) != 2 || arch.Keys[0].ID != a.ID || arch.Keys[0].Status != Retired ||
		!arch.Keys[0].ValidFor.End.Equal(retired.NotAfter) || arch.Keys[1].ID != b.ID {
		t.Fatalf("archived trust root: %+v", arch.Keys)
	}
	if _, err := arch.KeyAt(a.ID, retired.NotAfter.Add(-time.Minute)); err != nil {
		t.Errorf("A inside its window: %v", err)
	}

	// B's window widened by hand (an earlier start) does not count.
	b.NotBefore = b.NotBefore.Add(-24 * time.Hour)
	raw, _ := json.Marshal(b)
	if err := os.WriteFile(ring.Path(b.ID+".json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if arch, _, err = ring.Archive(); err != nil {
		t.Fatal(err)
	}
	if _, err := arch.KeyAt(b.ID, b.NotBefore.Add(time.Hour)); err == nil {
		t.Error("a widened window was accepted")
	}

	// Revoked B stays revoked when its metadata says active again.
	clock = clock.Add(time.Hour)
	if _, err := ring.Revoke(b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Revoke(b.ID); err == nil {
		t.Error("revoking twice succeeded")
	}
	if err := os.WriteFile(ring.Path(b.ID+".json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if arch, _, err = ring.Archive(); err != nil {
		t.Fatal(err)
	}
	hist, err := ring.History()
	if err != nil {
		t.Fatal(err)
	}
	if len(arch.Keys) != 1 || arch.Keys[0].ID != a.ID {
		t.Fatalf("archived trust root after revoking B: %+v", arch.Keys)
	}
	if rk := RevokedKeys(hist); len(rk) != 1 || rk[0].ID != b.ID {
		t.Fatalf("revoked keys: %+v", rk)
	}
	if cur, err := ring.TrustRoot(); err != nil || len(cur.Keys) != 1 || cur.Keys[0].ID != b.ID {
		t.Fatalf("the ring's own trust root (B restored by hand): %+v %v", cur, err)
	}
}

// TestArchiveOnReadOnlyRing: a ring whose history cannot be written still
// yields the trust root merged from its history and current state.
func TestArchiveOnReadOnlyRing(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into read-only directories")
	}
	dir := t.TempDir()
	ring, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Create(Ed25519, "a", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(ring.Path(HistoryFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	arch, appended, err := ring.Archive()
	if err == nil || appended || len(arch.Keys) != 1 {
		t.Fatalf("read-only ring: %+v appended %v, %v", arch, appended, err)
	}
}

// FuzzParseHistory: any bytes either parse into versions whose keys all
// carry IDs matching their public keys, or are refused; never a panic.
func FuzzParseHistory(f *testing.F) {
	ring, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	if _, err := ring.Create(Ed25519, "a", []byte("pw")); err != nil {
		f.Fatal(err)
	}
	if _, _, err := ring.Rotate("", "", []byte("pw")); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(ring.Path(HistoryFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"mediaType":"application/vnd.custody.trust-root.v1+json","keys":[{"keyId":"00","publicKey":"x"}]}`))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := ParseHistory(b)
		if err != nil {
			return
		}
		var hist []TrustRoot
		for _, v := range vs {
			if len(v.Digest) != len("sha256:")+64 {
				t.Fatalf("digest %q", v.Digest)
			}
			hist = append(hist, v.TrustRoot)
		}
		arch := Archived(hist)
		for _, k := range arch.Keys {
			if k.Status == Revoked {
				t.Fatalf("archived trust root holds revoked key %s", k.ID)
			}
		}
	})
}
