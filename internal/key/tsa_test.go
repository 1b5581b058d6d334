package key_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/timestamp"
)

// TestRingTSA: the ring's time-stamp authority enters its trust root and
// its history with its certificate's validity; a replaced chain stays, so
// old time-stamps keep verifying; the key unlocks only with the passphrase.
func TestRingTSA(t *testing.T) {
	ring, err := key.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ring.TSASigner([]byte("pw")); err != key.ErrNoTSA {
		t.Fatalf("no TSA: %v", err)
	}
	set := func(start time.Time) {
		t.Helper()
		s, err := key.Generate(key.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		chain, err := timestamp.NewChain(s, "ring TSA", start, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		other, _ := key.Generate(key.ECDSAP256)
		if err := ring.SetTSA(timestamp.EncodeChain(chain), other, []byte("pw")); err == nil {
			t.Fatal("a chain for another key was accepted")
		}
		if err := ring.SetTSA(timestamp.EncodeChain(chain), s, []byte("pw")); err != nil {
			t.Fatal(err)
		}
	}
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	set(first)
	tr, err := ring.TrustRoot()
	if err != nil || len(tr.TimestampAuthorities) != 1 || !tr.TimestampAuthorities[0].ValidFor.Start.Equal(first) ||
		!tr.TimestampAuthorities[0].ValidFor.End.Equal(first.Add(time.Hour)) {
		t.Fatalf("trust root: %v %+v", err, tr.TimestampAuthorities)
	}
	set(first.Add(time.Hour))
	if tr, _ = ring.TrustRoot(); len(tr.TimestampAuthorities) != 2 {
		t.Fatalf("after replacement: %d authorities", len(tr.TimestampAuthorities))
	}
	b, _ := json.Marshal(tr)
	if back, err := key.ParseTrustRoot(b); err != nil || len(back.TimestampAuthorities) != 2 {
		t.Fatalf("round trip: %v", err)
	}
	hist, err := ring.History()
	if err != nil || len(key.Archived(hist).TimestampAuthorities) != 2 {
		t.Fatalf("history: %v", err)
	}
	if _, _, err := ring.TSASigner([]byte("wrong")); err == nil {
		t.Fatal("TSA key unlocked with a wrong passphrase")
	}
	s, chainPEM, err := ring.TSASigner([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := timestamp.ParseChain(chainPEM)
	if !chain[0].NotBefore.Equal(first.Add(time.Hour)) || s == nil {
		t.Fatal("TSASigner did not return the current authority")
	}
	bad := tr
	bad.TimestampAuthorities = []key.TrustedTSA{{CertChain: "not PEM"}}
	b, _ = json.Marshal(bad)
	if _, err := key.ParseTrustRoot(b); err == nil {
		t.Fatal("a trust root with an unreadable TSA chain parsed")
	}
}
