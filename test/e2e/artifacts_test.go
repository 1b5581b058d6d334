package e2e

// Artifact clients against a server with authentication on: helm (OCI
// charts), oras (artifacts and referrers) and notation (signatures as
// referrers), each signed in with the admin password.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/testserver"
)

// TestHelm pushes a packaged chart to an OCI repository, shows and pulls it.
func TestHelm(t *testing.T) {
	helm := client(t, "helm")
	srv := testserver.Start(t, testserver.Options{Auth: true})
	h := srv.Host()
	home, work := t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"), "XDG_DATA_HOME=" + filepath.Join(home, ".local")}

	runWith(t, env, "", helm, "create", filepath.Join(work, "demo"))
	runWith(t, env, "", helm, "package", filepath.Join(work, "demo"), "-d", work)
	pkg := filepath.Join(work, "demo-0.1.0.tgz")
	if msg := failsWith(t, env, "", helm, "push", pkg, "oci://"+h+"/charts", "--plain-http"); !strings.Contains(strings.ToLower(msg), "unauthorized") && !strings.Contains(msg, "401") {
		t.Fatalf("anonymous helm push: %s", msg)
	}
	runWith(t, env, srv.AdminPassword()+"\n", helm, "registry", "login", h, "--plain-http", "-u", "admin", "--password-stdin")
	out := runWith(t, env, "", helm, "push", pkg, "oci://"+h+"/charts", "--plain-http")
	out += runWith(t, env, "", helm, "show", "chart", "oci://"+h+"/charts/demo", "--version", "0.1.0", "--plain-http")
	if !strings.Contains(out, "name: demo") || !strings.Contains(out, "version: 0.1.0") {
		t.Fatalf("helm show chart:\n%s", out)
	}
	dest := t.TempDir()
	runWith(t, env, "", helm, "pull", "oci://"+h+"/charts/demo", "--version", "0.1.0", "--plain-http", "-d", dest)
	want, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dest, "demo-0.1.0.tgz"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("pulled chart differs from the pushed package (%v)", err)
	}
}

// TestOras pushes and pulls an artifact, attaches a referrer to it, finds it
// with discover, and copies the artifact with its referrers (cp -r).
func TestOras(t *testing.T) {
	oras := client(t, "oras")
	srv := testserver.Start(t, testserver.Options{Auth: true})
	h := srv.Host()
	home, work := t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	// oras names files by the paths given, relative to the working directory.
	oc := func(args ...string) string {
		t.Helper()
		return runIn(t, work, env, "", oras, args...)
	}
	if err := os.WriteFile(filepath.Join(work, "hello.txt"), []byte("hello custody"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "sig.txt"), []byte("a signature"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := h + "/oras/app:v1"
	if msg := failsWith(t, env, "", oras, "push", "--plain-http", "--disable-path-validation", ref, filepath.Join(work, "hello.txt")); !strings.Contains(strings.ToLower(msg), "unauthorized") && !strings.Contains(msg, "401") {
		t.Fatalf("anonymous oras push: %s", msg)
	}
	runWith(t, env, srv.AdminPassword()+"\n", oras, "login", "--plain-http", "-u", "admin", "--password-stdin", h)
	oc("push", "--plain-http", "--artifact-type", "application/vnd.custody.test", ref, "hello.txt:text/plain")
	runWith(t, env, "", oras, "pull", "--plain-http", "-o", filepath.Join(work, "out"), ref)
	if b, err := os.ReadFile(filepath.Join(work, "out", "hello.txt")); err != nil || string(b) != "hello custody" {
		t.Fatalf("oras pull: %v %q", err, b)
	}
	oc("attach", "--plain-http", "--artifact-type", "application/vnd.custody.sig", ref, "sig.txt:text/plain")
	referrers := func(ref string) []string {
		t.Helper()
		out := runWith(t, env, "", oras, "discover", "--plain-http", "--format", "json", ref)
		var d struct {
			Referrers []struct {
				ArtifactType string `json:"artifactType"`
			} `json:"referrers"`
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("oras discover: %v\n%s", err, out)
		}
		var types []string
		for _, r := range d.Referrers {
			types = append(types, r.ArtifactType)
		}
		return types
	}
	if got := referrers(ref); strings.Join(got, ",") != "application/vnd.custody.sig" {
		t.Fatalf("referrers of %s = %v", ref, got)
	}
	runWith(t, env, "", oras, "cp", "-r", "--from-plain-http", "--to-plain-http", ref, h+"/oras/copy:v1")
	if got := referrers(h + "/oras/copy:v1"); strings.Join(got, ",") != "application/vnd.custody.sig" {
		t.Fatalf("referrers of the copy = %v", got)
	}
}

// TestNotation signs an image with a test key, lists and verifies the
// signature under a trust policy, and refuses it under a policy that trusts
// another certificate.
func TestNotation(t *testing.T) {
	notation := client(t, "notation")
	crane := client(t, "crane")
	srv := testserver.Start(t, testserver.Options{Auth: true})
	h := srv.Host()
	home, work := t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	pw := srv.AdminPassword()
	runWith(t, env, "", crane, "auth", "login", h, "-u", "admin", "-p", pw)
	layer := layerTar(t, work, 256<<10)
	runWith(t, env, "", crane, "append", "--insecure", "-f", layer, "-t", h+"/notary/app:v1")
	dig := strings.TrimSpace(runWith(t, env, "", crane, "digest", "--insecure", h+"/notary/app:v1"))
	ref := h + "/notary/app@" + dig

	runWith(t, env, "", notation, "cert", "generate-test", "--default", "custody.test")
	runWith(t, env, "", notation, "cert", "generate-test", "other.test")
	runWith(t, env, pw+"\n", notation, "login", "--insecure-registry", "-u", "admin", "--password-stdin", h)
	runWith(t, env, "", notation, "sign", "--insecure-registry", ref)
	if out := runWith(t, env, "", notation, "ls", "--insecure-registry", ref); !strings.Contains(out, "application/vnd.cncf.notary.signature") {
		t.Fatalf("notation ls:\n%s", out)
	}
	policy := func(store string) string {
		p := filepath.Join(work, store+".json")
		doc := `{"version":"1.0","trustPolicies":[{"name":"custody","registryScopes":["*"],` +
			`"signatureVerification":{"level":"strict"},"trustStores":["ca:` + store + `"],"trustedIdentities":["*"]}]}`
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	runWith(t, env, "", notation, "policy", "import", "--force", policy("custody.test"))
	if out := runWith(t, env, "", notation, "verify", "--insecure-registry", ref); !strings.Contains(out, "Successfully verified") {
		t.Fatalf("notation verify:\n%s", out)
	}
	runWith(t, env, "", notation, "policy", "import", "--force", policy("other.test"))
	// The signature is found, and refused: its certificate is not trusted.
	if msg := failsWith(t, env, "", notation, "verify", "--insecure-registry", ref); !strings.Contains(msg, "signature verification failed") {
		t.Fatalf("notation verify under a policy trusting another certificate: %s", msg)
	}
}
