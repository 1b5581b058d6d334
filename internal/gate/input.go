package gate

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/jsondoc"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/sign"
)

// Input is everything a gate may look at when it decides whether one
// artifact digest may enter one environment. Each field is a top-level
// CEL variable named by its json tag (artifact, signatures, ...); the
// package documentation describes them field by field.
//
// Only verified facts belong in an Input: Signatures and Attestations
// hold what internal/evidence counts (promotion.InputOf builds an Input
// from an evidence.Set), nothing else.
type Input struct {
	// Artifact is the manifest being promoted (CEL artifact).
	Artifact Artifact `json:"artifact"`
	// Signatures are the verified signatures on Artifact.Digest.
	Signatures []Signature `json:"signatures"`
	// Notation are the Notary Project signatures on Artifact.Digest that
	// verified under the Notation trust policy (internal/evidence's rule).
	Notation []NotationSignature `json:"notation"`
	// Attestations are the verified in-toto statements about
	// Artifact.Digest, by predicate type.
	Attestations map[string][]Attestation `json:"attestations"`
	// Provenance are the verified SLSA v1 provenance predicates, parsed.
	Provenance []Provenance `json:"provenance"`
	// TestResults are the verified test-result predicates, parsed.
	TestResults []TestResult `json:"testResults"`
	// Findings are the vulnerabilities and unpinned dependencies found in
	// the artifact, waivers applied.
	Findings []Finding `json:"findings"`
	// Promotions are the prior promotions of Artifact.Digest.
	Promotions []Promotion `json:"promotions"`
	// Sources are the server's verifications of the signed git commit
	// Artifact.Digest was built from.
	Sources []Source `json:"sources"`
	// Environment is the environment the artifact is to enter.
	Environment Environment `json:"environment"`
	// Now is the evaluation time.
	Now time.Time `json:"now"`
	// Revoked is true when the artifact was revoked.
	Revoked bool `json:"revoked"`
}

// Artifact is the manifest being promoted (CEL type gate.Artifact).
type Artifact struct {
	// Digest is the manifest digest, "sha256:<hex>".
	Digest string `json:"digest"`
	// Repository is the repository name, e.g. "acme/app".
	Repository string `json:"repository"`
	// Tags are the tags pointing at Digest in Repository.
	Tags []string `json:"tags"`
	// Annotations are the manifest's annotations.
	Annotations map[string]string `json:"annotations"`
	// MediaType is the manifest media type.
	MediaType string `json:"mediaType"`
	// Created is when custody stored the manifest.
	Created time.Time `json:"created"`
}

// Signature is one verified signature on Artifact.Digest (CEL type
// gate.Signature).
type Signature struct {
	// KeyID is custody's key.ID of the trusted key that verified it.
	KeyID string `json:"keyId"`
	// Identity is the signer's identity when known (keyless certificate
	// subject, or the key's owner); "" otherwise.
	Identity string `json:"identity"`
	// Source is where the signature was found: "tag" or "referrer".
	Source string `json:"source"`
	// SignedAt is the signing time when known (the zero timestamp,
	// 0001-01-01T00:00:00Z, otherwise).
	SignedAt time.Time `json:"signedAt"`
	// Issuer is the OIDC issuer of a keyless signature's certificate; ""
	// for a key-based signature.
	Issuer string `json:"issuer"`
	// Certificate are a keyless signature's certificate claims
	// (certidentity.Identity.Claims: subject, issuer, and Fulcio's
	// extensions by sigstore-go's names, e.g. sourceRepositoryURI,
	// sourceRepositoryRef, buildConfigURI, runnerEnvironment); empty for a
	// key-based signature.
	Certificate map[string]string `json:"certificate"`
}

