// Package verification checks an artifact the way a deployment should
// before it runs: signatures by trusted keys valid when they signed,
// attestations about this very digest, provenance from the expected
// builder and source, required SBOM and provenance. It needs the trust-root
// file and the registry holding the artifact, nothing else. custody verify
// and promotion gates use it.
package verification

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/sign"
)

// Report is the outcome of a verification; 'custody verify -o json' prints it.
type Report struct {
	Reference    string              `json:"reference"`
	Digest       string              `json:"digest"`
	OK           bool                `json:"ok"`
	Signatures   []SignatureCheck    `json:"signatures"`
	Attestations []AttestationCheck  `json:"attestations"`
	Requirements []RequirementResult `json:"requirements"`
	Failures     []string            `json:"failures"`
}

// SignatureCheck is one verified signature.
type SignatureCheck struct {
	Source   string `json:"source"` // "tag" or "referrer"
	KeyID    string `json:"keyId"`
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
	// Ignored: signed by no key of the trust root; not relied upon.
	Ignored bool `json:"ignored,omitempty"`
}

// RequirementResult says whether a --require item was met.
type RequirementResult struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
}

// sbomTypes are the predicate types that count as an SBOM.
var sbomTypes = []string{attest.PredicateSPDX, attest.PredicateCycloneDX}

// Verifier checks an artifact against a trust root, offline but for the
// registry it reads from.
type Verifier struct {
	tr   key.TrustRoot
	keys []crypto.PublicKey
	// Builder and Source, when set, are required of the provenance.
	Builder string
	Source  string
	// Require lists required attestations: "sbom", "provenance".
	Require []string
	// Now is the clock (time.Now when zero).
	Now time.Time
}

// New returns a Verifier trusting the keys of tr.
func New(tr key.TrustRoot) (*Verifier, error) {
	v := &Verifier{tr: tr}
	for _, k := range tr.Keys {
		pub, err := key.ParsePublicKey([]byte(k.PublicKey))
		if err != nil {
			return nil, err
		}
		v.keys = append(v.keys, pub)
	}
	if len(v.keys) == 0 {
		return nil, errors.New("the trust root holds no key")
	}
	return v, nil
}

// SignedAtAnnotation is the signed annotation carrying the signing time
// (RFC 3339) that custody sign adds; verification checks the key was
// valid then.
const SignedAtAnnotation = "dev.custody.signed-at"

// keyValid checks that the trust root allowed key id to sign at t; with
// no signing time, an active key or a retired one (rotated, not
// compromised) is accepted, and revoked keys are never in a trust root.
func (v *Verifier) keyValid(id string, t *time.Time) error {
	at := v.Now
	if at.IsZero() {
		at = time.Now()
	}
	if t != nil {
		at = *t
	} else {
		for _, k := range v.tr.Keys {
			if k.ID == id {
				return nil
			}
		}
	}
	_, err := v.tr.KeyAt(id, at)
	return err
}

// Run verifies the artifact d (ref as the user wrote it) and reports
// every check; Report.OK is the verdict.
func (v *Verifier) Run(ctx context.Context, ref string, d name.Digest, o sign.Options) Report {
	rep := Report{Reference: ref, Digest: d.DigestStr(), Signatures: []SignatureCheck{}, Attestations: []AttestationCheck{}, Requirements: []RequirementResult{}, Failures: []string{}}
	fail := func(format string, args ...any) { rep.Failures = append(rep.Failures, fmt.Sprintf(format, args...)) }

	// Signatures: at least one by a trusted key, valid when it signed.
	sigs, err := sign.Verify(ctx, d, sign.PublicKeys(v.keys), o)
	if err != nil {
		fail("signature: %v", err)
	}
	good := 0
	for _, s := range sigs {
		c := SignatureCheck{Source: string(s.Source), KeyID: s.KeyID, OK: true}
		var at *time.Time
		if ts := s.Annotations[SignedAtAnnotation]; ts != "" {
			t, err := time.Parse(time.RFC3339, ts)
			if err != nil {
				c.OK, c.Problem = false, "unreadable signing time "+ts
			} else {
				at, c.SignedAt = &t, ts
			}
		}
		if c.OK {
			if err := v.keyValid(s.KeyID, at); err != nil {
				c.OK, c.Problem = false, err.Error()
			}
		}
		if c.OK {
			good++
		} else {
			fail("signature (%s, key %s): %s", c.Source, Short(c.KeyID), c.Problem)
		}
		rep.Signatures = append(rep.Signatures, c)
	}
	if good == 0 && err == nil {
		fail("signature: none by a key the trust root allowed at the time")
	}

	// Attestations: every one must verify; provenance must match the
	// artifact and the builder and source constraints.
	envs, err := sign.Attestations(ctx, d, o)
	if err != nil {
		fail("attestations: %v", err)
	}
	found := map[string]bool{}
	resolver := attest.ResolverFromKeys(v.keys...)
	for _, env := range envs {
		c := AttestationCheck{}
		va, err := attest.Verify(env, resolver, attest.AllowStatementV01(), attest.AllowPredicateType(append(slices.Clone(promotion.Types), promotion.PredicateOpenVEX)...))
		if err == nil && va.PredicateType == promotion.PredicateRevocation {
			if err = attest.VerifySubject(va, d.DigestStr()); err == nil {
				var r promotion.Revocation
				b, _ := attest.PredicateJSON(va.Statement)
				_ = json.Unmarshal(b, &r)
				err = fmt.Errorf("revoked by %s at %s: %s", r.By, r.At.Format(time.RFC3339), r.Reason)
			}
		}
		if err == nil {
			c.PredicateType, c.KeyID = va.PredicateType, va.KeyID
			err = attest.VerifySubject(va, d.DigestStr())
		}
		if err == nil {
			err = v.keyValid(va.KeyID, nil)
		}
		if err == nil && va.PredicateType == attest.PredicateSLSAProvenanceV1 {
			err = v.checkProvenance(va, &c)
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
			found[va.PredicateType] = true
		}
		rep.Attestations = append(rep.Attestations, c)
	}
	for _, r := range v.Require {
		ok := false
		switch r {
		case "provenance":
			ok = found[attest.PredicateSLSAProvenanceV1]
		case "sbom":
			ok = slices.ContainsFunc(sbomTypes, func(t string) bool { return found[t] })
		}
		rep.Requirements = append(rep.Requirements, RequirementResult{Name: r, OK: ok})
		if !ok {
			fail("required %s: no verified %s attestation", r, r)
		}
	}
	if (v.Builder != "" || v.Source != "") && !found[attest.PredicateSLSAProvenanceV1] {
		fail("--builder/--source given but no verified provenance")
	}
	rep.OK = len(rep.Failures) == 0
	return rep
}

func (v *Verifier) checkProvenance(va *attest.Verified, c *AttestationCheck) error {
	b, err := attest.PredicateJSON(va.Statement)
	if err != nil {
		return err
	}
	p, err := provenance.Parse(b)
	if err != nil {
		return err
	}
	c.Builder, c.Source = p.RunDetails.Builder.ID, p.SourceURI()
	if v.Builder == "" && v.Source == "" {
		return nil
	}
	return provenance.Check(p, provenance.Expect{BuilderID: v.Builder, SourceURI: v.Source})
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
