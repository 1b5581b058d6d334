package evidence_test

import (
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/key"
)

// TestTrustFingerprint: two Trusts built alike have one fingerprint;
// whatever changes how an attestation is judged (a key's window or
// status, a key more or less, the recording keys, a revoked key, a
// time-stamp authority) changes it.
func TestTrustFingerprint(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := evidencetest.NewKey(t, start, time.Time{}), evidencetest.NewKey(t, start, time.Time{})
	build := func(root key.TrustRoot, change func(*evidence.Trust)) [32]byte {
		t.Helper()
		tr, err := evidence.NewTrust(root)
		if err != nil {
			t.Fatal(err)
		}
		if change != nil {
			change(tr)
		}
		return tr.Fingerprint()
	}
	base := build(evidencetest.Root(a, b), nil)
	if again := build(evidencetest.Root(a, b), nil); again != base {
		t.Fatal("two Trusts of one root differ")
	}
	generated := evidencetest.Root(a, b)
	generated.Generated = generated.Generated.Add(time.Hour)
	if build(generated, nil) != base {
		t.Fatal("the root's generation time changed the fingerprint")
	}
	retired := evidencetest.Root(a, b)
	retired.Keys[1].Status = key.Retired
	windowed := evidencetest.Root(a, b)
	windowed.Keys[0].ValidFor.End = start.Add(time.Hour)
	tsa := evidencetest.Root(a, b)
	tsa.TimestampAuthorities = []key.TrustedTSA{{CertChain: "chain", ValidFor: key.Validity{Start: start}}}
	for name, fp := range map[string][32]byte{
		"a key fewer":      build(evidencetest.Root(a), nil),
		"a key retired":    build(retired, nil),
		"a window closed":  build(windowed, nil),
		"an authority":     build(tsa, nil),
		"recording keys":   build(evidencetest.Root(a, b), func(tr *evidence.Trust) { tr.RecordsOnlyBy(a.ID()) }),
		"no recording key": build(evidencetest.Root(a, b), func(tr *evidence.Trust) { tr.RecordsOnlyBy() }),
		"a revoked key":    build(evidencetest.Root(a), func(tr *evidence.Trust) { tr.ExplainRevoked([]key.TrustedKey{b.Trusted}) }),
	} {
		if fp == base {
			t.Errorf("%s: fingerprint unchanged", name)
		}
	}
	if build(evidencetest.Root(a, b), func(tr *evidence.Trust) { tr.RecordsOnlyBy(a.ID()) }) == build(evidencetest.Root(a, b), func(tr *evidence.Trust) { tr.RecordsOnlyBy(b.ID()) }) {
		t.Error("different recording keys, one fingerprint")
	}
}
