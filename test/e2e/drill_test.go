package e2e

import (
	"bytes"
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

func newDrillSite(t *testing.T, extraConfig ...string) drillSite {
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
	conf := fmt.Sprintf("projects:\n  - name: shop\n    repositories: \"apps/**\"\n    environments:\n      - name: prod\npromotion:\n  trustRoot: %q\n", ciTrust) + strings.Join(extraConfig, "")
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

	// A reader may drill but not record: refused, nothing recorded.
	readerHome := t.TempDir()
	mustCustody(t, site.home, "reader-password-123\n", nil, "user", "create", "reader1", "--password-stdin", "--server", site.srv.URL)
	mustCustody(t, site.home, "", nil, "grant", "add", "user:reader1", "reader", "apps/**", "--server", site.srv.URL)
	mustCustody(t, readerHome, "reader-password-123\n", nil, "login", h, "-u", "reader1", "--password-stdin")
	out, err = custodyCmd(t, readerHome, "", nil, "drill", "prod", "--trust-root", site.ciTrust, "--into", filepath.Join(t.TempDir(), "reader"), "--server", site.srv.URL)
	if err == nil || !strings.Contains(out, "recording the drill report") {
		t.Fatalf("a reader recorded a drill: %v\n%s", err, out)
	}
	if again := httpGetAuth(t, site.srv.URL+"/api/v1/drills?environment=prod", "admin", site.srv.AdminPassword()); again != last {
		t.Fatalf("a refused drill report changed the last drill:\n%s\n%s", last, again)
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

	// After a restart the server knows the drills from its audit log.
	if err := site.srv.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	site.srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(httpGet(t, site.srv.URL+"/metrics"), `custody_environment_last_drill_timestamp_seconds{environment="prod",project="shop"}`) {
		if time.Now().After(deadline) {
			t.Fatal("the last drill was forgotten across a restart")
		}
		time.Sleep(50 * time.Millisecond) // polling an external process, with a deadline
	}
	after := httpGetAuth(t, site.srv.URL+"/api/v1/drills?environment=prod&project=shop", "admin", site.srv.AdminPassword())
	var l2 struct {
		Last, LastSuccess time.Time
		LastOK            bool
	}
	if err := json.Unmarshal([]byte(after), &l2); err != nil || l2.LastOK || l2.LastSuccess.Sub(l.LastSuccess).Abs() > time.Second || l2.Last.Sub(l.Last).Abs() > time.Second {
		t.Fatalf("last drills before and after a restart:\n%s\n%s", last, after)
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

// TestImport carries an environment between two real servers: export from
// one, import into a second (streamed through its data directory),
// checked there: same digests, signatures that verify with the source's
// trust root, retention and legal hold carried, the import audited with
// the source's checkpoint; a bundle with one byte flipped, or checked
// against another fingerprint, is refused with a 4xx and stores nothing.
func TestImport(t *testing.T) {
	site := newDrillSite(t)
	web := site.push(t, "apps/web", true)
	api := site.push(t, "apps/api", true)
	site.provenance(t, web, map[string]string{"pkg:docker/library/alpine@sha256:" + strings.Repeat("ab", 32): "sha256:" + strings.Repeat("ab", 32)})
	server := "--server=" + site.srv.URL
	for _, d := range []name.Digest{web, api} {
		mustCustody(t, site.home, "", nil, "promote", d.String(), "--to", "prod", server)
	}
	webRef := "apps/web@" + web.DigestStr()
	mustCustody(t, site.home, "", nil, "retention", "set", webRef, "--mode", "compliance", "--for", "30d", server)
	mustCustody(t, site.home, "", nil, "hold", "set", "apps/api@"+api.DigestStr(), server)
	// A recorded drill: its signed reports travel in the bundle too.
	if rep, out, err := site.drill(t, "--into", filepath.Join(t.TempDir(), "before-export")); err != nil || !rep.OK {
		t.Fatalf("drill: %v\n%s", err, out)
	}
	work := t.TempDir()
	file := filepath.Join(work, "prod.tar")
	mustCustody(t, site.home, "", nil, "export", "--env", "prod", "-o", file, server)
	fp := strings.TrimSpace(mustCustody(t, site.home, "", nil, "key", "fingerprint", "--save", filepath.Join(work, "trust.json"), server))
	// The source's trust root (its keys and the CI keys it trusts), from
	// the trust.json the fingerprint covers.
	var trust struct {
		TrustRoot json.RawMessage `json:"trustRoot"`
	}
	tb, err := os.ReadFile(filepath.Join(work, "trust.json"))
	if err == nil {
		err = json.Unmarshal(tb, &trust)
	}
	if err != nil {
		t.Fatal(err)
	}
	sourceRoot := filepath.Join(work, "source-trust-root.json")
	if err := os.WriteFile(sourceRoot, trust.TrustRoot, 0o644); err != nil {
		t.Fatal(err)
	}

	other := testserver.Start(t, testserver.Options{Auth: true})
	otherServer := "--server=" + other.URL
	mustCustody(t, site.home, other.AdminPassword()+"\n", nil, "login", other.Host(), "-u", "admin", "--password-stdin")
	catalog := func() string {
		return httpGetAuth(t, other.URL+"/v2/_catalog", "admin", other.AdminPassword())
	}
	empty := catalog()

	// Refused: a flipped byte, another fingerprint. Nothing stored.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(work, "bad.tar")
	// A byte of content (the summary), not of tar padding.
	at := bytes.Index(b, []byte(`"artifacts"`))
	if at < 0 {
		t.Fatal("no summary in the bundle")
	}
	b[at+2] ^= 0x01
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0", 64)
	truncated := filepath.Join(work, "truncated.tar")
	if err := os.WriteFile(truncated, b[:len(b)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{bad, fp}, {file, wrong}, {truncated, fp}} {
		out, err := custodyCmd(t, site.home, "", nil, "import", c[0], "--trust-root-fingerprint", c[1], otherServer)
		if err == nil || !strings.Contains(out, "400") && !strings.Contains(out, "refused") {
			t.Fatalf("import of %s with %s: %v\n%s", filepath.Base(c[0]), c[1][:8], err, out)
		}
		if got := catalog(); got != empty {
			t.Fatalf("a refused import stored something: %s", got)
		}
	}
	if _, err := os.Stat(filepath.Join(other.Data, "imports")); err == nil {
		if ents, _ := os.ReadDir(filepath.Join(other.Data, "imports")); len(ents) > 0 {
			t.Fatalf("a refused import left files: %v", ents)
		}
	}

	out := mustCustody(t, site.home, "", nil, "import", file, "--trust-root-fingerprint", fp, "-o", "json", otherServer)
	var res struct {
		Origin    string
		Size      uint64
		Root      string
		Artifacts []struct{ Repository, Digest string }
		Problems  []string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(res.Artifacts) != 2 || len(res.Problems) > 0 || res.Size == 0 || res.Root == "" {
		t.Fatalf("import: %s", out)
	}
	for _, d := range []name.Digest{web, api} {
		moved, err := name.NewDigest(other.Host() + "/" + d.Context().RepositoryStr() + "@" + d.DigestStr())
		if err != nil {
			t.Fatal(err)
		}
		// Same digest, and its signatures and attestations verify with
		// the source's keys.
		v := mustCustody(t, site.home, "", nil, "verify", moved.String(), "--trust-root", sourceRoot, "-o", "json")
		if !strings.Contains(v, evidencePromotion) || !strings.Contains(v, drill.PredicateDrill) || !strings.Contains(v, `"ok": true`) {
			t.Fatalf("the promotion record did not travel with %s:\n%s", moved, v)
		}
	}
	ret := mustCustody(t, site.home, "", nil, "retention", "show", webRef, "-o", "json", otherServer)
	if !strings.Contains(ret, `"compliance"`) {
		t.Fatalf("retention not carried: %s", ret)
	}
	if hold := mustCustody(t, site.home, "", nil, "retention", "show", "apps/api@"+api.DigestStr(), "-o", "json", otherServer); !strings.Contains(hold, `"legalHold": true`) {
		t.Fatalf("legal hold not carried: %s", hold)
	}
	audit := httpGetAuth(t, other.URL+"/api/v1/audit/search?repo=apps/web", "admin", other.AdminPassword())
	want := fmt.Sprintf("from %s checkpoint size %d root %s", res.Origin, res.Size, res.Root)
	if !strings.Contains(audit, want) || !strings.Contains(audit, `\"action\":\"import\"`) {
		t.Fatalf("no import audit entry naming %q:\n%s", want, audit)
	}

	// A receiving registry whose policy refuses an artifact: a 4xx that
	// says so.
	strictCfg := filepath.Join(work, "strict.yaml")
	if err := os.WriteFile(strictCfg, []byte("policies:\n  - repository: \"apps/api\"\n    maxArtifactSize: 100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	strict := testserver.Start(t, testserver.Options{Auth: true, Args: []string{"--config", strictCfg}})
	mustCustody(t, site.home, strict.AdminPassword()+"\n", nil, "login", strict.Host(), "-u", "admin", "--password-stdin")
	if out, err := custodyCmd(t, site.home, "", nil, "import", file, "--trust-root-fingerprint", fp, "--server", strict.URL); err == nil || !strings.Contains(out, "this registry refused part of the bundle") {
		t.Fatalf("an import its policy refuses: %v\n%s", err, out)
	}

	// A drill from the bundle needs neither server: the source is stopped.
	site.srv.Kill()
	dir := filepath.Join(t.TempDir(), "from-bundle")
	out, err = custodyCmd(t, site.home, "", nil, "drill", "prod", "--from", file, "--trust-root-fingerprint", fp,
		"--source-host", site.srv.Host(), "--into", dir, "-o", "json")
	var rep drill.Report
	if jerr := json.Unmarshal([]byte(out), &rep); err != nil || jerr != nil || !rep.OK || len(rep.Artifacts) != 2 {
		t.Fatalf("drill from the bundle: %v %v\n%s", err, jerr, out)
	}
	for _, a := range rep.Artifacts {
		if a.Signatures < 1 || a.Attestations < 1 || a.Blobs < 3 {
			t.Fatalf("drilled from the bundle: %+v", a)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "deploy", drill.ComposeFile)); err != nil {
		t.Fatal(err)
	}
	if out, err := custodyCmd(t, site.home, "", nil, "drill", "prod", "--from", file, "--trust-root-fingerprint", wrong, "--into", t.TempDir()); err == nil {
		t.Fatalf("a drill from a bundle under another fingerprint ran:\n%s", out)
	}
}

const evidencePromotion = "https://custody.dev/attestation/promotion/v1"

// TestScheduledDrill: the configuration schedules a drill; the server
// runs it from its own store, records it (metric, log) and keeps only the
// latest run's layout; when an artifact of the environment loses what a
// drill needs (here: an unsigned one is promoted), the next run alerts
// through the log and the failure counter.
func TestScheduledDrill(t *testing.T) {
	site := newDrillSite(t, "drills:\n  - environment: prod\n    interval: 1s\n")
	web := site.push(t, "apps/web", true)
	mustCustody(t, site.home, "", nil, "promote", web.String(), "--to", "prod", "--server", site.srv.URL)
	gauge := `custody_environment_last_drill_timestamp_seconds{environment="prod",project="shop"}`
	poll := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within a minute; logs:\n%s", what, site.srv.Logs())
			}
			time.Sleep(100 * time.Millisecond) // polling an external process, with a deadline
		}
	}
	poll("successful scheduled drill", func() bool { return strings.Contains(httpGet(t, site.srv.URL+"/metrics"), gauge) })
	if !site.srv.WaitLog("scheduled drill complete", 10*time.Second) {
		t.Fatalf("no log of the scheduled drill:\n%s", site.srv.Logs())
	}
	base := filepath.Join(site.srv.Data, "drills", "shop-prod")
	poll("single kept run", func() bool {
		ents, err := os.ReadDir(base)
		return err == nil && len(ents) == 1
	})

	api := site.push(t, "apps/api", false)
	mustCustody(t, site.home, "", nil, "promote", api.String(), "--to", "prod", "--server", site.srv.URL)
	poll("failed scheduled drill", func() bool {
		return strings.Contains(httpGet(t, site.srv.URL+"/metrics"), `custody_drills_total{environment="prod",project="shop",result="failed"}`)
	})
	if !site.srv.WaitLog("scheduled drill found something missing", 10*time.Second) || !strings.Contains(site.srv.Logs(), "no trusted signature") {
		t.Fatalf("the failed drill did not alert in the log:\n%s", site.srv.Logs())
	}
}
