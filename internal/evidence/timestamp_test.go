package evidence_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/timestamp"
)

// tsaStart is when the trust root's time-stamp authority came into service.
var tsaStart = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

// newTSA returns an authority whose clock reads at.
func newTSA(t *testing.T, at time.Time) *timestamp.Authority {
	t.Helper()
	signer, err := key.Generate(key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := timestamp.NewChain(signer, "evidence TSA", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), 3*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, err := timestamp.New(timestamp.Config{Signer: signer, Chain: chain, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// rootWithTSA trusts k and the time-stamp authority tsa from tsaStart.
func rootWithTSA(t *testing.T, k evidencetest.Key, tsa *timestamp.Authority) *evidence.Trust {
	t.Helper()
	root := evidencetest.Root(k)
	root.TimestampAuthorities = []key.TrustedTSA{{CertChain: string(tsa.ChainPEM()), ValidFor: key.Validity{Start: tsaStart}}}
	tr, err := evidence.NewTrust(root)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestSignatureTrustedTime pins the rule for trusted time: a time-stamp
// from an authority of the trust root, not the signer's claim, decides
// whether the key was valid when it signed.
func TestSignatureTrustedTime(t *testing.T) {
	host := evidencetest.Registry(t)
	k := evidencetest.NewKey(t, windowStart, windowEnd)
	inside, after := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	tsa := newTSA(t, inside)
	trust := rootWithTSA(t, k, tsa)
	stranger := newTSA(t, inside)
	for _, c := range []struct {
		name    string
		claim   string
		stamper timestamp.Stamper
		want    string // "" when the signature counts
		at      time.Time
		source  string
	}{
		{"stamped inside, claim after the window", after.Format(time.RFC3339), tsa.Stamp, "", inside, evidence.TimeFromTimestamp},
		{"stamped inside, no claim", "", tsa.Stamp, "", inside, evidence.TimeFromTimestamp},
		{"stamped after the window, claim inside", inside.Format(time.RFC3339), tsa.WithClock(func() time.Time { return after }).Stamp, "not valid at", after, evidence.TimeFromTimestamp},
		{"stamped by an untrusted authority", inside.Format(time.RFC3339), stranger.Stamp, "not from a trusted authority", time.Time{}, ""},
		{"claim after the authority started, no time-stamp", inside.Format(time.RFC3339), nil, "no time-stamp from a trusted authority", inside, evidence.TimeFromClaim},
		{"claim before the authority started, no time-stamp", "2026-01-15T00:00:00Z", nil, "", time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), evidence.TimeFromClaim},
		{"neither claim nor time-stamp", "", nil, "", time.Time{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := evidencetest.Push(t, host, "apps/tsa")
			o := sign.Options{Timestamper: c.stamper}
			if c.claim != "" {
				o.Annotations = map[string]string{evidence.SignedAtAnnotation: c.claim}
			}
			if _, err := sign.Sign(context.Background(), d, k, o); err != nil {
				t.Fatal(err)
			}
			set := evidence.Collect(context.Background(), d, trust, sign.Options{})
			if set.SignatureErr != nil || len(set.Signatures) != 2 { // tag and referrer
				t.Fatalf("signatures: %v %+v", set.SignatureErr, set.Signatures)
			}
			for _, s := range set.Signatures {
				if (c.stamper != nil) != (len(s.Timestamps) == 1) {
					t.Fatalf("%s: %d time-stamps stored", s.Source, len(s.Timestamps))
				}
				if c.want == "" && !s.Trusted() {
					t.Fatalf("%s refused: %v", s.Source, s.Err)
				}
				if c.want != "" && (s.Trusted() || !strings.Contains(s.Err.Error(), c.want)) {
					t.Fatalf("%s: err %v, want %q", s.Source, s.Err, c.want)
				}
				if !s.SignedAt.Equal(c.at) || s.TimeSource != c.source {
					t.Fatalf("%s: signed at %s from %q, want %s from %q", s.Source, s.SignedAt, s.TimeSource, c.at, c.source)
				}
			}
		})
	}
}

// TestAttestationTrustedTime: an attestation time-stamped while its key
// was valid counts; one time-stamped after its key's window, or by an
// untrusted authority, does not.
func TestAttestationTrustedTime(t *testing.T) {
	host := evidencetest.Registry(t)
	k := evidencetest.NewKey(t, windowStart, windowEnd)
	inside, after := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	tsa := newTSA(t, inside)
	trust := rootWithTSA(t, k, tsa)
	for _, c := range []struct {
		name    string
		stamper timestamp.Stamper
		want    string
	}{
		{"inside", tsa.Stamp, ""},
		{"after the window", tsa.WithClock(func() time.Time { return after }).Stamp, "not valid at"},
		{"untrusted authority", newTSA(t, inside).Stamp, "not from a trusted authority"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := evidencetest.Push(t, host, "apps/tsa-att")
			stmt, err := attest.StatementFor(d.Context().RepositoryStr(), d.DigestStr(), attest.PredicateSPDX, []byte(evidencetest.SBOM))
			if err != nil {
				t.Fatal(err)
			}
			env, err := attest.Sign(context.Background(), k, "", stmt)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sign.Attach(context.Background(), d, env, attest.PredicateSPDX, sign.Options{Timestamper: c.stamper}); err != nil {
				t.Fatal(err)
			}
			set := evidence.Collect(context.Background(), d, trust, sign.Options{})
			if len(set.Attestations) != 1 {
				t.Fatalf("attestations: %v %d", set.AttestationErr, len(set.Attestations))
			}
			a := set.Attestations[0]
			if c.want == "" && (!a.Trusted() || !a.SignedAt.Equal(inside)) {
				t.Fatalf("refused or wrong time: %v %s", a.Err, a.SignedAt)
			}
			if c.want != "" && (a.Trusted() || !strings.Contains(a.Err.Error(), c.want)) {
				t.Fatalf("err %v, want %q", a.Err, c.want)
			}
		})
	}
}
