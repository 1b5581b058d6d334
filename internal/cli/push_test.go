package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// startRegistry serves an in-process OCI registry on loopback and returns
// its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // hermetic: no credentials
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// run executes the custody command line and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

// makeFiles writes the given files into a new directory and returns their paths.
func makeFiles(t *testing.T, files map[string][]byte) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// pushJSON is the -o json output of push.
type pushJSON struct {
	Reference    string `json:"reference"`
	Digest       string `json:"digest"`
	MediaType    string `json:"mediaType"`
	ArtifactType string `json:"artifactType"`
	Files        []struct {
		Name   string `json:"name"`
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"files"`
}

func TestPushText(t *testing.T) {
	host := startRegistry(t)
	paths := makeFiles(t, map[string][]byte{"a.txt": []byte("aaa"), "b.txt": []byte("bb")})
	ref := host + "/cli/text:v1"
	code, out, errOut := run(t, append(append([]string{"push"}, paths...), ref)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := regexp.MustCompile(`^pushed ` + regexp.QuoteMeta(ref) + `@sha256:[0-9a-f]{64} \(2 files, 5 bytes\)\n$`)
	if !want.MatchString(out) {
		t.Errorf("output %q does not match %s", out, want)
	}
	if errOut != "" {
		t.Errorf("unexpected stderr (no progress bar off a terminal): %q", errOut)
	}
}

func TestPushJSONAndFlags(t *testing.T) {
	host := startRegistry(t)
	paths := makeFiles(t, map[string][]byte{"sbom.json": []byte(`{"a":1}`)})
	ref := host + "/cli/json:v1"
	code, out, errOut := run(t, "push", "-o", "json",
		"--artifact-type", "application/vnd.example.sbom.v1",
		"--media-type", "application/json",
		"--annotation", "org.example.a=1", "-a", "org.example.b=x=y",
		paths[0], ref)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res pushJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if res.Reference != ref || !strings.HasPrefix(res.Digest, "sha256:") ||
		res.MediaType != "application/vnd.oci.image.manifest.v1+json" || res.ArtifactType != "application/vnd.example.sbom.v1" {
		t.Errorf("unexpected result %+v", res)
	}
	if len(res.Files) != 1 || res.Files[0].Name != "sbom.json" || res.Files[0].Size != 7 {
		t.Errorf("unexpected files %+v", res.Files)
	}
}

func TestPushErrors(t *testing.T) {
	host := startRegistry(t)
	paths := makeFiles(t, map[string][]byte{"a.txt": []byte("a")})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{"push", filepath.Join(t.TempDir(), "missing.bin"), host + "/r:v1"}, "missing.bin does not exist"},
		{"too few args", []string{"push", host + "/r:v1"}, "requires at least 2 arg"},
		{"bad output", []string{"push", "-o", "yaml", paths[0], host + "/r:v1"}, `invalid --output "yaml"`},
		{"bad annotation", []string{"push", "--annotation", "novalue", paths[0], host + "/r:v1"}, `invalid --annotation "novalue"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want failure mentioning %q", code, errOut, tt.want)
			}
			if out != "" {
				t.Errorf("unexpected stdout %q", out)
			}
		})
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
