package e2e

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/testserver"
)

const vulnConfig = `projects:
  - repositories: "shop/**"
    environments:
      - name: dev
        gate:
          rules:
            - use: no_findings_at_or_above
              params: {severity: HIGH}
      - name: prod
        gate:
          rules:
            - use: signed_by_trusted_key
              params: {keys: [%[1]q]}
            - use: sbom_present
            - use: no_findings_at_or_above
              params: {severity: HIGH}
      - name: strict
        gate:
          rules:
            - use: no_findings_at_or_above
              params: {severity: LOW}
promotion:
  trustRoot: %[2]q
`

// lockLayer writes a layer holding an npm lockfile with lodash 4.17.20.
func lockLayer(t *testing.T, dir string) string {
	t.Helper()
	lock := `{"name":"shop","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"shop","version":"1.0.0","dependencies":{"lodash":"4.17.20"}},"node_modules/lodash":{"version":"4.17.20","resolved":"https://registry.npmjs.org/lodash/-/lodash-4.17.20.tgz","integrity":"sha512-PlhdFcillOINfeV7Ni6oF1TAEayyZBoZ8bcshTHqOYJYlrqzRK5hagpagky5o4HfCzzd1TRkXPMFq6cKk9rGmA=="}}}`
	p := filepath.Join(dir, "layer.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "app/package-lock.json", Mode: 0o644, Size: int64(len(lock))}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte(lock))
	tw.Close()
	f.Close()
	return p
}

// TestVulnerabilityGate: an offline OSV import turns a promoted artifact
// into a violation, blocks its promotion to prod, a signed OpenVEX waiver
// with an expiry lifts the block only while it is valid, and custody scan
// attaches the findings.
func TestVulnerabilityGate(t *testing.T) {
	crane := client(t, "crane")
	work, home, ciKeys, data := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	pass := []string{"CUSTODY_KEY_PASSWORD=ci-pass-123"}
	mustCustody(t, home, "", pass, "key", "create", "--keys", ciKeys)
	trust := filepath.Join(work, "ci.json")
	if err := os.WriteFile(trust, []byte(mustCustody(t, home, "", nil, "key", "export-public", "--trust-root", "--keys", ciKeys)), 0o644); err != nil {
		t.Fatal(err)
	}
	ring, _ := key.Open(ciKeys)
	ci, err := ring.Active()
	if err != nil {
		t.Fatal(err)
	}
	mustCustody(t, home, "", []string{"CUSTODY_KEY_PASSWORD=srv-pass-123"}, "key", "create", "--keys", filepath.Join(data, "keys"))
	cfg := filepath.Join(work, "custody.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(vulnConfig, ci.ID, trust)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Auth: true, Data: data, Args: []string{"--config", cfg}, Env: []string{"CUSTODY_KEY_PASSWORD=srv-pass-123"}})
	h, server := srv.Host(), "--server="+srv.URL
	mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", h, "-u", "admin", "--password-stdin")

	run(t, home, crane, "append", "--insecure", "-f", lockLayer(t, work), "-t", h+"/shop/web:1")
	ref := h + "/shop/web@" + strings.TrimSpace(run(t, home, crane, "digest", "--insecure", h+"/shop/web:1"))
	dgst := ref[strings.Index(ref, "@")+1:]
	mustCustody(t, home, "", pass, "sign", "--keys", ciKeys, ref)
	mustCustody(t, home, "", pass, "attest", "sbom", "--keys", ciKeys, ref)

	// Clean database: dev accepts it.
	mustCustody(t, home, "", nil, "promote", ref, "--to", "dev", server)
	mustCustody(t, home, "", nil, "violations", server)

	// An advisory arrives: the promoted artifact now violates dev's gate,
	// reported by the API, the CLI and a metric.
	out := mustCustody(t, home, "", nil, "vulndb", "import", "../../internal/vuln/testdata/osv/GHSA-35jh-r3h4-6jhm.json", server)
	if !strings.Contains(out, "1 promoted artifact(s) now violate") {
		t.Fatalf("import: %s", out)
	}
	if out, err := custodyCmd(t, home, "", nil, "violations", server); err == nil || !strings.Contains(out, "no_findings_at_or_above") || !strings.Contains(out, dgst) {
		t.Fatalf("violations: %v\n%s", err, out)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	buf := new(strings.Builder)
	_, _ = fmt.Fprint(buf, readAll(resp))
	if !strings.Contains(buf.String(), `custody_promoted_violations{environment="dev"} 1`) {
		t.Fatalf("metric missing:\n%s", grepLines(buf.String(), "custody_promoted"))
	}
	// custody scan attaches the signed findings.
	if out := mustCustody(t, home, "", nil, "scan", ref, server); !strings.Contains(out, "GHSA-35jh-r3h4-6jhm") || !strings.Contains(out, "4.17.21") {
		t.Fatalf("scan: %s", out)
	}
	// prod refuses it.
	if out, err := custodyCmd(t, home, "", nil, "promote", ref, "--to", "prod", server); err == nil || !strings.Contains(out, "no_findings_at_or_above") {
		t.Fatalf("vulnerable artifact reached prod: %v\n%s", err, out)
	}

	// A waiver that has expired changes nothing; a valid one lets it in.
	vex := func(expires time.Time) string {
		doc := map[string]any{
			"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://shop.example/vex/" + expires.Format("20060102150405"),
			"author": "security@shop.example", "timestamp": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "version": 1,
			"statements": []map[string]any{{
				"vulnerability": map[string]any{"name": "CVE-2021-23337"},
				"products":      []map[string]any{{"@id": "pkg:npm/lodash"}},
				"status":        "not_affected", "justification": "vulnerable_code_not_in_execute_path",
				"custody_expires": expires.UTC().Format(time.RFC3339),
			}},
		}
		b, _ := json.Marshal(doc)
		p := filepath.Join(work, "vex-"+expires.Format("150405")+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mustCustody(t, home, "", pass, "attest", "predicate", "--type", "https://openvex.dev/ns/v0.2.0", "--predicate", vex(time.Now().Add(-time.Minute)), "--keys", ciKeys, ref)
	if out, err := custodyCmd(t, home, "", nil, "promote", ref, "--to", "prod", server); err == nil {
		t.Fatalf("an expired waiver let it in:\n%s", out)
	}
	mustCustody(t, home, "", pass, "attest", "predicate", "--type", "https://openvex.dev/ns/v0.2.0", "--predicate", vex(time.Now().Add(24*time.Hour)), "--keys", ciKeys, ref)
	mustCustody(t, home, "", nil, "promote", ref, "--to", "prod", "--reason", "waived: template never called", server)

	// Unpinned: an image built on a base image named by tag.
	run(t, home, crane, "mutate", "--insecure", "--annotation", "org.opencontainers.image.base.name=docker.io/library/alpine:3.19", h+"/shop/web:1", "-t", h+"/shop/web:based")
	based := h + "/shop/web@" + strings.TrimSpace(run(t, home, crane, "digest", "--insecure", h+"/shop/web:based"))
	if out, err := custodyCmd(t, home, "", nil, "policy", "test", based, "--env", "strict", server); err == nil || !strings.Contains(out, "no_findings_at_or_above") {
		t.Fatalf("base image by tag passed a LOW threshold: %v\n%s", err, out)
	}
	if out := mustCustody(t, home, "", nil, "scan", based, server); !strings.Contains(out, "UNPINNED-TAG") {
		t.Fatalf("scan of an image on a base by tag: %s", out)
	}
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b := new(strings.Builder)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
