package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/testserver"
)

// custodyCmd runs the custody CLI with a private HOME (and docker config)
// and stdin, returning stdout or the error output.
func custodyCmd(t *testing.T, home, stdin string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(testserver.Binary(t), args...)
	// Each home is a separate client: its own docker config and custody
	// config (the server 'custody login' remembered), nothing inherited.
	cmd.Env = append(append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "CUSTODY_SERVER="), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func mustCustody(t *testing.T, home, stdin string, env []string, args ...string) string {
	t.Helper()
	out, err := custodyCmd(t, home, stdin, env, args...)
	if err != nil {
		t.Fatalf("custody %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// fails runs a client and expects it to fail, returning its output.
func fails(t *testing.T, home, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("%s %s succeeded, want a refusal:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
	}
	return string(out)
}

// TestClientsWithAuth runs the usual clients against a server with
// authentication on (the default): custody login writes the docker config
// they read, API tokens work as passwords, and refusals reach the clients.
func TestClientsWithAuth(t *testing.T) {
	crane := client(t, "crane")
	skopeo := client(t, "skopeo")
	regctl := client(t, "regctl")
	cosign := client(t, "cosign")
	srv := testserver.Start(t, testserver.Options{Auth: true})
	h := srv.Host()
	server := "--server=" + srv.URL
	admin, ci, nobody, work := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()

	// The admin signs in with the password of the first start.
	out := mustCustody(t, admin, srv.AdminPassword()+"\n", nil, "login", h, "-u", "admin", "--password-stdin")
	if !strings.Contains(out, "Signed in to "+h+" as admin") {
		t.Fatalf("login: %s", out)
	}
	cfg, err := os.ReadFile(filepath.Join(admin, ".docker", "config.json"))
	if err != nil || !strings.Contains(string(cfg), h) {
		t.Fatalf("docker config after login: %v %s", err, cfg)
	}
	if _, err := custodyCmd(t, nobody, "wrong-password-123\n", nil, "login", h, "-u", "admin", "--password-stdin"); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}

	// A CI account in group ci, writer on apps/**, and a token for it.
	mustCustody(t, admin, "ci-password-0123456\n", nil, "user", "create", "ci", "--groups", "ci", "--password-stdin", server)
	mustCustody(t, admin, "", nil, "grant", "add", "group:ci", "writer", "apps/**", server)
	tok := strings.TrimSpace(mustCustody(t, admin, "", nil, "token", "create", "--name", "pipeline", "--role", "writer", "--repo", "apps/**", "--expires", "1d", server))
	// The admin made that token for itself; make one as ci too.
	mustCustody(t, ci, "ci-password-0123456\n", nil, "login", h, "-u", "ci", "--password-stdin")
	ciTok := strings.TrimSpace(mustCustody(t, ci, "", nil, "token", "create", "--name", "pipeline", "--role", "writer", "--repo", "apps/web", server))
	if !strings.HasPrefix(tok, "cst_") || !strings.HasPrefix(ciTok, "cst_") {
		t.Fatalf("tokens: %q %q", tok, ciTok)
	}
	var who struct{ Subject, Method string }
	if err := json.Unmarshal([]byte(mustCustody(t, nobody, "", []string{"CUSTODY_TOKEN=" + ciTok}, "whoami", "-o", "json", server)), &who); err != nil || who.Subject != "ci" || who.Method != "token" {
		t.Fatalf("whoami with the token: %v %+v", err, who)
	}

	// crane with the docker config custody login wrote.
	layer := layerTar(t, work, 1<<20)
	run(t, admin, crane, "append", "--insecure", "-f", layer, "-t", h+"/apps/web:v1")
	run(t, admin, crane, "tag", "--insecure", h+"/apps/web:v1", "latest")
	// Without credentials: refused.
	if msg := fails(t, nobody, crane, "append", "--insecure", "-f", layer, "-t", h+"/apps/web:v2"); !strings.Contains(msg, "UNAUTHORIZED") && !strings.Contains(msg, "401") {
		t.Fatalf("anonymous crane push: %s", msg)
	}
	// crane with ci's token as password (crane auth login).
	run(t, nobody, crane, "auth", "login", h, "-u", "token", "-p", ciTok)
	layer2 := layerTar(t, t.TempDir(), 1<<20) // other content: v2 differs from v1 and latest
	run(t, nobody, crane, "append", "--insecure", "-f", layer2, "-t", h+"/apps/web:v2")
	// ci's token is for apps/web only, and writers may not move tags.
	if msg := fails(t, nobody, crane, "copy", "--insecure", h+"/apps/web:v2", h+"/apps/api:v2"); !strings.Contains(msg, "DENIED") && !strings.Contains(msg, "403") {
		t.Fatalf("token used outside its scope: %s", msg)
	}
	if msg := fails(t, nobody, crane, "tag", "--insecure", h+"/apps/web:v2", "latest"); !strings.Contains(msg, "promoter") {
		t.Fatalf("writer moving latest: %s", msg)
	}

	// skopeo with explicit credentials (the token).
	run(t, work, skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--src-creds", "token:"+ciTok, "--dest-creds", "token:"+ciTok,
		"docker://"+h+"/apps/web:v1", "docker://"+h+"/apps/web:sko")
	if msg := fails(t, work, skopeo, "inspect", "--tls-verify=false", "--creds", "token:cst_not-a-real-token", "docker://"+h+"/apps/web:v1"); !strings.Contains(strings.ToLower(msg), "unauthorized") && !strings.Contains(msg, "401") {
		t.Fatalf("skopeo with a bad token: %s", msg)
	}

	// regctl logs in with the token too.
	regHome := t.TempDir()
	// registry set pings the registry, which answers 401 before login, and
	// stores the setting anyway.
	c := exec.Command(regctl, "registry", "set", "--tls", "disabled", h)
	c.Env = append(os.Environ(), "HOME="+regHome)
	if out, err := c.CombinedOutput(); err != nil && !strings.Contains(string(out), "configuration still updated") {
		t.Fatalf("regctl registry set: %v\n%s", err, out)
	}
	run(t, regHome, regctl, "registry", "login", h, "-u", "token", "-p", ciTok)
	run(t, regHome, regctl, "image", "copy", h+"/apps/web:v1", h+"/apps/web:reg")
	if d := strings.TrimSpace(run(t, regHome, regctl, "image", "digest", h+"/apps/web:reg")); !strings.HasPrefix(d, "sha256:") {
		t.Fatalf("regctl digest: %q", d)
	}

	// cosign signs and verifies with the admin's docker config.
	dig := strings.TrimSpace(run(t, admin, crane, "digest", "--insecure", h+"/apps/web:v1"))
	cmd := exec.Command(cosign, "generate-key-pair")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+admin, "COSIGN_PASSWORD=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate-key-pair: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"sign", "--key", filepath.Join(work, "cosign.key"), "--tlog-upload=false", "--allow-insecure-registry", "--yes", h + "/apps/web@" + dig},
		{"verify", "--key", filepath.Join(work, "cosign.pub"), "--insecure-ignore-tlog=true", "--allow-insecure-registry", h + "/apps/web@" + dig},
	} {
		c := exec.Command(cosign, args...)
		c.Env = append(os.Environ(), "HOME="+admin, "DOCKER_CONFIG="+filepath.Join(admin, ".docker"), "COSIGN_PASSWORD=")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("cosign %s: %v\n%s", args[0], err, out)
		}
	}

	// custody's own push and pull with CUSTODY_TOKEN.
	f := filepath.Join(work, "tool.bin")
	if err := os.WriteFile(f, []byte("payload"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCustody(t, nobody, "", []string{"CUSTODY_TOKEN=" + tok}, "push", f, h+"/apps/tool:v1")
	mustCustody(t, nobody, "", []string{"CUSTODY_TOKEN=" + tok}, "pull", h+"/apps/tool:v1", "-d", filepath.Join(work, "out"))
	if b, err := os.ReadFile(filepath.Join(work, "out", "tool.bin")); err != nil || string(b) != "payload" {
		t.Fatalf("pulled: %v %q", err, b)
	}

	// Revoking the token stops it at once.
	list := mustCustody(t, ci, "", nil, "token", "list", "-o", "json", server)
	var toks []struct{ ID, Name string }
	if err := json.Unmarshal([]byte(list), &toks); err != nil || len(toks) != 1 {
		t.Fatalf("token list: %v %s", err, list)
	}
	mustCustody(t, ci, "", nil, "token", "revoke", toks[0].ID, server)
	if out, err := custodyCmd(t, nobody, "", []string{"CUSTODY_TOKEN=" + ciTok}, "whoami", server); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("whoami with a revoked token: %v %s", err, out)
	}
	// The audit log names the actors; the auditor role reads it.
	mustCustody(t, admin, "", nil, "grant", "add", "user:ci", "auditor", "**", server)
	mustCustody(t, ci, "", nil, "audit", "checkpoint", "--sign", server)
	mustCustody(t, ci, "", nil, "audit", "verify", server)
	mustCustody(t, admin, "", nil, "logout", h)
	if _, err := custodyCmd(t, admin, "", nil, "whoami", server); err == nil {
		t.Fatal("whoami after logout succeeded")
	}
}