// NotationSignature is one Notary Project signature on Artifact.Digest
// that verified under the Notation trust policy (CEL type
// gate.NotationSignature).
type NotationSignature struct {
	// Identity is the signing certificate's subject, an X.509
	// distinguished name as notation prints it ("CN=...,O=...,C=US").
	Identity string `json:"identity"`
	// Issuer is the signing certificate's issuer.
	Issuer string `json:"issuer"`
	// Format is the envelope: "jws" or "cose".
	Format string `json:"format"`
	// Policy is the name of the trust policy statement that applied.
	Policy string `json:"policy"`
	// SignedAt is the signing time the envelope claims.
	SignedAt time.Time `json:"signedAt"`
}

// Attestation is one verified in-toto statement about Artifact.Digest
// (CEL type gate.Attestation).
type Attestation struct {
	// KeyID is custody's key.ID of the key whose signature verified.
	KeyID string `json:"keyId"`
	// Predicate is the statement's predicate, a JSON object: map(string,
	// dyn) in CEL. Never nil in an Input passed to Evaluate (nil becomes
	// an empty object).
	Predicate *structpb.Struct `json:"predicate"`
}

// Provenance is the part of a verified SLSA v1 provenance predicate gates
// usually test (CEL type gate.Provenance).
type Provenance struct {
	// BuilderID is runDetails.builder.id.
	BuilderID string `json:"builderId"`
	// BuildType is buildDefinition.buildType.
	BuildType string `json:"buildType"`
	// SourceURI is the source repository (provenance.Predicate.SourceURI),
	// normalised: no "git+" scheme prefix, no trailing ".git" or "/".
	SourceURI string `json:"sourceUri"`
	// SourceRef is the git ref built, e.g. "refs/heads/main".
	SourceRef string `json:"sourceRef"`
	// SourceCommit is the git commit built.
	SourceCommit string `json:"sourceCommit"`
	// WorkflowPath is the CI workflow file, e.g. ".github/workflows/release.yml".
	WorkflowPath string `json:"workflowPath"`
	// InvocationID is runDetails.metadata.invocationId.
	InvocationID string `json:"invocationId"`
}

// The results a test-result predicate may carry.
const (
	TestPassed = "PASSED"
	TestWarned = "WARNED"
	TestFailed = "FAILED"
)

// TestResult is one verified in-toto test-result predicate
// (https://in-toto.io/attestation/test-result/v0.1; CEL type
// gate.TestResult).
type TestResult struct {
	// Result is "PASSED", "WARNED" or "FAILED".
	Result string `json:"result"`
	// Type names the test configuration: the name (else the URI) of the
	// predicate's first configuration resource descriptor, e.g. "qa".
	Type string `json:"type"`
	// URL links to the test run.
	URL string `json:"url"`
	// PassedTests and FailedTests name the tests that passed and failed.
	PassedTests []string `json:"passedTests"`
	FailedTests []string `json:"failedTests"`
}

// The severities of a finding, lowest first.
const (
	SeverityNone     = "NONE"
	SeverityLow      = "LOW"
	SeverityMedium   = "MEDIUM"
	SeverityHigh     = "HIGH"
	SeverityCritical = "CRITICAL"
)

// The kinds of finding.
const (
	KindVulnerability = "vulnerability"
	KindUnpinned      = "unpinned"
)

// Finding is one problem found in the artifact's contents (CEL type
// gate.Finding).
type Finding struct {
	// ID is the advisory ID (e.g. "GHSA-...", "CVE-...") or, for an
	// unpinned dependency, a stable ID the scanner chose.
	ID string `json:"id"`
	// Aliases are other IDs of the same advisory.
	Aliases []string `json:"aliases"`
	// Severity is one of NONE, LOW, MEDIUM, HIGH, CRITICAL.
	Severity string `json:"severity"`
	// Score is the CVSS base score (0 when unknown).
	Score float64 `json:"score"`
	// Package and Version name the affected package.
	Package string `json:"package"`
	Version string `json:"version"`
	// Fixed is the first fixed version ("" when none is known).
	Fixed string `json:"fixed"`
	// Kind is "vulnerability" or "unpinned".
	Kind string `json:"kind"`
	// Waived is true when an accepted waiver covers the finding, and
	// WaiverReason says why.
	Waived       bool   `json:"waived"`
	WaiverReason string `json:"waiverReason"`
}

