package artifact

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// newRegistry starts an in-process registry on loopback, optionally wrapped
// by wrap, and returns its host:port.
func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // hermetic: no credentials
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// writeFile creates dir/name with content and returns its path.
func writeFile(t *testing.T, dir, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPushPullRoundTrip(t *testing.T) {
	host := newRegistry(t, nil)
	ctx := context.Background()
	src := t.TempDir()
	contents := map[string][]byte{
		"hello.txt": []byte("hello, custody\n"),
		"big.bin":   randomBytes(t, 5<<20),
		"empty":     {},
	}
	files := []string{
		writeFile(t, src, "hello.txt", contents["hello.txt"]),
		writeFile(t, src, "big.bin", contents["big.bin"]),
		writeFile(t, src, "empty", contents["empty"]),
	}
	ref := host + "/team/files:v1"

	var last Progress
	calls := 0
	res, err := Push(ctx, ref, files, PushOptions{
		Annotations: map[string]string{"org.example.note": "round trip"},
		Options: Options{Progress: func(p Progress) {
			calls++
			if p.Complete < last.Complete {
				t.Errorf("progress went backwards: %+v after %+v", p, last)
			}
			last = p
		}},
	})
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if res.Reference != ref || !strings.HasPrefix(res.Digest, "sha256:") || res.MediaType != string(types.OCIManifestSchema1) {
		t.Errorf("unexpected result %+v", res)
	}
	if len(res.Files) != 3 || res.Size != int64(len(contents["hello.txt"])+len(contents["big.bin"])) {
		t.Errorf("unexpected files %+v (size %d)", res.Files, res.Size)
	}
	if calls == 0 || last.Complete != last.Total || last.Total < res.Size {
		t.Errorf("progress: %d calls, last %+v", calls, last)
	}

	// The manifest is an OCI 1.1 artifact that oras understands.
	r, _ := name.ParseReference(ref)
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != res.Digest {
		t.Errorf("registry digest %s, Push reported %s", desc.Digest, res.Digest)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != DefaultArtifactType || m.Config.MediaType != EmptyMediaType ||
		m.Config.Digest.String() != "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" || m.Config.Size != 2 {
		t.Errorf("unexpected manifest %s", desc.Manifest)
	}
	if m.Annotations["org.example.note"] != "round trip" {
		t.Errorf("manifest annotations %v", m.Annotations)
	}
	for i, l := range m.Layers {
		want := filepath.Base(files[i])
		if l.Annotations[AnnotationTitle] != want || l.MediaType != DefaultFileMediaType {
			t.Errorf("layer %d: %+v, want title %s", i, l, want)
		}
	}

	// Pull it back by tag and by digest.
	for _, pref := range []string{ref, host + "/team/files@" + res.Digest} {
		dir := filepath.Join(t.TempDir(), "out", "nested") // created by Pull
		pres, err := Pull(ctx, pref, dir, PullOptions{})
		if err != nil {
			t.Fatalf("Pull %s: %v", pref, err)
		}
		if pres.Digest != res.Digest || len(pres.Files) != 3 || pres.ArtifactType != DefaultArtifactType {
			t.Errorf("unexpected pull result %+v", pres)
		}
		for name, want := range contents {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: content differs after round trip", name)
			}
		}
		assertOnly(t, dir, "big.bin", "empty", "hello.txt")
	}
}

func TestPushOptions(t *testing.T) {
	host := newRegistry(t, nil)
	p := writeFile(t, t.TempDir(), "sbom.json", []byte(`{}`))
	res, err := Push(context.Background(), host+"/x:y", []string{p}, PushOptions{
		ArtifactType: "application/vnd.example.sbom.v1",
		MediaType:    "application/json",
	})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(host + "/x@" + res.Digest)
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != "application/vnd.example.sbom.v1" || m.Layers[0].MediaType != "application/json" {
		t.Errorf("manifest %+v", m)
	}
}

// pushImage pushes a manifest with one layer per entry of titles (nil means
// no title annotation) and returns the reference.
func pushImage(t *testing.T, ref string, layers map[string][]byte, titles map[string]*string) name.Reference {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	for k, content := range layers {
		add := mutate.Addendum{Layer: static.NewLayer(content, DefaultFileMediaType)}
		if title := titles[k]; title != nil {
			add.Annotations = map[string]string{AnnotationTitle: *title}
		}
		var err error
		if img, err = mutate.Append(img, add); err != nil {
			t.Fatal(err)
		}
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return r
}

func ptr(s string) *string { return &s }

func TestPullRefusesHostileTitles(t *testing.T) {
	host := newRegistry(t, nil)
	for _, title := range []string{"../escape", "../../etc/passwd", "/tmp/abs", "a/b", `a\b`, "..", ".", "", "evil\n"} {
		t.Run(title, func(t *testing.T) {
			ref := pushImage(t, host+"/hostile:latest",
				map[string][]byte{"good": []byte("innocent"), "bad": []byte("payload")},
				map[string]*string{"good": ptr("innocent.txt"), "bad": ptr(title)})
			parent := t.TempDir()
			dir := filepath.Join(parent, "out")
			_, err := Pull(context.Background(), ref.String(), dir, PullOptions{})
			if err == nil || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("Pull with title %q: err = %v, want a refusal", title, err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("destination directory was created: %v", err)
			}
			assertOnly(t, parent)
		})
	}
}

func TestPullRefusesDuplicateTitles(t *testing.T) {
	host := newRegistry(t, nil)
	ref := pushImage(t, host+"/dup:latest",
		map[string][]byte{"a": []byte("one"), "b": []byte("two")},
		map[string]*string{"a": ptr("same"), "b": ptr("same")})
	dir := t.TempDir()
	if _, err := Pull(context.Background(), ref.String(), dir, PullOptions{}); err == nil || !strings.Contains(err.Error(), `two layers are named "same"`) {
		t.Fatalf("err = %v", err)
	}
	assertOnly(t, dir)
}

func TestPullWithoutTitleUsesDigest(t *testing.T) {
	host := newRegistry(t, nil)
	content := []byte("no title here")
	ref := pushImage(t, host+"/untitled:latest", map[string][]byte{"a": content}, nil)
	dir := t.TempDir()
	res, err := Pull(context.Background(), ref.String(), dir, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hex := strings.TrimPrefix(res.Files[0].Digest, "sha256:")
	if res.Files[0].Name != hex {
		t.Errorf("name %q, want digest hex %q", res.Files[0].Name, hex)
	}
	got, err := os.ReadFile(filepath.Join(dir, hex))
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("content %q, %v", got, err)
	}
}

// corruptBlobs flips the first byte of every blob the registry serves.
func corruptBlobs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			w = &flipWriter{ResponseWriter: w}
		}
		next.ServeHTTP(w, r)
	})
}

