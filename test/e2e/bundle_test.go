package e2e

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/bundle"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/testserver"
)

const bundleConfig = `projects:
  - name: shop
    repositories: "apps/**"
    environments:
      - name: dev
        gate:
          rules:
            - use: signed_by_trusted_key
              params: {keys: [%[1]q]}
      - name: prod
        gate:
          rules:
            - use: signed_by_trusted_key
              params: {keys: [%[1]q]}
            - use: promoted_to_previous
promotion:
  trustRoot: %[2]q
`

// TestEvidenceBundle exports from a real server (by environment now and at
// an earlier instant, by reference, metadata only), checks determinism and
// authorization, stops the server, verifies the bundles offline, flips a
// byte of every kind of content, and reads the layout with skopeo,
// regctl, crane and cosign.
func TestEvidenceBundle(t *testing.T) {
	crane := client(t, "crane")
	work, home, ciKeys, data := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	pass := []string{"CUSTODY_KEY_PASSWORD=ci-passphrase-1"}
	mustCustody(t, home, "", pass, "key", "create", "--keys", ciKeys)
	ciTrust := filepath.Join(work, "ci-trust-root.json")
	if err := os.WriteFile(ciTrust, []byte(mustCustody(t, home, "", nil, "key", "export-public", "--trust-root", "--keys", ciKeys)), 0o644); err != nil {
		t.Fatal(err)
	}
	ciPub := filepath.Join(work, "ci.pub")
	if err := os.WriteFile(ciPub, []byte(mustCustody(t, home, "", nil, "key", "export-public", "--keys", ciKeys)), 0o644); err != nil {
		t.Fatal(err)
	}
	ring, err := key.Open(ciKeys)
	if err != nil {
		t.Fatal(err)
	}
	ciKey, err := ring.Active()
	if err != nil {
		t.Fatal(err)
	}
	mustCustody(t, home, "", []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}, "key", "create", "--keys", filepath.Join(data, "keys"))
	cfg := filepath.Join(work, "custody.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(bundleConfig, ciKey.ID, ciTrust)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Auth: true, Data: data, Args: []string{"--config", cfg},
		Env: []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}})
	h, server := srv.Host(), "--server="+srv.URL
	mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", h, "-u", "admin", "--password-stdin")
	admin := func(args ...string) string {
		t.Helper()
		return mustCustody(t, home, "", pass, append(args, server)...)
	}

	ws := filepath.Join(work, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	image := func(repo, tag string) string {
		layer := layerTar(t, t.TempDir(), 4096)
		run(t, home, crane, "append", "--insecure", "--oci-empty-base", "-f", layer, "-t", h+"/"+repo+":"+tag)
		ref := h + "/" + repo + "@" + strings.TrimSpace(run(t, home, crane, "digest", "--insecure", h+"/"+repo+":"+tag))
		mustCustody(t, home, "", pass, "sign", "--keys", ciKeys, ref)
		mustCustody(t, home, "", append(pass, githubEnv...), "attest", "provenance", "--from-env", "--workspace", ws, "--keys", ciKeys, ref)
		mustCustody(t, home, "", pass, "attest", "sbom", "--keys", ciKeys, ref)
		return ref
	}
	web1, api1 := image("apps/web", "1.0"), image("apps/api", "1.0")
	admin("promote", web1, "--to", "dev")
	admin("promote", api1, "--to", "dev")
	admin("promote", web1, "--to", "prod")
	then := time.Now().UTC()
	// The next promotion must be at a later second than then: wait for
	// the clock, which nothing else moves.
	for time.Now().Truncate(time.Second).Before(then.Truncate(time.Second).Add(time.Second)) {
		time.Sleep(20 * time.Millisecond)
	}
	web2 := image("apps/web", "2.0")
	admin("promote", web2, "--to", "dev")
	admin("revoke", api1, "--reason", "CVE-2026-0001 in the base image")
	// The same digest in a repository apps/web's reader may not read.
	run(t, home, crane, "copy", "--insecure", web1, h+"/private/web:1.0")

	// Exporting is a read: no audit entry. Bad requests are 4xx, and
	// write nothing.
	size := func() uint64 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/audit/entries?start=0&end=0", nil)
		req.SetBasicAuth("admin", srv.AdminPassword())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Size uint64 }
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("audit entries: %s, %v", resp.Status, err)
		}
		return e.Size
	}
	before := size()
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "apps/web@sha256:nothex", "-o", filepath.Join(work, "bad.tar")}, "400"},
		{[]string{"export", "apps/web:9.9", "-o", filepath.Join(work, "bad.tar")}, "404"},
		{[]string{"export", "--env", "staging", "-o", filepath.Join(work, "bad.tar")}, "404"},
		{[]string{"export", "--env", "dev", "--project", "nope", "-o", filepath.Join(work, "bad.tar")}, "404"},
		{[]string{"export", "--env", "dev", "--at", "yesterday", "-o", filepath.Join(work, "bad.tar")}, "--at"},
	} {
		out, err := custodyCmd(t, home, "", nil, append(bad.args, server)...)
		if err == nil || !strings.Contains(out, bad.want) {
			t.Fatalf("custody %s: %v, want %q:\n%s", strings.Join(bad.args, " "), err, bad.want, out)
		}
		if _, err := os.Stat(filepath.Join(work, "bad.tar")); !os.IsNotExist(err) {
			t.Fatal("a refused export wrote a file")
		}
		if _, err := os.Stat(filepath.Join(work, "bad.tar.partial")); !os.IsNotExist(err) {
			t.Fatal("a refused export left a partial file")
		}
	}
	fp := strings.TrimSpace(admin("key", "fingerprint"))
	if len(fp) != 64 {
		t.Fatalf("key fingerprint: %q", fp)
	}
	dig := func(ref string) string { return ref[strings.Index(ref, "@")+1:] }
	bundleFile := func(name string) string { return filepath.Join(work, name) }
	admin("export", "--env", "dev", "--project", "shop", "-o", bundleFile("now.tar"))
	admin("export", "--env", "dev", "--project", "shop", "-o", bundleFile("now2.tar"))
	admin("export", "--env", "dev", "-o", bundleFile("now3.tar"))
	a, _ := os.ReadFile(bundleFile("now.tar"))
	b, _ := os.ReadFile(bundleFile("now2.tar"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("two exports of the same state differ (%d and %d bytes)", len(a), len(b))
	}
	if after := size(); after != before {
		t.Fatalf("exports and refused exports added %d audit entries", after-before)
	}
	admin("export", "--env", "dev", "--at", then.Format(time.RFC3339Nano), "-o", bundleFile("then.tar"))
	admin("export", "apps/web@"+dig(web1), "apps/web:2.0", "-o", bundleFile("refs.tar"), "--metadata-only")

	// Reading evidence needs pull on the repository: refused, no file.
	outsider := t.TempDir()
	mustCustody(t, home, "outsider-password-1\n", nil, "user", "create", "outsider2", "--password-stdin", server)
	mustCustody(t, home, "", nil, "grant", "add", "user:outsider2", "reader", "apps/web", server)
	mustCustody(t, outsider, "outsider-password-1\n", nil, "login", h, "-u", "outsider2", "--password-stdin")
	if out, err := custodyCmd(t, outsider, "", nil, "export", "apps/api@"+dig(api1), "-o", bundleFile("denied.tar"), server); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("export without pull on apps/api: %v\n%s", err, out)
	}
	// An environment's bundle needs pull on every repository of its project.
	if out, err := custodyCmd(t, outsider, "", nil, "export", "--env", "dev", "-o", bundleFile("denied.tar"), server); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("environment export without pull on apps/api: %v\n%s", err, out)
	}
	if out, err := custodyCmd(t, t.TempDir(), "", nil, "export", "--env", "dev", "-o", bundleFile("denied.tar"), server); err == nil || !strings.Contains(out, "401") {
		t.Fatalf("anonymous environment export: %v\n%s", err, out)
	}
	for _, f := range []string{"denied.tar", "denied.tar.partial"} {
		if _, err := os.Stat(bundleFile(f)); !os.IsNotExist(err) {
			t.Fatalf("a refused export left %s", f)
		}
	}
	mustCustody(t, outsider, "", nil, "export", "apps/web@"+dig(web1), "-o", bundleFile("reader.tar"), server)
	admin("export", "private/web@"+dig(web1), "-o", bundleFile("private.tar"))
	// The reader's bundle carries no audit entry about the same digest
	// in a repository the reader may not pull.
	if raw, err := os.ReadFile(bundleFile("reader.tar")); err != nil || bytes.Contains(raw, []byte("private/web")) {
		t.Fatalf("apps/web's reader exported entries about private/web (%v)", err)
	}
	// Nor is the reader told whether a reference exists there: refused
	// alike, nothing written.
	for _, ref := range []string{"private/web:1.0", "private/web:9.9", "private/web@" + dig(api1)} {
		if out, err := custodyCmd(t, outsider, "", nil, "export", ref, "-o", bundleFile("denied.tar"), server); err == nil || !strings.Contains(out, "403") {
			t.Fatalf("export of %s without pull on private/web: %v\n%s", ref, err, out)
		}
		if _, err := os.Stat(bundleFile("denied.tar")); !os.IsNotExist(err) {
			t.Fatal("a refused export wrote a file")
		}
	}

	// A second registry to copy the layout into with skopeo.
	second := testserver.Start(t, testserver.Options{})
	logKey, err := os.ReadFile(filepath.Join(data, "log-key"))
	if err != nil {
		t.Fatal(err)
	}

	// Offline from here: the exporting server is stopped.
	if err := srv.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	verify := func(file string) string {
		t.Helper()
		return mustCustody(t, t.TempDir(), "", nil, "verify", "--bundle", file, "--trust-root-fingerprint", fp)
	}
	out := verify(bundleFile("now.tar"))
	for _, want := range []string{"apps/web@" + dig(web2), "apps/api@" + dig(api1), "REVOKED", "CVE-2026-0001", "OK: the bundle verifies"} {
		if !strings.Contains(out, want) {
			t.Fatalf("verify now.tar: no %q in\n%s", want, out)
		}
	}
	out = verify(bundleFile("then.tar"))
	if !strings.Contains(out, "apps/web@"+dig(web1)) || strings.Contains(out, dig(web2)) || !strings.Contains(out, "exported for: what ran in dev at "+then.Format(time.RFC3339)) {
		t.Fatalf("dev at %s ran web 1.0, not 2.0:\n%s", then, out)
	}
	// A metadata-only bundle says what it did not verify, and every
	// bundle what it was exported for.
	out = verify(bundleFile("refs.tar"))
	for _, want := range []string{"exported for: apps/web@" + dig(web1) + " apps/web:2.0", "metadata only: 2 layer(s) left out"} {
		if !strings.Contains(out, want) {
			t.Fatalf("verify refs.tar: no %q in\n%s", want, out)
		}
	}
	verify(bundleFile("reader.tar"))
	if out, err := custodyCmd(t, t.TempDir(), "", nil, "verify", "--bundle", bundleFile("now.tar"), "--trust-root-fingerprint", strings.Repeat("0", 64)); err == nil || !strings.Contains(out, "not the trusted") {
		t.Fatalf("verify with another fingerprint: %v\n%s", err, out)
	}
	checkSummary(t, bundleFile("then.tar"), fp, web1, api1)
	checkMetadataOnly(t, bundleFile("refs.tar"), fp)
	// A bundle of named artifacts holds what its request names, no other.
	t.Run("re-signed request for other artifacts", func(t *testing.T) {
		raw, err := os.ReadFile(bundleFile("refs.tar"))
		if err != nil {
			t.Fatal(err)
		}
		signer, err := note.NewSigner(strings.TrimSpace(string(logKey)))
		if err != nil {
			t.Fatal(err)
		}
		for _, refs := range [][]string{{"apps/web@" + dig(web2), "apps/web:2.0"}, {"apps/web@" + dig(web1), "apps/web:1.0"}, {"apps/web@" + dig(web1)}} {
			b := rewriteRequest(t, tarEntries(t, raw), func(q *bundle.Request) { q.Refs = refs }, signer)
			if err := verifyBytes(t, b, fp); err == nil || !strings.Contains(err.Error(), "request") {
				t.Fatalf("refs.tar presented as exported for %v: %v", refs, err)
			}
		}
	})
	// docs/bundle.md is enough to write a verifier, and true.
	for _, f := range []string{"now.tar", "then.tar", "refs.tar", "reader.tar", "private.tar"} {
		if err := independentVerify(bundleFile(f), fp); err != nil {
			t.Fatalf("%s, verified as docs/bundle.md describes: %v", f, err)
		}
	}

	t.Run("entries about another repository", func(t *testing.T) {
		checkForeignEntries(t, bundleFile("reader.tar"), bundleFile("private.tar"), fp, string(logKey))
	})
	t.Run("tampering", func(t *testing.T) { checkTampering(t, bundleFile("now.tar"), fp, string(logKey), dig(web2), then) })
	t.Run("tools", func(t *testing.T) {
		checkTools(t, work, home, bundleFile("now.tar"), second.Host(), ciPub, dig(api1), dig(web2))
	})
	t.Run("same state on two servers", func(t *testing.T) {
		// A copy of the data directory served by another process: the
		// same state, so the same bytes, for an environment and for refs.
		twinData := t.TempDir()
		if out, err := exec.Command("cp", "-a", data+"/.", twinData).CombinedOutput(); err != nil {
			t.Fatalf("copying the data directory: %v\n%s", err, out)
		}
		srv.Restart()
		twin := testserver.Start(t, testserver.Options{Auth: true, Data: twinData, Args: []string{"--config", cfg},
			Env: []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}})
		for _, q := range []string{"environment=dev&project=shop", "ref=apps/web@" + dig(web1) + "&ref=apps/api:1.0&metadataOnly=true"} {
			var got [][]byte
			for _, s := range []*testserver.Server{srv, twin} {
				req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/export?"+q, nil)
				req.SetBasicAuth("admin", s.AdminPassword())
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("export %s: %s, %v", q, resp.Status, err)
				}
				got = append(got, b)
			}
			if !bytes.Equal(got[0], got[1]) {
				t.Fatalf("export %s: two servers with the same state wrote different bundles (%d and %d bytes)", q, len(got[0]), len(got[1]))
			}
		}
	})
}

