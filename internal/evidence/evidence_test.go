package evidence_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/sign"
)

var (
	windowStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	windowEnd   = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
)

func newTrust(t *testing.T, keys ...evidencetest.Key) *evidence.Trust {
	t.Helper()
	tr, err := evidence.NewTrust(evidencetest.Root(keys...))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestSignatureValidity pins the one rule for signatures: a signature by
// a key of the trust root counts when it claims no signing time, or a
// readable one inside the key's validity window.
func TestSignatureValidity(t *testing.T) {
	host := evidencetest.Registry(t)
	retired := evidencetest.NewKey(t, windowStart, windowEnd)
	trust := newTrust(t, retired)
	for _, c := range []struct {
		name, signedAt string
		want           string // "" when the signature counts
		at             time.Time
	}{
		{"no signing time", "", "", time.Time{}},
		{"inside the window", "2026-03-01T12:00:00Z", "", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		{"at the window's start", windowStart.Format(time.RFC3339), "", windowStart},
		{"at the window's end", windowEnd.Format(time.RFC3339), "", windowEnd},
		{"after the window", "2026-06-01T00:00:01Z", "not valid at", time.Date(2026, 6, 1, 0, 0, 1, 0, time.UTC)},
		{"before the window", "2025-12-31T23:59:59Z", "not valid at", time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"other time zone, inside", "2026-03-01T12:00:00+02:00", "", time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)},
		{"unreadable", "yesterday", "unreadable signing time yesterday", time.Time{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := evidencetest.Push(t, host, "apps/sig")
			evidencetest.Sign(t, d, retired, c.signedAt)
			set := evidence.Collect(context.Background(), d, trust, sign.Options{})
			if set.SignatureErr != nil || len(set.Signatures) != 2 { // tag and referrer
				t.Fatalf("signatures: %v %+v", set.SignatureErr, set.Signatures)
			}
			for _, s := range set.Signatures {
				if s.KeyID != retired.ID() || !s.SignedAt.Equal(c.at) {
					t.Fatalf("signature: key %s at %s, want %s at %s", s.KeyID, s.SignedAt, retired.ID(), c.at)
				}
				if c.want == "" && !s.Trusted() {
					t.Fatalf("refused: %v", s.Err)
				}
				if c.want != "" && (s.Trusted() || !strings.Contains(s.Err.Error(), c.want)) {
					t.Fatalf("err %v, want %q", s.Err, c.want)
				}
			}
			if got, want := len(set.TrustedSignatures()), map[bool]int{true: 2, false: 0}[c.want == ""]; got != want {
				t.Fatalf("%d trusted signatures, want %d", got, want)
			}
		})
	}
}

// TestSignatureByUnknownKey: a key outside the trust root yields no
// signature at all, and SignatureErr says none verified; an unsigned
// digest says there is none.
func TestSignatureByUnknownKey(t *testing.T) {
	host := evidencetest.Registry(t)
	trusted := evidencetest.NewKey(t, windowStart, time.Time{})
	other := evidencetest.NewKey(t, windowStart, time.Time{})
	trust := newTrust(t, trusted)
	d := evidencetest.Push(t, host, "apps/other")
	evidencetest.Sign(t, d, other, "")
	set := evidence.Collect(context.Background(), d, trust, sign.Options{})
	if len(set.Signatures) != 0 || !errors.Is(set.SignatureErr, sign.ErrNotVerified) {
		t.Fatalf("signatures %+v, err %v", set.Signatures, set.SignatureErr)
	}
	unsigned := evidencetest.Push(t, host, "apps/unsigned")
	set = evidence.Collect(context.Background(), unsigned, trust, sign.Options{})
	if len(set.Signatures) != 0 || !errors.Is(set.SignatureErr, sign.ErrNoSignature) {
		t.Fatalf("signatures %+v, err %v", set.Signatures, set.SignatureErr)
	}
}

// TestAttestations: trusted attestations are parsed; one by an unknown
// key is reported untrusted; an unknown predicate type or a provenance
// that does not parse is not trusted.
func TestAttestations(t *testing.T) {
	host := evidencetest.Registry(t)
	k := evidencetest.NewKey(t, windowStart, time.Time{})
	stranger := evidencetest.NewKey(t, windowStart, time.Time{})
	trust := newTrust(t, k)
	d := evidencetest.Push(t, host, "apps/att")
	evidencetest.Attest(t, d, k, attest.PredicateSLSAProvenanceV1, evidencetest.Provenance)
	evidencetest.Attest(t, d, k, attest.PredicateSPDX, evidencetest.SBOM)
	evidencetest.Attest(t, d, stranger, attest.PredicateCycloneDX, `{"bomFormat":"CycloneDX"}`)
	evidencetest.Attest(t, d, k, "https://example.com/unknown/v1", `{}`)
	evidencetest.Attest(t, d, k, attest.PredicateSLSAProvenanceV1, `{"runDetails": 5}`)
	set := evidence.Collect(context.Background(), d, trust, sign.Options{})
	if set.AttestationErr != nil || len(set.Attestations) != 5 {
		t.Fatalf("attestations: %v %d", set.AttestationErr, len(set.Attestations))
	}
	var prov, sbom, untrusted, unknown, bad int
	for _, a := range set.Attestations {
		switch {
		case a.Trusted() && a.PredicateType == attest.PredicateSLSAProvenanceV1:
			prov++
			if a.Provenance == nil || a.Provenance.RunDetails.Builder.ID != "https://github.com/actions/runner/github-hosted" || a.KeyID != k.ID() {
				t.Fatalf("provenance: %+v", a)
			}
		case a.Trusted() && a.PredicateType == attest.PredicateSPDX:
			sbom++
			if !strings.Contains(string(a.Predicate), "SPDX-2.3") || a.Verified == nil {
				t.Fatalf("sbom: %+v", a)
			}
		case errors.Is(a.Err, attest.ErrUntrusted):
			untrusted++
			if a.PredicateType != "" || a.Verified != nil {
				t.Fatalf("untrusted attestation carries facts: %+v", a)
			}
		case a.Err != nil && strings.Contains(a.Err.Error(), "unknown predicate type"):
			unknown++
		case a.Err != nil && a.PredicateType == attest.PredicateSLSAProvenanceV1:
			bad++
			if a.Provenance != nil || a.Verified != nil {
				t.Fatalf("unparsable provenance carries facts: %+v", a)
			}
		default:
			t.Fatalf("unexpected attestation %+v", a)
		}
	}
	if prov != 1 || sbom != 1 || untrusted != 1 || unknown != 1 || bad != 1 {
		t.Fatalf("provenance %d, sbom %d, untrusted %d, unknown %d, bad %d", prov, sbom, untrusted, unknown, bad)
	}
	if !set.Has(evidence.SBOMTypes...) || set.Has(attest.PredicateCycloneDX) || len(set.Predicates(attest.PredicateSLSAProvenanceV1)) != 1 {
		t.Fatal("Has/Predicates count an attestation that is not trusted")
	}
	// The attestation half alone judges every attestation the same way
	// and reads no signature.
	only := evidence.CollectAttestations(context.Background(), d, trust, sign.Options{})
	if only.AttestationErr != nil || len(only.Attestations) != len(set.Attestations) || len(only.Signatures) != 0 || only.SignatureErr != nil {
		t.Fatalf("CollectAttestations: %v, %d attestations, %d signatures", only.AttestationErr, len(only.Attestations), len(only.Signatures))
	}
	for i, a := range only.Attestations {
		if a.Trusted() != set.Attestations[i].Trusted() || a.PredicateType != set.Attestations[i].PredicateType || a.KeyID != set.Attestations[i].KeyID {
			t.Fatalf("CollectAttestations judged attestation %d %+v; Collect %+v", i, a, set.Attestations[i])
		}
	}
}

// TestRecords: the server's records count only when signed by a
// recording key; promotions come oldest first; Revoked is the last
// revocation found.
func TestRecords(t *testing.T) {
	host := evidencetest.Registry(t)
	server := evidencetest.NewKey(t, windowStart, time.Time{})
	ci := evidencetest.NewKey(t, windowStart, time.Time{})
	d := evidencetest.Push(t, host, "apps/rec")
	later := time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC)
	earlier := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	evidencetest.Attest(t, d, server, evidence.PredicatePromotion, evidence.Record{Environment: "test", Digest: d.DigestStr(), By: "rel", At: later})
	evidencetest.Attest(t, d, server, evidence.PredicatePromotion, evidence.Record{Environment: "dev", Digest: d.DigestStr(), By: "rel", At: earlier})
	evidencetest.Attest(t, d, server, evidence.PredicateApproval, evidence.Approval{Environment: "prod", By: "rel2", At: later})
	evidencetest.Attest(t, d, ci, evidence.PredicateRevocation, evidence.Revocation{By: "ci", Reason: "not the server", At: later})
	// A drill report (internal/drill) is one of the server's records too.
	evidencetest.Attest(t, d, server, evidence.PredicateDrill, map[string]any{"environment": "prod", "ok": true, "missing": []string{}})

	// Only the server records.
	trust := newTrust(t, server, ci).RecordsOnlyBy(server.ID())
	set := evidence.Collect(context.Background(), d, trust, sign.Options{})
	if len(set.Promotions) != 2 || set.Promotions[0].Environment != "dev" || set.Promotions[1].Environment != "test" {
		t.Fatalf("promotions: %+v", set.Promotions)
	}
	if len(set.Approvals) != 1 || set.Approvals[0].By != "rel2" {
		t.Fatalf("approvals: %+v", set.Approvals)
	}
	if set.Revoked() != nil {
		t.Fatalf("a revocation by a key that does not record counted: %+v", set.Revoked())
	}
	drills := 0
	for _, a := range set.Attestations {
		if !a.Trusted() || !a.IsRecord() || a.Counts != (a.KeyID == server.ID()) {
			t.Fatalf("record %+v", a)
		}
		if a.PredicateType == evidence.PredicateDrill {
			drills++
		}
	}
	if drills != 1 {
		t.Fatalf("%d drill reports among the records", drills)
	}

	// Then the server revokes it.
	evidencetest.Attest(t, d, server, evidence.PredicateRevocation, evidence.Revocation{By: "admin", Reason: "CVE-2026-0001", At: later})
	if r := evidence.Collect(context.Background(), d, trust, sign.Options{}).Revoked(); r == nil || r.Reason != "CVE-2026-0001" {
		t.Fatalf("revoked: %+v", r)
	}

	// Any key of the root records by default; none with RecordsOnlyBy().
	if set := evidence.Collect(context.Background(), d, newTrust(t, server, ci), sign.Options{}); len(set.Revocations) != 2 {
		t.Fatalf("revocations by any trusted key: %+v", set.Revocations)
	}
	set = evidence.Collect(context.Background(), d, newTrust(t, server, ci).RecordsOnlyBy(), sign.Options{})
	if len(set.Promotions)+len(set.Approvals)+len(set.Revocations) != 0 {
		t.Fatalf("records counted with no recording key: %+v", set)
	}
}

