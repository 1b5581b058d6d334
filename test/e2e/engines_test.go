package e2e

// Container engines against a server with authentication on: docker
// (dockerd), podman and containerd's ctr. Each engine runs as root with its
// state in the test's temporary directory; the test starts the daemons it
// needs and stops them. Images are built locally (no pulls from the
// internet): docker and podman import a layer tarball, ctr imports an OCI
// archive written by ociArchive.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/testserver"
)

// needRoot skips (fails under CI) a test whose daemon needs root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test starts a container daemon and must run as root under CI")
	}
	t.Skip("needs root to start the container daemon")
}

// runWith executes a client with the given environment added and stdin,
// returning stdout; it fails the test when the client fails.
func runWith(t *testing.T, env []string, stdin, bin string, args ...string) string {
	t.Helper()
	return runIn(t, "", env, stdin, bin, args...)
}

// runIn is runWith in the working directory dir.
func runIn(t *testing.T, dir string, env []string, stdin, bin string, args ...string) string {
	t.Helper()
	out, errOut, err := execIn(dir, env, stdin, bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// failsWith runs a client and expects it to fail, returning its output.
func failsWith(t *testing.T, env []string, stdin, bin string, args ...string) string {
	t.Helper()
	out, errOut, err := execWith(env, stdin, bin, args...)
	if err == nil {
		t.Fatalf("%s %s succeeded, want a refusal:\n%s%s", filepath.Base(bin), strings.Join(args, " "), out, errOut)
	}
	return out + errOut
}

func execWith(env []string, stdin, bin string, args ...string) (string, string, error) {
	return execIn("", env, stdin, bin, args...)
}

func execIn(dir string, env []string, stdin, bin string, args ...string) (string, string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// startDaemon runs a daemon in its own process group, waits up to a minute
// for ready to report true, and stops the group (SIGTERM, then SIGKILL)
// when the test ends.
func startDaemon(t *testing.T, ready func() bool, bin string, args ...string) {
	t.Helper()
	var logs bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		// Children the daemon started itself (dockerd's containerd).
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	for deadline := time.Now().Add(time.Minute); !ready(); {
		select {
		case <-done:
			t.Fatalf("%s exited before it was ready:\n%s", filepath.Base(bin), logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after a minute", filepath.Base(bin))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shortTempDir is a temporary directory with a short path: daemons put unix
// sockets in it, whose paths are limited to 107 bytes.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cst-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// TestDocker: dockerd (started here) logs in with the admin password, pushes
// an imported image, pushes it to a second repository through a
// cross-repository blob mount, and pulls it back.
func TestDocker(t *testing.T) {
	docker := client(t, "docker")
	dockerd := client(t, "dockerd")
	needRoot(t)
	srv := testserver.Start(t, testserver.Options{Auth: true})
	h := srv.Host()
	dir, home, work := shortTempDir(t), t.TempDir(), t.TempDir()
	sock := filepath.Join(dir, "docker.sock")
	env := []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "DOCKER_HOST=unix://" + sock}
	// Loopback registries are insecure (plain HTTP) for docker by default.
	startDaemon(t, func() bool {
		_, _, err := execWith(env, "", docker, "version")
		return err == nil
	}, dockerd, "--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "--host", "unix://"+sock,
		"--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs")

	layer := layerTar(t, work, 2<<20)
	runWith(t, env, "", docker, "import", layer, h+"/dock/app:v1")
	if msg := failsWith(t, env, "", docker, "push", h+"/dock/app:v1"); !strings.Contains(strings.ToLower(msg), "unauthorized") && !strings.Contains(msg, "no basic auth credentials") {
		t.Fatalf("anonymous docker push: %s", msg)
	}
	if msg := failsWith(t, env, "wrong-password-123\n", docker, "login", "-u", "admin", "--password-stdin", h); !strings.Contains(strings.ToLower(msg), "unauthorized") {
		t.Fatalf("docker login with a wrong password: %s", msg)
	}
	runWith(t, env, srv.AdminPassword()+"\n", docker, "login", "-u", "admin", "--password-stdin", h)
	out := runWith(t, env, "", docker, "push", h+"/dock/app:v1")
	dig := pushedDigest(t, out)
	crane := client(t, "crane")
	if got := strings.TrimSpace(runWith(t, env, "", crane, "digest", "--insecure", h+"/dock/app:v1")); got != dig {
		t.Fatalf("registry has %s, docker pushed %s", got, dig)
	}

	// The same image in another repository: docker mounts the layer from
	// dock/app instead of uploading it again.
	runWith(t, env, "", docker, "tag", h+"/dock/app:v1", h+"/dock/other:v1")
	out = runWith(t, env, "", docker, "push", h+"/dock/other:v1")
	if !strings.Contains(out, "Mounted from dock/app") {
		t.Fatalf("docker push to a second repository did not mount the layer:\n%s", out)
	}
	if d := pushedDigest(t, out); d != dig {
		t.Fatalf("second push digest %s, want %s", d, dig)
	}

	// Pull back into an empty image store.
	runWith(t, env, "", docker, "rmi", h+"/dock/app:v1", h+"/dock/other:v1")
	runWith(t, env, "", docker, "pull", h+"/dock/other:v1")
	repoDigests := runWith(t, env, "", docker, "image", "inspect", "--format", "{{json .RepoDigests}}", h+"/dock/other:v1")
	if !strings.Contains(repoDigests, h+"/dock/other@"+dig) {
		t.Fatalf("pulled image digests %s, want %s", repoDigests, dig)
	}
	runWith(t, env, "", docker, "logout", h)
	if msg := failsWith(t, env, "", docker, "pull", h+"/dock/app:v1"); !strings.Contains(strings.ToLower(msg), "unauthorized") && !strings.Contains(msg, "denied") {
		t.Fatalf("anonymous docker pull: %s", msg)
	}
}

// pushedDigest finds "digest: sha256:..." in docker or podman push output.
func pushedDigest(t *testing.T, out string) string {
	t.Helper()
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "sha256:") && len(f) == len("sha256:")+64 {
			return f
		}
	}
	t.Fatalf("no digest in push output:\n%s", out)
	return ""
}

// TestPodman: podman (no daemon) imports an image, pushes and pulls it with
// the admin's login, pushes a manifest list (an index) of it, and finds the
// repository with podman search (the catalog).
func TestPodman(t *testing.T) {
	podman := client(t, "podman")
	crane := client(t, "crane")
	needRoot(t)
	srv := testserver.Start(t, testserver.Options{Auth: true})
	h := srv.Host()
	dir, home, work := shortTempDir(t), t.TempDir(), t.TempDir()
	// A private auth file (as root podman's default is shared in /run).
	authFile := filepath.Join(home, "auth.json")
	if err := os.WriteFile(authFile, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home, "REGISTRY_AUTH_FILE=" + authFile, "DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	pm := func(args ...string) []string {
		return append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
			"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
			"--tmpdir", filepath.Join(dir, "tmp")}, args...)
	}
	layer := layerTar(t, work, 1<<20)
	runWith(t, env, "", podman, pm("import", layer, h+"/pod/app:v1")...)
	if msg := failsWith(t, env, "", podman, pm("push", "--tls-verify=false", h+"/pod/app:v1")...); !strings.Contains(strings.ToLower(msg), "unauthorized") && !strings.Contains(msg, "401") {
		t.Fatalf("anonymous podman push: %s", msg)
	}
	runWith(t, env, srv.AdminPassword()+"\n", podman, pm("login", "--tls-verify=false", "-u", "admin", "--password-stdin", h)...)
	digFile := filepath.Join(work, "digest")
	runWith(t, env, "", podman, pm("push", "--tls-verify=false", "--digestfile", digFile, h+"/pod/app:v1")...)
	b, err := os.ReadFile(digFile)
	if err != nil {
		t.Fatal(err)
	}
	dig := strings.TrimSpace(string(b))
	craneEnv := []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	runWith(t, craneEnv, "", crane, "auth", "login", h, "-u", "admin", "-p", srv.AdminPassword())
	if got := strings.TrimSpace(runWith(t, craneEnv, "", crane, "digest", "--insecure", h+"/pod/app:v1")); got != dig {
		t.Fatalf("registry has %s, podman pushed %s", got, dig)
	}

	runWith(t, env, "", podman, pm("rmi", h+"/pod/app:v1")...)
	runWith(t, env, "", podman, pm("pull", "--tls-verify=false", h+"/pod/app:v1")...)
	if got := runWith(t, env, "", podman, pm("image", "inspect", "--format", "{{.Digest}}", h+"/pod/app:v1")...); strings.TrimSpace(got) != dig {
		t.Fatalf("pulled image digest %q, want %s", got, dig)
	}

	// An index (podman's manifest list) naming the image, pushed with it.
	runWith(t, env, "", podman, pm("manifest", "create", h+"/pod/multi:v1")...)
	runWith(t, env, "", podman, pm("manifest", "add", "--tls-verify=false", h+"/pod/multi:v1", "docker://"+h+"/pod/app:v1")...)
	runWith(t, env, "", podman, pm("manifest", "push", "--all", "--tls-verify=false", h+"/pod/multi:v1", "docker://"+h+"/pod/multi:v1")...)
	var idx struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	raw := runWith(t, craneEnv, "", crane, "manifest", "--insecure", h+"/pod/multi:v1")
	if err := json.Unmarshal([]byte(raw), &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("pushed index: %v %s", err, raw)
	}
	// The image in the index is served from pod/multi too.
	runWith(t, craneEnv, "", crane, "manifest", "--insecure", h+"/pod/multi@"+idx.Manifests[0].Digest)

	// podman search lists repositories through the catalog.
	out := runWith(t, env, "", podman, pm("search", "--tls-verify=false", "--format", "{{.Name}}", h+"/pod")...)
	if !strings.Contains(out, h+"/pod/app") || !strings.Contains(out, h+"/pod/multi") {
		t.Fatalf("podman search %s/pod:\n%s", h, out)
	}
}

// TestCtr: containerd (started here) imports a locally written OCI archive;
// ctr pushes it with --user, and pulls it back after removing it.
func TestCtr(t *testing.T) {
	ctr := client(t, "ctr")
	containerd := client(t, "containerd")
	needRoot(t)
	srv := testserver.Start(t, testserver.Options{Auth: true})
	h := srv.Host()
	dir, work := shortTempDir(t), t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	cfg := filepath.Join(dir, "config.toml")
	conf := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c := func(args ...string) []string { return append([]string{"--address", sock}, args...) }
	startDaemon(t, func() bool {
		_, _, err := execWith(nil, "", ctr, c("version")...)
		return err == nil
	}, containerd, "--config", cfg)

	ref := h + "/ctr/app:v1"
	archive, dig := ociArchive(t, work, ref)
	runWith(t, nil, "", ctr, c("images", "import", archive)...)
	if out := runWith(t, nil, "", ctr, c("images", "ls", "-q")...); !strings.Contains(out, ref) {
		t.Fatalf("imported images: %s", out)
	}
	if msg := failsWith(t, nil, "", ctr, c("images", "push", "--plain-http", ref)...); !strings.Contains(strings.ToLower(msg), "unauthorized") && !strings.Contains(msg, "401") {
		t.Fatalf("anonymous ctr push: %s", msg)
	}
	user := "admin:" + srv.AdminPassword()
	runWith(t, nil, "", ctr, c("images", "push", "--plain-http", "--user", user, ref)...)
	crane := client(t, "crane")
	home := t.TempDir()
	craneEnv := []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	runWith(t, craneEnv, "", crane, "auth", "login", h, "-u", "admin", "-p", srv.AdminPassword())
	if got := strings.TrimSpace(runWith(t, craneEnv, "", crane, "digest", "--insecure", ref)); got != dig {
		t.Fatalf("registry has %s, ctr pushed %s", got, dig)
	}

	runWith(t, nil, "", ctr, c("images", "rm", "--sync", ref)...)
	runWith(t, nil, "", ctr, c("content", "prune", "references")...)
	runWith(t, nil, "", ctr, c("images", "pull", "--plain-http", "--user", user, "--snapshotter", "native", ref)...)
	out := runWith(t, nil, "", ctr, c("images", "ls")...)
	if !strings.Contains(out, ref) || !strings.Contains(out, dig) {
		t.Fatalf("pulled images:\n%s\nwant %s at %s", out, ref, dig)
	}
}

// ociArchive writes an OCI image archive (the layout in a tar) of a one-layer
// image named ref, as 'ctr images import' reads it, and returns its path and
// the manifest digest.
func ociArchive(t *testing.T, dir, ref string) (string, string) {
	t.Helper()
	layer, err := os.ReadFile(layerTar(t, t.TempDir(), 256<<10))
	if err != nil {
		t.Fatal(err)
	}
	digest := func(b []byte) string {
		s := sha256.Sum256(b)
		return "sha256:" + hex.EncodeToString(s[:])
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	desc := func(mediaType string, b []byte) map[string]any {
		return map[string]any{"mediaType": mediaType, "digest": digest(b), "size": len(b)}
	}
	config := mustJSON(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest(layer)}},
	})
	manifest := mustJSON(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc("application/vnd.oci.image.config.v1+json", config),
		"layers": []any{desc("application/vnd.oci.image.layer.v1.tar", layer)},
	})
	md := desc("application/vnd.oci.image.manifest.v1+json", manifest)
	md["annotations"] = map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": "v1"}
	index := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []any{md}})

	p := filepath.Join(dir, "image.oci.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add("index.json", index)
	for _, b := range [][]byte{config, manifest, layer} {
		add("blobs/sha256/"+strings.TrimPrefix(digest(b), "sha256:"), b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p, digest(manifest)
}
