package generic_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/generic"
	"github.com/custody-dev/custody/internal/testserver"
)

// do sends a request with body (nil for none) and returns the response
// with its body read.
func do(t *testing.T, method, url string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// blobFiles lists the files of the blob store.
func blobFiles(t *testing.T, data string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(data, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

func TestPutGetHeadRangeList(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	content := bytes.Repeat([]byte("0123456789"), 100_000)
	url := srv.URL + "/generic/tools/app/1.0.0/app-linux-amd64"

	resp, body := do(t, http.MethodPut, url, bytes.NewReader(content), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	var put generic.PutResult
	if err := json.Unmarshal(body, &put); err != nil {
		t.Fatal(err)
	}
	if put.File.SHA256 != sha(content) || put.File.Size != int64(len(content)) {
		t.Fatalf("PUT result %+v", put)
	}

	// Chunked upload (no Content-Length) of a second version.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 10; i++ {
			_, _ = pw.Write([]byte("chunk\n"))
		}
		pw.Close()
	}()
	resp, body = do(t, http.MethodPut, srv.URL+"/generic/tools/app/1.0.1/notes.txt", pr, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("chunked PUT: %s %s", resp.Status, body)
	}

	resp, body = do(t, http.MethodGet, url, nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Fatalf("GET: %s, %d bytes", resp.Status, len(body))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if d := resp.Header.Get("Docker-Content-Digest"); d != "sha256:"+sha(content) {
		t.Errorf("Docker-Content-Digest %q", d)
	}
	etag := resp.Header.Get("Etag")
	if etag != `"sha256:`+sha(content)+`"` {
		t.Errorf("ETag %q", etag)
	}

	resp, body = do(t, http.MethodHead, url, nil, nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(content)) {
		t.Fatalf("HEAD: %s, length %d", resp.Status, resp.ContentLength)
	}

	resp, body = do(t, http.MethodGet, url, nil, map[string]string{"Range": "bytes=10-29"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, content[10:30]) {
		t.Fatalf("Range: %s %q", resp.Status, body)
	}
	resp, _ = do(t, http.MethodGet, url, nil, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %s", resp.Status)
	}

	var names generic.NameList
	getJSON(t, srv.URL+"/generic/tools/", &names)
	if !slices.Equal(names.Names, []string{"app"}) {
		t.Fatalf("names %v", names.Names)
	}
	var versions generic.VersionList
	getJSON(t, srv.URL+"/generic/tools/app/", &versions)
	if len(versions.Versions) != 2 || versions.Versions[0].Version != "1.0.0" || versions.Versions[1].Version != "1.0.1" ||
		versions.Versions[0].Digest != put.Manifest || versions.Versions[0].Created.IsZero() {
		t.Fatalf("versions %+v", versions)
	}
	var files generic.FileList
	getJSON(t, srv.URL+"/generic/tools/app/1.0.0/", &files)
	if len(files.Files) != 1 || files.Files[0].Name != "app-linux-amd64" || files.Files[0].SHA256 != sha(content) ||
		files.Files[0].Size != int64(len(content)) {
		t.Fatalf("files %+v", files)
	}

	resp, _ = do(t, http.MethodGet, srv.URL+"/generic/tools/app/9.9.9/app-linux-amd64", nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing version: %s", resp.Status)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, body := do(t, http.MethodGet, url, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestChecksumMismatchStoresNothing(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	before := blobFiles(t, srv.Data)
	content := []byte("the real content\n")
	wrong := sha([]byte("something else"))
	b64 := func(b []byte) string { s := sha256.Sum256(b); return base64.StdEncoding.EncodeToString(s[:]) }

	for _, hdr := range []map[string]string{
		{"X-Checksum-Sha256": wrong},
		{"Digest": "sha-256=" + b64([]byte("something else"))},
	} {
		resp, body := do(t, http.MethodPut, srv.URL+"/generic/tools/app/1.0.0/f.bin", bytes.NewReader(content), hdr)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("mismatch %v: %s %s", hdr, resp.Status, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("Content-Type %q", ct)
		}
		var p struct {
			Type   string
			Status int
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Status != 400 || !strings.HasSuffix(p.Type, "checksum-mismatch") {
			t.Fatalf("problem %s (%v)", body, err)
		}
	}
	resp, _ := do(t, http.MethodGet, srv.URL+"/generic/tools/", nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("listing after refused PUTs: %s", resp.Status)
	}
	if after := blobFiles(t, srv.Data); !slices.Equal(before, after) {
		t.Fatalf("blob store changed: %v -> %v", before, after)
	}

	// The right checksum, in both forms, is accepted.
	resp, body := do(t, http.MethodPut, srv.URL+"/generic/tools/app/1.0.0/f.bin", bytes.NewReader(content),
		map[string]string{"X-Checksum-Sha256": sha(content), "Digest": "sha-256=" + b64(content)})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("matching checksum: %s %s", resp.Status, body)
	}
}

func TestVersionsAreImmutable(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	url := srv.URL + "/generic/tools/app/2.0.0/app.tar.gz"
	orig := []byte("original bytes")
	if resp, body := do(t, http.MethodPut, url, bytes.NewReader(orig), nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	resp, body := do(t, http.MethodPut, url, strings.NewReader("replacement"), nil)
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("overwrite: %s %s", resp.Status, body)
	}
	resp, body = do(t, http.MethodPut, url, strings.NewReader("replacement"), map[string]string{"X-Checksum-Sha256": sha([]byte("replacement"))})
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("overwrite with checksum: %s %s", resp.Status, body)
	}
	resp, body = do(t, http.MethodPut, srv.URL+"/generic/tools/app/2.0.0/other.txt", strings.NewReader("new file"), nil)
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("new file in a sealed version: %s %s", resp.Status, body)
	}
	resp, body = do(t, http.MethodPut, url, bytes.NewReader(orig), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("idempotent PUT: %s %s", resp.Status, body)
	}
	resp, body = do(t, http.MethodGet, url, nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, orig) {
		t.Fatalf("GET after refused overwrite: %s %q", resp.Status, body)
	}
	var files generic.FileList
	getJSON(t, srv.URL+"/generic/tools/app/2.0.0/", &files)
	if len(files.Files) != 1 {
		t.Fatalf("files %+v", files.Files)
	}
}

func TestHostilePaths(t *testing.T) {
	parent := t.TempDir()
	data := filepath.Join(parent, "data")
	srv := testserver.Start(t, testserver.Options{Data: data})
	listing := func() []string {
		var out []string
		_ = filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !strings.HasPrefix(p, filepath.Join(data, "meta.db")) {
				out = append(out, p)
			}
			return nil
		})
		return out
	}
	before := listing()
	for _, p := range []string{
		"/generic/tools/app/1.0.0/..",
		"/generic/tools/app/1.0.0/%2e%2e",
		"/generic/tools/app/1.0.0/%2E%2E%2Fescape",
		"/generic/tools/app/1.0.0/a%2f..%2f..%2fescape",
		"/generic/tools/app/../../../escape/1/f",
		"/generic/../escape/x/1/f",
		"/generic/tools/app/1.0.0/evil%00.txt",
		"/generic/tools/app/1.0.0/my%20file.txt",
		"/generic/tools/app/1.0.0/r%C3%A9sum%C3%A9.pdf",
		"/generic/tools/app/1.0.0/f%2Etxt",
		"/generic/tools/app/1.0.0/f%25",
		"/generic/tools/app%2D1/1.0.0/f",
		"/generic/tools/app/1.0.0/.hidden",
		"/generic/tools/app/1.0.0/a..b",
		"/generic/tools/app/../1.0.0/f",
		"/generic/tools/..app/1.0.0/f",
		"/generic/Tools/app/1.0.0/f",
		"/generic/tools/app/.1/f",
		"/generic/tools/app/1.0.0/" + strings.Repeat("x", 256),
		"/generic/tools//1.0.0/f",
		"/generic/tools/app/1.0.0/sub/f",
	} {
		resp, body := do(t, http.MethodPut, srv.URL+p, strings.NewReader("payload"), nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("PUT %s: %s %s", p, resp.Status, body)
		}
	}
	if after := listing(); !slices.Equal(before, after) {
		t.Fatalf("files appeared: before %v\nafter %v", before, after)
	}
	if _, err := os.Stat(filepath.Join(parent, "escape")); err == nil {
		t.Fatal("escape exists")
	}
}

func TestPullAsOCIArtifact(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	content := []byte("#!/bin/sh\necho hi\n")
	resp, body := do(t, http.MethodPut, srv.URL+"/generic/tools/cli/3.1.4/install.sh", bytes.NewReader(content),
		map[string]string{"X-Custody-Source": "https://git.example.com/tools/cli"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	ref, err := name.ParseReference(srv.Host()+"/tools/cli:3.1.4", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("remote.Image: %v", err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != generic.ArtifactType || m.Config.MediaType != "application/vnd.oci.empty.v1+json" {
		t.Fatalf("manifest %+v", m)
	}
	if m.Annotations[builds.AnnotationSource] != "https://git.example.com/tools/cli" || m.Annotations[builds.AnnotationVersion] != "3.1.4" {
		t.Fatalf("annotations %v", m.Annotations)
	}
	if len(m.Layers) != 1 || m.Layers[0].Annotations["org.opencontainers.image.title"] != "install.sh" {
		t.Fatalf("layers %+v", m.Layers)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("layer %q, %v", got, err)
	}
}

func TestBuildMetadataQueries(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	const rev = "4f2c9e1d0b7a"

	// An OCI push with build annotations.
	base, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.Annotations(base, map[string]string{
		builds.AnnotationRevision:    rev,
		builds.AnnotationVersion:     "7.0.0",
		builds.AnnotationBuildNumber: "812",
	}).(v1.Image)
	ociRef, _ := name.ParseReference(srv.Host()+"/team/service:7.0.0", name.Insecure)
	if err := remote.Write(ociRef, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	ociDigest, _ := img.Digest()

	// A generic upload from the same commit.
	resp, body := do(t, http.MethodPut, srv.URL+"/generic/tools/service-cli/7.0.0/cli.tar.gz", strings.NewReader("cli"),
		map[string]string{
			"X-Custody-Revision":     rev,
			"X-Custody-Source":       "https://git.example.com/team/service",
			"X-Custody-Created":      "2026-01-02T03:04:05Z",
			"X-Custody-Build-Number": "812",
			"X-Custody-Pipeline-Run": "https://ci.example.com/runs/99",
		})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	var put generic.PutResult
	_ = json.Unmarshal(body, &put)

	var bl builds.BuildList
	getJSON(t, srv.URL+"/api/v1/builds?revision="+rev, &bl)
	if len(bl.Builds) != 2 {
		t.Fatalf("builds %+v", bl.Builds)
	}
	byRepo := map[string]builds.Build{}
	for _, b := range bl.Builds {
		byRepo[b.Repo] = b
	}
	if b := byRepo["team/service"]; b.Digest.String() != ociDigest.String() || !slices.Equal(b.Tags, []string{"7.0.0"}) || b.BuildNumber != "812" {
		t.Fatalf("OCI build %+v", b)
	}
	if b := byRepo["tools/service-cli"]; b.Digest != put.Manifest || b.PipelineRun != "https://ci.example.com/runs/99" ||
		b.Created != "2026-01-02T03:04:05Z" || b.Source != "https://git.example.com/team/service" || b.Version != "7.0.0" {
		t.Fatalf("generic build %+v", b)
	}
	getJSON(t, srv.URL+"/api/v1/builds?revision=nope", &bl)
	if len(bl.Builds) != 0 {
		t.Fatalf("unknown revision: %+v", bl.Builds)
	}

	var vl builds.VersionList
	getJSON(t, srv.URL+"/api/v1/versions/team/service", &vl)
	if len(vl.Versions) != 1 || vl.Versions[0].Version != "7.0.0" || vl.Versions[0].Revision != rev {
		t.Fatalf("versions %+v", vl)
	}

	// Move latest three times.
	latest, _ := name.ParseReference(srv.Host()+"/team/service:latest", name.Insecure)
	var pushed []string
	for i := 0; i < 3; i++ {
		im, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(latest, im); err != nil {
			t.Fatalf("push latest: %v", err)
		}
		d, _ := im.Digest()
		pushed = append(pushed, d.String())
	}
	var th builds.TagHistory
	getJSON(t, srv.URL+"/api/v1/tags/team/service/latest/history", &th)
	if len(th.History) != 3 {
		t.Fatalf("history %+v", th.History)
	}
	for i, e := range th.History {
		if e.Digest.String() != pushed[i] || (i > 0 && e.At.Before(th.History[i-1].At)) {
			t.Fatalf("history[%d] = %+v, want %s", i, e, pushed[i])
		}
	}
	if resp, _ := do(t, http.MethodGet, srv.URL+"/api/v1/tags/team/service/never/history", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown tag history: %s", resp.Status)
	}

	// The CLI reads the same API.
	out, err := exec.Command(testserver.Binary(t), "builds", "--server", srv.URL, "--revision", rev, "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("custody builds: %v\n%s", err, out)
	}
	if err := json.Unmarshal(out, &bl); err != nil || len(bl.Builds) != 2 {
		t.Fatalf("custody builds -o json: %s (%v)", out, err)
	}
	out, err = exec.Command(testserver.Binary(t), "tag", "history", "--server", srv.URL, "team/service:latest").CombinedOutput()
	if err != nil || strings.Count(string(out), "sha256:") != 3 {
		t.Fatalf("custody tag history: %v\n%s", err, out)
	}
	out, err = exec.Command(testserver.Binary(t), "versions", "--server", srv.URL, "tools/service-cli").CombinedOutput()
	if err != nil || !strings.Contains(string(out), put.Manifest.String()) {
		t.Fatalf("custody versions: %v\n%s", err, out)
	}
}

// TestAnonymousAskedToSignInForTheAction: with authentication on (the
// default), an anonymous upload is refused with 401 telling the client to
// sign in to push (not to pull, the first permission an upload needs), a
// download to pull; nothing is stored; the same curl with credentials
// works (docs/generic.md).
func TestAnonymousAskedToSignInForTheAction(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Auth: true})
	url := srv.URL + "/generic/tools/app/1.0.0/f.bin"
	before := blobFiles(t, srv.Data)
	resp, body := do(t, http.MethodPut, url, strings.NewReader("payload"), nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "sign in to push to tools/app") {
		t.Fatalf("anonymous PUT: %s %s", resp.Status, body)
	}
	if after := blobFiles(t, srv.Data); !slices.Equal(before, after) {
		t.Fatalf("a refused upload stored blobs: %v -> %v", before, after)
	}
	resp, body = do(t, http.MethodGet, url, nil, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "sign in to pull tools/app") {
		t.Fatalf("anonymous GET: %s %s", resp.Status, body)
	}
	resp, body = do(t, http.MethodDelete, srv.URL+"/v2/tools/app/manifests/1.0.0", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "sign in to delete in tools/app") {
		t.Fatalf("anonymous DELETE: %s %s", resp.Status, body)
	}
	admin := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+srv.AdminPassword()))}
	resp, body = do(t, http.MethodGet, url, nil, admin)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET after the refused PUT: %s %s", resp.Status, body)
	}
	if resp, body = do(t, http.MethodPut, url, strings.NewReader("payload"), admin); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT with credentials: %s %s", resp.Status, body)
	}
}
