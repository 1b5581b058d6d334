package cli

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/sign"
)

// VerifyReport is what 'custody verify -o json' prints.
type VerifyReport struct {
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
}

// RequirementResult says whether a --require item was met.
type RequirementResult struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
}

// sbomTypes are the predicate types that count as an SBOM.
var sbomTypes = []string{attest.PredicateSPDX, attest.PredicateCycloneDX}

// verifier checks an artifact against a trust root, offline but for the
// registry it reads from.
type verifier struct {
	tr      key.TrustRoot
	keys    []crypto.PublicKey
	builder string
	source  string
	require []string
	now     time.Time
}

// keyValid checks that the trust root allowed key id to sign at t; with
// no signing time, an active key or a retired one (rotated, not
// compromised) is accepted, and revoked keys are never in a trust root.
func (v *verifier) keyValid(id string, t *time.Time) error {
	at := v.now
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

func (v *verifier) run(ctx context.Context, ref string, d name.Digest, o sign.Options) VerifyReport {
	rep := VerifyReport{Reference: ref, Digest: d.DigestStr(), Signatures: []SignatureCheck{}, Attestations: []AttestationCheck{}, Requirements: []RequirementResult{}, Failures: []string{}}
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
		if ts := s.Annotations[signedAtAnnotation]; ts != "" {
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
			fail("signature (%s, key %s): %s", c.Source, short(c.KeyID), c.Problem)
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
		va, err := attest.Verify(env, resolver, attest.AllowStatementV01())
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
		if err != nil {
			c.Problem = err.Error()
			fail("attestation %s: %v", orUnknown(c.PredicateType), err)
		} else {
			c.OK = true
			found[va.PredicateType] = true
		}
		rep.Attestations = append(rep.Attestations, c)
	}
	for _, r := range v.require {
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
	if (v.builder != "" || v.source != "") && !found[attest.PredicateSLSAProvenanceV1] {
		fail("--builder/--source given but no verified provenance")
	}
	rep.OK = len(rep.Failures) == 0
	return rep
}

func (v *verifier) checkProvenance(va *attest.Verified, c *AttestationCheck) error {
	b, err := attest.PredicateJSON(va.Statement)
	if err != nil {
		return err
	}
	p, err := provenance.Parse(b)
	if err != nil {
		return err
	}
	c.Builder, c.Source = p.RunDetails.Builder.ID, p.SourceURI()
	if v.builder == "" && v.source == "" {
		return nil
	}
	return provenance.Check(p, provenance.Expect{BuilderID: v.builder, SourceURI: v.source})
}

func orUnknown(s string) string {
	if s == "" {
		return "(unverified)"
	}
	return s
}

func short(id string) string { return id[:min(16, len(id))] }

func newVerifyCmd() *cobra.Command {
	var (
		trustRoot string
		builder   string
		source    string
		require   []string
		output    string
		plainHTTP bool
	)
	cmd := &cobra.Command{
		Use:   "verify REF --trust-root FILE",
		Short: "Verify an artifact's signatures, provenance and SBOM against a trust root",
		Long: `Verify the artifact REF resolves to, using only the trust-root file (from
'custody key export-public --trust-root' or GET /api/v1/keys/trust-root) for
keys: no network access beyond the registry holding the artifact.

Checks:
  - at least one signature (cosign v2 tag or v3 bundle referrer) by a key
    of the trust root, which was valid when it signed (rotated keys keep
    verifying what they signed while valid; revoked keys are not in a trust
    root);
  - every attestation: a valid signature by a trusted key, an in-toto
    statement about this digest, a known predicate type;
  - provenance: the builder ID (--builder) and source repository
    (--source), exactly, when given;
  - --require sbom,provenance: a verified attestation of each kind.

Prints a report and exits non-zero on any failure (-o json for scripts).`,
		Example: `  custody verify 127.0.0.1:5000/apps/web:1.4.2 --trust-root trust-root.json
  custody verify REF --trust-root trust-root.json --require sbom,provenance \
      --builder https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main \
      --source https://github.com/acme/app -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != outputText && output != outputJSON {
				return fmt.Errorf("invalid --output %q: use text or json", output)
			}
			if trustRoot == "" {
				return errors.New("no --trust-root: give the trust-root file of the keys you trust ('custody key export-public --trust-root')")
			}
			for _, r := range require {
				if r != "sbom" && r != "provenance" {
					return fmt.Errorf("invalid --require %q: use sbom and/or provenance", r)
				}
			}
			b, err := readCapped(trustRoot, 1<<20)
			if err != nil {
				return err
			}
			tr, err := key.ParseTrustRoot(b)
			if err != nil {
				return err
			}
			v := &verifier{tr: tr, builder: builder, source: source, require: require, now: time.Now()}
			for _, k := range tr.Keys {
				pub, err := key.ParsePublicKey([]byte(k.PublicKey))
				if err != nil {
					return err
				}
				v.keys = append(v.keys, pub)
			}
			if len(v.keys) == 0 {
				return errors.New("the trust root holds no key")
			}
			ctx := cmd.Context()
			o := remoteOpts(ctx)
			d, err := resolve(ctx, args[0], plainHTTP, o)
			if err != nil {
				return err
			}
			rep := v.run(ctx, args[0], d, o)
			if output == outputJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printReport(cmd.OutOrStdout(), rep)
			}
			if !rep.OK {
				return fmt.Errorf("verification of %s failed: %d problem(s)", d, len(rep.Failures))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&trustRoot, "trust-root", "", "trust-root file (required)")
	fl.StringVar(&builder, "builder", "", "required provenance builder ID")
	fl.StringVar(&source, "source", "", "required provenance source repository URI")
	fl.StringSliceVar(&require, "require", nil, "required attestations: sbom, provenance")
	fl.StringVarP(&output, "output", "o", outputText, "output format: text or json")
	fl.BoolVar(&plainHTTP, "plain-http", false, "talk plain HTTP to a registry that is not on loopback or a private address")
	return cmd
}

func printReport(w io.Writer, r VerifyReport) {
	mark := func(ok bool) string {
		if ok {
			return "ok  "
		}
		return "FAIL"
	}
	fmt.Fprintf(w, "%s\n  digest %s\n", r.Reference, r.Digest)
	for _, s := range r.Signatures {
		line := fmt.Sprintf("  %s signature (%s) by key %s", mark(s.OK), s.Source, short(s.KeyID))
		if s.SignedAt != "" {
			line += " at " + s.SignedAt
		}
		if s.Problem != "" {
			line += ": " + s.Problem
		}
		fmt.Fprintln(w, line)
	}
	for _, a := range r.Attestations {
		line := fmt.Sprintf("  %s attestation %s", mark(a.OK), orUnknown(a.PredicateType))
		if a.KeyID != "" {
			line += " by key " + short(a.KeyID)
		}
		if a.Builder != "" {
			line += "; builder " + a.Builder
		}
		if a.Source != "" {
			line += "; source " + a.Source
		}
		if a.Problem != "" {
			line += ": " + a.Problem
		}
		fmt.Fprintln(w, line)
	}
	for _, q := range r.Requirements {
		fmt.Fprintf(w, "  %s required %s\n", mark(q.OK), q.Name)
	}
	if r.OK {
		fmt.Fprintln(w, "verified")
		return
	}
	fmt.Fprintln(w, "NOT verified:")
	for _, f := range r.Failures {
		fmt.Fprintln(w, "  - "+strings.TrimSpace(f))
	}
}
