package server_test

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/config"
)

// TestRefusedWritesChangeNothing: a write refused by policy (an
// environment tag set by hand, an artifact over the size cap) changes
// nothing a client can see: catalog, tag lists and repository blobs are as
// before, and whatever bytes the refused request left in the blob store
// are collected by the next garbage collection.
func TestRefusedWritesChangeNothing(t *testing.T) {
	a := newAuthServer(t, func(c *config.Config) {
		c.Projects = []config.Project{{Repositories: "apps/**", Environments: []config.Environment{{Name: "dev"}}}}
		c.Policies = []config.Policy{{Repository: "apps/strict", MaxArtifactSize: 100}}
		c.GC.Grace = config.Duration(time.Nanosecond)
	})
	admin := "admin:" + a.admin
	send := func(method, path string, body []byte, hdr ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, a.hs.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		user, pass, _ := strings.Cut(admin, ":")
		req.SetBasicAuth(user, pass)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	pushBlob := func(repo string, b []byte) digest.Digest {
		t.Helper()
		d := digest.FromBytes(b)
		if code, body := send("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b); code != http.StatusCreated {
			t.Fatalf("push blob: %d %s", code, body)
		}
		return d
	}
	const mt = "application/vnd.oci.image.manifest.v1+json"
	manifest := func(repo, seed string) []byte {
		cfg, layer := []byte(`{"seed":"`+seed+`"}`), []byte("layer "+seed)
		return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
			mt, pushBlob(repo, cfg), len(cfg), pushBlob(repo, layer), len(layer)))
	}
	// Something to compare against: one image in apps/img.
	if code, body := send("PUT", "/v2/apps/img/manifests/v1", manifest("apps/img", "1"), "Content-Type", mt); code != http.StatusCreated {
		t.Fatalf("push image: %d %s", code, body)
	}
	refusedManifest := manifest("apps/img", "2") // its blobs are pushed: a legitimate change
	file, big := []byte("a tool, set as an environment by hand"), bytes.Repeat([]byte("x"), 200)
	probes := []string{
		"/v2/_catalog",
		"/v2/apps/img/tags/list", "/v2/apps/web/tags/list", "/v2/apps/strict/tags/list",
		"/v2/apps/web/blobs/" + digest.FromBytes(file).String(),
		"/v2/apps/strict/blobs/" + digest.FromBytes(big).String(),
		"/v2/apps/img/manifests/" + digest.FromBytes(refusedManifest).String(),
		"/generic/apps/web/", "/generic/apps/strict/",
	}
	snapshot := func() string {
		var s strings.Builder
		for _, p := range probes {
			code, body := send("GET", p, nil)
			fmt.Fprintf(&s, "%s: %d %s\n", p, code, body)
		}
		return s.String()
	}
	before := snapshot()

	for _, tc := range []struct {
		what, method, path string
		body               []byte
		hdr                []string
	}{
		{"generic file as an environment", "PUT", "/generic/apps/web/dev/tool", file, nil},
		{"generic file over the size cap", "PUT", "/generic/apps/strict/1.0/big", big, nil},
		{"manifest tagged as an environment", "PUT", "/v2/apps/img/manifests/dev", refusedManifest, []string{"Content-Type", mt}},
	} {
		if code, body := send(tc.method, tc.path, tc.body, tc.hdr...); code != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", tc.what, code, body)
		}
		if after := snapshot(); after != before {
			t.Fatalf("%s changed what clients see:\nbefore:\n%s\nafter:\n%s", tc.what, before, after)
		}
	}

	if code, body := send("POST", "/api/v1/gc", nil); code != http.StatusOK {
		t.Fatalf("gc: %d %s", code, body)
	}
	gone := map[string]string{
		digest.FromBytes(file).Encoded():            "generic file",
		digest.FromBytes(big).Encoded():             "oversized file",
		digest.FromBytes(refusedManifest).Encoded(): "refused manifest",
	}
	err := filepath.WalkDir(filepath.Join(a.data, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if what, ok := gone[d.Name()]; ok && !d.IsDir() {
			t.Errorf("the bytes of the %s outlived garbage collection: %s", what, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := snapshot(); after != before {
		t.Fatalf("gc changed what clients see:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
