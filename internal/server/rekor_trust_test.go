package server

import (
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/key"
)

// TestRekorLogsAcrossKeyChange: after the transparency log's key is
// replaced, the trust documents keep the old key with its window closed
// when the new one started (and without a URL, so signers are not sent
// to it), and the new one open at the server's URL.
func TestRekorLogsAcrossKeyChange(t *testing.T) {
	ring, err := key.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pems := make([]string, 2)
	starts := []time.Time{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	for i := range pems {
		s, err := key.Generate(key.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := key.MarshalPublicKey(s.Public())
		pems[i] = string(b)
		if added, err := ring.AddTransparencyLog(key.TrustedLog{BaseURL: "https://custody.test", Origin: "custody.test", PublicKey: pems[i],
			ValidFor: key.Validity{Start: starts[i]}}); err != nil || !added {
			t.Fatalf("recording log %d: %v %v", i, added, err)
		}
	}
	// Recording the current key again (a restart) changes nothing.
	if added, err := ring.AddTransparencyLog(key.TrustedLog{Origin: "custody.test", PublicKey: pems[1], ValidFor: key.Validity{Start: time.Now()}}); err != nil || added {
		t.Fatalf("recording the same log again: %v %v", added, err)
	}
	logs, err := rekorLogs(ring, pems[1])
	if err != nil || len(logs) != 2 {
		t.Fatalf("logs %+v, %v", logs, err)
	}
	for _, l := range logs {
		pem, _ := key.MarshalPublicKey(l.PublicKey)
		switch string(pem) {
		case pems[0]:
			if !l.Start.Equal(starts[0]) || !l.End.Equal(starts[1]) {
				t.Errorf("retired log window %s..%s, want %s..%s", l.Start, l.End, starts[0], starts[1])
			}
		case pems[1]:
			if !l.Start.Equal(starts[1]) || !l.End.IsZero() || l.APIVersion != 2 || len(l.LogID) != 32 {
				t.Errorf("current log %+v", l)
			}
		}
	}
	in, err := (&sigstoreTrust{ring: ring, tlogs: logs}).input("https://custody.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range in.TransparencyLogs {
		if (l.End.IsZero()) != (l.URL == "https://custody.test") {
			t.Errorf("log %s..%s has URL %q", l.Start, l.End, l.URL)
		}
	}
}
