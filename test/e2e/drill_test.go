package e2e

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/drill"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/testserver"
)

// drillSite is a custody server with project apps/** (environment prod,
// no gate) whose artifacts a CI key signs, and a client logged in to it.
type drillSite struct {
	srv     *testserver.Server
	home    string
	ciTrust string
	ci      crypto.Signer
	auth    remote.Option
}

func newDrillSite(t *testing.T) drillSite {
	t.Helper()
	work, home, ciKeys, data := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	pass := []string{"CUSTODY_KEY_PASSWORD=ci-passphrase-1"}
	mustCustody(t, home, "", pass, "key", "create", "--keys", ciKeys)
	ring, err := key.Open(ciKeys)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ring.Active()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ring.Signer(k, []byte("ci-passphrase-1"))
	if err != nil {
		t.Fatal(err)
	}
	ciTrust := filepath.Join(work, "ci-trust-root.json")
	if err := os.WriteFile(ciTrust, []byte(mustCustody(t, home, "", nil, "key", "export-public", "--trust-root", "--keys", ciKeys)), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCustody(t, home, "", []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}, "key", "create", "--keys", filepath.Join(data, "keys"))
	cfg := filepath.Join(work, "custody.yaml")
	conf := fmt.Sprintf("projects:\n  - name: shop\n    repositories: \"apps/**\"\n    environments:\n      - name: prod\npromotion:\n  trustRoot: %q\n", ciTrust)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Auth: true, Data: data, Args: []string{"--config", cfg},
		Env: []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}})
	mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", srv.Host(), "-u", "admin", "--password-stdin")
	return drillSite{srv: srv, home: home, ciTrust: ciTrust, ci: signer,
		auth: remote.WithAuth(&authn.Basic{Username: "admin", Password: srv.AdminPassword()})}
}

