package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/promotion/promotionhttp"
	"github.com/custody-dev/custody/internal/sign"
)

// hostileNote is an annotation value that would run script if a page
// printed it unescaped.
const hostileNote = `<script>alert("x")</script><img src=x onerror=alert(1)>`

// licensedSBOM is an SPDX document listing two packages with licences.
const licensedSBOM = `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"app",
"documentNamespace":"https://example.org/app","creationInfo":{"created":"2026-11-22T00:00:00Z","creators":["Tool: test"]},
"packages":[
 {"SPDXID":"SPDXRef-a","name":"golang.org/x/text","versionInfo":"v0.14.0","licenseConcluded":"BSD-3-Clause",
  "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:golang/golang.org/x/text@v0.14.0"}]},
 {"SPDXID":"SPDXRef-b","name":"zlib","versionInfo":"1.3","licenseDeclared":"Zlib",
  "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:generic/zlib@1.3"}]}
]}`

// artifactSite is a server with a project (environment dev), a server key
// to record promotions, and a CI key in its trust root; apps/web:v1 is
// signed by the CI key, attested (SLSA provenance, SBOM) and promoted to
// dev; apps/bare:v1 is neither signed nor attested. Both carry a hostile
// annotation.
type artifactSite struct {
	*site
	signed, bare v1.Hash
	ci           evidencetest.Key
}

