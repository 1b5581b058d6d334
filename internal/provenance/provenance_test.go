package provenance

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/key"
)

// loadEnv reads a KEY=VALUE file into a getenv function.
func loadEnv(t *testing.T, name string, extra ...string) func(string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func fileDigest(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func depByURI(p *Predicate) map[string]ResourceDescriptor {
	m := map[string]ResourceDescriptor{}
	for _, d := range p.BuildDefinition.ResolvedDependencies {
		m[d.URI] = d
	}
	return m
}

func h1Hex(t *testing.T, h1 string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h1, "h1:"))
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(raw)
}

func TestFromEnvGitHub(t *testing.T) {
	now := time.Date(2026, 11, 22, 5, 10, 0, 0, time.UTC)
	ws := filepath.Join("testdata", "github-workspace")
	p, err := FromEnv(loadEnv(t, "github.env"), ws, now)
	if err != nil {
		t.Fatal(err)
	}
	bd, rd := p.BuildDefinition, p.RunDetails
	if bd.BuildType != BuildTypeGitHubActions {
		t.Errorf("buildType %q", bd.BuildType)
	}
	if s := bd.ExternalParameters.Source; s == nil || *s != (Source{URI: "git+https://github.com/acme/app", Ref: "refs/tags/v1.4.0", Commit: "6f8e2c1d3b4a59687766554433221100ffeeddcc"}) {
		t.Errorf("source %+v", s)
	}
	wf := bd.ExternalParameters.Workflow
	if wf == nil || wf.Path != ".github/workflows/release.yml" || wf.Repository != "git+https://github.com/acme/app" || wf.Ref != "refs/tags/v1.4.0" {
		t.Fatalf("workflow %+v", wf)
	}
	if want := fileDigest(t, filepath.Join(ws, wf.Path)); wf.Digest["sha256"] != want {
		t.Errorf("workflow digest %v, want sha256 %s", wf.Digest, want)
	}
	if rd.Builder.ID != "https://github.com/actions/runner/github-hosted" {
		t.Errorf("builder %q", rd.Builder.ID)
	}
	if rd.Metadata.InvocationID != "https://github.com/acme/app/actions/runs/11893210123/attempts/2" {
		t.Errorf("invocationId %q", rd.Metadata.InvocationID)
	}
	if rd.Metadata.FinishedOn == nil || !rd.Metadata.FinishedOn.Equal(now) || rd.Metadata.StartedOn != nil {
		t.Errorf("times %+v", rd.Metadata)
	}
	if bd.InternalParameters.Strings["event_name"] != "push" || bd.InternalParameters.Strings["repository_id"] != "123456789" {
		t.Errorf("internalParameters %v", bd.InternalParameters)
	}
	first := bd.ResolvedDependencies[0]
	if first.URI != "git+https://github.com/acme/app@refs/tags/v1.4.0" || first.Digest["gitCommit"] != "6f8e2c1d3b4a59687766554433221100ffeeddcc" {
		t.Errorf("first dependency is not the source commit: %+v", first)
	}

	deps := depByURI(p)
	expect := map[string]map[string]string{
		"pkg:golang/github.com/google/uuid@v1.6.0":                     {"dirHash": h1Hex(t, "h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=")},
		"pkg:golang/github.com/opencontainers/go-digest@v1.0.0":        {"dirHash": h1Hex(t, "h1:apOUWs51W5PlhuyGyz9FCeeBIOUDA/6nW8Oi/yOhh5U=")},
		"pkg:golang/github.com/spf13/cobra@v1.10.2":                    {"dirHash": h1Hex(t, "h1:DMTTonx5m65Ic0GOoRY2c16WCbHxOOw6xxezuLaBpcU=")},
		"pkg:npm/%40babel/runtime@7.26.0":                              nil,
		"pkg:npm/left-pad@1.3.0":                                       nil,
		"pkg:npm/regenerator-runtime@0.14.1":                           nil,
		"pkg:pypi/requests@2.32.3":                                     {},
		"pkg:pypi/pyyaml@6.0.2":                                        nil,
		"pkg:pypi/charset-normalizer@3.4.0":                            {},
		"pkg:pypi/certifi@2024.8.30":                                   {},
		"pkg:pypi/typing-extensions@4.12.2":                            nil,
		"pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.18.1": {},
		"pkg:maven/org.slf4j/slf4j-api@2.0.16":                         {},
		"pkg:maven/com.acme/common@2.1.0":                              {},
		"pkg:cargo/serde@1.0.215":                                      nil,
		"pkg:cargo/serde_derive@1.0.215":                               nil,
	}
	for uri, digest := range expect {
		d, ok := deps[uri]
		if !ok {
			t.Errorf("dependency %s missing", uri)
			continue
		}
		switch {
		case digest == nil: // some digest expected, checked below
			if len(d.Digest) == 0 {
				t.Errorf("%s has no digest", uri)
			}
		case len(digest) == 0:
			if len(d.Digest) != 0 {
				t.Errorf("%s has digest %v, want none", uri, d.Digest)
			}
		default:
			if d.Digest["dirHash"] != digest["dirHash"] || len(d.Digest) != len(digest) {
				t.Errorf("%s digest %v, want %v", uri, d.Digest, digest)
			}
		}
	}
	for _, absent := range []string{"pkg:golang/github.com/spf13/pflag@v1.0.9", "pkg:pypi/flask", "junit-jupiter", "commons-io", "local-lib", "acme-native", "should-not-appear"} {
		for uri := range deps {
			if strings.Contains(uri, absent) {
				t.Errorf("dependency %s should have been left out", uri)
			}
		}
	}
	// Hash content checks.
	if got := deps["pkg:npm/left-pad@1.3.0"].Digest["sha512"]; len(got) != 128 {
		t.Errorf("npm sha512 digest %q", got)
	}
	if got := deps["pkg:npm/left-pad@1.3.0"].DownloadLocation; got != "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz" {
		t.Errorf("npm downloadLocation %q", got)
	}
	var ann struct{ Hashes []string }
	if err := json.Unmarshal(deps["pkg:pypi/requests@2.32.3"].Annotations, &ann); err != nil || len(ann.Hashes) != 2 {
		t.Errorf("requests hashes %s (%v)", deps["pkg:pypi/requests@2.32.3"].Annotations, err)
	}
	sum := sha256.Sum256([]byte("yaml"))
	if got := deps["pkg:pypi/pyyaml@6.0.2"].Digest["sha256"]; got != hex.EncodeToString(sum[:]) {
		t.Errorf("pyyaml digest %q", got)
	}
	sum = sha256.Sum256([]byte("serde"))
	if got := deps["pkg:cargo/serde@1.0.215"].Digest["sha256"]; got != hex.EncodeToString(sum[:]) {
		t.Errorf("serde digest %q", got)
	}

	// What FromEnv writes, Parse reads back unchanged.
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) {
		t.Fatalf("Parse round trip changed the predicate:\n%s\n%s", b, b2)
	}
	if err := Check(back, Expect{BuilderID: "https://github.com/actions/runner/github-hosted", SourceURI: "https://github.com/acme/app"}); err != nil {
		t.Fatal(err)
	}
}

