package verification_test

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/certidentity"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/sign"
)

// TestKeylessPolicy pins custody verify's policy over keyless signatures
// that counted in evidence: relied upon only for the signer the identity
// constraints name; another signer is reported, not a failure by itself,
// and not enough when constraints ask for a keyless signer.
func TestKeylessPolicy(t *testing.T) {
	const wf = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
	const iss = "https://token.actions.githubusercontent.com"
	keyless := func(subject string) evidence.Signature {
		return evidence.Signature{
			Verified:   sign.Verified{Source: sign.SourceTag, KeyID: "ephemeral", Chain: []*x509.Certificate{{}}},
			SignedAt:   time.Now(),
			TimeSource: evidence.TimeFromTimestamp,
			Identity:   &certidentity.Identity{Subject: subject, Issuer: iss},
		}
	}
	keyed := evidence.Signature{Verified: sign.Verified{Source: sign.SourceReferrer, KeyID: "k1"}}
	good := certidentity.Constraints{Identity: wf, Issuer: iss}
	for _, c := range []struct {
		name   string
		sigs   []evidence.Signature
		ident  certidentity.Constraints
		ok     bool
		reason string
	}{
		{"the named signer", []evidence.Signature{keyless(wf)}, good, true, ""},
		{"another signer", []evidence.Signature{keyless("https://github.com/evil/app/x.yml@refs/heads/main")}, good, false, "no keyless signature"},
		{"no constraints: not relied upon", []evidence.Signature{keyless(wf)}, certidentity.Constraints{}, false, "none by a key"},
		{"a key signature and a stranger's keyless one", []evidence.Signature{keyed, keyless("https://evil.example/x")}, certidentity.Constraints{}, true, ""},
		{"constraints ask for a keyless signer; a key signature is not one", []evidence.Signature{keyed}, good, false, "no keyless signature"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := verifier(t, evidencetest.NewKey(t, start, time.Time{}))
			v.Identity = c.ident
			rep := v.Judge("ref", &evidence.Set{Digest: "sha256:00", Signatures: c.sigs})
			if rep.OK != c.ok || !strings.Contains(failures(rep), c.reason) {
				t.Fatalf("ok %v, want %v; failures:\n%s", rep.OK, c.ok, failures(rep))
			}
			for _, s := range rep.Signatures {
				if s.KeyID == "ephemeral" && (s.Identity == "" || s.Issuer != iss) {
					t.Fatalf("keyless signature reported without its signer: %+v", s)
				}
			}
		})
	}
}
