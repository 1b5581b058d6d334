package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/testserver"
)

// TestPullThrough: an OCI proxy feed in front of a second custody (the
// "upstream", holding an image signed with cosign, with an oras referrer,
// and a multi-manifest index) serves the image to crane, skopeo, cosign
// and oras with the upstream's digests, copies the signature and the
// referrer, keeps serving when the upstream is gone, refuses pushes into
// the feed, and refuses (storing nothing) a blob whose bytes do not match
// its digest.
func TestPullThrough(t *testing.T) {
	crane, cosign, skopeo, oras := client(t, "crane"), client(t, "cosign"), client(t, "skopeo"), client(t, "oras")
	home, work := t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "COSIGN_PASSWORD="}

	// The upstream registry: an image, its cosign signature, a referrer.
	up := testserver.Start(t, testserver.Options{})
	uh := up.Host()
	run(t, home, crane, "append", "--insecure", "-f", layerTar(t, work, 1<<20), "-t", uh+"/library/app:v1")
	dig := strings.TrimSpace(run(t, home, crane, "digest", "--insecure", uh+"/library/app:v1"))
	runIn(t, work, env, "", cosign, "generate-key-pair")
	key, pub := filepath.Join(work, "cosign.key"), filepath.Join(work, "cosign.pub")
	runWith(t, env, "", cosign, "sign", "--key", key, "--tlog-upload=false", "--allow-insecure-registry", "--yes", uh+"/library/app@"+dig)
	if err := os.WriteFile(filepath.Join(work, "sbom.txt"), []byte("an sbom"), 0o644); err != nil {
		t.Fatal(err)
	}
	runIn(t, work, env, "", oras, "attach", "--plain-http", "--artifact-type", "application/vnd.custody.test.sbom",
		uh+"/library/app@"+dig, "sbom.txt:text/plain")
	var m struct {
		Config struct{ Digest string }   `json:"config"`
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal([]byte(run(t, home, crane, "manifest", "--insecure", uh+"/library/app:v1")), &m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("upstream manifest: %v %+v", err, m)
	}
	layer := m.Layers[0].Digest
	idx, err := random.Index(512, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	idxRef, _ := name.ParseReference(uh+"/library/multi:v1", name.Insecure)
	if err := remote.WriteIndex(idxRef, idx); err != nil {
		t.Fatal(err)
	}
	idxDig, _ := idx.Digest()
	im, _ := idx.IndexManifest()

	// A front to the upstream that corrupts the image's layer.
	upURL, _ := url.Parse(up.URL)
	rp := httputil.NewSingleHostReverseProxy(upURL)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && strings.HasSuffix(resp.Request.URL.Path, "/blobs/"+layer) && resp.StatusCode == http.StatusOK {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0xff
			resp.Body = io.NopCloser(bytes.NewReader(b))
		}
		return nil
	}
	front := httptest.NewServer(rp)
	defer front.Close()

	conf := filepath.Join(work, "custody.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`feeds:
  - name: hub
    ecosystem: oci
    kind: proxy
    upstream: %s
  - name: bad
    ecosystem: oci
    kind: proxy
    upstream: %s
`, up.URL, front.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	px := testserver.Start(t, testserver.Options{Args: []string{"--config", conf}})
	ph := px.Host()
	tagsOf := func(repo string) string {
		t.Helper()
		resp, err := http.Get(px.URL + "/v2/" + repo + "/tags/list")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}

	// A corrupted blob: refused, nothing stored.
	msg := failsWith(t, env, "", crane, "pull", "--insecure", "--format", "oci", ph+"/bad/library/app:v1", filepath.Join(work, "bad"))
	if !strings.Contains(msg, "502") && !strings.Contains(msg, "upstream") {
		t.Fatalf("pull of a corrupted upstream image: %s", msg)
	}
	if got := tagsOf("bad/library/app"); strings.Contains(got, "v1") {
		t.Fatalf("corrupted image stored: tags %s", got)
	}

	// First pulls: the upstream's digests, fetched once and stored.
	if got := strings.TrimSpace(run(t, home, crane, "digest", "--insecure", ph+"/hub/library/app:v1")); got != dig {
		t.Fatalf("proxy digest %s, upstream %s", got, dig)
	}
	run(t, home, crane, "pull", "--insecure", "--format", "oci", ph+"/hub/library/app:v1", filepath.Join(work, "oci1"))
	run(t, home, skopeo, "copy", "--src-tls-verify=false", "docker://"+ph+"/hub/library/app:v1", "oci:"+filepath.Join(work, "sko")+":v1")
	if got := strings.TrimSpace(run(t, home, crane, "digest", "--insecure", ph+"/hub/library/multi:v1")); got != idxDig.String() {
		t.Fatalf("proxy index digest %s, upstream %s", got, idxDig)
	}
	// The signature came with the image: cosign verifies against the proxy.
	verify := func() {
		t.Helper()
		out := runWith(t, env, "", cosign, "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", ph+"/hub/library/app@"+dig)
		if !strings.Contains(out, dig) {
			t.Fatalf("cosign verify against the proxy:\n%s", out)
		}
	}
	verify()
	discover := func() string {
		t.Helper()
		return runWith(t, env, "", oras, "discover", "--plain-http", "--format", "json", ph+"/hub/library/app@"+dig)
	}
	if out := discover(); !strings.Contains(out, "application/vnd.custody.test.sbom") {
		t.Fatalf("referrers through the proxy:\n%s", out)
	}
	before := tagsOf("hub/library/app")
	sig := strings.Replace(dig, ":", "-", 1) + ".sig"
	if !strings.Contains(before, `"v1"`) || !strings.Contains(before, sig) {
		t.Fatalf("proxy tags %s, want v1 and %s", before, sig)
	}

	// Pushes into the feed are refused and change nothing.
	msg = failsWith(t, env, "", crane, "append", "--insecure", "-f", layerTar(t, t.TempDir(), 1024), "-t", ph+"/hub/library/app:v2")
	if !strings.Contains(msg, "DENIED") {
		t.Fatalf("push into a proxy feed: %s", msg)
	}
	msg = failsWith(t, env, "", crane, "delete", "--insecure", ph+"/hub/library/app@"+dig)
	if !strings.Contains(msg, "DENIED") {
		t.Fatalf("delete in a proxy feed: %s", msg)
	}
	if after := tagsOf("hub/library/app"); after != before {
		t.Fatalf("tags changed by refused writes: %s, was %s", after, before)
	}

	// Air-gapped: the upstream is gone; everything is served from storage.
	up.Kill()
	if got := strings.TrimSpace(run(t, home, crane, "digest", "--insecure", ph+"/hub/library/app:v1")); got != dig {
		t.Fatalf("warm proxy digest %s, want %s", got, dig)
	}
	run(t, home, crane, "pull", "--insecure", "--format", "oci", ph+"/hub/library/app:v1", filepath.Join(work, "oci2"))
	run(t, home, skopeo, "inspect", "--tls-verify=false", "docker://"+ph+"/hub/library/app:v1")
	verify()
	if out := discover(); !strings.Contains(out, "application/vnd.custody.test.sbom") {
		t.Fatalf("referrers with the upstream gone:\n%s", out)
	}
	for _, c := range im.Manifests {
		run(t, home, crane, "manifest", "--insecure", ph+"/hub/library/multi@"+c.Digest.String())
	}
	// What was never fetched is a clear error, and the corrupted image is
	// still not there.
	failsWith(t, env, "", crane, "digest", "--insecure", ph+"/hub/library/other:v1")
	if got := tagsOf("bad/library/app"); strings.Contains(got, "v1") {
		t.Fatalf("corrupted image stored: tags %s", got)
	}
	// Nor is its config blob, verified before the layer failed: the
	// failed fetch removed what it had stored (with the upstream gone, a
	// blob the repository lacks cannot be fetched now).
	resp, err := http.Head(px.URL + "/v2/bad/library/app/blobs/" + m.Config.Digest)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("config blob of the refused image is stored in its repository")
	}
}

// TestPullThroughDocker: docker pulls an upstream image through a proxy
// feed of a custody with authentication on, after docker login (the
// token flow); an anonymous pull is refused and fetches nothing.
func TestPullThroughDocker(t *testing.T) {
	docker, dockerd, crane := client(t, "docker"), client(t, "dockerd"), client(t, "crane")
	needRoot(t)
	up := testserver.Start(t, testserver.Options{})
	dir, home, work := shortTempDir(t), t.TempDir(), t.TempDir()
	run(t, home, crane, "append", "--insecure", "-f", layerTar(t, work, 1<<20), "-t", up.Host()+"/library/app:v1")
	dig := strings.TrimSpace(run(t, home, crane, "digest", "--insecure", up.Host()+"/library/app:v1"))
	conf := filepath.Join(work, "custody.yaml")
	if err := os.WriteFile(conf, []byte("feeds:\n  - name: hub\n    ecosystem: oci\n    kind: proxy\n    upstream: "+up.URL+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	px := testserver.Start(t, testserver.Options{Auth: true, Args: []string{"--config", conf}})
	h := px.Host()
	sock := filepath.Join(dir, "docker.sock")
	env := []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "DOCKER_HOST=unix://" + sock}
	startDaemon(t, func() bool {
		_, _, err := execWith(env, "", docker, "version")
		return err == nil
	}, dockerd, "--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "--host", "unix://"+sock,
		"--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs")

	ref := h + "/hub/library/app:v1"
	if msg := failsWith(t, env, "", docker, "pull", ref); !strings.Contains(strings.ToLower(msg), "unauthorized") && !strings.Contains(msg, "denied") {
		t.Fatalf("anonymous docker pull through the proxy: %s", msg)
	}
	if strings.Contains(px.Logs(), "pullthrough.fetch") {
		t.Fatalf("an anonymous pull caused a fetch:\n%s", px.Logs())
	}
	runWith(t, env, px.AdminPassword()+"\n", docker, "login", "-u", "admin", "--password-stdin", h)
	runWith(t, env, "", docker, "pull", ref)
	repoDigests := runWith(t, env, "", docker, "image", "inspect", "--format", "{{json .RepoDigests}}", ref)
	if !strings.Contains(repoDigests, h+"/hub/library/app@"+dig) {
		t.Fatalf("docker pulled %s, want the upstream's %s", repoDigests, dig)
	}
	// Pushing back into the feed is refused.
	runWith(t, env, "", docker, "tag", ref, h+"/hub/library/app:mine")
	if msg := failsWith(t, env, "", docker, "push", h+"/hub/library/app:mine"); !strings.Contains(strings.ToLower(msg), "denied") {
		t.Fatalf("docker push into the proxy feed: %s", msg)
	}
}