// checkSummary checks what the summary of an environment export says.
func checkSummary(t *testing.T, file, fp, web1, api1 string) {
	t.Helper()
	b, err := bundle.Open(file, fp)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := b.Summary()
	if len(s.Artifacts) != 2 {
		t.Fatalf("summary lists %d artifacts, want 2", len(s.Artifacts))
	}
	for _, a := range s.Artifacts {
		if len(a.Environments) != 1 || a.Environments[0].Environment != "dev" || a.Pushed == nil || a.Pushed.By != "admin" ||
			len(a.Signatures) == 0 || len(a.Attestations) < 2 || a.Source == nil || a.Source.Commit == "" {
			t.Fatalf("summary of %s@%s: %+v", a.Repository, a.Digest, a)
		}
	}
	md := string(b.File(bundle.SummaryMDPath))
	for _, want := range []string{web1[strings.Index(web1, "@")+1:], api1[strings.Index(api1, "@")+1:], "github.com/acme/app", "ran in dev"} {
		if !strings.Contains(md, want) {
			t.Fatalf("summary.md lacks %q:\n%s", want, md)
		}
	}
}

// checkMetadataOnly checks that layers are listed as omitted and absent.
func checkMetadataOnly(t *testing.T, file, fp string) {
	t.Helper()
	b, err := bundle.Open(file, fp)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	omitted := 0
	for _, f := range b.Manifest().Files {
		if f.Omitted {
			omitted++
			if _, _, err := b.Blob(digest.Digest("sha256:" + f.SHA256)); err == nil {
				t.Fatalf("omitted %s is readable", f.Path)
			}
		}
	}
	if omitted != 2 {
		t.Fatalf("%d omitted layers, want 2 (one per image)", omitted)
	}
}

