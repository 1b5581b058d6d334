package gate

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/gate/spec"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/sign"
)

const (
	digest      = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	builderGHA  = "https://github.com/actions/runner/github-hosted"
	sourceRepo  = "https://github.com/acme/app"
	trustedKey  = "kA-trusted"
	untrusted   = "kZ-stranger"
	spdxDoc     = `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"app","dataLicense":"CC0-1.0","documentNamespace":"https://custody.example/spdx/app","creationInfo":{"created":"2026-11-01T10:00:00Z","creators":["Tool: custody"]},"packages":[]}`
	testResultQ = `{"result":"PASSED","configuration":[{"name":"qa","uri":"https://ci.example/acme/app/qa.yml"}],"url":"https://ci.example/run/42","passedTests":["TestLogin","TestCheckout"]}`
)

// signer is a real key used to sign the attestations the tests verify.
type signer struct {
	priv crypto.Signer
	id   string
}

func newSigner(t testing.TB) signer {
	t.Helper()
	priv, err := key.Generate(key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	id, err := key.ID(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return signer{priv: priv, id: id}
}

// attestation signs a statement about digest and verifies it with attest,
// returning what attest.Verify accepted.
func (s signer) attestation(t testing.TB, predicateType, predicate string) *attest.Verified {
	t.Helper()
	stmt, err := attest.StatementFor("registry.example/acme/app", digest, predicateType, []byte(predicate))
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.Sign(context.Background(), s.priv, s.id, stmt)
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.Verify(env, attest.ResolverFromKeys(s.priv.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if err := attest.VerifySubject(v, digest); err != nil {
		t.Fatal(err)
	}
	return v
}

func slsaPredicate(t testing.TB, builder, uri, ref string) string {
	t.Helper()
	started := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	p := provenance.Predicate{
		BuildDefinition: provenance.BuildDefinition{
			BuildType: provenance.BuildTypeGitHubActions,
			ExternalParameters: provenance.ExternalParameters{
				Source:   &provenance.Source{URI: uri, Ref: ref, Commit: "0123456789abcdef0123456789abcdef01234567"},
				Workflow: &provenance.Workflow{Repository: uri, Path: ".github/workflows/release.yml", Ref: ref},
			},
		},
		RunDetails: provenance.RunDetails{
			Builder:  provenance.Builder{ID: builder},
			Metadata: &provenance.Metadata{InvocationID: "https://github.com/acme/app/actions/runs/42/attempts/1", StartedOn: &started},
		},
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goodInput is an artifact on its way to prod that every ready-made rule
// of prodSpec accepts, assembled from really signed and verified
// attestations.
func goodInput(t testing.TB) Input {
	t.Helper()
	s := newSigner(t)
	now := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	in := Input{
		Notation: []NotationSignature{{Identity: "CN=release,O=acme,ST=WA,C=US", Issuer: "CN=acme CA,O=acme,ST=WA,C=US", Format: "cose", Policy: "prod", SignedAt: now}},
		Artifact: Artifact{
			Digest: digest, Repository: "acme/app", Tags: []string{"v1.4.2", "latest"},
			Annotations: map[string]string{"org.opencontainers.image.source": sourceRepo},
			MediaType:   "application/vnd.oci.image.manifest.v1+json",
			Created:     now.Add(-48 * time.Hour),
		},
		Signatures: []Signature{
			{KeyID: untrusted, Source: "tag", SignedAt: now.Add(-47 * time.Hour)},
			SignatureOf(sign.Verified{Source: sign.SourceReferrer, KeyID: trustedKey, Digest: digest}),
			{KeyID: "ephemeral", Source: "tag", SignedAt: now.Add(-47 * time.Hour), Identity: keylessIdentity, Issuer: keylessIssuer,
				Certificate: map[string]string{"subject": keylessIdentity, "issuer": keylessIssuer, "sourceRepositoryURI": "https://github.com/acme/app",
					"sourceRepositoryRef": "refs/heads/main", "buildConfigURI": keylessIdentity, "githubWorkflowRepository": "acme/app", "runnerEnvironment": "github-hosted"}},
		},
		Findings: []Finding{
			{ID: "GHSA-aaaa-bbbb-cccc", Aliases: []string{"CVE-2026-0001"}, Severity: SeverityLow, Score: 3.1, Package: "golang.org/x/net", Version: "v0.50.0", Fixed: "v0.51.0", Kind: KindVulnerability},
			{ID: "GHSA-dddd-eeee-ffff", Severity: SeverityCritical, Score: 9.8, Package: "github.com/acme/lib", Version: "v1.0.0", Kind: KindVulnerability, Waived: true, WaiverReason: "not reachable: the vulnerable parser is never called"},
		},
		Promotions: []Promotion{
			{Environment: "dev", At: now.Add(-30 * time.Hour), By: "ci", Digest: digest},
			{Environment: "test", At: now.Add(-20 * time.Hour), By: "alice", Digest: digest},
		},
		Sources: []Source{
			{Commit: "0123456789abcdef0123456789abcdef01234567", Method: "ssh", Principals: []string{"alice@example.com"}, KeyFingerprint: "SHA256:alice", VerifiedAt: now.Add(-47 * time.Hour)},
		},
		Environment: Environment{Name: "prod", Previous: "test"},
		Now:         now,
	}
	for _, v := range []*attest.Verified{
		s.attestation(t, attest.PredicateSLSAProvenanceV1, slsaPredicate(t, builderGHA, "git+https://github.com/acme/app.git", "refs/heads/main")),
		s.attestation(t, attest.PredicateSPDX, spdxDoc),
		s.attestation(t, attest.PredicateTestResult, testResultQ),
	} {
		if err := in.AddAttestation(v); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

func prodSpec() spec.Gate {
	return spec.Gate{Rules: []spec.Rule{
		{Use: RuleSignedByTrustedKey, Params: spec.Params{Keys: []string{trustedKey, "kB-trusted"}}},
		{Use: RuleSLSAProvenanceTrusted, Params: spec.Params{Builders: []string{builderGHA}, Sources: []string{sourceRepo + ".git"}, Branches: []string{"main", "refs/heads/release"}}},
		{Use: RuleSBOMPresent},
		{Use: RuleNoFindingsAtOrAbove},
		{Use: RulePassedQA},
		{Use: RulePromotedToPrevious},
		{Use: RuleNotRevoked},
		{Use: RuleCommitSignedBy, Params: spec.Params{Principals: []string{"alice@example.com", "bob@example.com"}, Fingerprints: []string{"ABCDEF"}}},
		{Use: RuleNotationSigned},
		{Use: RuleSignedByIdentity, Params: spec.Params{Identity: keylessIdentity, Issuer: keylessIssuer, Repository: "https://github.com/acme/app"}},
	}}
}

const (
	keylessIdentity = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
	keylessIssuer   = "https://token.actions.githubusercontent.com"
)

func mustCompile(t testing.TB, s spec.Gate) *Gate {
	t.Helper()
	g, err := Compile(s)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return g
}

func ruleResult(t testing.TB, r Result, name string) RuleResult {
	t.Helper()
	for _, rr := range r.Rules {
		if rr.Name == name {
			return rr
		}
	}
	t.Fatalf("no result for rule %s in %+v", name, r)
	return RuleResult{}
}

func TestGoodInputPassesEveryReadyMadeRule(t *testing.T) {
	g := mustCompile(t, prodSpec())
	in := goodInput(t)
	r := g.Evaluate(context.Background(), in)
	if !r.Pass {
		t.Fatalf("gate failed: %+v", r.Failed())
	}
	if len(r.Rules) != len(readyRules) {
		t.Fatalf("%d results, want %d", len(r.Rules), len(readyRules))
	}
	for _, rr := range r.Rules {
		if !rr.Pass || rr.Error != "" || rr.Message == "" || rr.Cost == 0 && rr.Name != RuleNotRevoked && rr.Name != RuleNotationSigned {
			t.Errorf("rule %+v", rr)
		}
	}
	// AddAttestation filled the typed views from the signed predicates.
	if len(in.Provenance) != 1 || in.Provenance[0].SourceURI != sourceRepo || in.Provenance[0].WorkflowPath != ".github/workflows/release.yml" ||
		in.Provenance[0].SourceCommit == "" || in.Provenance[0].InvocationID == "" || in.Provenance[0].BuildType != provenance.BuildTypeGitHubActions {
		t.Errorf("provenance = %+v", in.Provenance)
	}
	if len(in.TestResults) != 1 || in.TestResults[0].Type != "qa" || len(in.TestResults[0].PassedTests) != 2 {
		t.Errorf("test results = %+v", in.TestResults)
	}
}

// TestReadyMadeRules changes the good input one way at a time and checks
// which rule that fails, or that the rule still passes.
func TestReadyMadeRules(t *testing.T) {
	s := newSigner(t)
	g := mustCompile(t, prodSpec())
	addAtt := func(pt, pred string) func(*Input) {
		return func(in *Input) {
			if err := in.AddAttestation(s.attestation(t, pt, pred)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name   string
		rule   string
		mutate func(*Input)
		pass   bool
		errSub string // for fail-closed runtime errors
	}{
		{"no key signatures", RuleSignedByTrustedKey, func(in *Input) { in.Signatures = in.Signatures[2:] }, false, ""},
		{"no keyless signature", RuleSignedByIdentity, func(in *Input) { in.Signatures = in.Signatures[:2] }, false, ""},
		{"keyless signature by another identity", RuleSignedByIdentity, func(in *Input) {
			in.Signatures[2].Certificate["subject"] = "https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main"
		}, false, ""},
		{"keyless signature from another issuer", RuleSignedByIdentity, func(in *Input) { in.Signatures[2].Certificate["issuer"] = "https://evil.example" }, false, ""},
		{"keyless signature from another repository", RuleSignedByIdentity, func(in *Input) {
			in.Signatures[2].Certificate["sourceRepositoryURI"] = "https://github.com/acme/other"
		}, false, ""},
		{"only untrusted signature", RuleSignedByTrustedKey, func(in *Input) { in.Signatures = []Signature{in.Signatures[0], in.Signatures[2]} }, false, ""},
		{"second trusted key", RuleSignedByTrustedKey, func(in *Input) { in.Signatures = []Signature{{KeyID: "kB-trusted", Source: "tag"}, in.Signatures[2]} }, true, ""},

		{"no provenance", RuleSLSAProvenanceTrusted, func(in *Input) { in.Provenance = nil }, false, ""},
		{"untrusted builder", RuleSLSAProvenanceTrusted, func(in *Input) { in.Provenance[0].BuilderID = "https://evil.example/builder" }, false, ""},
		{"untrusted source", RuleSLSAProvenanceTrusted, func(in *Input) { in.Provenance[0].SourceURI = "https://github.com/acme-evil/app" }, false, ""},
		{"source prefix is not enough", RuleSLSAProvenanceTrusted, func(in *Input) { in.Provenance[0].SourceURI = sourceRepo + "/../other" }, false, ""},
		{"feature branch", RuleSLSAProvenanceTrusted, func(in *Input) { in.Provenance[0].SourceRef = "refs/heads/feature/x" }, false, ""},
		{"tag ref is not a protected branch", RuleSLSAProvenanceTrusted, func(in *Input) { in.Provenance[0].SourceRef = "refs/tags/v1.4.2" }, false, ""},
		{"second protected branch", RuleSLSAProvenanceTrusted, func(in *Input) { in.Provenance[0].SourceRef = "refs/heads/release" }, true, ""},
		{"unnormalised source in input", RuleSLSAProvenanceTrusted, func(in *Input) { in.Provenance[0].SourceURI = "git+https://github.com/acme/app.git/" }, true, ""},
		{"second provenance untrusted", RuleSLSAProvenanceTrusted, addAtt(attest.PredicateSLSAProvenanceV1, slsaPredicate(t, "https://evil.example/builder", sourceRepo, "refs/heads/main")), false, ""},

		{"no sbom", RuleSBOMPresent, func(in *Input) { delete(in.Attestations, attest.PredicateSPDX) }, false, ""},
		{"empty sbom list", RuleSBOMPresent, func(in *Input) { in.Attestations[attest.PredicateSPDX] = nil }, false, ""},
		{"cyclonedx only", RuleSBOMPresent, func(in *Input) {
			delete(in.Attestations, attest.PredicateSPDX)
			addAtt(attest.PredicateCycloneDX, `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1}`)(in)
		}, true, ""},

		{"unwaived high", RuleNoFindingsAtOrAbove, func(in *Input) {
			in.Findings = append(in.Findings, Finding{ID: "CVE-2026-1234", Severity: SeverityHigh, Score: 7.5, Package: "openssl", Version: "3.0.1", Fixed: "3.0.9", Kind: KindVulnerability})
		}, false, ""},
		{"unwaived critical", RuleNoFindingsAtOrAbove, func(in *Input) { in.Findings[1].Waived = false }, false, ""},
		{"unpinned high counts", RuleNoFindingsAtOrAbove, func(in *Input) {
			in.Findings = append(in.Findings, Finding{ID: "unpinned:actions/checkout@main", Severity: SeverityHigh, Package: "actions/checkout", Version: "main", Kind: KindUnpinned})
		}, false, ""},
		{"waived unpinned high", RuleNoFindingsAtOrAbove, func(in *Input) {
			in.Findings = append(in.Findings, Finding{ID: "unpinned:actions/checkout@main", Severity: SeverityHigh, Kind: KindUnpinned, Waived: true, WaiverReason: "first-party action"})
		}, true, ""},
		{"medium is below threshold", RuleNoFindingsAtOrAbove, func(in *Input) {
			in.Findings = append(in.Findings, Finding{ID: "x", Severity: SeverityMedium, Kind: KindVulnerability})
		}, true, ""},
		{"lower-case severity", RuleNoFindingsAtOrAbove, func(in *Input) {
			in.Findings = append(in.Findings, Finding{ID: "x", Severity: "high", Kind: KindVulnerability})
		}, false, ""},
		{"unknown severity fails closed", RuleNoFindingsAtOrAbove, func(in *Input) {
			in.Findings = append(in.Findings, Finding{ID: "x", Severity: "SEVERE", Kind: KindVulnerability})
		}, false, "unknown severity"},

		{"no test results", RulePassedQA, func(in *Input) { in.TestResults = nil }, false, ""},
		{"only failed tests", RulePassedQA, func(in *Input) { in.TestResults[0].Result = TestFailed }, false, ""},
		{"a failed run and a passed run", RulePassedQA, addAtt(attest.PredicateTestResult, `{"result":"FAILED","failedTests":["TestFlaky"]}`), true, ""},

		{"never reached test", RulePromotedToPrevious, func(in *Input) { in.Promotions = in.Promotions[:1] }, false, ""},
		{"test promotion of another digest", RulePromotedToPrevious, func(in *Input) { in.Promotions[1].Digest = "sha256:" + strings.Repeat("0", 64) }, false, ""},
		{"first environment", RulePromotedToPrevious, func(in *Input) { in.Promotions, in.Environment = nil, Environment{Name: "dev"} }, true, ""},

		{"revoked", RuleNotRevoked, func(in *Input) { in.Revoked = true }, false, ""},

		{"no source verification", RuleCommitSignedBy, func(in *Input) { in.Sources = nil }, false, ""},
		{"signed by someone else", RuleCommitSignedBy, func(in *Input) { in.Sources[0].Principals = []string{"mallory@example.com"} }, false, ""},
		{"allowed by fingerprint", RuleCommitSignedBy, func(in *Input) {
			in.Sources[0].Principals, in.Sources[0].KeyFingerprint = []string{}, "ABCDEF"
		}, true, ""},
		{"provenance names another commit", RuleCommitSignedBy, func(in *Input) { in.Sources[0].Commit = strings.Repeat("f", 40) }, false, ""},
		{"no notation signature", RuleNotationSigned, func(in *Input) { in.Notation = nil }, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := goodInput(t)
			c.mutate(&in)
			r := g.Evaluate(context.Background(), in)
			rr := ruleResult(t, r, c.rule)
			if rr.Pass != c.pass {
				t.Fatalf("rule %s pass = %v, want %v (%+v)", c.rule, rr.Pass, c.pass, rr)
			}
			if r.Pass != c.pass {
				t.Errorf("gate pass = %v, want %v; failed: %+v", r.Pass, c.pass, r.Failed())
			}
			if !c.pass && len(r.Failed()) != 1 {
				t.Errorf("want only %s to fail, failed: %+v", c.rule, r.Failed())
			}
			if !strings.Contains(rr.Error, c.errSub) || (c.errSub == "") != (rr.Error == "") {
				t.Errorf("error = %q, want it to contain %q", rr.Error, c.errSub)
			}
		})
	}
}

func TestSeverityThresholdParam(t *testing.T) {
	in := goodInput(t)
	in.Findings = []Finding{{ID: "CVE-2026-1234", Severity: SeverityHigh, Kind: KindVulnerability}}
	for _, c := range []struct {
		sev  string
		pass bool
	}{{"CRITICAL", true}, {"critical", true}, {"HIGH", false}, {"", false}, {"LOW", false}, {"NONE", false}} {
		g := mustCompile(t, spec.Gate{Rules: []spec.Rule{{Use: RuleNoFindingsAtOrAbove, Params: spec.Params{Severity: c.sev}}}})
		if r := g.Evaluate(context.Background(), in); r.Pass != c.pass {
			t.Errorf("threshold %q: pass = %v, want %v", c.sev, r.Pass, c.pass)
		}
	}
	in.Findings = nil
	g := mustCompile(t, spec.Gate{Rules: []spec.Rule{{Use: RuleNoFindingsAtOrAbove, Params: spec.Params{Severity: "NONE"}}}})
	if r := g.Evaluate(context.Background(), in); !r.Pass {
		t.Errorf("no findings at all must pass even at NONE: %+v", r)
	}
}

func TestCustomRules(t *testing.T) {
	g := mustCompile(t, spec.Gate{Rules: []spec.Rule{
		{Name: "release_tag", Expr: `artifact.tags.exists(t, t.matches('^v[0-9]+\\.[0-9]+\\.[0-9]+$'))`, Message: "artifact must carry a semver release tag"},
		{Name: "fresh", Expr: `now - artifact.created < duration('720h')`},
		{Name: "sbom_spdx23", Expr: `attestations[?'https://spdx.dev/Document'].orValue([]).exists(a, a.predicate.spdxVersion == 'SPDX-2.3')`},
		{Name: "qa_by_trusted_key", Expr: `'https://in-toto.io/attestation/test-result/v0.1' in attestations && attestations['https://in-toto.io/attestation/test-result/v0.1'].all(a, a.predicate.result == 'PASSED')`},
		{Name: "two_approvals", Expr: `promotions.filter(p, p.digest == artifact.digest).map(p, p.by).distinct().size() >= 2`},
		{Name: "to_prod", Expr: `environment.name == 'prod' && !revoked && size(signatures) > 0 && signatures.all(s, s.source in ['tag', 'referrer'])`},
		{Name: "scores", Expr: `findings.all(f, f.waived || f.score < 7.0)`},
	}})
	in := goodInput(t)
	r := g.Evaluate(context.Background(), in)
	if !r.Pass {
		t.Fatalf("failed: %+v", r.Failed())
	}
	if m := ruleResult(t, r, "release_tag").Message; m != "artifact must carry a semver release tag" {
		t.Errorf("message = %q", m)
	}
	if m := ruleResult(t, r, "fresh").Message; !strings.Contains(m, "fresh") {
		t.Errorf("default message = %q", m)
	}
	in.Artifact.Tags = []string{"latest"}
	in.Artifact.Created = in.Now.Add(-1000 * time.Hour)
	in.Promotions = in.Promotions[:1]
	r = g.Evaluate(context.Background(), in)
	for _, n := range []string{"release_tag", "fresh", "two_approvals"} {
		if rr := ruleResult(t, r, n); rr.Pass || rr.Error != "" {
			t.Errorf("%s: %+v, want a clean fail", n, rr)
		}
	}
	if r.Pass || len(r.Failed()) != 3 {
		t.Errorf("failed = %+v", r.Failed())
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name string
		rule spec.Rule
		want []string
	}{
		{"non-bool", spec.Rule{Name: "digest_only", Expr: `artifact.digest`}, []string{`"digest_only"`, "type string", "must be bool"}},
		{"dyn", spec.Rule{Name: "dyn_pred", Expr: `attestations['x'][0].predicate.ok`}, []string{`"dyn_pred"`, "must be bool"}},
		{"int", spec.Rule{Name: "count", Expr: `size(findings)`}, []string{`"count"`, "type int"}},
		{"unknown field", spec.Rule{Name: "typo", Expr: `artifact.digset == 'x'`}, []string{`"typo"`, "undefined field 'digset'"}},
		{"unknown nested field", spec.Rule{Name: "typo2", Expr: `findings.exists(f, f.severty == 'HIGH')`}, []string{`"typo2"`, "undefined field 'severty'"}},
		{"unknown variable", spec.Rule{Name: "var", Expr: `request.auth == 'x'`}, []string{`"var"`, "undeclared reference to 'request'"}},
		{"wrong operand type", spec.Rule{Name: "types", Expr: `artifact.tags == 'v1'`}, []string{`"types"`, "no matching overload"}},
		{"syntax", spec.Rule{Name: "syntax", Expr: `signatures.exists(s, s.keyId ==`}, []string{`"syntax"`, "Syntax error"}},
		{"empty expr", spec.Rule{Name: "empty"}, []string{`"empty"`, "needs expr"}},
		{"no name", spec.Rule{Expr: `true`}, []string{"#2", "needs a name"}},
		{"bad name", spec.Rule{Name: "a b", Expr: `true`}, []string{"a b", "letters, digits"}},
		{"unknown ready-made", spec.Rule{Use: "signed_by_anyone"}, []string{`"signed_by_anyone"`, "no ready-made rule", RuleSignedByTrustedKey}},
		{"use and expr", spec.Rule{Use: RuleNotRevoked, Expr: `true`}, []string{"not both"}},
		{"missing keys", spec.Rule{Use: RuleSignedByTrustedKey}, []string{RuleSignedByTrustedKey, "params.keys is required"}},
		{"empty key", spec.Rule{Use: RuleSignedByTrustedKey, Params: spec.Params{Keys: []string{""}}}, []string{"params.keys contains an empty string"}},
		{"missing builders", spec.Rule{Use: RuleSLSAProvenanceTrusted, Params: spec.Params{Sources: []string{sourceRepo}}}, []string{"params.builders is required"}},
		{"missing sources", spec.Rule{Use: RuleSLSAProvenanceTrusted, Params: spec.Params{Builders: []string{builderGHA}}}, []string{"params.sources is required"}},
		{"param not taken", spec.Rule{Use: RuleSBOMPresent, Params: spec.Params{Severity: "HIGH"}}, []string{RuleSBOMPresent, `takes no parameter "severity"`}},
		{"params on custom", spec.Rule{Name: "c", Expr: `true`, Params: spec.Params{Keys: []string{"k"}}}, []string{"ready-made rules only"}},
		{"bad severity", spec.Rule{Use: RuleNoFindingsAtOrAbove, Params: spec.Params{Severity: "SEVERE"}}, []string{`"SEVERE"`, "NONE, LOW, MEDIUM, HIGH or CRITICAL"}},
		{"long expr", spec.Rule{Name: "long", Expr: strings.Repeat("true && ", MaxExprBytes/8) + "true"}, []string{`"long"`, "limit"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile(spec.Gate{Rules: []spec.Rule{{Use: RuleNotRevoked}, c.rule}})
			if err == nil {
				t.Fatal("Compile accepted it")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "#2") {
				t.Errorf("error %q does not give the rule's position", err)
			}
		})
	}
	// Every bad rule is reported, not only the first.
	_, err := Compile(spec.Gate{Rules: []spec.Rule{{Name: "one", Expr: `1`}, {Name: "two", Expr: `(`}}})
	if err == nil || !strings.Contains(err.Error(), `"one"`) || !strings.Contains(err.Error(), `"two"`) {
		t.Errorf("err = %v, want both rules named", err)
	}
	if _, err := Compile(spec.Gate{}); err == nil || !strings.Contains(err.Error(), "at least one rule") {
		t.Errorf("empty gate: %v", err)
	}
	if _, err := Compile(spec.Gate{Rules: []spec.Rule{{Use: RuleNotRevoked}, {Use: RuleNotRevoked}}}); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("duplicate names: %v", err)
	}
	if _, err := Compile(spec.Gate{Rules: []spec.Rule{{Use: RuleNotRevoked}, {Use: RuleNotRevoked, Name: "not_revoked_again"}}}); err != nil {
		t.Errorf("renamed duplicate: %v", err)
	}
	many := make([]spec.Rule, MaxRules+1)
	for i := range many {
		many[i] = spec.Rule{Name: fmt.Sprintf("r%d", i), Expr: "true"}
	}
	if _, err := Compile(spec.Gate{Rules: many}); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("too many rules: %v", err)
	}
}

func TestRuntimeErrorFailsClosed(t *testing.T) {
	g := mustCompile(t, spec.Gate{Rules: []spec.Rule{
		{Name: "missing_key", Expr: `artifact.annotations['org.example.approved'] == 'yes'`},
		{Name: "missing_pred_field", Expr: `attestations['https://spdx.dev/Document'][0].predicate.nope == 'x'`},
		{Name: "index", Expr: `signatures[10].keyId != 'x'`},
		{Name: "not_negated", Expr: `!(artifact.annotations['org.example.blocked'] == 'yes')`},
		{Name: "ok", Expr: `true`},
	}})
	r := g.Evaluate(context.Background(), goodInput(t))
	if r.Pass {
		t.Fatal("gate passed with erroring rules")
	}
	for _, n := range []string{"missing_key", "missing_pred_field", "index", "not_negated"} {
		rr := ruleResult(t, r, n)
		if rr.Pass || rr.Error == "" {
			t.Errorf("%s: %+v, want fail with an error", n, rr)
		}
	}
	if rr := ruleResult(t, r, "ok"); !rr.Pass {
		t.Errorf("ok: %+v", rr)
	}
	if e := ruleResult(t, r, "missing_key").Error; !strings.Contains(e, "no such key") {
		t.Errorf("error = %q", e)
	}
}

// bigInput has n findings: enough for a nested comprehension to be
// pathological.
func bigInput(t testing.TB, n int) Input {
	in := goodInput(t)
	in.Findings = make([]Finding, n)
	for i := range in.Findings {
		in.Findings[i] = Finding{ID: fmt.Sprintf("GHSA-%04d", i), Severity: SeverityLow, Kind: KindVulnerability}
	}
	return in
}

const pathological = `findings.all(a, findings.all(b, findings.all(c, a.id != c.id || b.id != 'zzz')))`

func TestCostLimitStopsPathologicalExpression(t *testing.T) {
	// A long timeout, so that only the cost limit can stop it (even with
	// -race on a loaded machine).
	g := mustCompile(t, spec.Gate{Rules: []spec.Rule{{Name: "cubic", Expr: pathological}, {Use: RuleNotRevoked}}, Timeout: spec.Duration(time.Minute)})
	in := bigInput(t, 1000) // 10^9 inner iterations without a limit
	start := time.Now()
	r := g.Evaluate(context.Background(), in)
	took := time.Since(start)
	rr := ruleResult(t, r, "cubic")
	if rr.Pass || !strings.Contains(rr.Error, "cost limit") {
		t.Fatalf("cubic: %+v, want a cost limit failure", rr)
	}
	if r.Pass || !ruleResult(t, r, RuleNotRevoked).Pass {
		t.Errorf("result %+v", r)
	}
	if took > 30*time.Second {
		t.Errorf("the cost limit took %v to stop it", took)
	}
	t.Logf("stopped after %v, cost %d (limit %d)", took, rr.Cost, DefaultCostLimit)

	// The same expression on a small list is well within the limit.
	if r := g.Evaluate(context.Background(), bigInput(t, 20)); !ruleResult(t, r, "cubic").Pass {
		t.Errorf("small input: %+v", r)
	}
	// A lower configured limit stops even that.
	low := mustCompile(t, spec.Gate{Rules: []spec.Rule{{Name: "cubic", Expr: pathological}}, CostLimit: 1000, Timeout: spec.Duration(time.Minute)})
	if r := low.Evaluate(context.Background(), bigInput(t, 20)); r.Pass || !strings.Contains(r.Rules[0].Error, "cost limit") {
		t.Errorf("low limit: %+v", r)
	}
}

func TestTimeoutFailsClosed(t *testing.T) {
	// A huge cost limit, so only the clock can stop it.
	g := mustCompile(t, spec.Gate{
		Rules:     []spec.Rule{{Name: "cubic", Expr: pathological}, {Use: RuleNotRevoked}},
		CostLimit: 1 << 62,
		Timeout:   spec.Duration(50 * time.Millisecond),
	})
	start := time.Now()
	r := g.Evaluate(context.Background(), bigInput(t, 1000))
	took := time.Since(start)
	if r.Pass {
		t.Fatal("passed")
	}
	if rr := ruleResult(t, r, "cubic"); rr.Pass || !strings.Contains(rr.Error, "timed out") {
		t.Errorf("cubic: %+v", rr)
	}
	if rr := ruleResult(t, r, RuleNotRevoked); rr.Pass || !strings.Contains(rr.Error, "not evaluated") {
		t.Errorf("later rule: %+v, want not evaluated", rr)
	}
	if took > 2*time.Second {
		t.Errorf("timeout of 50ms took %v", took)
	}
	t.Logf("timed out after %v", took)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := mustCompile(t, prodSpec()).Evaluate(ctx, goodInput(t)); r.Pass || !strings.Contains(r.Rules[0].Error, "cancelled") {
		t.Errorf("cancelled context: %+v", r.Rules[0])
	}
}

func TestEvaluateZeroAndNilInput(t *testing.T) {
	g := mustCompile(t, prodSpec())
	in := Input{Attestations: map[string][]Attestation{attest.PredicateSPDX: {{KeyID: "k"}}}} // nil predicate
	r := g.Evaluate(context.Background(), in)
	if r.Pass {
		t.Fatal("empty input passed a prod gate")
	}
	want := map[string]bool{RuleSBOMPresent: true, RulePromotedToPrevious: true, RuleNotRevoked: true, RuleNoFindingsAtOrAbove: true}
	for _, rr := range r.Rules {
		if rr.Pass != want[rr.Name] || rr.Error != "" {
			t.Errorf("%+v", rr)
		}
	}
	if in.Attestations[attest.PredicateSPDX][0].Predicate != nil {
		t.Error("Evaluate modified the caller's input")
	}
	custom := mustCompile(t, spec.Gate{Rules: []spec.Rule{{Name: "pred_empty", Expr: `attestations['https://spdx.dev/Document'][0].predicate.size() == 0`}}})
	if r := custom.Evaluate(context.Background(), in); !r.Pass {
		t.Errorf("nil predicate is not an empty object: %+v", r)
	}
}

func TestGateWithoutRulesNeverPasses(t *testing.T) {
	for _, g := range []*Gate{nil, {}} {
		if r := g.Evaluate(context.Background(), goodInput(t)); r.Pass || len(r.Rules) != 1 || r.Rules[0].Error == "" {
			t.Errorf("%+v", r)
		}
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	g := mustCompile(t, prodSpec())
	good := goodInput(t)
	bad := goodInput(t)
	bad.Revoked = true
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, want := good, true
			if i%2 == 1 {
				in, want = bad, false
			}
			for range 20 {
				if r := g.Evaluate(context.Background(), in); r.Pass != want {
					t.Errorf("pass = %v, want %v", r.Pass, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestAddAttestationRejectsBadPredicates(t *testing.T) {
	s := newSigner(t)
	var in Input
	if err := in.AddAttestation(s.attestation(t, attest.PredicateTestResult, `{"result":"MAYBE"}`)); err == nil || !strings.Contains(err.Error(), "PASSED, WARNED or FAILED") {
		t.Errorf("bad test result: %v", err)
	}
	if err := in.AddAttestation(s.attestation(t, attest.PredicateSLSAProvenanceV1, `{"buildDefinition":{}}`)); err == nil {
		t.Error("invalid provenance accepted")
	}
	if len(in.Attestations)+len(in.Provenance)+len(in.TestResults) != 0 {
		t.Errorf("half-recorded: %+v", in)
	}
	if err := in.AddAttestation(nil); err == nil {
		t.Error("nil accepted")
	}
	v := s.attestation(t, attest.PredicateVulns, `{"scanner":{"uri":"pkg:github/aquasecurity/trivy@0.50.0","result":[]}}`)
	if err := in.AddAttestation(v); err != nil || len(in.Attestations[attest.PredicateVulns]) != 1 || in.Attestations[attest.PredicateVulns][0].KeyID != s.id {
		t.Errorf("vulns attestation: %v %+v", err, in.Attestations)
	}
	if _, err := ParseTestResult([]byte(strings.Repeat(" ", MaxTestResultBytes+1))); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized: %v", err)
	}
	// Readers keeping the first of two equal names would see FAILED.
	if _, err := ParseTestResult([]byte(`{"result":"FAILED","result":"PASSED"}`)); err == nil || !strings.Contains(err.Error(), "duplicate key") {
		t.Errorf("repeated result: %v", err)
	}
	if _, err := ParseTestResult([]byte(`{"result":"PASSED"}`)); err != nil {
		t.Errorf("valid test result: %v", err)
	}
}

func TestReadyMadeListAndStructpb(t *testing.T) {
	rs := ReadyMade()
	if len(rs) != 10 {
		t.Fatalf("%d ready-made rules", len(rs))
	}
	rs[0].Params[0] = "mutated"
	if readyRules[0].Params[0] == "mutated" {
		t.Error("ReadyMade shares its slices")
	}
	// A predicate with nested lists and numbers reads naturally in CEL.
	p, err := structpb.NewStruct(map[string]any{"scanner": map[string]any{"result": []any{map[string]any{"id": "CVE-1", "score": 9.1}}}})
	if err != nil {
		t.Fatal(err)
	}
	g := mustCompile(t, spec.Gate{Rules: []spec.Rule{{Name: "p", Expr: `attestations['v'].exists(a, a.predicate.scanner.result.exists(r, r.id == 'CVE-1' && r.score > 9.0))`}}})
	if r := g.Evaluate(context.Background(), Input{Attestations: map[string][]Attestation{"v": {{Predicate: p}}}}); !r.Pass {
		t.Errorf("%+v", r)
	}
}

// BenchmarkProdGate measures one Evaluate of the seven ready-made rules on
// a realistic input.
func BenchmarkProdGate(b *testing.B) {
	g := mustCompile(b, prodSpec())
	in := goodInput(b)
	b.ReportAllocs()
	for b.Loop() {
		if !g.Evaluate(context.Background(), in).Pass {
			b.Fatal("failed")
		}
	}
}

// BenchmarkCostUnit runs a rule up to DefaultCostLimit, to
// measure how long a cost unit takes.
func BenchmarkCostUnit(b *testing.B) {
	g := mustCompile(b, spec.Gate{Rules: []spec.Rule{{Name: "cubic", Expr: pathological}}, CostLimit: DefaultCostLimit, Timeout: spec.Duration(time.Minute)})
	in := bigInput(b, 1000)
	for b.Loop() {
		if r := g.Evaluate(context.Background(), in); !strings.Contains(r.Rules[0].Error, "cost limit") {
			b.Fatal(r)
		}
	}
}

// BenchmarkCompile measures compiling the seven ready-made rules.
func BenchmarkCompile(b *testing.B) {
	gs := prodSpec()
	for b.Loop() {
		mustCompile(b, gs)
	}
}

func TestCommitSignedByNeedsSigners(t *testing.T) {
	for _, p := range []spec.Params{{}, {Principals: []string{""}}, {Fingerprints: []string{""}}} {
		if _, err := Compile(spec.Gate{Rules: []spec.Rule{{Use: RuleCommitSignedBy, Params: p}}}); err == nil {
			t.Errorf("params %+v accepted", p)
		}
	}
	if _, err := Compile(spec.Gate{Rules: []spec.Rule{{Use: RuleSignedByTrustedKey, Params: spec.Params{Keys: []string{"k"}, Principals: []string{"a"}}}}}); err == nil {
		t.Error("signed_by_trusted_key took principals")
	}
}

// TestNotationIdentityRule checks that a custom rule can pin the Notation
// signer's identity, beyond what the trust policy's trustedIdentities
// already require.
func TestNotationIdentityRule(t *testing.T) {
	g := mustCompile(t, spec.Gate{Rules: []spec.Rule{{Name: "release-signer",
		Expr:    `notation.exists(s, s.identity == 'CN=release,O=acme,ST=WA,C=US' && s.format in ['jws', 'cose'])`,
		Message: "signed with Notation by the release certificate"}}})
	in := goodInput(t)
	if r := g.Evaluate(context.Background(), in); !r.Pass {
		t.Fatalf("release signer: %+v", r.Failed())
	}
	in.Notation[0].Identity = "CN=intruder,O=acme,ST=WA,C=US"
	if r := g.Evaluate(context.Background(), in); r.Pass {
		t.Fatal("another identity passed")
	}
	in.Notation = nil
	if r := g.Evaluate(context.Background(), in); r.Pass {
		t.Fatal("no Notation signature passed")
	}
}

// TestSignedByIdentityParams: the rule takes cosign's constraints, refuses
// a gate without an identity or an issuer, and matches a regexp as
// certidentity does; CEL rules read the certificate's claims.
func TestSignedByIdentityParams(t *testing.T) {
	for _, p := range []spec.Params{{Identity: keylessIdentity}, {Issuer: keylessIssuer}, {IdentityRegexp: "(", Issuer: keylessIssuer}} {
		if _, err := Compile(spec.Gate{Rules: []spec.Rule{{Use: RuleSignedByIdentity, Params: p}}}); err == nil {
			t.Errorf("params %+v compiled", p)
		}
	}
	in := goodInput(t)
	for _, c := range []struct {
		p    spec.Params
		pass bool
	}{
		{spec.Params{IdentityRegexp: "^https://github.com/acme/", Issuer: keylessIssuer}, true},
		{spec.Params{IdentityRegexp: "^https://github.com/evil/", Issuer: keylessIssuer}, false},
		{spec.Params{Identity: keylessIdentity, IssuerRegexp: "githubusercontent", GitHubWorkflowRepository: "acme/app"}, true},
		{spec.Params{Identity: keylessIdentity, Issuer: keylessIssuer, Ref: "refs/heads/release"}, false},
		{spec.Params{Identity: keylessIdentity, Issuer: keylessIssuer, Workflow: keylessIdentity}, true},
	} {
		g := mustCompile(t, spec.Gate{Rules: []spec.Rule{{Use: RuleSignedByIdentity, Params: c.p}}})
		if r := g.Evaluate(context.Background(), in); r.Pass != c.pass {
			t.Errorf("params %+v: pass %v, want %v (%+v)", c.p, r.Pass, c.pass, r.Rules)
		}
	}
	claim := mustCompile(t, spec.Gate{Rules: []spec.Rule{{Name: "hosted_runner", Message: "built on a GitHub-hosted runner",
		Expr: `signatures.exists(s, s.issuer == 'https://token.actions.githubusercontent.com' && s.certificate[?'runnerEnvironment'].orValue('') == 'github-hosted')`}}})
	if r := claim.Evaluate(context.Background(), in); !r.Pass {
		t.Fatalf("claim rule failed: %+v", r.Rules)
	}
	in.Signatures[2].Certificate["runnerEnvironment"] = "self-hosted"
	if r := claim.Evaluate(context.Background(), in); r.Pass {
		t.Fatal("claim rule passed a self-hosted runner")
	}
}