// push pushes a random image to repo, signed by the CI key, and returns
// its digest reference.
func (s drillSite) push(t *testing.T, repo string, sign_ bool) name.Digest {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	dg, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d, err := name.NewDigest(s.srv.Host() + "/" + repo + "@" + dg.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(d, img, s.auth); err != nil {
		t.Fatal(err)
	}
	if sign_ {
		o := sign.Options{Remote: []remote.Option{s.auth}, Annotations: map[string]string{"dev.custody.signed-at": time.Now().UTC().Format(time.RFC3339)}}
		if _, err := sign.Sign(context.Background(), d, s.ci, o); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// provenance attaches a CI-signed SLSA provenance of d pinning deps
// (URI -> sha256 digest).
func (s drillSite) provenance(t *testing.T, d name.Digest, deps map[string]string) {
	t.Helper()
	var rds []map[string]any
	for uri, dg := range deps {
		rds = append(rds, map[string]any{"uri": uri, "digest": map[string]string{"sha256": strings.TrimPrefix(dg, "sha256:")}})
	}
	pred, err := json.Marshal(map[string]any{
		"buildDefinition": map[string]any{"buildType": "https://example.com/build/v1", "externalParameters": map[string]any{"repository": "https://github.com/acme/app"}, "resolvedDependencies": rds},
		"runDetails":      map[string]any{"builder": map[string]any{"id": "https://example.com/builder"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := attest.StatementFor(d.Context().Name(), d.DigestStr(), attest.PredicateSLSAProvenanceV1, pred)
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.Sign(context.Background(), s.ci, "", stmt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.Attach(context.Background(), d, env, attest.PredicateSLSAProvenanceV1, sign.Options{Remote: []remote.Option{s.auth}}); err != nil {
		t.Fatal(err)
	}
}

func (s drillSite) drill(t *testing.T, args ...string) (drill.Report, string, error) {
	t.Helper()
	out, err := custodyCmd(t, s.home, "", nil, append([]string{"drill", "prod", "--trust-root", s.ciTrust, "-o", "json", "--server", s.srv.URL}, args...)...)
	var rep drill.Report
	if i := strings.Index(out, "{"); i >= 0 {
		if jerr := json.NewDecoder(strings.NewReader(out[i:])).Decode(&rep); jerr != nil {
			t.Fatalf("drill output is not a report: %v\n%s", jerr, out)
		}
	} else {
		t.Fatalf("drill printed no report: %v\n%s", err, out)
	}
	return rep, out, err
}

// TestDrill rebuilds a project's prod environment from a real server into
// an OCI layout (read back with the real regctl and crane) and into a
// second real custody server, re-verified there; then a dependency the
// provenance pins and custody should store is missing, and the drill says
// so.
func TestDrill(t *testing.T) {
	regctl, crane := client(t, "regctl"), client(t, "crane")
	site := newDrillSite(t)
	h := site.srv.Host()
	base := site.push(t, "apps/base", false)
	web := site.push(t, "apps/web", true)
	api := site.push(t, "apps/api", true)
	external := "sha256:" + strings.Repeat("ab", 32)
	site.provenance(t, web, map[string]string{
		"oci://" + base.String():                base.DigestStr(),
		"pkg:docker/library/alpine@" + external: external,
	})
	for _, d := range []name.Digest{web, api} {
		mustCustody(t, site.home, "", nil, "promote", d.String(), "--to", "prod", "--server", site.srv.URL)
	}

	// Into an empty OCI layout directory.
	dir := filepath.Join(t.TempDir(), "restore")
	rep, out, err := site.drill(t, "--into", dir)
	if err != nil || !rep.OK {
		t.Fatalf("drill into a layout: %v\n%s", err, out)
	}
	if rep.Project != "shop" || len(rep.Artifacts) != 2 {
		t.Fatalf("drill report: %+v", rep)
	}
	for _, a := range rep.Artifacts {
		if a.Signatures < 1 || a.Blobs < 3 || len(a.Problems) > 0 {
			t.Fatalf("artifact %s: %+v", a.Repository, a)
		}
		if a.Repository == "apps/web" && a.Attestations < 2 { // provenance + promotion record
			t.Fatalf("web's attestations were not verified: %+v", a)
		}
	}
	var sawBase, sawExternal bool
	for _, d := range rep.Dependencies {
		switch d.Digest {
		case base.DigestStr():
			sawBase = d.Stored && d.Retrievable
		case external:
			sawExternal = !d.Stored
		}
	}
	if !sawBase || !sawExternal {
		t.Fatalf("dependencies: %+v", rep.Dependencies)
	}
	// Real clients read the layout: regctl by digest and by name, crane
	// pushes the whole layout into the second site below.
	for _, d := range []name.Digest{web, api} {
		got := run(t, site.home, regctl, "manifest", "digest", "ocidir://"+dir+"@"+d.DigestStr())
		if strings.TrimSpace(got) != d.DigestStr() {
			t.Fatalf("regctl read %s from the layout as %q", d.DigestStr(), got)
		}
	}
	if got := run(t, site.home, regctl, "manifest", "digest", "ocidir://"+dir+":"+drill.RefName("apps/web", "prod")); strings.TrimSpace(got) != web.DigestStr() {
		t.Fatalf("regctl read apps_web.prod as %q", got)
	}
	k8s, err := os.ReadFile(filepath.Join(dir, "deploy", drill.KubernetesFile))
	if err != nil {
		t.Fatal(err)
	}
	compose, err := os.ReadFile(filepath.Join(dir, "deploy", drill.ComposeFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []name.Digest{web, api} {
		if !strings.Contains(string(k8s), d.DigestStr()) || !strings.Contains(string(compose), d.DigestStr()) {
			t.Fatalf("manifests do not pin %s:\n%s\n%s", d, k8s, compose)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "deploy", "drill-report.json")); err != nil {
		t.Fatal(err)
	}
	// A second drill into the same directory is refused: not empty.
	if _, err := custodyCmd(t, site.home, "", nil, "drill", "prod", "--into", dir, "--server", site.srv.URL); err == nil {
		t.Fatal("a drill into a non-empty directory succeeded")
	}

	// Recorded: a signed drill report on each artifact (custody verify sees
	// it as a trusted attestation), audit entries, the metric.
	audit := httpGetAuth(t, site.srv.URL+"/api/v1/audit/search?repo=apps/web", "admin", site.srv.AdminPassword())
	if !strings.Contains(audit, `drill of prod in project shop`) {
		t.Fatalf("no drill audit entry:\n%s", audit)
	}
	if env := mustCustody(t, site.home, "", nil, "env", "prod", "--server", site.srv.URL); !strings.Contains(env, "last successful drill: ") {
		t.Fatalf("custody env does not show the last drill:\n%s", env)
	}
	metrics := httpGet(t, site.srv.URL+"/metrics")
	if !strings.Contains(metrics, `custody_environment_last_drill_timestamp_seconds{environment="prod",project="shop"}`) {
		t.Fatalf("no drill metric:\n%s", grepLines(metrics, "drill"))
	}

	// Into a second real custody server: crane pushes the layout there,
	// and the drill rebuilds into it and re-verifies in place.
	other := testserver.Start(t, testserver.Options{Auth: true})
	mustCustody(t, site.home, other.AdminPassword()+"\n", nil, "login", other.Host(), "-u", "admin", "--password-stdin")
	run(t, site.home, crane, "push", "--insecure", "--index", dir, other.Host()+"/layout/all:latest")
	run(t, site.home, crane, "manifest", "--insecure", other.Host()+"/layout/all@"+web.DigestStr())
	manifests := filepath.Join(t.TempDir(), "manifests")
	rep, out, err = site.drill(t, "--into", other.Host()+"/restore", "--manifests", manifests)
	if err != nil || !rep.OK {
		t.Fatalf("drill into a registry: %v\n%s", err, out)
	}
	for _, a := range rep.Artifacts {
		if want := other.Host() + "/restore/" + a.Repository + "@" + a.Digest; a.Reference != want || a.Signatures < 1 {
			t.Fatalf("artifact in the second registry: %+v (want %s)", a, want)
		}
		run(t, site.home, crane, "manifest", "--insecure", a.Reference)
	}
	if k8s, err := os.ReadFile(filepath.Join(manifests, drill.KubernetesFile)); err != nil || !strings.Contains(string(k8s), other.Host()+"/restore/apps/web@"+web.DigestStr()) {
		t.Fatalf("manifests do not name the restored images: %v\n%s", err, k8s)
	}

	// A dependency custody should store is gone: the drill reports it and
	// fails, naming it.
	api2 := site.push(t, "apps/api", true)
	gone := "sha256:" + strings.Repeat("cd", 32)
	site.provenance(t, api2, map[string]string{h + "/apps/gone@" + gone: gone})
	mustCustody(t, site.home, "", nil, "promote", api2.String(), "--to", "prod", "--server", site.srv.URL)
	rep, out, err = site.drill(t, "--into", filepath.Join(t.TempDir(), "again"))
	if err == nil || rep.OK {
		t.Fatalf("a drill with a missing dependency succeeded:\n%s", out)
	}
	if len(rep.Missing) != 1 || !strings.Contains(rep.Missing[0], "apps/gone@"+gone) {
		t.Fatalf("missing: %q", rep.Missing)
	}
	last := httpGetAuth(t, site.srv.URL+"/api/v1/drills?environment=prod", "admin", site.srv.AdminPassword())
	var l struct {
		Last, LastSuccess time.Time
		LastOK            bool
	}
	if err := json.Unmarshal([]byte(last), &l); err != nil || l.LastOK || l.LastSuccess.IsZero() || !l.Last.After(l.LastSuccess) {
		t.Fatalf("last drill: %v %s", err, last)
	}

	// The server refuses a report that does not cover what ran.
	rep.Artifacts = rep.Artifacts[:1]
	b, _ := json.Marshal(rep)
	req, _ := http.NewRequest(http.MethodPost, site.srv.URL+"/api/v1/drills", strings.NewReader(string(b)))
	req.SetBasicAuth("admin", site.srv.AdminPassword())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a partial drill report was answered %d", resp.StatusCode)
	}
}

func httpGet(t *testing.T, url string) string { return httpGetAuth(t, url, "", "") }

func httpGetAuth(t *testing.T, url, user, password string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", url, resp.StatusCode, b.String())
	}
	return b.String()
}