// tarEntry is where one file's data is in a bundle.
type tarEntry struct {
	name      string
	off, size int64
	body      []byte
}

type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func tarEntries(t *testing.T, raw []byte) []tarEntry {
	t.Helper()
	c := &counter{r: bytes.NewReader(raw)}
	tr := tar.NewReader(c)
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		off := c.n
		body, _ := io.ReadAll(tr)
		out = append(out, tarEntry{name: h.Name, off: off, size: h.Size, body: body})
	}
}

// checkTampering flips one byte of each kind of content and checks that
// the bundle is refused naming it; then, as someone holding the log key
// who re-signs the manifest, changes the audit content and checks that
// Verify names the check that fails.
func checkTampering(t *testing.T, file, fp, logKey, artifact string, before time.Time) {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	good, err := bundle.Open(file, fp)
	if err != nil {
		t.Fatal(err)
	}
	roles := blobRoles(t, good, artifact)
	good.Close()
	entries := tarEntries(t, raw)
	find := func(name string) tarEntry {
		for _, e := range entries {
			if e.name == name {
				return e
			}
		}
		t.Fatalf("no %s in the bundle", name)
		return tarEntry{}
	}
	within := func(e tarEntry, marker string) int64 {
		i := bytes.Index(e.body, []byte(marker))
		if i < 0 {
			t.Fatalf("no %q in %s", marker, e.name)
		}
		return e.off + int64(i+len(marker)+4)
	}
	audit := find(bundle.AuditPath)
	cases := []struct {
		kind string
		at   int64
		want string
	}{
		{"layer", find(roles["layer"]).off + 100, "layer 1 of apps/web@"},
		{"config", find(roles["config"]).off + 10, "config of apps/web@"},
		{"manifest", find(roles["manifest"]).off + 20, "manifest of apps/web@"},
		{"signature", find(roles["signature"]).off + 20, "signature layer 1 of apps/web@"},
		{"attestation", find(roles["attestation"]).off + 20, "attestation layer"},
		{"audit entry", within(audit, `"entry": "`), "audit entries, inclusion proofs and checkpoint"},
		{"proof hash", within(audit, `"inclusion": [`), "audit entries, inclusion proofs and checkpoint"},
		{"checkpoint", within(audit, `"checkpoint": "`), "audit entries, inclusion proofs and checkpoint"},
		{"trust.json", find(bundle.TrustPath).off + 30, "trust.json has fingerprint"},
		{"manifest.json", find(bundle.ManifestPath).off + 40, "manifest.json"},
		{"manifest.sig", find(bundle.SignaturePath).off + find(bundle.SignaturePath).size - 5, "manifest.sig does not verify"},
		{"summary", find(bundle.SummaryPath).off + 30, "custody/summary.json (summary)"},
		{"summary.md", find(bundle.SummaryMDPath).off + 10, "summary.md (human-readable summary)"},
		{"index.json", find(bundle.IndexPath).off + 30, "index.json (OCI index)"},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			b := bytes.Clone(raw)
			b[tc.at] ^= 0x01
			if err := verifyBytes(t, b, fp); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("flipping a byte of the %s: %v, want %q", tc.kind, err, tc.want)
			}
			p := filepath.Join(t.TempDir(), "flipped.tar")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := independentVerify(p, fp); err == nil {
				t.Fatalf("flipping a byte of the %s: the verifier written from docs/bundle.md accepts it", tc.kind)
			}
		})
	}
	// With the log key (re-signing manifest.json), deeper checks still
	// catch a changed audit entry, proof hash, checkpoint and summary.
	signer, err := note.NewSigner(strings.TrimSpace(logKey))
	if err != nil {
		t.Fatal(err)
	}
	var au bundle.Audit
	if err := json.Unmarshal(audit.body, &au); err != nil {
		t.Fatal(err)
	}
	resigned := []struct {
		kind   string
		path   string
		modify func([]byte) []byte
		want   string
	}{
		{"audit entry", bundle.AuditPath, func(b []byte) []byte {
			return editAudit(t, b, func(a *bundle.Audit) {
				a.Entries[0].Entry = strings.Replace(a.Entries[0].Entry, `"actor":"admin"`, `"actor":"mallory"`, 1)
			})
		}, "audit-entry index"},
		{"proof hash", bundle.AuditPath, func(b []byte) []byte {
			return editAudit(t, b, func(a *bundle.Audit) { a.Entries[0].Inclusion[0][0] ^= 1 })
		}, "inclusion proof"},
		{"checkpoint", bundle.AuditPath, func(b []byte) []byte {
			return editAudit(t, b, func(a *bundle.Audit) { a.Checkpoint = strings.Replace(a.Checkpoint, "\n", "\n1", 1) })
		}, "checkpoint"},
		{"summary claim", bundle.SummaryPath, func(b []byte) []byte {
			var s bundle.Summary
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			s.Artifacts[0].Promotions[0].By = "mallory"
			out, _ := bundle.Bytes(s)
			return out
		}, "no record in the bundle proves"},
		{"source claim", bundle.SummaryPath, func(b []byte) []byte {
			var s bundle.Summary
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			s.Artifacts[0].Source.Commit = strings.Repeat("0", 40)
			out, _ := bundle.Bytes(s)
			return out
		}, "no trusted provenance in the bundle says so"},
		{"deployment's audit entry", bundle.SummaryPath, func(b []byte) []byte {
			var s bundle.Summary
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			i := *s.Artifacts[0].Environments[0].AuditIndex - 1
			s.Artifacts[0].Environments[0].AuditIndex = &i
			out, _ := bundle.Bytes(s)
			return out
		}, "for its promotion to dev"},
		{"push claim", bundle.SummaryPath, func(b []byte) []byte {
			var s bundle.Summary
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			s.Artifacts[1].Pushed.By = "mallory"
			out, _ := bundle.Bytes(s)
			return out
		}, "audit entry"},
	}
	for _, tc := range resigned {
		t.Run("re-signed "+tc.kind, func(t *testing.T) {
			b := rewrite(t, entries, tc.path, tc.modify, signer)
			if err := verifyBytes(t, b, fp); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("re-signed bundle with a changed %s: %v, want %q", tc.kind, err, tc.want)
			}
		})
	}
	if err := verifyBytes(t, rewrite(t, entries, bundle.AuditPath, func(b []byte) []byte { return b }, signer), fp); err != nil {
		t.Fatalf("an unchanged re-signed bundle: %v", err)
	}
	// The request is what the bundle proves: the same content presented
	// as what ran at an earlier instant (before its promotions), or in
	// another environment, does not verify.
	for _, tc := range []struct {
		kind   string
		modify func(*bundle.Request)
		want   string
	}{
		{"earlier instant", func(q *bundle.Request) { q.At = before }, "after the bundle's instant"},
		{"other environment", func(q *bundle.Request) { q.Environment = "prod" }, "does not say it ran in prod"},
	} {
		t.Run("re-signed request for an "+tc.kind, func(t *testing.T) {
			if err := verifyBytes(t, rewriteRequest(t, entries, tc.modify, signer), fp); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
}

// checkForeignEntries adds to a bundle, re-signed with the log key, audit
// entries with valid inclusion proofs about the same digest in another
// repository (taken from that repository's bundle at the same
// checkpoint): Verify refuses them, as they are not about the bundle.
func checkForeignEntries(t *testing.T, file, other, fp, logKey string) {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	o, err := bundle.Open(other, fp)
	if err != nil {
		t.Fatal(err)
	}
	foreign := o.Audit()
	o.Close()
	signer, err := note.NewSigner(strings.TrimSpace(logKey))
	if err != nil {
		t.Fatal(err)
	}
	b := rewrite(t, tarEntries(t, raw), bundle.AuditPath, func(b []byte) []byte {
		return editAudit(t, b, func(a *bundle.Audit) {
			if a.Checkpoint != foreign.Checkpoint {
				t.Fatal("the two bundles were proved against different checkpoints")
			}
			a.Entries = append(a.Entries, foreign.Entries...)
			slices.SortFunc(a.Entries, func(x, y bundle.AuditEntry) int { return cmp.Compare(x.Index, y.Index) })
		})
	}, signer)
	if err := verifyBytes(t, b, fp); err == nil || !strings.Contains(err.Error(), "private/web@") {
		t.Fatalf("a bundle with audit entries about private/web: %v", err)
	}
}

func editAudit(t *testing.T, b []byte, fn func(*bundle.Audit)) []byte {
	var a bundle.Audit
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	fn(&a)
	out, err := bundle.Bytes(a)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rewrite rebuilds a bundle with one file changed and manifest.json
// re-signed with the log key.
func rewrite(t *testing.T, entries []tarEntry, path string, modify func([]byte) []byte, signer note.Signer) []byte {
	t.Helper()
	var m bundle.Manifest
	if err := json.Unmarshal(entries[0].body, &m); err != nil {
		t.Fatal(err)
	}
	bodies := map[string][]byte{}
	for _, e := range entries {
		bodies[e.name] = e.body
	}
	bodies[path] = modify(bodies[path])
	for i, f := range m.Files {
		if f.Path == path {
			s := sha256.Sum256(bodies[path])
			m.Files[i].Size, m.Files[i].SHA256 = int64(len(bodies[path])), hex.EncodeToString(s[:])
		}
	}
	return rebuild(t, entries, bodies, m, signer)
}

// rewriteRequest rebuilds a bundle with its request changed and
// manifest.json re-signed with the log key.
func rewriteRequest(t *testing.T, entries []tarEntry, modify func(*bundle.Request), signer note.Signer) []byte {
	t.Helper()
	var m bundle.Manifest
	if err := json.Unmarshal(entries[0].body, &m); err != nil {
		t.Fatal(err)
	}
	modify(&m.Request)
	bodies := map[string][]byte{}
	for _, e := range entries {
		bodies[e.name] = e.body
	}
	return rebuild(t, entries, bodies, m, signer)
}

// rebuild writes the entries with the given bodies, manifest.json m and
// its signature.
func rebuild(t *testing.T, entries []tarEntry, bodies map[string][]byte, m bundle.Manifest, signer note.Signer) []byte {
	t.Helper()
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := note.Sign(&note.Note{Text: bundle.SignatureText(mj)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	bodies[bundle.ManifestPath], bodies[bundle.SignaturePath] = mj, sig
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(bodies[e.name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(bodies[e.name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// verifyBytes opens and verifies a bundle; a failed report is an error
// listing the failures.
func verifyBytes(t *testing.T, raw []byte, fp string) error {
	t.Helper()
	p := filepath.Join(t.TempDir(), "b.tar")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Open(p, fp)
	if err != nil {
		return err
	}
	defer b.Close()
	r, err := b.Verify(context.Background())
	if err != nil {
		return err
	}
	if !r.OK() {
		var s []string
		for _, f := range r.Failures {
			s = append(s, f.String())
		}
		return fmt.Errorf("%s", strings.Join(s, "; "))
	}
	return nil
}

// blobRoles finds the blob paths of one artifact's manifest, config,
// layer, signature layer and attestation layer.
func blobRoles(t *testing.T, b *bundle.Bundle, artifact string) map[string]string {
	t.Helper()
	out := map[string]string{}
	read := func(d string) map[string]any {
		rc, _, err := b.Blob(digest.Digest(d))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var m map[string]any
		if err := json.NewDecoder(rc).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	path := func(d any) string { return bundle.BlobPath(digest.Digest(d.(string))) }
	firstLayer := func(m map[string]any) string { return path(m["layers"].([]any)[0].(map[string]any)["digest"]) }
	for _, d := range b.Index().Manifests {
		if d.Annotations[bundle.AnnotationRepository] != "apps/web" {
			continue
		}
		switch {
		case d.Digest.String() == artifact:
			m := read(artifact)
			out["manifest"] = path(artifact)
			out["config"] = path(m["config"].(map[string]any)["digest"])
			out["layer"] = firstLayer(m)
		case d.Annotations[bundle.AnnotationRole] == bundle.RoleSignature && d.Annotations[bundle.AnnotationSubject] == artifact:
			out["signature"] = firstLayer(read(d.Digest.String()))
		case d.Annotations[bundle.AnnotationRole] == bundle.RoleAttestation && d.Annotations[bundle.AnnotationSubject] == artifact:
			out["attestation"] = firstLayer(read(d.Digest.String()))
		}
	}
	if len(out) != 5 {
		t.Fatalf("found %v in the bundle", out)
	}
	return out
}

// checkTools reads the layout with the real skopeo, regctl, crane and
// cosign.
func checkTools(t *testing.T, work, home, file, second, ciPub, first, web string) {
	skopeo, regctl, crane := client(t, "skopeo"), client(t, "regctl"), client(t, "crane")
	// skopeo copies an image out of the archive by its layout name into
	// another registry, keeping its digest.
	run(t, home, skopeo, "copy", "--dest-tls-verify=false", "oci-archive:"+file+":apps+web@"+web, "docker://"+second+"/copied/web:2.0")
	if got := strings.TrimSpace(run(t, home, crane, "digest", "--insecure", second+"/copied/web:2.0")); got != web {
		t.Fatalf("skopeo copied web as %s, want %s", got, web)
	}
	run(t, home, crane, "validate", "--insecure", "--remote", second+"/copied/web:2.0")
	// regctl reads the extracted layout: the image and its signature.
	dir := filepath.Join(work, "layout")
	extract(t, file, dir)
	raw := run(t, home, regctl, "manifest", "get", "--format", "raw-body", "ocidir://"+dir+"@"+web)
	if digest.FromString(raw).String() != web {
		t.Fatalf("regctl read another manifest for %s", web)
	}
	// cosign verifies the first artifact of the layout (cosign's layout
	// holds one image) with the CI key, offline.
	cosign := client(t, "cosign")
	out := run(t, home, cosign, "verify", "--local-image", dir, "--key", ciPub, "--insecure-ignore-tlog=true", "--insecure-ignore-sct=true")
	if !strings.Contains(out, first) {
		t.Fatalf("cosign verify --local-image did not verify %s:\n%s", first, out)
	}
}

// extract unpacks a bundle (already verified) into dir.
func extract(t *testing.T, file, dir string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tarEntries(t, raw) {
		p := filepath.Join(dir, filepath.FromSlash(e.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, e.body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