func newArtifactSite(t *testing.T) *artifactSite {
	t.Helper()
	data := t.TempDir()
	ring, err := key.Open(filepath.Join(data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Create(key.ECDSAP256, "server", []byte("ring-pass")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUSTODY_KEY_PASSWORD", "ring-pass")
	ci := evidencetest.NewKey(t, time.Now().Add(-time.Hour), time.Time{})
	root, _ := json.Marshal(evidencetest.Root(ci))
	rootFile := filepath.Join(t.TempDir(), "ci-trust-root.json")
	if err := os.WriteFile(rootFile, root, 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSite(t, true, func(c *config.Config) {
		c.Data = data
		c.Promotion.TrustRoot = rootFile
		c.Projects = []config.Project{{Repositories: "apps/**", Environments: []config.Environment{{Name: "dev"}}}}
	})
	a := &artifactSite{site: s, ci: ci}
	note := map[string]string{"org.example.note": hostileNote, "org.opencontainers.image.source": "https://github.com/acme/app"}
	a.signed = s.push("apps/web", "v1", note)
	a.bare = s.push("apps/bare", "v1", note)

	ref := a.ref("apps/web", a.signed)
	o := a.opts()
	o.Annotations = map[string]string{evidencetest.SignedAtAnnotation: time.Now().UTC().Format(time.RFC3339), "signer": "release-bot@acme"}
	if _, err := sign.Sign(context.Background(), ref, ci, o); err != nil {
		t.Fatal(err)
	}
	a.attest(ref, attest.PredicateSLSAProvenanceV1, evidencetest.Provenance)
	a.attest(ref, attest.PredicateSPDX, licensedSBOM)
	s.api("POST", "/api/v1/promotions", map[string]any{"repository": "apps/web", "digest": a.signed.String(), "environment": "dev", "reason": "release 1"}, http.StatusOK)
	return a
}

func (a *artifactSite) ref(repo string, d v1.Hash) name.Digest {
	ref, err := name.NewDigest(strings.TrimPrefix(a.url, "http://")+"/"+repo+"@"+d.String(), name.Insecure)
	if err != nil {
		a.t.Fatal(err)
	}
	return ref
}

func (a *artifactSite) opts() sign.Options {
	return sign.Options{Remote: []remote.Option{remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "admin", Password: a.admin}))}}
}

func (a *artifactSite) attest(ref name.Digest, predicateType, predicate string) {
	a.t.Helper()
	stmt, err := attest.StatementFor(ref.Context().RepositoryStr(), ref.DigestStr(), predicateType, []byte(predicate))
	if err != nil {
		a.t.Fatal(err)
	}
	env, err := attest.Sign(context.Background(), a.ci, "", stmt)
	if err != nil {
		a.t.Fatal(err)
	}
	if _, err := sign.Attach(context.Background(), ref, env, predicateType, a.opts()); err != nil {
		a.t.Fatal(err)
	}
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
	if t.Failed() {
		t.Fatalf("%s:\n%s", what, body)
	}
}

func TestArtifactPageSignedAttestedPromoted(t *testing.T) {
	a := newArtifactSite(t)
	b := a.browser()
	b.signIn("admin", a.admin)
	host := strings.TrimPrefix(a.url, "http://")
	page := "/artifacts/apps/web@" + a.signed.String()
	resp, body := b.do("GET", page, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d\n%s", page, resp.StatusCode, body)
	}
	checkSecurityHeaders(t, page, resp.Header)
	mustContain(t, "signed artifact page", body,
		// Copy buttons for the digest and the pull command.
		`data-copy="`+a.signed.String()+`"`,
		`data-copy="docker pull `+host+`/apps/web@`+a.signed.String()+`"`,
		// A signature that verifies now, with its key and the signer's claims.
		`<span class="badge ok">verified</span>`, "<code>"+a.ci.ID()+"</code>", "active key", "release-bot@acme",
		"signed: 2 verify now", // the cosign tag and the bundle referrer
		// The provenance chain: source + commit -> builder -> digest -> environments.
		`<ol class="chain"`, "https://github.com/acme/app", "0123456789abcdef0123456789abcdef01234567",
		"https://github.com/actions/runner/github-hosted", `<span class="badge ok">dev</span>`, "release 1",
		// The SBOM's packages with their licences; no findings.
		"golang.org/x/text", "BSD-3-Clause", "Zlib", "No known vulnerability",
		// Manifest: layers with sizes, annotations.
		"Layers (1,", "org.opencontainers.image.source",
		// Retention and the audit events with log indices (admin audits).
		"Retention and legal hold", "none set", "Log index", "promote")
	if strings.Contains(body, "does not count") {
		t.Errorf("a signature does not count:\n%s", body)
	}

	// The package search narrows the SBOM list.
	_, body = b.do("GET", page+"?pkg=zlib", nil)
	if !strings.Contains(body, "Zlib") || strings.Contains(body, "golang.org/x/text</th>") {
		t.Fatalf("package search for zlib:\n%s", body)
	}
	_, body = b.do("GET", page+"?pkg=BSD", nil)
	if !strings.Contains(body, "golang.org/x/text</th>") || strings.Contains(body, "zlib</th>") {
		t.Fatalf("package search by licence:\n%s", body)
	}

	// The repository page leads here.
	_, body = b.do("GET", "/repositories/apps/web", nil)
	mustContain(t, "repository page", body, `href="`+page+`"`)

	// A retention period and a legal hold show.
	until := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	a.api("PUT", "/api/v1/retention/apps/web/@"+a.signed.String(), map[string]any{"mode": "governance", "retainUntil": until}, http.StatusOK)
	a.api("PUT", "/api/v1/hold/apps/web/@"+a.signed.String(), nil, http.StatusOK)
	_, body = b.do("GET", page, nil)
	mustContain(t, "held artifact page", body, `<span class="badge warn">governance</span> until `+until.Format("2006-01-02 15:04:05 UTC"), "on hold")
}

func TestArtifactPageUnsigned(t *testing.T) {
	a := newArtifactSite(t)
	b := a.browser()
	b.signIn("admin", a.admin)
	resp, body := b.do("GET", "/artifacts/apps/bare@"+a.bare.String(), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("unsigned: %d\n%s", resp.StatusCode, body)
	}
	mustContain(t, "unsigned artifact page", body, "no signature verifies", "This artifact is unsigned",
		"No trusted provenance", "No trusted SBOM")
	if strings.Contains(body, `<span class="badge ok">verified</span>`) || strings.Contains(body, `<ol class="chain"`) {
		t.Fatalf("the unsigned artifact shows trust:\n%s", body)
	}

	// An index lists its platforms, each leading to its own page.
	var adds []mutate.IndexAddendum
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	tag, _ := name.NewTag(strings.TrimPrefix(a.url, "http://")+"/apps/multi:v1", name.Insecure)
	if err := remote.WriteIndex(tag, idx, a.opts().Remote...); err != nil {
		t.Fatal(err)
	}
	id, _ := idx.Digest()
	im, _ := idx.IndexManifest()
	_, body = b.do("GET", "/artifacts/apps/multi@"+id.String(), nil)
	mustContain(t, "index page", body, "<h3>Platforms</h3>", "linux/amd64", "linux/arm64/v8",
		`href="/artifacts/apps/multi@`+im.Manifests[1].Digest.String()+`"`)
}

// TestArtifactPageEscapesAnnotations: an annotation is the pusher's text;
// the page shows it as text, never as markup.
func TestArtifactPageEscapesAnnotations(t *testing.T) {
	a := newArtifactSite(t)
	b := a.browser()
	b.signIn("admin", a.admin)
	_, body := b.do("GET", "/artifacts/apps/bare@"+a.bare.String(), nil)
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
		t.Fatalf("the hostile annotation is markup in the page:\n%s", body)
	}
	mustContain(t, "page with a hostile annotation", body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;")
}

func TestArtifactPageReaderAndNoAccess(t *testing.T) {
	a := newArtifactSite(t)
	a.reader("apps/web")
	b := a.browser()
	b.signIn("reader", readerPassword)

	// A reader of apps/web sees its evidence, not the audit log.
	resp, body := b.do("GET", "/artifacts/apps/web@"+a.signed.String(), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reader: %d\n%s", resp.StatusCode, body)
	}
	mustContain(t, "reader's artifact page", body, `<span class="badge ok">verified</span>`, `<ol class="chain"`,
		"not shown: Your account may not read this.")
	if strings.Contains(body, "Log index") {
		t.Fatalf("a reader sees audit events:\n%s", body)
	}

	// apps/bare is not the reader's: the API refuses, the page says so
	// and shows nothing of the artifact.
	resp, body = b.do("GET", "/artifacts/apps/bare@"+a.bare.String(), nil)
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
		t.Fatalf("no access: %d\n%s", resp.StatusCode, body)
	}
	checkSecurityHeaders(t, "refused artifact", resp.Header)
	for _, leak := range []string{"alert", "org.example.note", "Signatures", "Manifest", "docker pull"} {
		if strings.Contains(body, leak) {
			t.Errorf("the refusal leaks %q:\n%s", leak, body)
		}
	}

	// Signed out: sign in first.
	resp, _ = a.browser().do("GET", "/artifacts/apps/web@"+a.signed.String(), nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin?next=") {
		t.Fatalf("signed out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestArtifactPageBadReferences(t *testing.T) {
	s := newSite(t, true, nil)
	b := s.browser()
	b.signIn("admin", s.admin)
	for path, want := range map[string]int{
		"/artifacts/apps/web":                           http.StatusNotFound,
		"/artifacts/apps/web@sha256:nothex":             http.StatusBadRequest,
		"/artifacts/@sha256:" + strings.Repeat("a", 64): http.StatusNotFound,
	} {
		resp, body := b.do("GET", path, nil)
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d\n%s", path, resp.StatusCode, want, body)
		}
	}
}

// TestEvidenceAPI: GET /api/v1/evidence answers a reader of the
// repository with the manifest and the verdicts, and refuses everyone
// else with a problem that names nothing of the artifact.
func TestEvidenceAPI(t *testing.T) {
	a := newArtifactSite(t)
	a.reader("apps/web")
	get := func(user, pass, query string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", a.url+"/api/v1/evidence?"+query, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	q := func(repo string, d v1.Hash) string { return "repository=" + repo + "&digest=" + d.String() }

	code, body := get("reader", readerPassword, q("apps/web", a.signed))
	if code != http.StatusOK {
		t.Fatalf("reader: %d %s", code, body)
	}
	var ev promotionhttp.ArtifactEvidence
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		t.Fatal(err)
	}
	counted := 0
	for _, s := range ev.Signatures {
		if s.Verified && s.KeyID == a.ci.ID() && s.Claims["signer"] == "release-bot@acme" && !s.SignedAt.IsZero() {
			counted++
		}
	}
	if counted != 2 || len(ev.Provenance) != 1 || ev.Provenance[0].SourceCommit != "0123456789abcdef0123456789abcdef01234567" ||
		len(ev.Promotions) != 1 || ev.Promotions[0].Environment != "dev" || len(ev.Packages) != 2 ||
		!strings.Contains(string(ev.Manifest), "org.example.note") {
		t.Fatalf("evidence of the signed artifact: %s", body)
	}
	if ev.Packages[0].Licenses == nil {
		t.Fatalf("packages without licences: %+v", ev.Packages)
	}

	code, body = get("admin", a.admin, q("apps/bare", a.bare))
	var bare promotionhttp.ArtifactEvidence
	if code != http.StatusOK || json.Unmarshal([]byte(body), &bare) != nil || bare.Signatures == nil || len(bare.Signatures) != 0 ||
		len(bare.Provenance) != 0 || len(bare.Promotions) != 0 {
		t.Fatalf("unsigned artifact: %d %s", code, body)
	}

	unknown := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	for _, c := range []struct {
		what, user, pass, query string
		want                    int
	}{
		{"another repository", "reader", readerPassword, q("apps/bare", a.bare), http.StatusForbidden},
		{"anonymous", "", "", q("apps/web", a.signed), http.StatusUnauthorized},
		{"unknown digest", "admin", a.admin, q("apps/web", unknown), http.StatusNotFound},
		{"bad digest", "admin", a.admin, "repository=apps/web&digest=sha256:zz", http.StatusBadRequest},
		{"bad name", "admin", a.admin, "repository=Apps/../x&digest=" + a.signed.String(), http.StatusBadRequest},
	} {
		code, body := get(c.user, c.pass, c.query)
		if code != c.want || !strings.Contains(body, `"type"`) || strings.Contains(body, "org.example.note") || strings.Contains(body, "signatures") {
			t.Errorf("%s: %d %s, want %d and a problem that names nothing of the artifact", c.what, code, body, c.want)
		}
	}
}

// TestArtifactPageFindingsAndWaivers: with an advisory in the
// vulnerability database, the SBOM's vulnerable package is an open
// finding with its severity; a signed OpenVEX statement waives it, and the
// page says so.
func TestArtifactPageFindingsAndWaivers(t *testing.T) {
	a := newArtifactSite(t)
	osv, err := os.ReadFile("../vuln/testdata/osv/GHSA-35jh-r3h4-6jhm.json")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", a.url+"/api/v1/vulndb", strings.NewReader(string(osv)))
	req.SetBasicAuth("admin", a.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("importing the advisory: %d", resp.StatusCode)
	}
	d := a.push("apps/shop", "v1", nil)
	ref := a.ref("apps/shop", d)
	a.attest(ref, attest.PredicateSPDX, `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"shop",
"documentNamespace":"https://example.org/shop","creationInfo":{"created":"2026-11-22T00:00:00Z","creators":["Tool: test"]},
"packages":[{"SPDXID":"SPDXRef-l","name":"lodash","versionInfo":"4.17.20","licenseDeclared":"MIT",
  "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:npm/lodash@4.17.20"}]}]}`)
	b := a.browser()
	b.signIn("admin", a.admin)
	page := "/artifacts/apps/shop@" + d.String()
	_, body := b.do("GET", page, nil)
	mustContain(t, "vulnerable artifact page", body, "1 open finding, 1 in all", `<span class="badge bad">HIGH</span>`,
		"GHSA-35jh-r3h4-6jhm", "<code>pkg:npm/lodash@4.17.20</code></td>", "4.17.21", "MIT")

	vex, _ := json.Marshal(map[string]any{
		"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://acme.example/vex/1",
		"author": "security@acme.example", "timestamp": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "version": 1,
		"statements": []map[string]any{{
			"vulnerability": map[string]any{"name": "CVE-2021-23337"},
			"products":      []map[string]any{{"@id": "pkg:npm/lodash"}},
			"status":        "not_affected", "justification": "vulnerable_code_not_in_execute_path",
			"custody_expires": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
		}},
	})
	a.attest(ref, "https://openvex.dev/ns/v0.2.0", string(vex))
	_, body = b.do("GET", page, nil)
	mustContain(t, "waived artifact page", body, "0 open findings, 1 in all", `<span class="badge ok">waived</span>`)
}
