package gate

import (
	"fmt"
	"slices"
	"strings"
)

// The ready-made rules, by the name a spec.Rule's Use gives.
const (
	// RuleSignedByTrustedKey passes when a verified signature was made by
	// one of Params.Keys (required).
	RuleSignedByTrustedKey = "signed_by_trusted_key"
	// RuleSLSAProvenanceTrusted passes when there is at least one SLSA v1
	// provenance and every one names a builder in Params.Builders
	// (required), a source in Params.Sources (required) and a ref in
	// Params.Branches (default refs/heads/main).
	RuleSLSAProvenanceTrusted = "slsa_provenance_trusted"
	// RuleSBOMPresent passes when there is a verified SPDX or CycloneDX
	// attestation.
	RuleSBOMPresent = "sbom_present"
	// RuleNoFindingsAtOrAbove passes when no finding that is not waived
	// has a severity at or above Params.Severity (default HIGH). Findings
	// of every kind count, unpinned dependencies included, at the
	// severity the scanner gave them; a finding whose severity is not one
	// of the five levels fails the rule.
	RuleNoFindingsAtOrAbove = "no_findings_at_or_above"
	// RulePassedQA passes when there is a verified test-result
	// attestation whose result is PASSED.
	RulePassedQA = "passed_qa"
	// RulePromotedToPrevious passes when the digest was promoted to
	// environment.previous before; always for the first environment.
	RulePromotedToPrevious = "promoted_to_previous"
	// RuleNotRevoked passes when the artifact is not revoked.
	RuleNotRevoked = "not_revoked"
	// RuleCommitSignedBy passes when the server verified that the git
	// commit the artifact was built from is signed by one of
	// Params.Principals or Params.Fingerprints (one of the two required),
	// and every verified provenance names that commit (the server records
	// a verification only for the commit a verified provenance names).
	RuleCommitSignedBy = "commit_signed_by"
	// RuleNotationSigned passes when a Notary Project signature verified
	// under the Notation trust policy (whose trustedIdentities pin who
	// may sign).
	RuleNotationSigned = "notation_signed"
	// RuleSignedByIdentity passes when a verified keyless signature's
	// certificate names a signer the identity constraints accept
	// (Params.Identity or IdentityRegexp, Issuer or IssuerRegexp,
	// required; GitHubWorkflowRepository, GitHubWorkflowRef, Repository,
	// Ref, Workflow optional), as certidentity.Constraints.Match decides.
	RuleSignedByIdentity = "signed_by_identity"
)

// ReadyRule describes a ready-made rule.
type ReadyRule struct {
	// Name is what spec.Rule.Use names.
	Name string
	// Expr is the rule's CEL expression; it reads its parameters from
	// the variable params.
	Expr string
	// Params are the Params fields (by their YAML name) the rule takes.
	Params []string
	// message builds the human message from the (normalised) params.
	message func(Params) string
	// prepare checks and normalises the params.
	prepare func(*Params) error
}