// TestAttestationAboutAnotherDigest: an attestation moved to another
// digest is not trusted evidence about it.
func TestAttestationAboutAnotherDigest(t *testing.T) {
	host := evidencetest.Registry(t)
	k := evidencetest.NewKey(t, windowStart, time.Time{})
	a := evidencetest.Push(t, host, "apps/a")
	b := evidencetest.Push(t, host, "apps/a")
	evidencetest.Attest(t, a, k, attest.PredicateSPDX, evidencetest.SBOM)
	evidencetest.MoveAttestations(t, a, b)
	set := evidence.Collect(context.Background(), b, newTrust(t, k), sign.Options{})
	if len(set.Attestations) != 1 || set.Attestations[0].Trusted() || set.Has(attest.PredicateSPDX) {
		t.Fatalf("attestation about another digest: %+v", set.Attestations)
	}
}

// TestServerSignedAndDrills: an attestation signed by a recording key is
// the server's own (platform provenance), one by another trusted key is
// not, and with no recording keys named nothing is; drill reports count
// like the other records, only from the server; an attestation that does
// not verify still tells the type it claims, and only there.
func TestServerSignedAndDrills(t *testing.T) {
	host := evidencetest.Registry(t)
	server := evidencetest.NewKey(t, windowStart, time.Time{})
	ci := evidencetest.NewKey(t, windowStart, time.Time{})
	stranger := evidencetest.NewKey(t, windowStart, time.Time{})
	d := evidencetest.Push(t, host, "apps/platform")
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	evidencetest.Attest(t, d, server, attest.PredicateSLSAProvenanceV1, evidencetest.Provenance)
	evidencetest.Attest(t, d, ci, attest.PredicateSLSAProvenanceV1, evidencetest.Provenance)
	evidencetest.Attest(t, d, stranger, attest.PredicateSLSAProvenanceV1, evidencetest.Provenance)
	evidencetest.Attest(t, d, server, evidence.PredicateDrill, evidence.Drill{Environment: "prod", Started: at, OK: true})
	evidencetest.Attest(t, d, ci, evidence.PredicateDrill, evidence.Drill{Environment: "dev", Started: at, OK: true})

	set := evidence.Collect(context.Background(), d, newTrust(t, server, ci).RecordsOnlyBy(server.ID()), sign.Options{})
	var byServer, byCI, claimed int
	for _, a := range set.Attestations {
		switch {
		case a.Trusted() && a.PredicateType == attest.PredicateSLSAProvenanceV1 && a.KeyID == server.ID():
			if !a.ByServer {
				t.Fatalf("provenance by the server's key is not the server's: %+v", a)
			}
			byServer++
		case a.Trusted() && a.PredicateType == attest.PredicateSLSAProvenanceV1:
			if a.ByServer || a.KeyID != ci.ID() {
				t.Fatalf("provenance by the CI key is the server's: %+v", a)
			}
			byCI++
		case !a.Trusted():
			if a.ClaimedType != attest.PredicateSLSAProvenanceV1 || a.PredicateType != "" || a.Provenance != nil || a.ByServer {
				t.Fatalf("untrusted attestation: %+v", a)
			}
			claimed++
		case a.PredicateType == evidence.PredicateDrill:
			if a.ClaimedType != "" || a.Drill == nil || a.Counts != (a.KeyID == server.ID()) {
				t.Fatalf("drill report: %+v", a)
			}
		default:
			t.Fatalf("unexpected attestation %+v", a)
		}
	}
	if byServer != 1 || byCI != 1 || claimed != 1 {
		t.Fatalf("by the server %d, by CI %d, untrusted %d", byServer, byCI, claimed)
	}
	if len(set.Drills) != 1 || set.Drills[0].Environment != "prod" || !set.Drills[0].Started.Equal(at) || !set.Drills[0].OK {
		t.Fatalf("drills: %+v", set.Drills)
	}
	// Every key records when none is named: no key is then the server's.
	for _, a := range evidence.Collect(context.Background(), d, newTrust(t, server, ci), sign.Options{}).Attestations {
		if a.ByServer {
			t.Fatalf("server-signed without recording keys: %+v", a)
		}
	}
}

