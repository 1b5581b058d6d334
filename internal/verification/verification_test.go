package verification_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/verification"
)

const (
	builder = "https://github.com/actions/runner/github-hosted"
	source  = "https://github.com/acme/app"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func verifier(t *testing.T, keys ...evidencetest.Key) *verification.Verifier {
	t.Helper()
	v, err := verification.New(evidencetest.Root(keys...))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func run(v *verification.Verifier, d name.Digest) verification.Report {
	return v.Run(context.Background(), d.String(), d, sign.Options{})
}

func failures(r verification.Report) string { return strings.Join(r.Failures, "\n") }

func TestNewRefusesAnEmptyTrustRoot(t *testing.T) {
	if _, err := verification.New(key.TrustRoot{MediaType: key.TrustRootMediaType}); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("empty trust root: %v", err)
	}
}

// TestGood: signed, with provenance and an SBOM, by a trusted key; every
// requirement holds.
func TestGood(t *testing.T) {
	host := evidencetest.Registry(t)
	k := evidencetest.NewKey(t, start, time.Time{})
	d := evidencetest.Push(t, host, "apps/good")
	evidencetest.Sign(t, d, k, time.Now().UTC().Format(time.RFC3339))
	evidencetest.Attest(t, d, k, attest.PredicateSLSAProvenanceV1, evidencetest.Provenance)
	evidencetest.Attest(t, d, k, attest.PredicateSPDX, evidencetest.SBOM)
	v := verifier(t, k)
	v.Builder, v.Source, v.Require = builder, source, []string{"sbom", "provenance"}
	rep := run(v, d)
	if !rep.OK || len(rep.Signatures) != 2 || len(rep.Attestations) != 2 || len(rep.Requirements) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	for _, s := range rep.Signatures {
		if !s.OK || s.KeyID != k.ID() || s.SignedAt == "" {
			t.Fatalf("signature: %+v", s)
		}
	}
	for _, a := range rep.Attestations {
		if a.PredicateType == attest.PredicateSLSAProvenanceV1 && (a.Builder != builder || !strings.HasSuffix(a.Source, source)) {
			t.Fatalf("provenance: %+v", a)
		}
	}
}

// TestRefusals: each case fails with the reason named.
func TestRefusals(t *testing.T) {
	host := evidencetest.Registry(t)
	k := evidencetest.NewKey(t, start, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	other := evidencetest.NewKey(t, start, time.Time{})
	for _, c := range []struct {
		name  string
		setup func(d name.Digest, v *verification.Verifier)
		want  string
	}{
		{"unsigned", func(name.Digest, *verification.Verifier) {}, "no signature found"},
		{"signed by another key", func(d name.Digest, _ *verification.Verifier) { evidencetest.Sign(t, d, other, "") }, "no signature verifies"},
		{"signed after the key's validity", func(d name.Digest, _ *verification.Verifier) {
			evidencetest.Sign(t, d, k, "2026-07-01T00:00:00Z")
		}, "not valid at 2026-07-01T00:00:00Z"},
		{"unreadable signing time", func(d name.Digest, _ *verification.Verifier) { evidencetest.Sign(t, d, k, "soon") }, "unreadable signing time soon"},
		{"revoked", func(d name.Digest, _ *verification.Verifier) {
			evidencetest.Sign(t, d, k, "")
			evidencetest.Attest(t, d, k, evidence.PredicateRevocation, evidence.Revocation{By: "admin", Reason: "CVE-2026-0001", At: start})
		}, "revoked by admin at 2026-01-01T00:00:00Z: CVE-2026-0001"},
		{"wrong builder", func(d name.Digest, v *verification.Verifier) {
			evidencetest.Sign(t, d, k, "")
			evidencetest.Attest(t, d, k, attest.PredicateSLSAProvenanceV1, evidencetest.Provenance)
			v.Builder = "https://evil.example/builder"
		}, "https://evil.example/builder"},
		{"builder required, no provenance", func(d name.Digest, v *verification.Verifier) {
			evidencetest.Sign(t, d, k, "")
			v.Source = source
		}, "--builder/--source given but no verified provenance"},
		{"sbom required", func(d name.Digest, v *verification.Verifier) {
			evidencetest.Sign(t, d, k, "")
			v.Require = []string{"sbom"}
		}, "required sbom: no verified sbom attestation"},
		{"unknown predicate type", func(d name.Digest, _ *verification.Verifier) {
			evidencetest.Sign(t, d, k, "")
			evidencetest.Attest(t, d, k, "https://example.com/unknown/v1", `{}`)
		}, "unknown predicate type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := evidencetest.Push(t, host, "apps/refused")
			v := verifier(t, k)
			c.setup(d, v)
			rep := run(v, d)
			if rep.OK || !strings.Contains(failures(rep), c.want) {
				t.Fatalf("ok %v, failures %q, want %q", rep.OK, rep.Failures, c.want)
			}
		})
	}
}

// TestIgnoredAttestation: an attestation by a key outside the trust root
// counts for nothing and fails nothing; --require decides.
func TestIgnoredAttestation(t *testing.T) {
	host := evidencetest.Registry(t)
	k := evidencetest.NewKey(t, start, time.Time{})
	other := evidencetest.NewKey(t, start, time.Time{})
	d := evidencetest.Push(t, host, "apps/ignored")
	evidencetest.Sign(t, d, k, "")
	evidencetest.Attest(t, d, other, attest.PredicateSPDX, evidencetest.SBOM)
	v := verifier(t, k)
	rep := run(v, d)
	if !rep.OK || len(rep.Attestations) != 1 || !rep.Attestations[0].Ignored {
		t.Fatalf("report: %+v", rep)
	}
	v.Require = []string{"sbom"}
	if rep := run(v, d); rep.OK || !strings.Contains(failures(rep), "required sbom") {
		t.Fatalf("an ignored SBOM met --require sbom: %+v", rep)
	}
}