type flipWriter struct {
	http.ResponseWriter
	flipped bool
}

func (f *flipWriter) Write(b []byte) (int, error) {
	if !f.flipped && len(b) > 0 {
		f.flipped = true
		c := bytes.Clone(b)
		c[0] ^= 0xff
		return f.ResponseWriter.Write(c)
	}
	return f.ResponseWriter.Write(b)
}

func TestPullDetectsCorruptContent(t *testing.T) {
	host := newRegistry(t, corruptBlobs)
	src := t.TempDir()
	files := []string{writeFile(t, src, "data.bin", randomBytes(t, 100<<10))}
	ref := host + "/corrupt:v1"
	if _, err := Push(context.Background(), ref, files, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err := Pull(context.Background(), ref, dir, PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "verification failed") {
		t.Fatalf("Pull of corrupted content: err = %v, want a verification failure", err)
	}
	assertOnly(t, dir) // neither the file nor a temporary file is left behind
}

func TestPullDetectsTruncatedContent(t *testing.T) {
	truncate := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				body := rec.Body.Bytes()
				w.WriteHeader(rec.Code)
				w.Write(body[:len(body)/2])
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	host := newRegistry(t, truncate)
	files := []string{writeFile(t, t.TempDir(), "data.bin", randomBytes(t, 64<<10))}
	ref := host + "/truncated:v1"
	if _, err := Push(context.Background(), ref, files, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Pull(context.Background(), ref, dir, PullOptions{}); err == nil || !strings.Contains(err.Error(), "stopped after 32768 of its 65536 bytes") {
		t.Fatalf("Pull of truncated content: err = %v", err)
	}
	assertOnly(t, dir)
}

func TestPushErrors(t *testing.T) {
	host := newRegistry(t, nil)
	src := t.TempDir()
	ok := writeFile(t, src, "ok.txt", []byte("ok"))
	other := t.TempDir()
	dup := writeFile(t, other, "ok.txt", []byte("other"))
	tests := []struct {
		name  string
		ref   string
		files []string
		want  string
	}{
		{"missing file", host + "/r:v1", []string{ok, filepath.Join(src, "nope.txt")}, "nope.txt does not exist"},
		{"directory", host + "/r:v1", []string{src}, "is not a regular file"},
		{"duplicate names", host + "/r:v1", []string{ok, dup}, "have the same file name"},
		{"no files", host + "/r:v1", nil, "no files given"},
		{"bad reference", "UPPER/Case::", []string{ok}, "invalid reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Push(context.Background(), tt.ref, tt.files, PushOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestUnreachableRegistry(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	srv := httptest.NewServer(http.NotFoundHandler())
	host := strings.TrimPrefix(srv.URL, "http://")
	srv.Close() // nothing listens there any more
	p := writeFile(t, t.TempDir(), "f", []byte("x"))
	_, err := Push(context.Background(), host+"/r:v1", []string{p}, PushOptions{})
	if err == nil || !strings.Contains(err.Error(), "cannot reach registry "+host) || !strings.Contains(err.Error(), "custody serve") {
		t.Errorf("Push: err = %v", err)
	}
	_, err = Pull(context.Background(), host+"/r:v1", t.TempDir(), PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "cannot reach registry "+host) {
		t.Errorf("Pull: err = %v", err)
	}
}

func TestPullNotFound(t *testing.T) {
	host := newRegistry(t, nil)
	_, err := Pull(context.Background(), host+"/missing:v1", t.TempDir(), PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "not found in registry") {
		t.Errorf("err = %v", err)
	}
}

func TestPullRejectsIndex(t *testing.T) {
	host := newRegistry(t, nil)
	r, _ := name.ParseReference(host + "/index:v1")
	if err := remote.WriteIndex(r, empty.Index); err != nil {
		t.Fatal(err)
	}
	_, err := Pull(context.Background(), r.String(), t.TempDir(), PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "image index") {
		t.Errorf("err = %v", err)
	}
}

func TestCheckTitle(t *testing.T) {
	for _, ok := range []string{"a", "report.pdf", "..hidden", "a..b", ".env", "name with spaces"} {
		if err := checkTitle(ok); err != nil {
			t.Errorf("checkTitle(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", `a\b`, "/abs", "x\x00y", "tab\there"} {
		if err := checkTitle(bad); err == nil {
			t.Errorf("checkTitle(%q) = nil, want an error", bad)
		}
	}
}

// assertOnly fails unless dir holds exactly the named entries.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}
