// Package e2e drives real registry clients (crane, regctl, skopeo) against a
// real `custody serve` process. scripts/install-clients.sh installs them and
// exports CUSTODY_CLIENTS_BIN; under CI a missing client fails the test.
package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/testserver"
)

// client returns the path of a client binary (testserver.Client).
func client(t *testing.T, name string) string {
	t.Helper()
	return testserver.Client(t, name)
}

// run executes a client with a private HOME and returns its stdout.
func run(t *testing.T, home, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"))
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// layerTar writes a tar file with one random file of size bytes.
func layerTar(t *testing.T, dir string, size int) string {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "layer.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "payload.bin", Mode: 0o644, Size: int64(size)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCrane(t *testing.T) {
	crane := client(t, "crane")
	srv := testserver.Start(t, testserver.Options{})
	home, work := t.TempDir(), t.TempDir()
	h := srv.Host()
	layer := layerTar(t, work, 3<<20)

	run(t, home, crane, "append", "--insecure", "-f", layer, "-t", h+"/crane/app:v1")
	dig := strings.TrimSpace(run(t, home, crane, "digest", "--insecure", h+"/crane/app:v1"))
	if !strings.HasPrefix(dig, "sha256:") {
		t.Fatalf("crane digest = %q", dig)
	}
	// Copy across repositories (uses cross-repository mounts), tag, list.
	run(t, home, crane, "copy", "--insecure", h+"/crane/app:v1", h+"/crane/other:v1")
	run(t, home, crane, "tag", "--insecure", h+"/crane/app:v1", "latest")
	tags := strings.Fields(run(t, home, crane, "ls", "--insecure", h+"/crane/app"))
	if strings.Join(tags, ",") != "latest,v1" {
		t.Fatalf("crane ls = %v, want [latest v1]", tags)
	}
	cat := run(t, home, crane, "catalog", "--insecure", h)
	if !strings.Contains(cat, "crane/app") || !strings.Contains(cat, "crane/other") {
		t.Fatalf("crane catalog = %q", cat)
	}
	// Pull back and compare the layer bytes through an export.
	out := filepath.Join(work, "export.tar")
	run(t, home, crane, "export", "--insecure", h+"/crane/other:v1", out)
	st, err := os.Stat(out)
	if err != nil || st.Size() < 3<<20 {
		t.Fatalf("export: %v size %d", err, st.Size())
	}
	run(t, home, crane, "pull", "--insecure", "--format", "oci", h+"/crane/app:v1", filepath.Join(work, "oci"))
	if _, err := os.Stat(filepath.Join(work, "oci", "index.json")); err != nil {
		t.Fatalf("crane pull --format oci: %v", err)
	}
	// Delete by digest removes both tags.
	run(t, home, crane, "delete", "--insecure", h+"/crane/app@"+dig)
	cmd := exec.Command(crane, "manifest", "--insecure", h+"/crane/app:v1")
	cmd.Env = append(os.Environ(), "HOME="+home)
	if err := cmd.Run(); err == nil {
		t.Fatal("manifest still served after crane delete")
	}
}

func TestRegctl(t *testing.T) {
	regctl := client(t, "regctl")
	crane := client(t, "crane")
	srv := testserver.Start(t, testserver.Options{})
	home, work := t.TempDir(), t.TempDir()
	h := srv.Host()
	run(t, home, regctl, "registry", "set", "--tls", "disabled", h)
	layer := layerTar(t, work, 1<<20)
	run(t, home, crane, "append", "--insecure", "-f", layer, "-t", h+"/reg/app:v1")

	run(t, home, regctl, "image", "copy", h+"/reg/app:v1", h+"/reg/copy:v1")
	d1 := strings.TrimSpace(run(t, home, regctl, "image", "digest", h+"/reg/app:v1"))
	d2 := strings.TrimSpace(run(t, home, regctl, "image", "digest", h+"/reg/copy:v1"))
	if d1 == "" || d1 != d2 {
		t.Fatalf("digests differ after copy: %q %q", d1, d2)
	}
	// An OCI 1.1 artifact attached with a subject, found via the referrers API.
	sbom := filepath.Join(work, "sbom.json")
	if err := os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, home, regctl, "artifact", "put", "--artifact-type", "application/spdx+json",
		"--subject", h+"/reg/app:v1", "-f", sbom)
	list := run(t, home, regctl, "artifact", "list", h+"/reg/app:v1", "--format", "{{json .}}")
	var idx struct {
		Manifests []struct {
			ArtifactType string `json:"artifactType"`
		} `json:"descriptors"`
	}
	if err := json.Unmarshal([]byte(list), &idx); err != nil {
		t.Fatalf("artifact list output %q: %v", list, err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].ArtifactType != "application/spdx+json" {
		t.Fatalf("referrers = %+v", idx.Manifests)
	}
	got := run(t, home, regctl, "artifact", "get", "--subject", h+"/reg/app:v1", "--filter-artifact-type", "application/spdx+json")
	if !strings.Contains(got, "SPDX-2.3") {
		t.Fatalf("artifact get = %q", got)
	}
	tags := run(t, home, regctl, "tag", "ls", h+"/reg/app")
	if strings.TrimSpace(tags) != "v1" {
		t.Fatalf("tag ls = %q", tags)
	}
}

func TestSkopeo(t *testing.T) {
	skopeo := client(t, "skopeo")
	crane := client(t, "crane")
	srv := testserver.Start(t, testserver.Options{})
	home, work := t.TempDir(), t.TempDir()
	h := srv.Host()
	layer := layerTar(t, work, 2<<20)
	run(t, home, crane, "append", "--insecure", "-f", layer, "-t", h+"/sko/app:v1")

	// Registry to registry, to an OCI layout, and from the layout back.
	run(t, home, skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://"+h+"/sko/app:v1", "docker://"+h+"/sko/copy:v1")
	layout := filepath.Join(work, "layout")
	run(t, home, skopeo, "copy", "--src-tls-verify=false", "docker://"+h+"/sko/copy:v1", "oci:"+layout+":v1")
	run(t, home, skopeo, "copy", "--dest-tls-verify=false", "oci:"+layout+":v1", "docker://"+h+"/sko/back:v2")
	out := run(t, home, skopeo, "inspect", "--tls-verify=false", "docker://"+h+"/sko/back:v2")
	var info struct {
		Digest string   `json:"Digest"`
		Layers []string `json:"Layers"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("skopeo inspect: %v: %s", err, out)
	}
	if len(info.Layers) != 1 || !strings.HasPrefix(info.Digest, "sha256:") {
		t.Fatalf("skopeo inspect = %+v", info)
	}
	tags := run(t, home, skopeo, "list-tags", "--tls-verify=false", "docker://"+h+"/sko/app")
	if !strings.Contains(tags, `"v1"`) {
		t.Fatalf("list-tags = %s", tags)
	}
	run(t, home, skopeo, "delete", "--tls-verify=false", "docker://"+h+"/sko/back:v2")
	cmd := exec.Command(skopeo, "inspect", "--tls-verify=false", "docker://"+h+"/sko/back:v2")
	cmd.Env = append(os.Environ(), "HOME="+home)
	if err := cmd.Run(); err == nil {
		t.Fatal("skopeo delete left the image in place")
	}
}

// TestCosign signs an image with a key pair (no transparency log: the
// registry must work air-gapped), verifies it, and attaches an attestation;
// cosign stores both as sha256-<hex>.sig/.att tags and reads them back.
func TestCosign(t *testing.T) {
	cosign := client(t, "cosign")
	crane := client(t, "crane")
	srv := testserver.Start(t, testserver.Options{})
	home, work := t.TempDir(), t.TempDir()
	h := srv.Host()
	layer := layerTar(t, work, 1<<20)
	run(t, home, crane, "append", "--insecure", "-f", layer, "-t", h+"/cos/app:v1")
	dig := strings.TrimSpace(run(t, home, crane, "digest", "--insecure", h+"/cos/app:v1"))
	ref := h + "/cos/app@" + dig

	cmd := exec.Command(cosign, "generate-key-pair")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+home, "COSIGN_PASSWORD=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate-key-pair: %v\n%s", err, out)
	}
	key, pub := filepath.Join(work, "cosign.key"), filepath.Join(work, "cosign.pub")
	env := func(args ...string) string {
		t.Helper()
		c := exec.Command(cosign, args...)
		c.Env = append(os.Environ(), "HOME="+home, "COSIGN_PASSWORD=")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	env("sign", "--key", key, "--tlog-upload=false", "--allow-insecure-registry", "--yes", ref)
	out := env("verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", ref)
	if !strings.Contains(out, dig) {
		t.Fatalf("cosign verify output does not name the digest:\n%s", out)
	}
	pred := filepath.Join(work, "pred.json")
	if err := os.WriteFile(pred, []byte(`{"result":"PASSED"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	env("attest", "--key", key, "--tlog-upload=false", "--allow-insecure-registry", "--yes",
		"--type", "custom", "--predicate", pred, ref)
	env("verify-attestation", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry",
		"--type", "custom", ref)
	tags := run(t, home, crane, "ls", "--insecure", h+"/cos/app")
	sig := strings.Replace(dig, ":", "-", 1)
	if !strings.Contains(tags, sig+".sig") || !strings.Contains(tags, sig+".att") {
		t.Fatalf("signature/attestation tags missing: %q", tags)
	}
	// A signature from another key must not verify.
	other := t.TempDir()
	c := exec.Command(cosign, "generate-key-pair")
	c.Dir = other
	c.Env = append(os.Environ(), "HOME="+home, "COSIGN_PASSWORD=")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("generate-key-pair: %v\n%s", err, out)
	}
	bad := exec.Command(cosign, "verify", "--key", filepath.Join(other, "cosign.pub"), "--insecure-ignore-tlog=true", "--allow-insecure-registry", ref)
	bad.Env = append(os.Environ(), "HOME="+home)
	if out, err := bad.CombinedOutput(); err == nil {
		t.Fatalf("verify with the wrong key succeeded:\n%s", out)
	}
}
