// Package gate decides whether an artifact digest may enter an
// environment (dev, test, prod, ...): a gate is a list of rules written in
// CEL (cel.dev/cel-go), and the artifact passes when every rule is true.
//
// A gate is written as a spec.Gate (package gate/spec: plain data, YAML or
// JSON, read with spec.Parse, held by the configuration), built with
// Compile, which parses and type-checks every rule against the input
// declared below, and run with (*Gate).Evaluate, which returns each rule's
// pass or fail and message. A rule is a ready-made rule named by use: with
// typed params, or a custom rule with name:, expr: and message:.
//
// # Input
//
// Rules see these CEL variables, filled from an Input (Go field names in
// brackets). Object types are gate.Artifact, gate.Signature, and so on;
// reading a field that does not exist is a Compile error.
//
//	artifact      gate.Artifact             the manifest being promoted
//	  .digest       string                  "sha256:<hex>" (Digest)
//	  .repository   string                  repository name, "acme/app" (Repository)
//	  .tags         list(string)            tags pointing at digest (Tags)
//	  .annotations  map(string, string)     manifest annotations (Annotations)
//	  .mediaType    string                  manifest media type (MediaType)
//	  .created      timestamp               when custody stored it (Created)
//	signatures    list(gate.Signature)      verified signatures only
//	  .keyId        string                  key.ID of the trusted key (KeyID)
//	  .identity     string                  signer identity, "" if unknown (Identity)
//	  .source       string                  "tag" or "referrer" (Source)
//	  .signedAt     timestamp               signing time; 0001-01-01T00:00:00Z if unknown (SignedAt)
//	  .issuer       string                  keyless certificate's OIDC issuer, "" for a key (Issuer)
//	  .certificate  map(string, string)     keyless certificate's claims (certidentity.Identity.Claims), empty for a key (Certificate)
//	notation      list(gate.NotationSignature)
//	                                        Notary Project signatures verified under the Notation trust policy
//	  .identity     string                  signing certificate subject, "CN=...,O=...,C=US" (Identity)
//	  .issuer       string                  its issuer (Issuer)
//	  .format       string                  "jws" or "cose" (Format)
//	  .policy       string                  trust policy statement that applied (Policy)
//	  .signedAt     timestamp               signing time the envelope claims (SignedAt)
//	attestations  map(string, list(gate.Attestation))
//	                                        verified in-toto statements by predicate type
//	  .keyId        string                  key.ID of the key that verified (KeyID)
//	  .predicate    map(string, dyn)        the predicate JSON object (Predicate)
//	provenance    list(gate.Provenance)     parsed SLSA v1 provenance predicates
//	  .builderId    string                  runDetails.builder.id (BuilderID)
//	  .buildType    string                  buildDefinition.buildType (BuildType)
//	  .sourceUri    string                  source repository, normalised (SourceURI)
//	  .sourceRef    string                  git ref built, "refs/heads/main" (SourceRef)
//	  .sourceCommit string                  git commit built (SourceCommit)
//	  .workflowPath string                  CI workflow file (WorkflowPath)
//	  .invocationId string                  CI run (InvocationID)
//	testResults   list(gate.TestResult)     parsed in-toto test-result v0.1 predicates
//	  .result       string                  "PASSED", "WARNED" or "FAILED" (Result)
//	  .type         string                  first configuration's name or URI, "qa" (Type)
//	  .url          string                  the test run (URL)
//	  .passedTests  list(string)            (PassedTests)
//	  .failedTests  list(string)            (FailedTests)
//	findings      list(gate.Finding)        vulnerabilities and unpinned dependencies
//	  .id           string                  advisory ID, "GHSA-..." (ID)
//	  .aliases      list(string)            other IDs, "CVE-..." (Aliases)
//	  .severity     string                  NONE, LOW, MEDIUM, HIGH or CRITICAL (Severity)
//	  .score        double                  CVSS base score, 0 if unknown (Score)
//	  .package      string                  affected package (Package)
//	  .version      string                  its version (Version)
//	  .fixed        string                  first fixed version, "" if none (Fixed)
//	  .kind         string                  "vulnerability" or "unpinned" (Kind)
//	  .waived       bool                    an accepted waiver covers it (Waived)
//	  .waiverReason string                  why (WaiverReason)
//	promotions    list(gate.Promotion)      prior promotions of this digest
//	  .environment  string                  environment entered (Environment)
//	  .at           timestamp               when (At)
//	  .by           string                  who (By)
//	  .digest       string                  digest promoted (Digest)
//	sources       list(gate.Source)         server-verified signed git commits built from
//	  .commit       string                  commit object ID (Commit)
//	  .method       string                  "ssh" or "openpgp" (Method)
//	  .principals   list(string)            allowed-signers principals / OpenPGP emails (Principals)
//	  .keyFingerprint string                signing key fingerprint (KeyFingerprint)
//	  .committer    string                  committer line (Committer)
//	  .verifiedAt   timestamp               when the server verified it (VerifiedAt)
//	environment   gate.Environment          the environment to enter
//	  .name         string                  "prod" (Name)
//	  .previous     string                  environment before it, "" for the first (Previous)
//	now           timestamp                 evaluation time (Now)
//	revoked       bool                      the artifact was revoked (Revoked)
//	params        gate.Params               a ready-made rule's params; empty in custom rules
//
// Only verified facts belong in an Input: the caller puts there what
// sign.Verify and attest.Verify (with attest.VerifySubject) accepted.
// (*Input).AddAttestation files a verified attestation under its predicate
// type and parses SLSA provenance and test results into provenance and
// testResults; SignatureOf converts a sign.Verified.
//
// Besides standard CEL, rules may call identityMatches(map(string,
// string), gate.Params) bool (certidentity.Constraints.Match of the
// params' identity constraints over certificate claims),
// severityRank(string) int (NONE 0
// to CRITICAL 4; any other string is an error), normalizeSourceURI(string)
// string (see NormalizeSourceURI), the cel-go strings, lists and sets
// extensions, and optional values (attestations[?'type'].orValue([])).
//
// # Ready-made rules
//
// signed_by_trusted_key (params keys), slsa_provenance_trusted (builders,
// sources, branches), sbom_present, no_findings_at_or_above (severity,
// default HIGH), passed_qa, promoted_to_previous, not_revoked,
// commit_signed_by (principals, fingerprints), notation_signed and
// signed_by_identity (identity or identityRegexp, issuer or issuerRegexp,
// githubWorkflowRepository, githubWorkflowRef, repository, ref,
// workflow): see the
// Rule* constants and ReadyMade for each one's expression.
//
// # Limits and failing closed
//
// Compile rejects expressions that are not of type bool (dyn included:
// compare a predicate field explicitly), over MaxExprBytes, or more than
// MaxRules rules. Each rule's evaluation is capped by a CEL cost limit
// (spec.Gate.CostLimit, DefaultCostLimit) and the whole Evaluate by a timeout
// (spec.Gate.Timeout, DefaultTimeout). A rule that errors at run time (a
// missing map key, an index out of range, an unknown severity), exceeds
// the cost limit or is cut off by the timeout fails, with the reason in
// RuleResult.Error: a gate never passes on an error.
package gate
