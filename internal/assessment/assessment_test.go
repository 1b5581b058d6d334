package assessment_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/assessment"
	"github.com/custody-dev/custody/internal/auth/oidctest"
	"github.com/custody-dev/custody/internal/cli"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/testserver"
)

// ciToken is a GitHub Actions job's OIDC token from iss for org/app at a
// commit (audience custody).
func ciToken(t *testing.T, iss *oidctest.Issuer) string {
	c := iss.GitHubJob("org/app", "custody")
	c["sha"], c["run_id"] = "6f8e2c1d3b4a59687766554433221100ffeeddcc", "42"
	return iss.Sign(t, c)
}

// site is a real custody server and the credentials the test uses.
type site struct {
	t     *testing.T
	srv   *testserver.Server
	admin string // password
	token string // the admin's API token
}

// call sends an API request (cred "user:pass", a bearer token, or "")
// and returns status and body.
func (s *site) call(method, path, cred string, body any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if u, p, ok := strings.Cut(cred, ":"); ok {
		req.SetBasicAuth(u, p)
	} else if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *site) must(method, path, cred string, body any, want int) []byte {
	s.t.Helper()
	code, b := s.call(method, path, cred, body)
	if code != want {
		s.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
	}
	return b
}

// push writes a random image to repo:tag and returns its digest.
func (s *site) push(repo, tag string) string {
	s.t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		s.t.Fatal(err)
	}
	ref, err := name.ParseReference(s.srv.Host()+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: s.admin})); err != nil {
		s.t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		s.t.Fatal(err)
	}
	return d.String()
}

// custody runs the command line in process against the server, with
// CUSTODY_TOKEN's credential.
func (s *site) custody(args ...string) (string, error) {
	return s.run(append(args, "--server", s.srv.URL)...)
}

// run runs the command line in process.
func (s *site) run(args ...string) (string, error) {
	s.t.Helper()
	var out, errb bytes.Buffer
	if cli.Main(args, &out, &errb) != 0 {
		return out.String(), fmt.Errorf("custody %s: %s", strings.Join(args, " "), errb.String())
	}
	return out.String(), nil
}