// Promotion is a prior promotion of Artifact.Digest (CEL type
// gate.Promotion).
type Promotion struct {
	// Environment is the environment the digest entered.
	Environment string `json:"environment"`
	// At is when.
	At time.Time `json:"at"`
	// By is who promoted it.
	By string `json:"by"`
	// Digest is the digest promoted.
	Digest string `json:"digest"`
}

// Source is the server's verification of the signature of the git commit
// the artifact was built from (CEL type gate.Source): the commit object
// CI submitted hashes to the commit the verified provenance names, and
// its signature verified against the allowed signers or keyring.
type Source struct {
	// Commit is the commit's object ID.
	Commit string `json:"commit"`
	// Method is "ssh" or "openpgp".
	Method string `json:"method"`
	// Principals are the signer's allowed-signers principals (SSH) or
	// the OpenPGP key's user-ID emails.
	Principals []string `json:"principals"`
	// KeyFingerprint is the signing key's fingerprint: "SHA256:..." for
	// SSH (ssh-keygen -l), upper-case hex for OpenPGP (gpg).
	KeyFingerprint string `json:"keyFingerprint"`
	// Committer is the committer line ("Name <email> time zone").
	Committer string `json:"committer"`
	// VerifiedAt is when the server verified it.
	VerifiedAt time.Time `json:"verifiedAt"`
}

// Environment is the environment the artifact is to enter (CEL type
// gate.Environment).
type Environment struct {
	// Name is the environment's name, e.g. "prod".
	Name string `json:"name"`
	// Previous is the environment before it in the promotion order, ""
	// for the first.
	Previous string `json:"previous"`
}

var severityRanks = map[string]int64{
	SeverityNone: 0, SeverityLow: 1, SeverityMedium: 2, SeverityHigh: 3, SeverityCritical: 4,
}

// SeverityRank orders severities: NONE 0, LOW 1, MEDIUM 2, HIGH 3,
// CRITICAL 4. The comparison ignores case; ok is false for any other string.
func SeverityRank(s string) (rank int64, ok bool) {
	rank, ok = severityRanks[strings.ToUpper(s)]
	return rank, ok
}

// SignatureOf turns a verified signature into a gate Signature. Identity
// and SignedAt, which sign.Verified does not carry, are left for the
// caller to fill in when known.
func SignatureOf(v sign.Verified) Signature {
	return Signature{KeyID: v.KeyID, Source: string(v.Source), Certificate: map[string]string{}}
}

// ProvenanceOf extracts the gate view of a parsed SLSA v1 predicate.
func ProvenanceOf(p *provenance.Predicate) Provenance {
	out := Provenance{
		BuilderID: p.RunDetails.Builder.ID,
		BuildType: p.BuildDefinition.BuildType,
		SourceURI: NormalizeSourceURI(p.SourceURI()),
	}
	ep := p.BuildDefinition.ExternalParameters
	if ep.Source != nil {
		out.SourceRef, out.SourceCommit = ep.Source.Ref, ep.Source.Commit
	}
	if ep.Workflow != nil {
		out.WorkflowPath = ep.Workflow.Path
		if out.SourceRef == "" {
			out.SourceRef = ep.Workflow.Ref
		}
	}
	if out.SourceCommit == "" {
		for _, d := range p.BuildDefinition.ResolvedDependencies {
			if c := d.Digest["gitCommit"]; c != "" {
				out.SourceCommit = c
				break
			}
		}
	}
	if p.RunDetails.Metadata != nil {
		out.InvocationID = p.RunDetails.Metadata.InvocationID
	}
	return out
}