// TestSchema checks every predicate this package builds against the
// in-toto attestation framework's own SLSA v1 binding, strictly (no
// unknown fields).
func TestSchema(t *testing.T) {
	gh, err := FromEnv(loadEnv(t, "github.env"), filepath.Join("testdata", "github-workspace"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	gl, err := FromEnv(loadEnv(t, "gitlab.env"), filepath.Join("testdata", "gitlab-workspace"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := FromClaims(Claims{Repository: "acme/app", Ref: "refs/heads/main", SHA: "6f8e2c1d3b4a59687766554433221100ffeeddcc",
		WorkflowRef: "acme/app/.github/workflows/b.yml@refs/heads/main", WorkflowSHA: "6f8e2c1d3b4a59687766554433221100ffeeddcc", RunID: "1"},
		"https://custody.example.com/builders/gha/v1", ClaimsOptions{StartedOn: time.Now(), FinishedOn: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []*Predicate{gh, gl, cl} {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var pb slsa.Provenance
		if err := protojson.Unmarshal(b, &pb); err != nil {
			t.Fatalf("predicate %d does not match the SLSA v1 schema: %v\n%s", i, err, b)
		}
		if err := pb.Validate(); err != nil {
			t.Fatalf("predicate %d: %v", i, err)
		}
	}
	// Parse applies the same check: a bad dirHash length is refused.
	bad := []byte(`{"buildDefinition":{"buildType":"t","externalParameters":{"a":"b"},"resolvedDependencies":[{"uri":"pkg:golang/x@v1","digest":{"dirHash":"abcd"}}]},"runDetails":{"builder":{"id":"b"}}}`)
	if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "length") {
		t.Fatalf("Parse accepted a malformed digest: %v", err)
	}
}

// TestSignedProvenance carries a FromEnv predicate through attest (sign,
// verify, decode) and checks it on the far side.
func TestSignedProvenance(t *testing.T) {
	p, err := FromEnv(loadEnv(t, "github.env"), filepath.Join("testdata", "github-workspace"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	artifact := sha256.Sum256([]byte("app binary"))
	dg := "sha256:" + hex.EncodeToString(artifact[:])
	stmt, err := attest.StatementFor("app", dg, attest.PredicateSLSAProvenanceV1, b)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := key.Generate(key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := key.ID(signer.Public())
	env, err := attest.Sign(context.Background(), signer, id, stmt)
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.Verify(env, attest.ResolverFromKeys(signer.Public()), attest.WantPredicateType(PredicateType))
	if err != nil {
		t.Fatal(err)
	}
	if err := attest.VerifySubject(v, dg); err != nil {
		t.Fatal(err)
	}
	pj, err := attest.PredicateJSON(v.Statement)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(pj)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.BuildDefinition.ResolvedDependencies) != len(p.BuildDefinition.ResolvedDependencies) {
		t.Fatalf("%d dependencies after signing, %d before", len(got.BuildDefinition.ResolvedDependencies), len(p.BuildDefinition.ResolvedDependencies))
	}
	if err := Check(got, Expect{BuilderIDPrefix: "https://github.com/actions/runner", SourceURIPrefix: "https://github.com/acme/"}); err != nil {
		t.Fatal(err)
	}
	if err := Check(got, Expect{SourceURI: "https://github.com/acme/other"}); err == nil {
		t.Fatal("Check accepted another repository")
	}
}

func TestFromEnvGitLab(t *testing.T) {
	now := time.Date(2026, 11, 22, 5, 1, 0, 0, time.UTC)
	ws := filepath.Join("testdata", "gitlab-workspace")
	p, err := FromEnv(loadEnv(t, "gitlab.env"), ws, now)
	if err != nil {
		t.Fatal(err)
	}
	ep := p.BuildDefinition.ExternalParameters
	if p.BuildDefinition.BuildType != BuildTypeGitLabCI {
		t.Errorf("buildType %q", p.BuildDefinition.BuildType)
	}
	if *ep.Source != (Source{URI: "git+https://gitlab.example.com/platform/payments", Ref: "refs/heads/main", Commit: "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"}) {
		t.Errorf("source %+v", ep.Source)
	}
	if ep.Workflow.Path != "ci/build.gitlab-ci.yml" || ep.Workflow.Digest["sha256"] != fileDigest(t, filepath.Join(ws, "ci/build.gitlab-ci.yml")) {
		t.Errorf("workflow %+v", ep.Workflow)
	}
	md := p.RunDetails.Metadata
	if p.RunDetails.Builder.ID != "https://gitlab.example.com/-/runners/31" || md.InvocationID != "https://gitlab.example.com/platform/payments/-/jobs/5566778" {
		t.Errorf("runDetails %+v %+v", p.RunDetails.Builder, md)
	}
	if md.StartedOn == nil || md.StartedOn.Format(time.RFC3339) != "2026-11-22T04:58:31Z" || !md.FinishedOn.Equal(now) {
		t.Errorf("times %v %v", md.StartedOn, md.FinishedOn)
	}
	deps := depByURI(p)
	for _, uri := range []string{"pkg:npm/lodash@4.17.21", "pkg:npm/%40types/node@22.9.0", "pkg:npm/undici-types@6.19.8", "pkg:golang/github.com/google/uuid@v1.6.0"} {
		if _, ok := deps[uri]; !ok {
			t.Errorf("dependency %s missing from %v", uri, deps)
		}
	}
	if d := deps["pkg:npm/%40types/node@22.9.0"].Digest; len(d["sha1"]) != 40 {
		t.Errorf("sha1 integrity digest %v", d)
	}
	// A tag pipeline names the tag ref.
	p, err = FromEnv(loadEnv(t, "gitlab.env", "CI_COMMIT_TAG=v2.0.0", "CI_COMMIT_BRANCH="), "", now)
	if err != nil {
		t.Fatal(err)
	}
	if p.BuildDefinition.ExternalParameters.Source.Ref != "refs/tags/v2.0.0" || len(p.BuildDefinition.ResolvedDependencies) != 1 {
		t.Errorf("tag pipeline: %+v", p.BuildDefinition)
	}
}

func TestFromEnvGenericAndErrors(t *testing.T) {
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "Jenkinsfile"), []byte("pipeline {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CUSTODY_BUILD_SOURCE_URI":    "git+https://git.example.com/team/app",
		"CUSTODY_BUILD_REF":           "refs/heads/release",
		"CUSTODY_BUILD_COMMIT":        "ABCDEF0123456789ABCDEF0123456789ABCDEF01",
		"CUSTODY_BUILD_WORKFLOW_PATH": "Jenkinsfile",
		"CUSTODY_BUILD_BUILDER_ID":    "https://jenkins.example.com/agents/linux",
		"CUSTODY_BUILD_INVOCATION_ID": "https://jenkins.example.com/job/app/42/",
		"CUSTODY_BUILD_STARTED_ON":    "2026-11-22T04:00:00+01:00",
	}
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	p, err := FromEnv(get(env), ws, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if p.BuildDefinition.BuildType != BuildTypeGeneric || p.RunDetails.Builder.ID != env["CUSTODY_BUILD_BUILDER_ID"] ||
		p.RunDetails.Metadata.InvocationID != env["CUSTODY_BUILD_INVOCATION_ID"] {
		t.Errorf("generic predicate %+v", p)
	}
	if got := p.RunDetails.Metadata.StartedOn; got == nil || got.Format(time.RFC3339) != "2026-11-22T03:00:00Z" {
		t.Errorf("startedOn %v", got)
	}
	if p.BuildDefinition.ResolvedDependencies[0].Digest["gitCommit"] != strings.ToLower(env["CUSTODY_BUILD_COMMIT"]) {
		t.Errorf("commit digest must be lowercase hex: %v", p.BuildDefinition.ResolvedDependencies[0])
	}
	if p.BuildDefinition.ExternalParameters.Workflow.Digest["sha256"] != fileDigest(t, filepath.Join(ws, "Jenkinsfile")) {
		t.Errorf("workflow digest %v", p.BuildDefinition.ExternalParameters.Workflow)
	}

	bad := func(mod map[string]string, want string) {
		t.Helper()
		m := map[string]string{}
		for k, v := range env {
			m[k] = v
		}
		for k, v := range mod {
			m[k] = v
		}
		_, err := FromEnv(get(m), ws, time.Now())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("FromEnv with %v: error %v, want it to mention %q", mod, err, want)
		}
	}
	bad(map[string]string{"CUSTODY_BUILD_BUILDER_ID": ""}, "CUSTODY_BUILD_BUILDER_ID")
	bad(map[string]string{"CUSTODY_BUILD_COMMIT": "main"}, "40-digit hex")
	bad(map[string]string{"CUSTODY_BUILD_SOURCE_URI": ""}, "no CI platform detected")
	bad(map[string]string{"CUSTODY_BUILD_STARTED_ON": "yesterday"}, "RFC 3339")
	bad(map[string]string{"CUSTODY_BUILD_WORKFLOW_PATH": "../../etc/passwd"}, "leaves the workspace")
	bad(map[string]string{"GITHUB_ACTIONS": "true"}, "GITHUB_REPOSITORY")
	bad(map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "a/b", "GITHUB_REF": "r", "GITHUB_SHA": "s", "GITHUB_RUN_ID": "1", "GITHUB_WORKFLOW_REF": "nonsense"}, "owner/repo/path@ref")
	bad(map[string]string{"GITLAB_CI": "true"}, "CI_PROJECT_URL")
}

func TestFromClaimsGitHub(t *testing.T) {
	c := Claims{
		Issuer:            "https://token.actions.githubusercontent.com",
		Subject:           "repo:acme/app:ref:refs/tags/v1.4.0",
		Ref:               "refs/tags/v1.4.0",
		RefType:           "tag",
		SHA:               "6f8e2c1d3b4a59687766554433221100ffeeddcc",
		Repository:        "acme/app",
		RepositoryID:      "123456789",
		RepositoryOwnerID: "987654",
		WorkflowRef:       "acme/app/.github/workflows/release.yml@refs/tags/v1.4.0",
		WorkflowSHA:       "6f8e2c1d3b4a59687766554433221100ffeeddcc",
		JobWorkflowRef:    "acme/shared/.github/workflows/build.yml@refs/heads/main",
		JobWorkflowSHA:    "1111111111111111111111111111111111111111",
		RunID:             "11893210123",
		RunAttempt:        "1",
		RunnerEnvironment: "github-hosted",
		EventName:         "push",
	}
	builder := "https://custody.example.com/builders/github-actions/v1"
	started := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	reported := []ResourceDescriptor{{URI: "pkg:npm/left-pad@1.3.0"}}
	p, err := FromClaims(c, builder, ClaimsOptions{StartedOn: started, FinishedOn: started.Add(time.Minute), ReportedDependencies: reported})
	if err != nil {
		t.Fatal(err)
	}
	ep := p.BuildDefinition.ExternalParameters
	if *ep.Source != (Source{URI: "git+https://github.com/acme/app", Ref: c.Ref, Commit: c.SHA}) {
		t.Errorf("source %+v", ep.Source)
	}
	if ep.Workflow.Path != ".github/workflows/release.yml" || ep.Workflow.Digest["gitCommit"] != c.WorkflowSHA {
		t.Errorf("workflow %+v", ep.Workflow)
	}
	if p.RunDetails.Builder.ID != builder || p.RunDetails.Metadata.InvocationID != "https://github.com/acme/app/actions/runs/11893210123/attempts/1" {
		t.Errorf("runDetails %+v %+v", p.RunDetails.Builder, p.RunDetails.Metadata)
	}
	ip := p.BuildDefinition.InternalParameters.Strings
	if ip["job_workflow_ref"] != c.JobWorkflowRef || ip["runner_environment"] != "github-hosted" || ip["issuer"] != c.Issuer {
		t.Errorf("internalParameters %v", ip)
	}
	rd := p.BuildDefinition.ResolvedDependencies
	if len(rd) != 2 || rd[0].Digest["gitCommit"] != c.SHA || rd[1].URI != "pkg:npm/left-pad@1.3.0" {
		t.Errorf("resolvedDependencies %+v", rd)
	}
	if err := Check(p, Expect{BuilderID: builder, SourceURI: "https://github.com/acme/app"}); err != nil {
		t.Fatal(err)
	}

	// Refusals.
	noSHA := c
	noSHA.SHA = ""
	if _, err := FromClaims(noSHA, builder, ClaimsOptions{}); err == nil || !strings.Contains(err.Error(), "sha") {
		t.Errorf("missing sha claim: %v", err)
	}
	shortSHA := c
	shortSHA.SHA = "6f8e2c1"
	if _, err := FromClaims(shortSHA, builder, ClaimsOptions{}); err == nil || !strings.Contains(err.Error(), "40-digit") {
		t.Errorf("abbreviated sha claim: %v", err)
	}
	foreign := c
	foreign.WorkflowRef = "evil/repo/.github/workflows/x.yml@refs/heads/main"
	if _, err := FromClaims(foreign, builder, ClaimsOptions{}); err == nil || !strings.Contains(err.Error(), "not in repository") {
		t.Errorf("workflow_ref from another repository: %v", err)
	}
	if _, err := FromClaims(c, "", ClaimsOptions{}); err == nil {
		t.Error("empty builder ID accepted")
	}
	if _, err := FromClaims(Claims{Issuer: "https://example.com"}, builder, ClaimsOptions{}); err == nil {
		t.Error("claims of no known platform accepted")
	}
	// GitHub Enterprise Server.
	p, err = FromClaims(c, builder, ClaimsOptions{ServerURL: "https://ghe.example.com/"})
	if err != nil || p.BuildDefinition.ExternalParameters.Source.URI != "git+https://ghe.example.com/acme/app" {
		t.Errorf("GHES: %v %+v", err, p)
	}
}

func TestFromClaimsGitLab(t *testing.T) {
	raw := `{"iss":"https://gitlab.example.com","sub":"project_path:platform/payments:ref_type:branch:ref:main",
	  "namespace_path":"platform","project_id":"4242","project_path":"platform/payments","pipeline_id":"998877",
	  "pipeline_source":"push","job_id":"5566778","ref":"main","ref_type":"branch","ref_protected":"true",
	  "sha":"0a1b2c3d4e5f60718293a4b5c6d7e8f901234567","runner_id":31,"runner_environment":"self-hosted",
	  "ci_config_ref_uri":"gitlab.example.com/platform/payments//ci/build.gitlab-ci.yml@refs/heads/main",
	  "ci_config_sha":"0a1b2c3d4e5f60718293a4b5c6d7e8f901234567","aud":"https://custody.example.com"}`
	var c Claims
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatalf("a GitLab token's claims must decode into Claims: %v", err)
	}
	p, err := FromClaims(c, "https://custody.example.com/builders/gitlab/v1", ClaimsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep := p.BuildDefinition.ExternalParameters
	if *ep.Source != (Source{URI: "git+https://gitlab.example.com/platform/payments", Ref: "refs/heads/main", Commit: c.SHA}) {
		t.Errorf("source %+v", ep.Source)
	}
	if ep.Workflow == nil || ep.Workflow.Repository != "git+https://gitlab.example.com/platform/payments" ||
		ep.Workflow.Path != "ci/build.gitlab-ci.yml" || ep.Workflow.Ref != "refs/heads/main" || ep.Workflow.Digest["gitCommit"] != c.CIConfigSHA {
		t.Errorf("workflow %+v", ep.Workflow)
	}
	if p.RunDetails.Metadata.InvocationID != "https://gitlab.example.com/platform/payments/-/jobs/5566778" {
		t.Errorf("invocationId %q", p.RunDetails.Metadata.InvocationID)
	}
	if p.RunDetails.Metadata.StartedOn != nil {
		t.Error("startedOn set without ClaimsOptions.StartedOn")
	}
	bad := c
	bad.CIConfigRefURI = "no-separator@main"
	if _, err := FromClaims(bad, "b", ClaimsOptions{}); err == nil {
		t.Error("malformed ci_config_ref_uri accepted")
	}
	noIss := c
	noIss.Issuer = ""
	if _, err := FromClaims(noIss, "b", ClaimsOptions{}); err == nil || !strings.Contains(err.Error(), "server URL") {
		t.Errorf("no server URL: %v", err)
	}
}

func TestCheck(t *testing.T) {
	mk := func(builder, source string) *Predicate {
		return &Predicate{
			BuildDefinition: BuildDefinition{BuildType: BuildTypeGeneric, ExternalParameters: ExternalParameters{Source: &Source{URI: source}}},
			RunDetails:      RunDetails{Builder: Builder{ID: builder}},
		}
	}
	p := mk("https://github.com/actions/runner/github-hosted", "git+https://github.com/acme/app.git")
	cases := []struct {
		want Expect
		ok   bool
	}{
		{Expect{BuilderID: "https://github.com/actions/runner/github-hosted"}, true},
		{Expect{BuilderID: "https://github.com/actions/runner/self-hosted"}, false},
		{Expect{BuilderIDPrefix: "https://github.com/actions/runner"}, true},
		{Expect{BuilderIDPrefix: "https://github.com/actions/run"}, false},
		{Expect{SourceURI: "https://github.com/acme/app"}, true},
		{Expect{SourceURI: "git+https://github.com/acme/app/"}, true},
		{Expect{SourceURI: "https://github.com/acme/app2"}, false},
		{Expect{SourceURIPrefix: "https://github.com/acme"}, true},
		{Expect{SourceURIPrefix: "https://github.com/acme/"}, true},
		{Expect{SourceURIPrefix: "https://github.com/ac"}, false},
		{Expect{BuilderID: "https://github.com/actions/runner/github-hosted", SourceURI: "https://github.com/evil/app"}, false},
	}
	for _, c := range cases {
		err := Check(p, c.want)
		if (err == nil) != c.ok {
			t.Errorf("Check(%+v) = %v, want ok=%v", c.want, err, c.ok)
		}
	}
	if err := Check(mk("b", "git+https://github.com/acme-evil/app"), Expect{SourceURIPrefix: "https://github.com/acme"}); err == nil {
		t.Error("prefix matched across a path boundary")
	}
	if err := Check(p, Expect{}); err == nil {
		t.Error("an empty Expect passed")
	}
	if err := Check(mk("b", ""), Expect{SourceURI: "https://github.com/acme/app"}); err == nil || !strings.Contains(err.Error(), "no source") {
		t.Errorf("provenance without source: %v", err)
	}

	// GitHub's own build type: source from workflow.repository; others from
	// the gitCommit dependency.
	gh := []byte(`{"buildDefinition":{"buildType":"https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
	  "externalParameters":{"workflow":{"ref":"refs/heads/main","repository":"https://github.com/acme/app","path":".github/workflows/build.yml"},"inputs":{"n":1}},
	  "internalParameters":{"github":{"event_name":"push"},"note":"kept"}},
	  "runDetails":{"builder":{"id":"https://github.com/actions/runner/github-hosted"}}}`)
	gp, err := Parse(gh)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(gp, Expect{SourceURI: "https://github.com/acme/app"}); err != nil {
		t.Fatal(err)
	}
	if ip := gp.BuildDefinition.InternalParameters; string(ip.Other["github"]) != `{"event_name":"push"}` || ip.Strings["note"] != "kept" {
		t.Errorf("foreign internalParameters lost: %+v", ip)
	}
	if string(gp.BuildDefinition.ExternalParameters.Other["inputs"]) != `{"n":1}` {
		t.Errorf("foreign externalParameters lost: %v", gp.BuildDefinition.ExternalParameters.Other)
	}
	dep := []byte(`{"buildDefinition":{"buildType":"x","externalParameters":{"source":"not an object"},
	  "resolvedDependencies":[{"uri":"pkg:npm/a@1"},{"uri":"git+https://gitlab.com/acme/app@refs/heads/main","digest":{"gitCommit":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}]},
	  "runDetails":{"builder":{"id":"b"}}}`)
	dp, err := Parse(dep)
	if err != nil {
		t.Fatal(err)
	}
	if dp.SourceURI() != "git+https://gitlab.com/acme/app" {
		t.Errorf("SourceURI from dependencies: %q", dp.SourceURI())
	}
	out, _ := json.Marshal(dp)
	if !strings.Contains(string(out), `"source":"not an object"`) {
		t.Errorf("foreign source parameter not preserved: %s", out)
	}
}

func TestParseRefusals(t *testing.T) {
	for name, in := range map[string]string{
		"no buildType": `{"buildDefinition":{"externalParameters":{}},"runDetails":{"builder":{"id":"b"}}}`,
		"no builder":   `{"buildDefinition":{"buildType":"t","externalParameters":{}},"runDetails":{"builder":{}}}`,
		"trailing":     `{"buildDefinition":{"buildType":"t","externalParameters":{}},"runDetails":{"builder":{"id":"b"}}} {}`,
		"not object":   `[]`,
		"bad time":     `{"buildDefinition":{"buildType":"t","externalParameters":{}},"runDetails":{"builder":{"id":"b"},"metadata":{"startedOn":"noon"}}}`,
		"too large":    `{"pad":"` + strings.Repeat("a", MaxPredicateBytes) + `"}`,
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: Parse accepted it", name)
		}
	}
}

func TestDependenciesScanBounds(t *testing.T) {
	ws := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(ws, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	line := func(mod string) string {
		return mod + " v1.0.0 h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n"
	}
	write("go.sum", line("example.com/root"))
	write("a/b/c/go.sum", line("example.com/deep3"))
	write("a/b/c/d/e/go.sum", line("example.com/toodeep"))
	write("vendor/x/go.sum", line("example.com/vendored"))
	write("web/node_modules/x/package-lock.json", `{"packages":{"node_modules/nested":{"version":"1.0.0"}}}`)
	if err := os.Symlink("/etc/passwd", filepath.Join(ws, "requirements.txt")); err != nil {
		t.Fatal(err)
	}
	deps, err := Dependencies(ws)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, d := range deps {
		uris = append(uris, d.URI)
	}
	got := strings.Join(uris, " ")
	if got != "pkg:golang/example.com/deep3@v1.0.0 pkg:golang/example.com/root@v1.0.0" {
		t.Fatalf("dependencies %q", got)
	}
	write("bad/go.sum", "example.com/x v1.0.0 h1:!!!\n")
	if _, err := Dependencies(ws); err == nil || !strings.Contains(err.Error(), filepath.Join("bad", "go.sum")) {
		t.Fatalf("a broken go.sum must fail naming the file: %v", err)
	}
	if _, err := Dependencies(filepath.Join(ws, "missing")); err == nil {
		t.Fatal("a missing workspace must fail")
	}
}

// TestHostedAndSourceCommit: the CI platforms' shapes are hosted, the
// generic CUSTODY_BUILD_* one (any machine) is not; the source commit is
// read from the source, else from a gitCommit dependency.
func TestHostedAndSourceCommit(t *testing.T) {
	gh, err := FromEnv(loadEnv(t, "github.env"), filepath.Join("testdata", "github-workspace"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !gh.Hosted() || gh.SourceCommit() == "" {
		t.Fatalf("GitHub Actions: hosted %v, commit %q", gh.Hosted(), gh.SourceCommit())
	}
	generic, err := FromEnv(func(k string) string {
		return map[string]string{"CUSTODY_BUILD_SOURCE_URI": "git+https://git.example.com/app", "CUSTODY_BUILD_BUILDER_ID": "https://laptop.example/",
			"CUSTODY_BUILD_COMMIT": "abcdef0123456789abcdef0123456789abcdef01"}[k]
	}, t.TempDir(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if generic.Hosted() || generic.SourceCommit() != "abcdef0123456789abcdef0123456789abcdef01" {
		t.Fatalf("generic: hosted %v, commit %q", generic.Hosted(), generic.SourceCommit())
	}
	dep := &Predicate{BuildDefinition: BuildDefinition{BuildType: "https://example.com/other/v1", ResolvedDependencies: []ResourceDescriptor{
		{URI: "pkg:golang/x@v1", Digest: map[string]string{"sha256": "00"}},
		{URI: "git+https://example.com/app@refs/heads/main", Digest: map[string]string{"gitCommit": "1234"}},
	}}}
	if dep.SourceCommit() != "1234" || dep.Hosted() {
		t.Fatalf("from dependencies: commit %q, hosted without a builder %v", dep.SourceCommit(), dep.Hosted())
	}
	dep.RunDetails.Builder.ID = "https://example.com/builder"
	if !dep.Hosted() {
		t.Fatal("another builder's own build type is hosted")
	}
	if (&Predicate{}).SourceCommit() != "" {
		t.Fatal("commit from nothing")
	}
}
