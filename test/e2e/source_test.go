package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/gitcommit/gitcommittest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/testserver"
)

// sourceConfig: apps/** enters prod only when built from a commit signed
// by alice (SSH) or dave (OpenPGP).
const sourceConfig = `projects:
  - repositories: "apps/**"
    environments:
      - name: prod
        gate:
          rules:
            - use: commit_signed_by
              params: {principals: [alice@example.com, dave@example.com]}
promotion:
  trustRoot: %q
  allowedSigners: %q
  openpgpKeyring: %q
`

// TestSourceVerification runs source verification end to end with real
// git, ssh-keygen and gpg: CI submits git cat-file commit HEAD for the
// artifact its provenance names; the server verifies the signature,
// records a signed attestation and the commit_signed_by gate passes in a
// real promotion. A wrong signer, an altered commit object, a key past
// its valid-before and a commit other than the provenance's are refused,
// and nothing is recorded.
func TestSourceVerification(t *testing.T) {
	gitcommittest.Need(t, "git", "ssh-keygen", "gpg")
	crane := client(t, "crane")
	work, home, ciKeys, data := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	pass := []string{"CUSTODY_KEY_PASSWORD=ci-passphrase-1"}

	// The source repository and its signers.
	repo := gitcommittest.New(t, "sha1")
	alice, alicePub := repo.SSHKey("alice")
	mallory, _ := repo.SSHKey("mallory")
	carol, carolPub := repo.SSHKey("carol")
	signers := filepath.Join(work, "allowed_signers")
	if err := os.WriteFile(signers, []byte("alice@example.com namespaces=\"git\" "+alicePub+"\n"+
		"carol@example.com valid-before=\"20200101\" "+carolPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo.UseSSH(alice)
	aliceCommit, aliceRaw := repo.Commit("alice: release 1")
	repo.UseSSH(mallory)
	malloryCommit, malloryRaw := repo.Commit("mallory: backdoor")
	repo.UseSSH(carol)
	carolCommit, carolRaw := repo.Commit("carol: after her key expired")
	daveFpr, daveKey := repo.GPGKey("Dave <dave@example.com>")
	keyring := filepath.Join(work, "keyring.asc")
	if err := os.WriteFile(keyring, daveKey, 0o644); err != nil {
		t.Fatal(err)
	}
	repo.UseGPG(daveFpr)
	daveCommit, daveRaw := repo.Commit("dave: release 2")

	mustCustody(t, home, "", pass, "key", "create", "--keys", ciKeys)
	ciTrust := filepath.Join(work, "ci-trust-root.json")
	if err := os.WriteFile(ciTrust, []byte(mustCustody(t, home, "", nil, "key", "export-public", "--trust-root", "--keys", ciKeys)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := key.Open(ciKeys); err != nil {
		t.Fatal(err)
	}
	mustCustody(t, home, "", []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}, "key", "create", "--keys", filepath.Join(data, "keys"))
	cfg := filepath.Join(work, "custody.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(sourceConfig, ciTrust, signers, keyring)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Auth: true, Data: data, Args: []string{"--config", cfg},
		Env: []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}})
	h, server := srv.Host(), "--server="+srv.URL
	mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", h, "-u", "admin", "--password-stdin")
	ws := filepath.Join(work, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	// CI builds the commit: push, SLSA provenance naming it.
	build := func(tag, commit string) string {
		layer := layerTar(t, t.TempDir(), 1024)
		run(t, home, crane, "append", "--insecure", "-f", layer, "-t", h+"/apps/web:"+tag)
		ref := h + "/apps/web@" + strings.TrimSpace(run(t, home, crane, "digest", "--insecure", h+"/apps/web:"+tag))
		mustCustody(t, home, "", append(append(pass, githubEnv...), "GITHUB_SHA="+commit), "attest", "provenance", "--from-env", "--workspace", ws, "--keys", ciKeys, ref)
		return ref
	}
	submit := func(ref string, raw []byte, args ...string) (string, error) {
		return custodyCmd(t, home, string(raw), nil, append([]string{"attest", "source", ref, server}, args...)...)
	}
	// sources returns what the gate sees: the source verifications that count.
	sources := func(ref string) []map[string]any {
		t.Helper()
		out, _ := custodyCmd(t, home, "", nil, "gate", "test", ref, "--env", "prod", "-o", "json", server)
		if i := strings.LastIndex(out, "\n}"); i >= 0 {
			out = out[:i+2] // a refusing gate's error follows the JSON
		}
		var res struct {
			Input struct {
				Sources []map[string]any `json:"sources"`
			} `json:"input"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("gate test: %v\n%s", err, out)
		}
		return res.Input.Sources
	}
	refuse := func(name, ref string, raw []byte, want string) {
		t.Helper()
		out, err := submit(ref, raw)
		if err == nil || !strings.Contains(out, want) || !strings.Contains(out, "422") {
			t.Fatalf("%s: err %v, want a 422 saying %q:\n%s", name, err, want, out)
		}
		if s := sources(ref); len(s) != 0 {
			t.Fatalf("%s: refused, yet recorded %v", name, s)
		}
	}

	good := build("good", aliceCommit)
	bad := build("mallory", malloryCommit)
	expired := build("carol", carolCommit)

	refuse("wrong signer", bad, malloryRaw, "not in the allowed signers")
	refuse("altered commit object", good, []byte(strings.Replace(string(aliceRaw), "release 1", "release 9", 1)), "the provenance names "+aliceCommit)
	refuse("expired valid-before", expired, carolRaw, "valid before")
	refuse("commit other than the provenance's", bad, aliceRaw, "the provenance names "+malloryCommit)
	refuse("not a commit object", good, []byte("hello\n"), "invalid commit object")
	if out, err := custodyCmd(t, home, "", nil, "promote", bad, "--to", "prod", server); err == nil || !strings.Contains(out, "commit_signed_by") {
		t.Fatalf("promotion of mallory's build: %v\n%s", err, out)
	}

	// The good commit, piped as CI does, and from a file.
	out, err := submit(good, aliceRaw)
	if err != nil || !strings.Contains(out, "verified commit "+aliceCommit) || !strings.Contains(out, "alice@example.com") {
		t.Fatalf("attest source: %v\n%s", err, out)
	}
	s := sources(good)
	if len(s) != 1 || s[0]["commit"] != aliceCommit || s[0]["method"] != "ssh" || !strings.HasPrefix(s[0]["keyFingerprint"].(string), "SHA256:") {
		t.Fatalf("sources %v", s)
	}
	mustCustody(t, home, "", nil, "promote", good, "--to", "prod", server)

	pgp := build("dave", daveCommit)
	file := filepath.Join(work, "commit")
	if err := os.WriteFile(file, daveRaw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = submit(pgp, nil, "--commit-object", file, "-o", "json")
	var rec struct {
		Commit, Method, KeyFingerprint string
		Principals                     []string
	}
	if err != nil || json.Unmarshal([]byte(out), &rec) != nil || rec.Commit != daveCommit || rec.Method != "openpgp" || rec.KeyFingerprint != daveFpr || rec.Principals[0] != "dave@example.com" {
		t.Fatalf("openpgp: %v %+v\n%s", err, rec, out)
	}
	mustCustody(t, home, "", nil, "promote", pgp, "--to", "prod", server)
}
