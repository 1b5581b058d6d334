// Package verification is custody verify's policy: what a deployment
// requires of an artifact before it runs. Over the evidence internal/evidence
// collects and verifies (signatures by trusted keys valid when they signed,
// attestations about this very digest, revocations) it requires a
// signature that counts, no attestation that fails, no revocation,
// provenance from the expected builder and source, and the required SBOM
// and provenance. It needs the trust-root file and the registry holding
// the artifact, nothing else.
package verification

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/certidentity"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/notary"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/sign"
)

// Report is the outcome of a verification; 'custody verify -o json' prints it.
type Report struct {
	Reference    string              `json:"reference"`
	Digest       string              `json:"digest"`
	OK           bool                `json:"ok"`
	Signatures   []SignatureCheck    `json:"signatures"`
	Notation     []NotationCheck     `json:"notation,omitempty"`
	Attestations []AttestationCheck  `json:"attestations"`
	Requirements []RequirementResult `json:"requirements"`
	Failures     []string            `json:"failures"`
}

// SignatureCheck is one verified signature.
type SignatureCheck struct {
	Source   string `json:"source"` // "tag" or "referrer"
	KeyID    string `json:"keyId"`
	SignedAt string `json:"signedAt,omitempty"`
	// TimeSource says who vouches for SignedAt: "timestamp" (a trusted
	// RFC 3161 time-stamp) or "claim" (the signer's own word).
	TimeSource string `json:"timeSource,omitempty"`
	OK         bool   `json:"ok"`
	Problem    string `json:"problem,omitempty"`
	// Identity and Issuer name the signer of a keyless signature (its
	// certificate's subject and OIDC issuer).
	Identity string `json:"identity,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
}

// NotationCheck is one Notary Project signature found on the artifact
// (reported only when a Notation trust policy is given).
type NotationCheck struct {
	Format   string `json:"format"` // "jws" or "cose"
	Identity string `json:"identity,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	Policy   string `json:"policy,omitempty"`
	Level    string `json:"level,omitempty"`
	SignedAt string `json:"signedAt,omitempty"`
	OK       bool   `json:"ok"`
	Problem  string `json:"problem,omitempty"`
}

// AttestationCheck is one attestation found on the artifact.
type AttestationCheck struct {
	PredicateType string `json:"predicateType,omitempty"`
	KeyID         string `json:"keyId,omitempty"`
	OK            bool   `json:"ok"`
	Problem       string `json:"problem,omitempty"`
	Builder       string `json:"builder,omitempty"`
	Source        string `json:"source,omitempty"`
	// Identity names the signer of a keyless attestation.
	Identity string `json:"identity,omitempty"`
	// Ignored: signed by no key of the trust root; not relied upon.
	Ignored bool `json:"ignored,omitempty"`
}

// RequirementResult says whether a --require item was met.
type RequirementResult struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
}

// Verifier checks an artifact against a trust root, offline but for the
// registry it reads from. What counts as trusted is internal/evidence's
// rule; the Verifier adds what custody verify requires on top.
type Verifier struct {
	trust *evidence.Trust
	// Builder and Source, when set, are required of the provenance.
	Builder string
	Source  string
	// Require lists required evidence: "sbom", "provenance" (verified
	// attestations), "notation" (a Notation signature that counts).
	Require []string
	// Identity are the identity constraints keyless signatures and
	// attestations must meet (cosign's --certificate-* flags). Without
	// them a keyless signature is reported but not relied upon, as
	// cosign refuses to verify one without; with them, a keyless
	// signature meeting them is required.
	Identity certidentity.Constraints
}

// New returns a Verifier trusting the keys of tr, each inside its
// validity window; any of them may record a revocation.
func New(tr key.TrustRoot) (*Verifier, error) {
	t, err := evidence.NewTrust(tr)
	if err != nil {
		return nil, err
	}
	if t.Keys() == 0 && t.CAs() == 0 {
		return nil, errors.New("the trust root holds no key and no certificate authority")
	}
	return &Verifier{trust: t}, nil
}