// TestSourceVerifications: a source-verification record counts only when
// a recording (server) key signed it, and SourcesOf keeps only those
// about the repository and digest it is asked about.
func TestSourceVerifications(t *testing.T) {
	host := evidencetest.Registry(t)
	server := evidencetest.NewKey(t, windowStart, time.Time{})
	ci := evidencetest.NewKey(t, windowStart, time.Time{})
	d := evidencetest.Push(t, host, "apps/src")
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rec := evidence.Source{Repository: "apps/src", Digest: d.DigestStr(), Commit: strings.Repeat("a", 40), ObjectFormat: "sha1",
		Method: "ssh", Principals: []string{"alice@example.com"}, KeyFingerprint: "SHA256:x", VerifiedAt: at}
	evidencetest.Attest(t, d, server, evidence.PredicateSource, rec)
	forged := rec
	forged.Principals = []string{"mallory@example.com"}
	evidencetest.Attest(t, d, ci, evidence.PredicateSource, forged)
	copied := rec
	copied.Repository = "apps/elsewhere"
	evidencetest.Attest(t, d, server, evidence.PredicateSource, copied)
	set := evidence.Collect(context.Background(), d, newTrust(t, server, ci).RecordsOnlyBy(server.ID()), sign.Options{})
	if len(set.Sources) != 2 {
		t.Fatalf("sources that count: %+v", set.Sources)
	}
	got := set.SourcesOf("apps/src")
	if len(got) != 1 || got[0].Principals[0] != "alice@example.com" || got[0].Commit != rec.Commit || !got[0].VerifiedAt.Equal(at) {
		t.Fatalf("SourcesOf: %+v", got)
	}
	for _, a := range set.Attestations {
		if a.PredicateType == evidence.PredicateSource && (a.Source == nil || !a.IsRecord() || a.Counts != (a.KeyID == server.ID())) {
			t.Fatalf("attestation %+v", a)
		}
	}
}