// NormalizeSourceURI removes a "git+" scheme prefix, a trailing "/" and a
// trailing ".git", so "git+https://github.com/acme/app.git" becomes
// "https://github.com/acme/app". The slsa_provenance_trusted rule compares
// normalised URIs.
func NormalizeSourceURI(u string) string {
	u = strings.TrimPrefix(u, "git+")
	u = strings.TrimSuffix(u, "/")
	return strings.TrimSuffix(u, ".git")
}

// NormalizeRef turns a bare branch name into a full ref: "main" becomes
// "refs/heads/main"; a string that already starts with "refs/" is kept.
func NormalizeRef(r string) string {
	if r == "" || strings.HasPrefix(r, "refs/") {
		return r
	}
	return "refs/heads/" + r
}

// MaxTestResultBytes caps a test-result predicate ParseTestResult reads.
const MaxTestResultBytes = 4 << 20

// ParseTestResult reads an in-toto test-result v0.1 predicate (the JSON
// object, not the whole statement).
func ParseTestResult(predicate []byte) (TestResult, error) {
	if len(predicate) > MaxTestResultBytes {
		return TestResult{}, fmt.Errorf("test-result predicate is %d bytes, the limit is %d", len(predicate), MaxTestResultBytes)
	}
	var raw struct {
		Result        string `json:"result"`
		Configuration []struct {
			Name string `json:"name"`
			URI  string `json:"uri"`
		} `json:"configuration"`
		URL         string   `json:"url"`
		PassedTests []string `json:"passedTests"`
		FailedTests []string `json:"failedTests"`
	}
	if err := jsondoc.Unmarshal(predicate, &raw); err != nil {
		return TestResult{}, fmt.Errorf("invalid test-result predicate: %w", err)
	}
	switch raw.Result {
	case TestPassed, TestWarned, TestFailed:
	default:
		return TestResult{}, fmt.Errorf("invalid test-result predicate: result is %q, want PASSED, WARNED or FAILED", raw.Result)
	}
	out := TestResult{Result: raw.Result, URL: raw.URL, PassedTests: raw.PassedTests, FailedTests: raw.FailedTests}
	if len(raw.Configuration) > 0 {
		out.Type = raw.Configuration[0].Name
		if out.Type == "" {
			out.Type = raw.Configuration[0].URI
		}
	}
	return out, nil
}

// AddAttestation records a verified attestation: it is appended to
// Attestations under its predicate type, and a SLSA v1 provenance or a
// test-result predicate is also parsed into Provenance or TestResults.
// A predicate of those two types that does not parse is an error (and
// nothing is recorded), so a gate never sees half an attestation.
func (in *Input) AddAttestation(v *attest.Verified) error {
	if v == nil || v.Statement == nil {
		return fmt.Errorf("gate: AddAttestation needs a verified statement")
	}
	pred := v.Statement.GetPredicate()
	if pred == nil {
		pred = &structpb.Struct{}
	}
	pt := v.PredicateType
	if pt == "" {
		pt = v.Statement.GetPredicateType()
	}
	switch pt {
	case attest.PredicateSLSAProvenanceV1:
		b, err := attest.PredicateJSON(v.Statement)
		if err != nil {
			return err
		}
		p, err := provenance.Parse(b)
		if err != nil {
			return err
		}
		in.Provenance = append(in.Provenance, ProvenanceOf(p))
	case attest.PredicateTestResult:
		b, err := attest.PredicateJSON(v.Statement)
		if err != nil {
			return err
		}
		tr, err := ParseTestResult(b)
		if err != nil {
			return err
		}
		in.TestResults = append(in.TestResults, tr)
	}
	if in.Attestations == nil {
		in.Attestations = map[string][]Attestation{}
	}
	in.Attestations[pt] = append(in.Attestations[pt], Attestation{KeyID: v.KeyID, Predicate: pred})
	return nil
}