func (s *site) assess(args ...string) assessment.Report {
	s.t.Helper()
	out, err := s.custody(append([]string{"assess", "-o", "json"}, args...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	var rep assessment.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		s.t.Fatalf("assessment JSON: %v\n%s", err, out)
	}
	return rep
}

func repository(t *testing.T, rep assessment.Report, repo string) assessment.Repository {
	t.Helper()
	for _, r := range rep.Repositories {
		if r.Repository == repo {
			return r
		}
	}
	t.Fatalf("no assessment of %s in %+v", repo, rep)
	return assessment.Repository{}
}

func result(t *testing.T, a assessment.Assessment, id string) assessment.Result {
	t.Helper()
	for _, c := range a.Criteria {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no criterion %s", id)
	return assessment.Result{}
}

const siteConfig = `auth:
  oidc:
    - issuer: %[1]q
      rules:
        - claims: {repository: "org/*"}
          subject: "ci:{repository}"
          grants: [{role: writer, repositories: ["apps/**"]}]
signing:
  onPush: ["apps/**"]
  sbomOnPush: true
  builderID: https://custody.example/platform
audit:
  checkpointInterval: 1s
scrub:
  schedule: 24h
policies:
  - repository: "apps/**"
    retention: {mode: governance, period: 48h}
projects:
  - name: shop
    repositories: "apps/**"
    environments:
      - name: dev
        gate:
          rules:
            - use: signed_by_trusted_key
              params: {keys: [%[2]q]}
            - use: no_findings_at_or_above
              params: {severity: HIGH}
      - name: prod
        approvals: 2
        gate:
          rules:
            - use: signed_by_trusted_key
              params: {keys: [%[2]q]}
            - use: sbom_present
            - use: no_findings_at_or_above
              params: {severity: HIGH}
            - use: promoted_to_previous
            - use: not_revoked
`

// startSite starts a server with the configuration above, its own signing
// key, an admin API token for the command line, and two promoters.
func startSite(t *testing.T) (*site, *oidctest.Issuer, string) {
	iss := oidctest.New(t, "ci")
	data, work := t.TempDir(), t.TempDir()
	ring, err := key.Open(filepath.Join(data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := ring.Create(key.ECDSAP256, "server", []byte("server-pass"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(work, "custody.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(siteConfig, iss.Server.URL, info.ID)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Auth: true, Data: data, Args: []string{"--config", cfg},
		Env: []string{"CUSTODY_KEY_PASSWORD=server-pass"}})
	s := &site{t: t, srv: srv, admin: srv.AdminPassword()}
	var tok struct {
		Secret string `json:"secret"`
	}
	b := s.must("POST", "/api/v1/tokens", "admin:"+s.admin, map[string]any{"name": "assess", "scopes": []map[string]any{{"role": "admin", "repositories": []string{"**"}}}}, http.StatusCreated)
	if err := json.Unmarshal(b, &tok); err != nil {
		t.Fatal(err)
	}
	s.token = tok.Secret
	t.Setenv("CUSTODY_TOKEN", s.token)
	t.Setenv("HOME", t.TempDir())
	for _, u := range []string{"rel1"} {
		s.must("POST", "/api/v1/users", "admin:"+s.admin, map[string]any{"name": u, "password": u + "-password-0123", "groups": []string{}}, http.StatusCreated)
		s.must("POST", "/api/v1/grants", "admin:"+s.admin, map[string]any{"subject": "user:" + u, "role": "promoter", "repository": "apps/**"}, http.StatusCreated)
	}
	return s, iss, filepath.Join(data, "keys")
}

// TestAssessBareImage: an image pushed and nothing else is rated stage 1
// and SLSA level 0, and every gap names the command that closes it.
func TestAssessBareImage(t *testing.T) {
	s, _, serverKeys := startSite(t)
	d := s.push("other/bare", "latest")
	rep := s.assess()
	if rep.Schema != assessment.Schema {
		t.Fatalf("schema %q", rep.Schema)
	}
	r := repository(t, rep, "other/bare")
	if r.Stage != 1 || r.SLSALevel != 0 || r.Project != "" || len(r.Environments) != 0 {
		t.Fatalf("bare image: stage %d level %d project %q envs %d", r.Stage, r.SLSALevel, r.Project, len(r.Environments))
	}
	if !slices.Equal(r.NextStage, []string{"version-control"}) || !slices.Equal(r.NextLevel, []string{"slsa-provenance"}) {
		t.Fatalf("next gaps: %v %v", r.NextStage, r.NextLevel)
	}
	ref := s.srv.Host() + "/other/bare@" + d
	for id, want := range map[string]string{
		"version-control":          "custody attest provenance --from-env " + ref,
		"slsa-provenance":          "custody attest provenance --from-env " + ref,
		"versioned":                "crane tag " + ref + " 1.0.0",
		"signed":                   "custody sign --key KEY " + ref,
		"sbom":                     "custody attest sbom " + ref,
		"retention":                "custody retention set " + ref + " --mode compliance --for 2y",
		"vulnerability-gate":       "custody vulndb import FILE",
		"slsa-platform-provenance": "/api/v1/provenance/other/bare/@" + d,
	} {
		c := result(t, r.Assessment, id)
		if c.Pass || !strings.Contains(c.Command, want) {
			t.Errorf("%s: pass %v, command %q, want %q", id, c.Pass, c.Command, want)
		}
	}
	if c := result(t, r.Assessment, "shared-storage"); !c.Pass || c.Evidence.Count != 1 || c.Evidence.Example != d {
		t.Errorf("shared-storage: %+v", c)
	}
	if c := result(t, r.Assessment, "build-once"); c.Pass || !strings.Contains(c.Setting, `repositories: "other/bare"`) {
		t.Errorf("build-once outside a project: %+v", c)
	}
	if c := result(t, r.Assessment, "signed"); c.Evidence.Count != 0 || c.Evidence.Total != 1 || c.Evidence.Example != d {
		t.Errorf("signed evidence: %+v", c.Evidence)
	}

	// Provenance a job signed with a key nobody trusts exists (level 1),
	// no more; signed by a trusted key naming a hosted platform it is
	// level 2, but not the platform's own (level 3).
	for _, kv := range []string{"GITHUB_ACTIONS=true", "GITHUB_REPOSITORY=acme/app", "GITHUB_REF=refs/heads/main",
		"GITHUB_SHA=6f8e2c1d3b4a59687766554433221100ffeeddcc", "GITHUB_RUN_ID=1", "GITHUB_RUN_ATTEMPT=1",
		"GITHUB_SERVER_URL=https://github.com", "GITHUB_WORKFLOW_REF=acme/app/.github/workflows/release.yml@refs/heads/main",
		"RUNNER_ENVIRONMENT=github-hosted", "GITHUB_EVENT_NAME=push", "CUSTODY_KEY_PASSWORD=server-pass"} {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	strangerKeys := t.TempDir()
	if ring, err := key.Open(strangerKeys); err != nil {
		t.Fatal(err)
	} else if _, err := ring.Create(key.ECDSAP256, "stranger", []byte("server-pass")); err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	for repo, keys := range map[string]string{"other/l1": strangerKeys, "other/l2": serverKeys} {
		ld := s.push(repo, "1.0.0")
		if _, err := s.run("attest", "provenance", "--from-env", "--workspace", ws, "--keys", keys, s.srv.Host()+"/"+repo+"@"+ld); err != nil {
			t.Fatal(err)
		}
	}
	rep = s.assess()
	if l1 := repository(t, rep, "other/l1"); l1.SLSALevel != 1 || !strings.Contains(result(t, l1.Assessment, "slsa-provenance").Evidence.Summary, "does not verify") {
		t.Fatalf("untrusted provenance: level %d %+v", l1.SLSALevel, result(t, l1.Assessment, "slsa-provenance"))
	}
	if l2 := repository(t, rep, "other/l2"); l2.SLSALevel != 2 || !slices.Equal(l2.NextLevel, []string{"slsa-platform-provenance"}) ||
		!strings.Contains(result(t, l2.Assessment, "slsa-signed-provenance").Evidence.Summary, "builder https://github.com/actions/runner/github-hosted") {
		t.Fatalf("CI provenance: level %d next %v %+v", l2.SLSALevel, l2.NextLevel, result(t, l2.Assessment, "slsa-signed-provenance"))
	}

	// The text and HTML forms say the same; the page fetches nothing
	// and runs nothing.
	text, err := s.custody("assess")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "other/bare") || !strings.Contains(text, "stage 1 of 5: Ad-Hoc or Non-Existent Artifact Management; SLSA build level 0 of 3") ||
		!strings.Contains(text, "-> custody attest provenance --from-env "+ref) || !strings.Contains(text, "next: stage 2 needs version-control") ||
		!strings.Contains(text, "next: SLSA build level 1 needs slsa-provenance") {
		t.Fatalf("text:\n%s", text)
	}
	page, err := s.custody("assess", "-o", "html")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.Contains(page, "custody attest provenance --from-env "+ref) {
		t.Fatalf("html:\n%s", page)
	}
	low := strings.ToLower(page)
	for _, bad := range []string{"<script", " src=", " href=", "<link", "url(", "@import", "<iframe", "<img", " on"} {
		if bad == " on" {
			// no inline event handlers: attributes named on*
			if strings.Contains(low, " onload=") || strings.Contains(low, " onclick=") || strings.Contains(low, " onerror=") {
				t.Fatalf("html has an event handler")
			}
			continue
		}
		if strings.Contains(low, bad) {
			t.Fatalf("html contains %q:\n%s", bad, page)
		}
	}
	// Bad arguments are refused, and say why.
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "after=..%2F"} {
		if code, b := s.call("GET", "/api/v1/assessment?"+q, s.token, nil); code != http.StatusBadRequest || !strings.Contains(string(b), "problem") {
			t.Errorf("?%s: %d %s", q, code, b)
		}
	}
	if code, b := s.call("GET", "/api/v1/assessment?project=nope", s.token, nil); code != http.StatusNotFound || !strings.Contains(string(b), "projects: shop") {
		t.Errorf("unknown project: %d %s", code, b)
	}
	// Without the audit permission: refused.
	if code, _ := s.call("GET", "/api/v1/assessment", "rel1:rel1-password-0123", nil); code != http.StatusForbidden {
		t.Errorf("a promoter read the assessment: %d", code)
	}
}

// TestAssessBounded: a request assesses at most limit repositories and
// says where to continue; a repository is rated on at most MaxArtifacts
// of its tagged artifacts.
func TestAssessBounded(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	s := &site{t: t, srv: srv}
	for _, r := range []string{"a/one", "b/two", "c/three"} {
		s.push(r, "1.0.0")
	}
	for i := range assessment.MaxArtifacts + 2 {
		s.push("d/many", fmt.Sprintf("1.0.%d", i))
	}
	var page assessment.Report
	if err := json.Unmarshal(s.must("GET", "/api/v1/assessment?limit=2", "", nil, http.StatusOK), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Repositories) != 2 || page.Next != "b/two" || page.Limits.Repositories != 2 {
		t.Fatalf("first page: %d repositories, next %q, limits %+v", len(page.Repositories), page.Next, page.Limits)
	}
	page = assessment.Report{}
	if err := json.Unmarshal(s.must("GET", "/api/v1/assessment?limit=2&after=b/two", "", nil, http.StatusOK), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Repositories) != 2 || page.Repositories[0].Repository != "c/three" || page.Next != "" {
		t.Fatalf("second page: %d repositories, next %q", len(page.Repositories), page.Next)
	}
	many := page.Repositories[1]
	if many.Repository != "d/many" || many.Artifacts != assessment.MaxArtifacts || many.Tagged != assessment.MaxArtifacts+2 {
		t.Fatalf("d/many: %d of %d examined", many.Artifacts, many.Tagged)
	}
	// The command line follows the pages, up to --max.
	t.Setenv("HOME", t.TempDir())
	out, err := s.custody("assess", "-o", "json", "--limit", "1", "--max", "3")
	if err != nil {
		t.Fatal(err)
	}
	var all assessment.Report
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatal(err)
	}
	if len(all.Repositories) != 3 || all.Next != "c/three" {
		t.Fatalf("--limit 1 --max 3: %d repositories, next %q", len(all.Repositories), all.Next)
	}
}

// TestAssessEvidence: an artifact signed and with an SBOM on push, with
// platform provenance from the job's OIDC token, promoted through gates
// with two approvers, under immutable tags and retention, reaches stage 4
// and SLSA build level 3; stage 5 waits for a drill, and a drill report
// signed by the server completes it.
func TestAssessEvidence(t *testing.T) {
	s, iss, keys := startSite(t)
	d := s.push("apps/web", "1.0.0")
	ref := s.srv.Host() + "/apps/web@" + d
	// Platform provenance, written by the server from the job's token.
	s.must("POST", "/api/v1/provenance/apps/web/@"+d, ciToken(t, iss), nil, http.StatusCreated)
	// Signature and SBOM on push arrive in the background.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := repository(t, s.assess(), "apps/web")
		if result(t, r.Assessment, "signed").Pass && result(t, r.Assessment, "sbom").Pass {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no signature or SBOM on push: %+v", r.Criteria)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.custody("vulndb", "import", "../vuln/testdata/osv/GHSA-35jh-r3h4-6jhm.json"); err != nil {
		t.Fatal(err)
	}
	// Before promotion: the gaps name promotions.
	r := repository(t, s.assess(), "apps/web")
	if c := result(t, r.Assessment, "build-once"); c.Pass || c.Command != "custody promote "+ref+" --to dev" {
		t.Fatalf("build-once before promotion: %+v", c)
	}
	if r.SLSALevel != 3 {
		t.Fatalf("SLSA level before promotion: %d %+v", r.SLSALevel, r.Criteria)
	}
	// dev, then prod with two approvers.
	if _, err := s.custody("promote", ref, "--to", "dev"); err != nil {
		t.Fatal(err)
	}
	if out, err := s.custody("promote", ref, "--to", "prod"); err != nil || !strings.Contains(out, "1 of 2") {
		t.Fatalf("first approval: %v %s", err, out)
	}
	t.Setenv("CUSTODY_TOKEN", "")
	var rel struct{ Secret string }
	if err := json.Unmarshal(s.must("POST", "/api/v1/tokens", "rel1:rel1-password-0123", map[string]any{"name": "p", "scopes": []map[string]any{{"role": "promoter", "repositories": []string{"apps/**"}}}}, http.StatusCreated), &rel); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUSTODY_TOKEN", rel.Secret)
	if _, err := s.custody("promote", ref, "--to", "prod"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUSTODY_TOKEN", s.token)
	// Wait for a checkpoint over the promotions (signed every second).
	var rep assessment.Report
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rep = s.assess("--project", "apps/**")
		if rep.Server.Checkpoint >= rep.Server.AuditSize && rep.Server.Checkpoint > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint: %+v", rep.Server)
		}
	}
	if len(rep.Repositories) != 1 || rep.Repositories[0].Project != "shop" {
		t.Fatalf("--project apps/** assessed %d repositories", len(rep.Repositories))
	}
	if byName := s.assess("--project", "shop"); len(byName.Repositories) != 1 || byName.Repositories[0].Repository != "apps/web" {
		t.Fatalf("--project shop assessed %+v", byName.Repositories)
	}
	// A full page of the project's repositories says "more" only when
	// another of its repositories follows.
	s.push("zzz/outside", "1.0.0")
	var page assessment.Report
	if err := json.Unmarshal(s.must("GET", "/api/v1/assessment?project=apps/**&limit=1", s.token, nil, http.StatusOK), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Repositories) != 1 || page.Next != "" {
		t.Fatalf("one page of apps/**: %d repositories, next %q", len(page.Repositories), page.Next)
	}
	r = repository(t, rep, "apps/web")
	if r.Stage != 4 || r.SLSALevel != 3 || !slices.Equal(r.NextStage, []string{"forensic-reenactment"}) || len(r.NextLevel) != 0 {
		for _, c := range r.Criteria {
			t.Logf("%v %s: %s %s", c.Pass, c.ID, c.Evidence.Summary, c.Command)
		}
		t.Fatalf("evidenced artifact: stage %d level %d next %v %v", r.Stage, r.SLSALevel, r.NextStage, r.NextLevel)
	}
	if c := result(t, r.Assessment, "forensic-reenactment"); c.Command != "custody drill dev --project shop --into DIR" {
		t.Fatalf("drill gap: %+v", c)
	}
	if c := result(t, r.Assessment, "integrity-checks"); !c.Pass || c.Evidence.Config != "scrub.schedule: 24h0m0s" || strings.Contains(c.Evidence.Summary, "last in-server scrub") {
		t.Fatalf("integrity before a scrub: %+v", c)
	}
	s.must("POST", "/api/v1/scrub", s.token, nil, http.StatusOK)
	if c := result(t, repository(t, s.assess(), "apps/web").Assessment, "integrity-checks"); !c.Pass || !strings.Contains(c.Evidence.Summary, "found 0 damaged object(s)") {
		t.Fatalf("integrity after a scrub: %+v", c)
	}
	if c := result(t, r.Assessment, "chain-of-custody"); !c.Pass || c.Evidence.Count != 2 {
		t.Fatalf("chain of custody: %+v", c)
	}
	if c := result(t, r.Assessment, "slsa-platform-provenance"); !strings.Contains(c.Evidence.Summary, "github.com/org/app") || c.Evidence.Config != "signing.builderID: https://custody.example/platform" {
		t.Fatalf("platform provenance evidence: %+v", c.Evidence)
	}
	if c := result(t, r.Assessment, "immutable-tags"); !strings.Contains(c.Evidence.Summary, "tag 1.0.0 is immutable") {
		t.Fatalf("immutable tags evidence: %+v", c.Evidence)
	}
	if c := result(t, r.Assessment, "retention"); !strings.Contains(c.Evidence.Summary, "governance retention until") || !strings.Contains(c.Evidence.Config, "48h") {
		t.Fatalf("retention evidence: %+v", c.Evidence)
	}
	if len(r.Environments) != 2 {
		t.Fatalf("environments: %+v", r.Environments)
	}
	for _, e := range r.Environments {
		if e.Digest != d || e.Stage != 4 || e.SLSALevel != 3 {
			t.Fatalf("environment %s: runs %s, stage %d, level %d", e.Environment, e.Digest, e.Stage, e.SLSALevel)
		}
	}

	// A successful drill report of each environment, signed by the
	// server's key (what custody drill records), completes stage 5; one
	// drilled more than a year ago, or a failed one, does not.
	drill := func(d evidence.Drill) {
		t.Helper()
		pred := filepath.Join(t.TempDir(), "drill.json")
		b, _ := json.Marshal(d)
		if err := os.WriteFile(pred, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("CUSTODY_KEY_PASSWORD", "server-pass")
		if _, err := s.run("attest", "predicate", "--keys", keys, "--type", evidence.PredicateDrill, "--predicate", pred, ref); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	drill(evidence.Drill{Environment: "dev", Started: now.AddDate(0, 0, -400), OK: true})
	drill(evidence.Drill{Environment: "prod", Started: now, OK: false})
	drill(evidence.Drill{Environment: "dev", Started: now, OK: true})
	r = repository(t, s.assess(), "apps/web")
	if c := result(t, r.Assessment, "forensic-reenactment"); r.Stage != 4 || c.Evidence.Count != 1 || c.Command != "custody drill prod --project shop --into DIR" {
		t.Fatalf("an old and a failed drill: stage %d %+v", r.Stage, c)
	}
	// The report of an environment rebuilt as of a year ago, drilled now.
	drill(evidence.Drill{Environment: "prod", At: now.AddDate(-1, 0, 0), Started: now, OK: true})
	r = repository(t, s.assess(), "apps/web")
	if r.Stage != 5 || len(r.NextStage) != 0 || r.StageName != "Immutable, Signed Artifacts with Audit-Ready Storage" {
		t.Fatalf("after drills: stage %d next %v", r.Stage, r.NextStage)
	}
}

// TestAssessJSONSchema pins the member names of the JSON report: scripts
// read them, so a change here is a change of the API (and of Schema).
func TestAssessJSONSchema(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	s := &site{t: t, srv: srv}
	s.push("x/y", "1.0.0")
	var v any
	if err := json.Unmarshal(s.must("GET", "/api/v1/assessment", "", nil, http.StatusOK), &v); err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				paths[prefix+"."+k] = true
				walk(prefix+"."+k, e)
			}
		case []any:
			for _, e := range v {
				walk(prefix+"[]", e)
			}
		}
	}
	walk("", v)
	var got []string
	for p := range paths {
		got = append(got, p)
	}
	sort.Strings(got)
	want := []string{
		".generated", ".limits", ".limits.artifactsPerRepository", ".limits.auditEntriesPerRepository",
		".limits.repositories", ".limits.tagsPerRepository", ".repositories",
		".repositories[].artifacts", ".repositories[].criteria",
		".repositories[].criteria[].command", ".repositories[].criteria[].evidence",
		".repositories[].criteria[].evidence.config", ".repositories[].criteria[].evidence.count",
		".repositories[].criteria[].evidence.example", ".repositories[].criteria[].evidence.summary",
		".repositories[].criteria[].evidence.total", ".repositories[].criteria[].id",
		".repositories[].criteria[].model", ".repositories[].criteria[].pass", ".repositories[].criteria[].rank",
		".repositories[].criteria[].setting", ".repositories[].criteria[].title",
		".repositories[].environments", ".repositories[].nextLevel", ".repositories[].nextStage",
		".repositories[].repository", ".repositories[].slsaLevel", ".repositories[].stage",
		".repositories[].stageName", ".repositories[].taggedArtifacts",
		".schema", ".server", ".server.auditLog", ".server.auditLogSize", ".server.authMode",
		".server.checkpointSize", ".server.lastScrubDamaged", ".server.platformBuilderID",
		".server.vulnerabilityRecords",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("JSON members changed:\n got %q\nwant %q", got, want)
	}
}