var readyRules = []ReadyRule{
	{
		Name:   RuleSignedByTrustedKey,
		Expr:   `signatures.exists(s, s.keyId in params.keys)`,
		Params: []string{"keys"},
		prepare: func(p *Params) error {
			if len(p.Keys) == 0 {
				return fmt.Errorf("params.keys is required: list the IDs of the keys you trust (custody key list)")
			}
			return noEmpty("keys", p.Keys)
		},
		message: func(p Params) string {
			return "artifact must carry a verified signature by a trusted key (" + strings.Join(p.Keys, ", ") + ")"
		},
	},
	{
		Name: RuleSLSAProvenanceTrusted,
		Expr: `provenance.size() > 0 && provenance.all(p,
  p.builderId in params.builders &&
  normalizeSourceURI(p.sourceUri) in params.sources &&
  p.sourceRef in params.branches)`,
		Params: []string{"builders", "sources", "branches"},
		prepare: func(p *Params) error {
			if len(p.Builders) == 0 {
				return fmt.Errorf("params.builders is required: list the SLSA builder IDs you trust")
			}
			if len(p.Sources) == 0 {
				return fmt.Errorf("params.sources is required: list the source repository URIs you trust")
			}
			if len(p.Branches) == 0 {
				p.Branches = []string{"refs/heads/main"}
			}
			for _, f := range []struct {
				n string
				v []string
			}{{"builders", p.Builders}, {"sources", p.Sources}, {"branches", p.Branches}} {
				if err := noEmpty(f.n, f.v); err != nil {
					return err
				}
			}
			p.Sources = mapStrings(p.Sources, NormalizeSourceURI)
			p.Branches = mapStrings(p.Branches, NormalizeRef)
			return nil
		},
		message: func(p Params) string {
			return fmt.Sprintf("artifact must have SLSA v1 provenance from a trusted builder (%s), of a trusted source (%s), built from a protected branch (%s)",
				strings.Join(p.Builders, ", "), strings.Join(p.Sources, ", "), strings.Join(p.Branches, ", "))
		},
	},
	{
		Name: RuleSBOMPresent,
		Expr: `attestations.exists(t,
  (t.startsWith('https://spdx.dev/Document') || t.startsWith('https://cyclonedx.org/bom')) &&
  attestations[t].size() > 0)`,
		message: func(Params) string { return "artifact must have a verified SBOM attestation (SPDX or CycloneDX)" },
	},
	{
		Name:   RuleNoFindingsAtOrAbove,
		Expr:   `!findings.exists(f, !f.waived && severityRank(f.severity) >= severityRank(params.severity))`,
		Params: []string{"severity"},
		prepare: func(p *Params) error {
			if p.Severity == "" {
				p.Severity = SeverityHigh
			}
			if _, ok := SeverityRank(p.Severity); !ok {
				return fmt.Errorf("params.severity is %q: use NONE, LOW, MEDIUM, HIGH or CRITICAL", p.Severity)
			}
			p.Severity = strings.ToUpper(p.Severity)
			return nil
		},
		message: func(p Params) string {
			return "artifact must have no unwaived finding (vulnerability or unpinned dependency) of severity " + p.Severity + " or above"
		},
	},
	{
		Name:    RulePassedQA,
		Expr:    `testResults.exists(r, r.result == 'PASSED')`,
		message: func(Params) string { return "artifact must have a verified test-result attestation with result PASSED" },
	},
	{
		Name: RulePromotedToPrevious,
		Expr: `environment.previous == '' ||
  promotions.exists(p, p.environment == environment.previous && p.digest == artifact.digest)`,
		message: func(Params) string {
			return "artifact must have been promoted to the previous environment first"
		},
	},
	{
		Name:    RuleNotRevoked,
		Expr:    `!revoked`,
		message: func(Params) string { return "artifact must not be revoked" },
	},
	{
		Name: RuleCommitSignedBy,
		Expr: `sources.exists(s,
  (s.principals.exists(p, p in params.principals) || s.keyFingerprint in params.fingerprints) &&
  provenance.all(p, p.sourceCommit == s.commit))`,
		Params: []string{"principals", "fingerprints"},
		prepare: func(p *Params) error {
			if len(p.Principals) == 0 && len(p.Fingerprints) == 0 {
				return fmt.Errorf("params.principals or params.fingerprints is required: list who may sign the source (allowed-signers principals, OpenPGP emails, or key fingerprints)")
			}
			if err := noEmpty("principals", p.Principals); err != nil {
				return err
			}
			return noEmpty("fingerprints", p.Fingerprints)
		},
		message: func(p Params) string {
			return "artifact must be built from a git commit whose signature the server verified, by " + strings.Join(append(slices.Clone(p.Principals), p.Fingerprints...), ", ")
		},
	},
	{
		Name:   RuleSignedByIdentity,
		Expr:   `signatures.exists(s, s.certificate.size() > 0 && identityMatches(s.certificate, params))`,
		Params: []string{"identity", "identityRegexp", "issuer", "issuerRegexp", "githubWorkflowRepository", "githubWorkflowRef", "repository", "ref", "workflow"},
		prepare: func(p *Params) error {
			if err := p.Constraints().Check(); err != nil {
				return fmt.Errorf("params: %w", err)
			}
			return nil
		},
		message: func(p Params) string {
			return "artifact must carry a verified keyless signature by " + p.Constraints().String()
		},
	},
	{
		Name: RuleNotationSigned,
		Expr: `notation.size() > 0`,
		message: func(Params) string {
			return "artifact must carry a Notation signature by an identity the Notation trust policy trusts"
		},
	},
}

// ReadyMade lists the ready-made rules in a stable order.
func ReadyMade() []ReadyRule {
	out := make([]ReadyRule, len(readyRules))
	for i, r := range readyRules {
		r.Params = slices.Clone(r.Params)
		out[i] = r
	}
	return out
}

func lookupReady(name string) (ReadyRule, bool) {
	for _, r := range readyRules {
		if r.Name == name {
			return r, true
		}
	}
	return ReadyRule{}, false
}

func readyNames() string {
	names := make([]string, len(readyRules))
	for i, r := range readyRules {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}

func noEmpty(field string, v []string) error {
	if slices.Contains(v, "") {
		return fmt.Errorf("params.%s contains an empty string", field)
	}
	return nil
}

func mapStrings(v []string, f func(string) string) []string {
	out := make([]string, len(v))
	for i, s := range v {
		out[i] = f(s)
	}
	return out
}