// NewWithNotation is New that also counts Notary Project signatures n
// verifies under its trust policy and trust store; with n, the trust root
// may hold no key (Notation signatures only).
func NewWithNotation(tr key.TrustRoot, n *notary.Verifier) (*Verifier, error) {
	if n == nil {
		return New(tr)
	}
	t, err := evidence.NewTrust(tr)
	if err != nil {
		return nil, err
	}
	return &Verifier{trust: t.WithNotation(n, "")}, nil
}

// Run verifies the artifact d (ref as the user wrote it) and reports
// every check; Report.OK is the verdict.
func (v *Verifier) Run(ctx context.Context, ref string, d name.Digest, o sign.Options) Report {
	return v.Judge(ref, evidence.Collect(ctx, d, v.trust, o))
}

// Judge applies custody verify's policy to the evidence about a digest:
// at least one signature that counts, every attestation trusted or signed
// by a key outside the trust root (ignored), no revocation, the
// provenance's builder and source as required, the required attestations
// present.
func (v *Verifier) Judge(ref string, set *evidence.Set) Report {
	rep := Report{Reference: ref, Digest: set.Digest, Signatures: []SignatureCheck{}, Attestations: []AttestationCheck{}, Requirements: []RequirementResult{}, Failures: []string{}}
	fail := func(format string, args ...any) { rep.Failures = append(rep.Failures, fmt.Sprintf(format, args...)) }

	// Signatures: at least one by a trusted key, valid when it signed,
	// or a Notation signature that counts. A Notation signature that
	// fails its trust policy is reported but fails nothing by itself,
	// like a cosign signature by an unknown key: anyone who may push can
	// add one.
	notation := len(set.TrustedNotation()) > 0
	if err := set.SignatureErr; err != nil && !(notation && (errors.Is(err, sign.ErrNoSignature) || errors.Is(err, sign.ErrNotVerified))) {
		fail("signature: %v", set.SignatureErr)
	}
	if set.NotationErr != nil {
		fail("notation signatures: %v", set.NotationErr)
	}
	for _, n := range set.Notation {
		c := NotationCheck{Format: n.Format, Identity: n.Identity, Issuer: n.Issuer, Policy: n.Policy, Level: n.Level, OK: n.Trusted()}
		if !n.SignedAt.IsZero() {
			c.SignedAt = n.SignedAt.UTC().Format(time.RFC3339)
		}
		if !c.OK {
			c.Problem = n.Err.Error()
		}
		rep.Notation = append(rep.Notation, c)
	}
	counted, keyless := 0, 0
	for _, s := range set.Signatures {
		c := SignatureCheck{Source: string(s.Source), KeyID: s.KeyID, OK: s.Trusted()}
		if s.Identity != nil {
			c.Identity, c.Issuer = s.Identity.Subject, s.Identity.Issuer
		}
		if len(s.Chain) > 0 {
			// Keyless: only a signer the constraints name is relied
			// upon; another is reported, like a signature by a key
			// outside the trust root.
			var mismatch error
			switch {
			case v.Identity.IsZero():
				mismatch = errors.New("keyless signature not relied upon: give --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp] to accept its signer")
			case s.Identity == nil:
				mismatch = s.Err
			default:
				if err := v.Identity.Match(s.Identity.Claims()); err != nil {
					mismatch = fmt.Errorf("keyless signature by another identity (not relied upon): %w", err)
				}
			}
			if mismatch != nil {
				c.OK, c.Problem = false, mismatch.Error()
				rep.Signatures = append(rep.Signatures, c)
				continue
			}
			if s.Trusted() {
				keyless++
			}
		}
		if s.Trusted() {
			counted++
		}
		if !s.SignedAt.IsZero() {
			c.SignedAt = s.Annotations[evidence.SignedAtAnnotation]
			if s.TimeSource == evidence.TimeFromTimestamp {
				c.SignedAt = s.SignedAt.UTC().Format(time.RFC3339)
			}
			c.TimeSource = s.TimeSource
		}
		if !c.OK {
			c.Problem = s.Err.Error()
			fail("signature (%s, key %s): %s", c.Source, Short(c.KeyID), c.Problem)
		}
		rep.Signatures = append(rep.Signatures, c)
	}
	if counted == 0 && set.SignatureErr == nil && !notation {
		fail("signature: none by a key the trust root allowed at the time")
	}
	if !v.Identity.IsZero() && keyless == 0 {
		fail("signature: no keyless signature by a certificate of a trusted CA for %s, time-stamped while it was valid", v.Identity)
	}

	// Attestations: every one must verify; provenance must match the
	// artifact and the builder and source constraints.
	if set.AttestationErr != nil {
		fail("attestations: %v", set.AttestationErr)
	}
	found := map[string]bool{}
	for _, a := range set.Attestations {
		c := AttestationCheck{PredicateType: a.PredicateType, KeyID: a.KeyID}
		err := a.Err
		if a.Identity != nil {
			c.Identity = a.Identity.Subject
			switch {
			case v.Identity.IsZero():
				err = fmt.Errorf("%w: a keyless attestation by %s (give identity constraints to rely on it)", attest.ErrUntrusted, a.Identity.Subject)
			default:
				if merr := v.Identity.Match(a.Identity.Claims()); merr != nil {
					err = fmt.Errorf("%w: a keyless attestation by another identity: %w", attest.ErrUntrusted, merr)
				}
			}
		}
		if err == nil && a.Counts && a.Revocation != nil {
			r := a.Revocation
			c = AttestationCheck{}
			err = fmt.Errorf("revoked by %s at %s: %s", r.By, r.At.Format(time.RFC3339), r.Reason)
		}
		if err == nil && a.Provenance != nil {
			c.Builder, c.Source = a.Provenance.RunDetails.Builder.ID, a.Provenance.SourceURI()
			if v.Builder != "" || v.Source != "" {
				err = provenance.Check(a.Provenance, provenance.Expect{BuilderID: v.Builder, SourceURI: v.Source})
			}
		}
		switch {
		case errors.Is(err, attest.ErrUntrusted):
			// Signed by nobody this trust root knows (another team's
			// key, the server's promotion records): it counts for
			// nothing, and --require decides whether anything is missing.
			c.Problem = "ignored: " + err.Error()
			c.OK = true
			c.Ignored = true
		case err != nil:
			c.Problem = err.Error()
			fail("attestation %s: %v", OrUnknown(c.PredicateType), err)
		default:
			c.OK = true
			found[a.PredicateType] = true
		}
		rep.Attestations = append(rep.Attestations, c)
	}
	for _, r := range v.Require {
		ok := false
		switch r {
		case "provenance":
			ok = found[attest.PredicateSLSAProvenanceV1]
		case "sbom":
			ok = slices.ContainsFunc(evidence.SBOMTypes, func(t string) bool { return found[t] })
		case "notation":
			ok = notation
		}
		rep.Requirements = append(rep.Requirements, RequirementResult{Name: r, OK: ok})
		if !ok {
			if r == "notation" {
				fail("required notation: no Notation signature verified under the trust policy")
			} else {
				fail("required %s: no verified %s attestation", r, r)
			}
		}
	}
	if (v.Builder != "" || v.Source != "") && !found[attest.PredicateSLSAProvenanceV1] {
		fail("--builder/--source given but no verified provenance")
	}
	rep.OK = len(rep.Failures) == 0
	return rep
}

// OrUnknown names a predicate type for reports.
func OrUnknown(s string) string {
	if s == "" {
		return "(unverified)"
	}
	return s
}

// Short abbreviates a key ID for reports.
func Short(id string) string { return id[:min(16, len(id))] }
