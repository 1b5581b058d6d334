package registry_test

import (
	"bytes"
	"crypto/rand"
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/custody-dev/custody/internal/testserver"
)

// This file walks the OCI distribution spec v1.1.1 with raw net/http
// against one real custody process: pull, push, content discovery and
// content management, over every manifest media type custody accepts.

const (
	mtOCIManifest    = ocispec.MediaTypeImageManifest
	mtOCIIndex       = ocispec.MediaTypeImageIndex
	mtOCIConfig      = ocispec.MediaTypeImageConfig
	mtOCILayer       = ocispec.MediaTypeImageLayerGzip
	mtEmpty          = ocispec.MediaTypeEmptyJSON
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerConfig   = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mtDockerForeign  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mtNonDistGzip    = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	emptyJSONDigest  = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
)

// specClient is a raw HTTP client for one custody process. It never follows
// redirects, so every status the server sends is seen as is.
type specClient struct {
	base string
	hc   *http.Client
}

func newSpecClient(srv *testserver.Server) *specClient {
	return &specClient{
		base: srv.URL,
		hc: &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// specReply is a response with its body read.
type specReply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r specReply) String() string {
	return fmt.Sprintf("%d %s", r.Status, specTrunc(r.Body))
}

func specTrunc(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// url resolves a path (or a Location, relative or absolute) against the server.
func (a *specClient) url(p string) string {
	if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") {
		return p
	}
	return a.base + p
}

// do sends one request. body nil sends no body; hdr is name, value pairs.
func (a *specClient) do(t testing.TB, method, path string, body []byte, hdr ...string) specReply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return a.doReader(t, method, path, rd, hdr...)
}

func (a *specClient) doReader(t testing.TB, method, path string, body io.Reader, hdr ...string) specReply {
	t.Helper()
	req, err := http.NewRequest(method, a.url(path), body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return specReply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// specErrorCode returns errors[0].code of a spec error body, or "".
func specErrorCode(b []byte) string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func specWantStatus(t testing.TB, what string, r specReply, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %s, want %d", what, r, status)
	}
}

// specWantError checks the status and errors[0].code of a refusal.
func specWantError(t testing.TB, what string, r specReply, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %s, want %d %s", what, r, status, code)
	}
	if code == "" {
		return
	}
	if got := specErrorCode(r.Body); got != code {
		t.Fatalf("%s: error code %q (body %s), want %q", what, got, specTrunc(r.Body), code)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: error Content-Type %q, want application/json", what, ct)
	}
}

func specWantHeader(t testing.TB, what string, r specReply, name, want string) {
	t.Helper()
	if got := r.Header.Get(name); got != want {
		t.Fatalf("%s: %s = %q, want %q", what, name, got, want)
	}
}

func specRandBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// specQuery adds query parameters (name, value pairs) to a path or URL.
func specQuery(t testing.TB, p string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(p)
	if err != nil {
		t.Fatalf("parse %q: %v", p, err)
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// specLocation returns the Location header, failing when it is absent.
func specLocation(t testing.TB, what string, r specReply) string {
	t.Helper()
	loc := r.Header.Get("Location")
	if loc == "" {
		t.Fatalf("%s: no Location header (%s)", what, r)
	}
	return loc
}

// pushBlob uploads data in one POST ?digest= request.
func (a *specClient) pushBlob(t testing.TB, repo string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	a.pushBlobAs(t, repo, d, data)
	return d
}

func (a *specClient) pushBlobAs(t testing.TB, repo string, d digest.Digest, data []byte) {
	t.Helper()
	r := a.do(t, "POST", specQuery(t, "/v2/"+repo+"/blobs/uploads/", "digest", d.String()), data,
		"Content-Type", "application/octet-stream")
	specWantStatus(t, "push blob", r, http.StatusCreated)
}

// startUpload opens an upload session and returns its location.
func (a *specClient) startUpload(t testing.TB, repo string) string {
	t.Helper()
	r := a.do(t, "POST", "/v2/"+repo+"/blobs/uploads/", nil)
	specWantStatus(t, "POST upload", r, http.StatusAccepted)
	return specLocation(t, "POST upload", r)
}

func (a *specClient) blobExists(t testing.TB, repo string, d digest.Digest) bool {
	t.Helper()
	r := a.do(t, "HEAD", "/v2/"+repo+"/blobs/"+d.String(), nil)
	switch r.Status {
	case http.StatusOK:
		return true
	case http.StatusNotFound:
		return false
	}
	t.Fatalf("HEAD blob %s in %s: %s", d, repo, r)
	return false
}

func (a *specClient) manifestExists(t testing.TB, repo, ref string) bool {
	t.Helper()
	r := a.do(t, "HEAD", "/v2/"+repo+"/manifests/"+ref, nil)
	switch r.Status {
	case http.StatusOK:
		return true
	case http.StatusNotFound:
		return false
	}
	t.Fatalf("HEAD manifest %s in %s: %s", ref, repo, r)
	return false
}

func (a *specClient) putManifest(t testing.TB, repo, ref, mediaType string, body []byte) specReply {
	t.Helper()
	var hdr []string
	if mediaType != "" {
		hdr = []string{"Content-Type", mediaType}
	}
	return a.do(t, "PUT", "/v2/"+repo+"/manifests/"+ref, body, hdr...)
}

// mustPutManifest PUTs a manifest and checks the 201 answer's headers.
func (a *specClient) mustPutManifest(t testing.TB, repo, ref, mediaType string, body []byte) digest.Digest {
	t.Helper()
	r := a.putManifest(t, repo, ref, mediaType, body)
	if r.Status != http.StatusCreated {
		t.Fatalf("PUT manifest %s:%s: %s", repo, ref, r)
	}
	var want digest.Digest
	if strings.Contains(ref, ":") {
		want = digest.Digest(strings.SplitN(ref, "?", 2)[0])
	} else {
		want = digest.FromBytes(body)
	}
	specWantHeader(t, "PUT manifest", r, "Docker-Content-Digest", want.String())
	specLocation(t, "PUT manifest", r)
	return want
}

func (a *specClient) tags(t testing.TB, repo, query string) ([]string, specReply) {
	t.Helper()
	r := a.do(t, "GET", "/v2/"+repo+"/tags/list"+query, nil)
	specWantStatus(t, "tags list", r, http.StatusOK)
	var body struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("tags list body %s: %v", r.Body, err)
	}
	if body.Name != repo {
		t.Fatalf("tags list name %q, want %q", body.Name, repo)
	}
	return body.Tags, r
}

func (a *specClient) catalog(t testing.TB, query string) ([]string, specReply) {
	t.Helper()
	r := a.do(t, "GET", "/v2/_catalog"+query, nil)
	specWantStatus(t, "catalog", r, http.StatusOK)
	var body struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("catalog body %s: %v", r.Body, err)
	}
	return body.Repositories, r
}

func (a *specClient) referrers(t testing.TB, repo string, d digest.Digest, query string) (ocispec.Index, specReply) {
	t.Helper()
	r := a.do(t, "GET", "/v2/"+repo+"/referrers/"+d.String()+query, nil)
	specWantStatus(t, "referrers", r, http.StatusOK)
	specWantHeader(t, "referrers", r, "Content-Type", mtOCIIndex)
	var idx ocispec.Index
	if err := json.Unmarshal(r.Body, &idx); err != nil {
		t.Fatalf("referrers body %s: %v", r.Body, err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != mtOCIIndex || idx.Manifests == nil {
		t.Fatalf("referrers body is not an image index with a manifests array: %s", r.Body)
	}
	return idx, r
}

// specFollowLinks pages through a listing by its Link headers and returns the
// concatenated entries and the number of requests made.
func specFollowLinks(t testing.TB, a *specClient, first string, entries func(specReply) []string) ([]string, int) {
	t.Helper()
	var all []string
	next := first
	pages := 0
	for next != "" {
		pages++
		if pages > 1000 {
			t.Fatal("pagination does not end")
		}
		r := a.do(t, "GET", next, nil)
		specWantStatus(t, "page "+next, r, http.StatusOK)
		all = append(all, entries(r)...)
		next = ""
		if l := r.Header.Get("Link"); l != "" {
			next = specNextLink(t, l)
		}
	}
	return all, pages
}

// specNextLink extracts the target of `<url>; rel="next"`.
func specNextLink(t testing.TB, l string) string {
	t.Helper()
	target, params, ok := strings.Cut(l, ";")
	target = strings.TrimSpace(target)
	if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") ||
		strings.ReplaceAll(strings.TrimSpace(params), " ", "") != `rel="next"` {
		t.Fatalf("Link header %q is not <url>; rel=\"next\"", l)
	}
	return strings.Trim(target, "<>")
}

// image is a pushed test image: its blobs and manifest.
type specImage struct {
	config   []byte
	layers   [][]byte
	manifest []byte
	digest   digest.Digest
	desc     ocispec.Descriptor
}

// buildImage uploads a config and n random layers to repo and returns an
// OCI image manifest for them (not pushed). mod may change the manifest.
func (a *specClient) buildImage(t testing.TB, repo string, n int, mod func(*ocispec.Manifest)) specImage {
	t.Helper()
	img := specImage{config: []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"nonce":%q}`, specRandBytes(t, 8)))}
	m := ocispec.Manifest{
		MediaType: mtOCIManifest,
		Config:    ocispec.Descriptor{MediaType: mtOCIConfig, Digest: a.pushBlob(t, repo, img.config), Size: int64(len(img.config))},
		Layers:    []ocispec.Descriptor{},
	}
	m.SchemaVersion = 2
	for range n {
		l := specRandBytes(t, 1000+n*37)
		img.layers = append(img.layers, l)
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mtOCILayer, Digest: a.pushBlob(t, repo, l), Size: int64(len(l))})
	}
	if mod != nil {
		mod(&m)
	}
	img.manifest = specJSON(t, m)
	img.digest = digest.FromBytes(img.manifest)
	img.desc = ocispec.Descriptor{MediaType: m.MediaType, Digest: img.digest, Size: int64(len(img.manifest))}
	return img
}

// pushImage builds an image and pushes its manifest under ref.
func (a *specClient) pushImage(t testing.TB, repo, ref string, n int, mod func(*ocispec.Manifest)) specImage {
	t.Helper()
	img := a.buildImage(t, repo, n, mod)
	if ref == "" {
		ref = img.digest.String()
	}
	a.mustPutManifest(t, repo, ref, img.desc.MediaType, img.manifest)
	return img
}

func specJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSpec walks the distribution spec against one custody process on the
// embedded store.
func TestSpec(t *testing.T) {
	runSpec(t, testserver.Start(t, testserver.Options{}))
}

// TestSpecPostgresS3 walks the same spec against custody on PostgreSQL
// and S3 (MinIO), the backends replicas share.
func TestSpecPostgresS3(t *testing.T) {
	store := testserver.NewReplicated(t, "spec")
	runSpec(t, testserver.Start(t, testserver.Options{Env: store.Env()}))
}

func runSpec(t *testing.T, srv *testserver.Server) {
	a := newSpecClient(srv)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", srv.Logs())
		}
	})

	t.Run("base", func(t *testing.T) {
		for _, p := range []string{"/v2/", "/v2"} {
			r := a.do(t, "GET", p, nil)
			specWantStatus(t, "GET "+p, r, http.StatusOK)
			specWantHeader(t, "GET "+p, r, "Docker-Distribution-API-Version", "registry/2.0")
			r = a.do(t, "HEAD", p, nil)
			specWantStatus(t, "HEAD "+p, r, http.StatusOK)
		}
	})

	t.Run("pull", func(t *testing.T) { specPull(t, a) })
	t.Run("push", func(t *testing.T) { specPush(t, a) })
	t.Run("discovery", func(t *testing.T) { specDiscovery(t, a) })
	t.Run("management", func(t *testing.T) { specManagement(t, a) })
	t.Run("mediatypes", func(t *testing.T) { specMediaTypes(t, a) })
	t.Run("sha512", func(t *testing.T) { specSHA512(t, a) })
	t.Run("nested", func(t *testing.T) { specNested(t, a) })
}

func specPull(t *testing.T, a *specClient) {
	const repo = "pull/app"
	img := a.pushImage(t, repo, "v1", 2, nil)
	size := strconv.Itoa(len(img.manifest))

	checkManifest := func(t *testing.T, method, ref string) {
		r := a.do(t, method, "/v2/"+repo+"/manifests/"+ref, nil, "Accept", mtOCIManifest+", "+mtOCIIndex)
		what := method + " manifest " + ref
		specWantStatus(t, what, r, http.StatusOK)
		specWantHeader(t, what, r, "Content-Type", mtOCIManifest)
		specWantHeader(t, what, r, "Docker-Content-Digest", img.digest.String())
		specWantHeader(t, what, r, "Content-Length", size)
		if method == "GET" && !bytes.Equal(r.Body, img.manifest) {
			t.Fatalf("%s: body differs from what was pushed", what)
		}
		if method == "HEAD" && len(r.Body) != 0 {
			t.Fatalf("%s: HEAD returned a body", what)
		}
	}
	t.Run("GET manifest by tag", func(t *testing.T) { checkManifest(t, "GET", "v1") })
	t.Run("HEAD manifest by tag", func(t *testing.T) { checkManifest(t, "HEAD", "v1") })
	t.Run("GET manifest by digest", func(t *testing.T) { checkManifest(t, "GET", img.digest.String()) })
	t.Run("HEAD manifest by digest", func(t *testing.T) { checkManifest(t, "HEAD", img.digest.String()) })

	t.Run("unknown manifest", func(t *testing.T) {
		specWantError(t, "GET unknown tag", a.do(t, "GET", "/v2/"+repo+"/manifests/nope", nil), 404, "MANIFEST_UNKNOWN")
		unknown := digest.FromString("unknown manifest").String()
		specWantError(t, "GET unknown digest", a.do(t, "GET", "/v2/"+repo+"/manifests/"+unknown, nil), 404, "MANIFEST_UNKNOWN")
		r := a.do(t, "HEAD", "/v2/"+repo+"/manifests/"+unknown, nil)
		specWantStatus(t, "HEAD unknown digest", r, 404)
		if len(r.Body) != 0 {
			t.Fatalf("HEAD returned a body: %q", r.Body)
		}
		// The manifest is scoped to its repository.
		specWantError(t, "GET from another repo", a.do(t, "GET", "/v2/pull/other/manifests/"+img.digest.String(), nil), 404, "MANIFEST_UNKNOWN")
	})

	t.Run("GET and HEAD blob", func(t *testing.T) {
		for _, b := range append([][]byte{img.config}, img.layers...) {
			d := digest.FromBytes(b)
			r := a.do(t, "GET", "/v2/"+repo+"/blobs/"+d.String(), nil)
			specWantStatus(t, "GET blob", r, http.StatusOK)
			if !bytes.Equal(r.Body, b) {
				t.Fatal("GET blob: body differs")
			}
			specWantHeader(t, "GET blob", r, "Docker-Content-Digest", d.String())
			specWantHeader(t, "GET blob", r, "Content-Length", strconv.Itoa(len(b)))
			r = a.do(t, "HEAD", "/v2/"+repo+"/blobs/"+d.String(), nil)
			specWantStatus(t, "HEAD blob", r, http.StatusOK)
			specWantHeader(t, "HEAD blob", r, "Content-Length", strconv.Itoa(len(b)))
			specWantHeader(t, "HEAD blob", r, "Docker-Content-Digest", d.String())
			if len(r.Body) != 0 {
				t.Fatal("HEAD blob returned a body")
			}
		}
	})

	t.Run("unknown blob", func(t *testing.T) {
		unknown := digest.FromString("no such blob").String()
		specWantError(t, "GET unknown blob", a.do(t, "GET", "/v2/"+repo+"/blobs/"+unknown, nil), 404, "BLOB_UNKNOWN")
		specWantStatus(t, "HEAD unknown blob", a.do(t, "HEAD", "/v2/"+repo+"/blobs/"+unknown, nil), 404)
		// A blob of another repository is not served through this one.
		d := digest.FromBytes(img.layers[0])
		specWantError(t, "GET blob via other repo", a.do(t, "GET", "/v2/pull/other/blobs/"+d.String(), nil), 404, "BLOB_UNKNOWN")
	})

	t.Run("range requests", func(t *testing.T) {
		b := img.layers[0]
		n := len(b)
		p := "/v2/" + repo + "/blobs/" + digest.FromBytes(b).String()
		r := a.do(t, "GET", p, nil, "Range", "bytes=2-5")
		specWantStatus(t, "range 2-5", r, http.StatusPartialContent)
		specWantHeader(t, "range 2-5", r, "Content-Range", fmt.Sprintf("bytes 2-5/%d", n))
		specWantHeader(t, "range 2-5", r, "Content-Length", "4")
		if !bytes.Equal(r.Body, b[2:6]) {
			t.Fatalf("range 2-5: body %x, want %x", r.Body, b[2:6])
		}
		r = a.do(t, "GET", p, nil, "Range", "bytes=-3")
		specWantStatus(t, "suffix range", r, http.StatusPartialContent)
		specWantHeader(t, "suffix range", r, "Content-Range", fmt.Sprintf("bytes %d-%d/%d", n-3, n-1, n))
		if !bytes.Equal(r.Body, b[n-3:]) {
			t.Fatal("suffix range: wrong bytes")
		}
		r = a.do(t, "GET", p, nil, "Range", fmt.Sprintf("bytes=%d-", n-10))
		specWantStatus(t, "open range", r, http.StatusPartialContent)
		if !bytes.Equal(r.Body, b[n-10:]) {
			t.Fatal("open range: wrong bytes")
		}
		r = a.do(t, "GET", p, nil, "Range", fmt.Sprintf("bytes=%d-", n))
		specWantStatus(t, "unsatisfiable range", r, http.StatusRequestedRangeNotSatisfiable)
		specWantHeader(t, "unsatisfiable range", r, "Content-Range", fmt.Sprintf("bytes */%d", n))
		r = a.do(t, "GET", p, nil, "Range", fmt.Sprintf("bytes=%d-%d", n+5, n+10))
		specWantStatus(t, "unsatisfiable range past the end", r, http.StatusRequestedRangeNotSatisfiable)
	})
}

func specPush(t *testing.T, a *specClient) {
	const repo = "push/app"

	t.Run("monolithic POST then PUT", func(t *testing.T) {
		data := specRandBytes(t, 5000)
		d := digest.FromBytes(data)
		r := a.do(t, "POST", "/v2/"+repo+"/blobs/uploads/", nil)
		specWantStatus(t, "POST", r, http.StatusAccepted)
		loc := specLocation(t, "POST", r)
		r = a.do(t, "PUT", specQuery(t, loc, "digest", d.String()), data, "Content-Type", "application/octet-stream")
		specWantStatus(t, "PUT", r, http.StatusCreated)
		specWantHeader(t, "PUT", r, "Docker-Content-Digest", d.String())
		got := a.do(t, "GET", specLocation(t, "PUT", r), nil)
		specWantStatus(t, "GET Location", got, http.StatusOK)
		if !bytes.Equal(got.Body, data) {
			t.Fatal("GET Location: body differs")
		}
		// The session is gone once the blob is committed.
		specWantError(t, "GET finished session", a.do(t, "GET", loc, nil), 404, "BLOB_UPLOAD_UNKNOWN")
	})

	t.Run("single POST with digest", func(t *testing.T) {
		data := specRandBytes(t, 3000)
		d := digest.FromBytes(data)
		r := a.do(t, "POST", specQuery(t, "/v2/"+repo+"/blobs/uploads/", "digest", d.String()), data,
			"Content-Type", "application/octet-stream")
		specWantStatus(t, "POST ?digest=", r, http.StatusCreated)
		specWantHeader(t, "POST ?digest=", r, "Docker-Content-Digest", d.String())
		got := a.do(t, "GET", specLocation(t, "POST ?digest=", r), nil)
		specWantStatus(t, "GET Location", got, http.StatusOK)
		if !bytes.Equal(got.Body, data) {
			t.Fatal("body differs")
		}
		// Pushing the same blob again is fine.
		r = a.do(t, "POST", specQuery(t, "/v2/"+repo+"/blobs/uploads/", "digest", d.String()), data)
		specWantStatus(t, "POST again", r, http.StatusCreated)
	})

	t.Run("empty blob", func(t *testing.T) {
		d := digest.FromBytes(nil)
		a.pushBlobAs(t, repo, d, []byte{})
		r := a.do(t, "GET", "/v2/"+repo+"/blobs/"+d.String(), nil)
		specWantStatus(t, "GET empty blob", r, http.StatusOK)
		specWantHeader(t, "GET empty blob", r, "Content-Length", "0")
	})

	chunked := func(t *testing.T, lastInPut bool) {
		data := specRandBytes(t, 10000)
		d := digest.FromBytes(data)
		r := a.do(t, "POST", "/v2/"+repo+"/blobs/uploads/", []byte{}, "Content-Length", "0")
		specWantStatus(t, "POST", r, http.StatusAccepted)
		loc := specLocation(t, "POST", r)
		if id := r.Header.Get("Docker-Upload-UUID"); id == "" {
			t.Error("POST: no Docker-Upload-UUID")
		}
		chunks := [][2]int{{0, 4000}, {4000, 7000}, {7000, 10000}}
		for i, c := range chunks {
			last := i == len(chunks)-1
			if last && lastInPut {
				break
			}
			r = a.do(t, "PATCH", loc, data[c[0]:c[1]],
				"Content-Type", "application/octet-stream",
				"Content-Range", fmt.Sprintf("%d-%d", c[0], c[1]-1))
			specWantStatus(t, "PATCH", r, http.StatusAccepted)
			specWantHeader(t, "PATCH", r, "Range", fmt.Sprintf("0-%d", c[1]-1))
			loc = specLocation(t, "PATCH", r)
			st := a.do(t, "GET", loc, nil)
			specWantStatus(t, "GET status", st, http.StatusNoContent)
			specWantHeader(t, "GET status", st, "Range", fmt.Sprintf("0-%d", c[1]-1))
			specLocation(t, "GET status", st)
		}
		if lastInPut {
			c := chunks[len(chunks)-1]
			r = a.do(t, "PUT", specQuery(t, loc, "digest", d.String()), data[c[0]:c[1]],
				"Content-Type", "application/octet-stream",
				"Content-Range", fmt.Sprintf("%d-%d", c[0], c[1]-1))
		} else {
			r = a.do(t, "PUT", specQuery(t, loc, "digest", d.String()), nil)
		}
		specWantStatus(t, "final PUT", r, http.StatusCreated)
		specWantHeader(t, "final PUT", r, "Docker-Content-Digest", d.String())
		got := a.do(t, "GET", specLocation(t, "final PUT", r), nil)
		if got.Status != 200 || !bytes.Equal(got.Body, data) {
			t.Fatalf("GET chunked blob: %d, %d bytes", got.Status, len(got.Body))
		}
	}
	t.Run("chunked with last chunk in PUT", func(t *testing.T) { chunked(t, true) })
	t.Run("chunked with empty final PUT", func(t *testing.T) { chunked(t, false) })

	t.Run("streamed PATCH without Content-Range", func(t *testing.T) {
		data := specRandBytes(t, 7777)
		d := digest.FromBytes(data)
		loc := a.startUpload(t, repo)
		// A body of unknown length (chunked transfer encoding).
		r := a.doReader(t, "PATCH", loc, io.MultiReader(bytes.NewReader(data[:100]), bytes.NewReader(data[100:])),
			"Content-Type", "application/octet-stream")
		specWantStatus(t, "PATCH", r, http.StatusAccepted)
		specWantHeader(t, "PATCH", r, "Range", fmt.Sprintf("0-%d", len(data)-1))
		r = a.do(t, "PUT", specQuery(t, specLocation(t, "PATCH", r), "digest", d.String()), nil)
		specWantStatus(t, "PUT", r, http.StatusCreated)
		if !a.blobExists(t, repo, d) {
			t.Fatal("blob missing")
		}
	})

	t.Run("out-of-order chunk", func(t *testing.T) {
		data := specRandBytes(t, 20)
		loc := a.startUpload(t, repo)
		r := a.do(t, "PATCH", loc, data[10:], "Content-Type", "application/octet-stream", "Content-Range", "10-19")
		specWantStatus(t, "out-of-order PATCH", r, http.StatusRequestedRangeNotSatisfiable)
		st := a.do(t, "GET", loc, nil)
		specWantStatus(t, "GET status", st, http.StatusNoContent)
		specWantHeader(t, "GET status", st, "Range", "0-0")
		// The session is still usable in order.
		r = a.do(t, "PATCH", loc, data[:10], "Content-Type", "application/octet-stream", "Content-Range", "0-9")
		specWantStatus(t, "in-order PATCH", r, http.StatusAccepted)
		r = a.do(t, "PUT", specQuery(t, specLocation(t, "PATCH", r), "digest", digest.FromBytes(data).String()), data[10:],
			"Content-Type", "application/octet-stream", "Content-Range", "10-19")
		specWantStatus(t, "PUT", r, http.StatusCreated)
	})

	t.Run("cancel upload", func(t *testing.T) {
		loc := a.startUpload(t, repo)
		r := a.do(t, "PATCH", loc, []byte("some bytes"), "Content-Type", "application/octet-stream")
		specWantStatus(t, "PATCH", r, http.StatusAccepted)
		loc = specLocation(t, "PATCH", r)
		r = a.do(t, "DELETE", loc, nil)
		specWantStatus(t, "DELETE", r, http.StatusNoContent)
		specWantError(t, "GET after cancel", a.do(t, "GET", loc, nil), 404, "BLOB_UPLOAD_UNKNOWN")
		specWantError(t, "PATCH after cancel", a.do(t, "PATCH", loc, []byte("x")), 404, "BLOB_UPLOAD_UNKNOWN")
		specWantError(t, "PUT after cancel", a.do(t, "PUT", specQuery(t, loc, "digest", digest.FromString("some bytes").String()), nil), 404, "BLOB_UPLOAD_UNKNOWN")
		specWantError(t, "DELETE after cancel", a.do(t, "DELETE", loc, nil), 404, "BLOB_UPLOAD_UNKNOWN")
		if a.blobExists(t, repo, digest.FromString("some bytes")) {
			t.Fatal("cancelled upload left a blob")
		}
	})

	t.Run("cross-repository mount", func(t *testing.T) {
		data := specRandBytes(t, 4096)
		d := a.pushBlob(t, "push/src", data)
		r := a.do(t, "POST", specQuery(t, "/v2/push/dst/blobs/uploads/", "mount", d.String(), "from", "push/src"), nil)
		specWantStatus(t, "mount", r, http.StatusCreated)
		specWantHeader(t, "mount", r, "Docker-Content-Digest", d.String())
		if loc := specLocation(t, "mount", r); !strings.HasSuffix(loc, "/v2/push/dst/blobs/"+d.String()) {
			t.Fatalf("mount Location %q", loc)
		}
		got := a.do(t, "GET", "/v2/push/dst/blobs/"+d.String(), nil)
		if got.Status != 200 || !bytes.Equal(got.Body, data) {
			t.Fatalf("GET mounted blob: %s", got)
		}
	})

	t.Run("mount without from", func(t *testing.T) {
		data := specRandBytes(t, 100)
		d := a.pushBlob(t, "push/src", data)
		r := a.do(t, "POST", specQuery(t, "/v2/push/dst2/blobs/uploads/", "mount", d.String()), nil)
		specWantStatus(t, "mount without from", r, http.StatusAccepted)
		loc := specLocation(t, "mount without from", r)
		// The answer is an ordinary upload session.
		r = a.do(t, "PUT", specQuery(t, loc, "digest", d.String()), data)
		specWantStatus(t, "PUT to the session", r, http.StatusCreated)
	})

	t.Run("mount of an unknown blob", func(t *testing.T) {
		unknown := digest.FromString("never uploaded")
		r := a.do(t, "POST", specQuery(t, "/v2/push/dst3/blobs/uploads/", "mount", unknown.String(), "from", "push/src"), nil)
		specWantStatus(t, "mount unknown", r, http.StatusAccepted)
		loc := specLocation(t, "mount unknown", r)
		if a.blobExists(t, "push/dst3", unknown) {
			t.Fatal("unknown blob appeared")
		}
		specWantStatus(t, "cancel", a.do(t, "DELETE", loc, nil), http.StatusNoContent)
	})

	t.Run("mount from a repository that lacks the blob", func(t *testing.T) {
		// The blob is in the registry, but not in `from`: no mount.
		d := a.pushBlob(t, "push/private", specRandBytes(t, 64))
		r := a.do(t, "POST", specQuery(t, "/v2/push/dst4/blobs/uploads/", "mount", d.String(), "from", "push/src"), nil)
		specWantStatus(t, "mount", r, http.StatusAccepted)
		if a.blobExists(t, "push/dst4", d) {
			t.Fatal("blob mounted from a repository that does not hold it")
		}
		specWantStatus(t, "cancel", a.do(t, "DELETE", specLocation(t, "mount", r), nil), http.StatusNoContent)
	})

	t.Run("manifest PUT by tag", func(t *testing.T) {
		img := a.buildImage(t, repo, 1, nil)
		r := a.putManifest(t, repo, "bytag", mtOCIManifest, img.manifest)
		specWantStatus(t, "PUT", r, http.StatusCreated)
		specWantHeader(t, "PUT", r, "Docker-Content-Digest", img.digest.String())
		if r.Header.Get("OCI-Subject") != "" {
			t.Fatal("OCI-Subject on a manifest without subject")
		}
		got := a.do(t, "GET", specLocation(t, "PUT", r), nil)
		if got.Status != 200 || !bytes.Equal(got.Body, img.manifest) {
			t.Fatalf("GET Location: %s", got)
		}
		// Idempotent.
		specWantStatus(t, "PUT again", a.putManifest(t, repo, "bytag", mtOCIManifest, img.manifest), http.StatusCreated)
		// Moving the tag.
		img2 := a.buildImage(t, repo, 1, nil)
		a.mustPutManifest(t, repo, "bytag", mtOCIManifest, img2.manifest)
		got = a.do(t, "HEAD", "/v2/"+repo+"/manifests/bytag", nil)
		specWantHeader(t, "HEAD moved tag", got, "Docker-Content-Digest", img2.digest.String())
		// The old manifest is still there by digest.
		if !a.manifestExists(t, repo, img.digest.String()) {
			t.Fatal("old manifest vanished when its tag moved")
		}
	})

	t.Run("manifest PUT by digest", func(t *testing.T) {
		img := a.buildImage(t, repo, 1, nil)
		before, _ := a.tags(t, repo, "")
		r := a.putManifest(t, repo, img.digest.String(), mtOCIManifest, img.manifest)
		specWantStatus(t, "PUT", r, http.StatusCreated)
		specWantHeader(t, "PUT", r, "Docker-Content-Digest", img.digest.String())
		if !a.manifestExists(t, repo, img.digest.String()) {
			t.Fatal("manifest missing")
		}
		after, _ := a.tags(t, repo, "")
		if !slices.Equal(before, after) {
			t.Fatalf("PUT by digest changed tags: %v -> %v", before, after)
		}
	})

	t.Run("manifest PUT by digest with tag query parameters", func(t *testing.T) {
		img := a.buildImage(t, repo, 1, nil)
		r := a.putManifest(t, repo, specQuery(t, img.digest.String(), "tag", "qa", "tag", "qb", "tag", "qc"), mtOCIManifest, img.manifest)
		specWantStatus(t, "PUT ?tag=", r, http.StatusCreated)
		specWantHeader(t, "PUT ?tag=", r, "Docker-Content-Digest", img.digest.String())
		for _, tag := range []string{"qa", "qb", "qc"} {
			got := a.do(t, "GET", "/v2/"+repo+"/manifests/"+tag, nil)
			specWantStatus(t, "GET "+tag, got, http.StatusOK)
			specWantHeader(t, "GET "+tag, got, "Docker-Content-Digest", img.digest.String())
		}
		tags, _ := a.tags(t, repo, "")
		for _, tag := range []string{"qa", "qb", "qc"} {
			if !slices.Contains(tags, tag) {
				t.Fatalf("tags %v lack %s", tags, tag)
			}
		}
	})

	t.Run("manifest with subject answers OCI-Subject", func(t *testing.T) {
		subject := a.pushImage(t, repo, "subject", 1, nil)
		ref := a.buildImage(t, repo, 0, func(m *ocispec.Manifest) {
			m.Subject = &subject.desc
			m.ArtifactType = "application/vnd.example.sig.v1"
		})
		r := a.putManifest(t, repo, ref.digest.String(), mtOCIManifest, ref.manifest)
		specWantStatus(t, "PUT", r, http.StatusCreated)
		specWantHeader(t, "PUT", r, "OCI-Subject", subject.digest.String())
		// A subject that does not exist (yet) is accepted too.
		dangling := a.buildImage(t, repo, 0, func(m *ocispec.Manifest) {
			m.Subject = &ocispec.Descriptor{MediaType: mtOCIManifest, Digest: digest.FromString("later"), Size: 10}
		})
		r = a.putManifest(t, repo, dangling.digest.String(), mtOCIManifest, dangling.manifest)
		specWantStatus(t, "PUT dangling subject", r, http.StatusCreated)
		specWantHeader(t, "PUT dangling subject", r, "OCI-Subject", digest.FromString("later").String())
	})
}

func specDiscovery(t *testing.T, a *specClient) {
	const repo = "disc/app"
	img := a.buildImage(t, repo, 1, nil)
	var want []string
	for i := range 12 {
		tag := fmt.Sprintf("t%02d", i)
		want = append(want, tag)
	}
	// Pushed out of order: the listing must be sorted anyway.
	for _, i := range []int{5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6} {
		a.mustPutManifest(t, repo, want[i], mtOCIManifest, img.manifest)
	}
	entries := func(r specReply) []string {
		var body struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("tags body %s: %v", r.Body, err)
		}
		return body.Tags
	}

	t.Run("tags list", func(t *testing.T) {
		tags, r := a.tags(t, repo, "")
		if !slices.Equal(tags, want) {
			t.Fatalf("tags %v, want %v", tags, want)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("Content-Type %q", ct)
		}
	})

	t.Run("tags list with n", func(t *testing.T) {
		tags, r := a.tags(t, repo, "?n=5")
		if !slices.Equal(tags, want[:5]) {
			t.Fatalf("n=5: %v", tags)
		}
		l := r.Header.Get("Link")
		if l == "" {
			t.Fatal("n=5 of 12: no Link header")
		}
		next := specNextLink(t, l)
		u, err := url.Parse(next)
		if err != nil || u.Path != "/v2/"+repo+"/tags/list" || u.Query().Get("last") != "t04" || u.Query().Get("n") != "5" {
			t.Fatalf("Link target %q", next)
		}
		all, pages := specFollowLinks(t, a, "/v2/"+repo+"/tags/list?n=5", entries)
		if !slices.Equal(all, want) {
			t.Fatalf("paged tags %v, want %v", all, want)
		}
		if pages < 3 {
			t.Fatalf("%d pages for 12 tags at n=5", pages)
		}
		tags, _ = a.tags(t, repo, "?n=100")
		if !slices.Equal(tags, want) {
			t.Fatalf("n=100: %v", tags)
		}
	})

	t.Run("tags list with n and last", func(t *testing.T) {
		tags, _ := a.tags(t, repo, "?n=3&last=t04")
		if !slices.Equal(tags, want[5:8]) {
			t.Fatalf("n=3&last=t04: %v", tags)
		}
		tags, r := a.tags(t, repo, "?last=t09")
		if !slices.Equal(tags, want[10:]) {
			t.Fatalf("last=t09: %v", tags)
		}
		if r.Header.Get("Link") != "" {
			t.Fatalf("Link on the last page: %q", r.Header.Get("Link"))
		}
		tags, _ = a.tags(t, repo, "?n=3&last=t11")
		if len(tags) != 0 {
			t.Fatalf("after the last tag: %v", tags)
		}
		// last need not be an existing tag.
		tags, _ = a.tags(t, repo, "?n=2&last=t035")
		if !slices.Equal(tags, want[4:6]) {
			t.Fatalf("last=t035: %v", tags)
		}
	})

	t.Run("tags list with n=0", func(t *testing.T) {
		tags, r := a.tags(t, repo, "?n=0")
		if len(tags) != 0 || r.Header.Get("Link") != "" {
			t.Fatalf("n=0: tags %v, Link %q", tags, r.Header.Get("Link"))
		}
	})

	t.Run("tags of an unknown repository", func(t *testing.T) {
		specWantError(t, "tags of unknown repo", a.do(t, "GET", "/v2/disc/nothing/tags/list", nil), 404, "NAME_UNKNOWN")
	})

	t.Run("catalog", func(t *testing.T) {
		all, r := a.catalog(t, "")
		if !slices.IsSorted(all) || !slices.Contains(all, repo) || !slices.Contains(all, "pull/app") {
			t.Fatalf("catalog %v", all)
		}
		if slices.Contains(all, "disc/nothing") {
			t.Fatal("catalog lists a repository that was only queried")
		}
		if r.Header.Get("Link") != "" {
			t.Fatalf("full catalog has a Link header %q", r.Header.Get("Link"))
		}
		paged, pages := specFollowLinks(t, a, "/v2/_catalog?n=2", func(r specReply) []string {
			var body struct {
				Repositories []string `json:"repositories"`
			}
			if err := json.Unmarshal(r.Body, &body); err != nil {
				t.Fatalf("catalog body: %v", err)
			}
			if len(body.Repositories) > 2 {
				t.Fatalf("page of n=2 holds %v", body.Repositories)
			}
			return body.Repositories
		})
		if !slices.Equal(paged, all) {
			t.Fatalf("paged catalog %v, want %v", paged, all)
		}
		if len(all) > 2 && pages < 2 {
			t.Fatalf("catalog of %d at n=2 in %d pages", len(all), pages)
		}
		page, _ := a.catalog(t, "?n=1&last="+url.QueryEscape(all[0]))
		if len(all) > 1 && !slices.Equal(page, all[1:2]) {
			t.Fatalf("n=1&last=%s: %v", all[0], page)
		}
	})

	t.Run("referrers", func(t *testing.T) {
		const rrepo = "disc/refs"
		subject := a.pushImage(t, rrepo, "subject", 1, nil)

		idx, _ := a.referrers(t, rrepo, digest.FromString("nothing refers to this"), "")
		if len(idx.Manifests) != 0 {
			t.Fatalf("referrers of an unknown digest: %v", idx.Manifests)
		}
		idx, _ = a.referrers(t, "disc/never-pushed", subject.digest, "")
		if len(idx.Manifests) != 0 {
			t.Fatalf("referrers in an unknown repository: %v", idx.Manifests)
		}
		idx, _ = a.referrers(t, rrepo, subject.digest, "")
		if len(idx.Manifests) != 0 {
			t.Fatalf("referrers before any: %v", idx.Manifests)
		}

		a.pushBlob(t, rrepo, []byte("{}"))
		// 1: artifactType set explicitly, empty config, annotations.
		sbom := a.buildImage(t, rrepo, 1, func(m *ocispec.Manifest) {
			m.ArtifactType = "application/vnd.example.sbom.v1"
			m.Config = ocispec.Descriptor{MediaType: mtEmpty, Digest: emptyJSONDigest, Size: 2}
			m.Subject = &subject.desc
			m.Annotations = map[string]string{"org.example.sbom.format": "json", "org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
		})
		// 2: no artifactType: the config media type stands in.
		sigConfig := []byte(`{"sig":true}`)
		sig := a.buildImage(t, rrepo, 0, func(m *ocispec.Manifest) {
			m.Config = ocispec.Descriptor{MediaType: "application/vnd.example.sig.config.v1+json", Digest: a.pushBlob(t, rrepo, sigConfig), Size: int64(len(sigConfig))}
			m.Subject = &subject.desc
		})
		// 3: an ordinary image config and no artifactType.
		plain := a.buildImage(t, rrepo, 1, func(m *ocispec.Manifest) { m.Subject = &subject.desc })
		// 4: an index with subject and no artifactType.
		idxNoType := specJSON(t, ocispec.Index{
			Versioned: specVersioned(), MediaType: mtOCIIndex,
			Manifests: []ocispec.Descriptor{plain.desc},
			Subject:   &subject.desc,
		})
		// 5: an index with subject and artifactType.
		idxTyped := specJSON(t, ocispec.Index{
			Versioned: specVersioned(), MediaType: mtOCIIndex, ArtifactType: "application/vnd.example.bundle.v1",
			Manifests:   []ocispec.Descriptor{sig.desc},
			Subject:     &subject.desc,
			Annotations: map[string]string{"k": "v"},
		})
		for _, m := range []specImage{sbom, sig, plain} {
			r := a.putManifest(t, rrepo, m.digest.String(), mtOCIManifest, m.manifest)
			specWantStatus(t, "PUT referrer", r, http.StatusCreated)
			specWantHeader(t, "PUT referrer", r, "OCI-Subject", subject.digest.String())
		}
		for _, b := range [][]byte{idxNoType, idxTyped} {
			r := a.putManifest(t, rrepo, digest.FromBytes(b).String(), mtOCIIndex, b)
			specWantStatus(t, "PUT index referrer", r, http.StatusCreated)
			specWantHeader(t, "PUT index referrer", r, "OCI-Subject", subject.digest.String())
		}
		want := map[digest.Digest]ocispec.Descriptor{
			sbom.digest: {MediaType: mtOCIManifest, Size: int64(len(sbom.manifest)), ArtifactType: "application/vnd.example.sbom.v1",
				Annotations: map[string]string{"org.example.sbom.format": "json", "org.opencontainers.image.created": "2024-01-01T00:00:00Z"}},
			sig.digest:                  {MediaType: mtOCIManifest, Size: int64(len(sig.manifest)), ArtifactType: "application/vnd.example.sig.config.v1+json"},
			plain.digest:                {MediaType: mtOCIManifest, Size: int64(len(plain.manifest)), ArtifactType: mtOCIConfig},
			digest.FromBytes(idxNoType): {MediaType: mtOCIIndex, Size: int64(len(idxNoType))},
			digest.FromBytes(idxTyped):  {MediaType: mtOCIIndex, Size: int64(len(idxTyped)), ArtifactType: "application/vnd.example.bundle.v1", Annotations: map[string]string{"k": "v"}},
		}
		idx, r := a.referrers(t, rrepo, subject.digest, "")
		if r.Header.Get("OCI-Filters-Applied") != "" {
			t.Fatalf("OCI-Filters-Applied without a filter: %q", r.Header.Get("OCI-Filters-Applied"))
		}
		if len(idx.Manifests) != len(want) {
			t.Fatalf("%d referrers, want %d: %s", len(idx.Manifests), len(want), r.Body)
		}
		for _, got := range idx.Manifests {
			w, ok := want[got.Digest]
			if !ok {
				t.Fatalf("unexpected referrer %s", got.Digest)
			}
			if got.MediaType != w.MediaType || got.Size != w.Size || got.ArtifactType != w.ArtifactType ||
				len(got.Annotations) != len(w.Annotations) {
				t.Errorf("referrer %s = {%s %d %q %v}, want {%s %d %q %v}", got.Digest,
					got.MediaType, got.Size, got.ArtifactType, got.Annotations, w.MediaType, w.Size, w.ArtifactType, w.Annotations)
			}
			for k, v := range w.Annotations {
				if got.Annotations[k] != v {
					t.Errorf("referrer %s annotation %s = %q, want %q", got.Digest, k, got.Annotations[k], v)
				}
			}
		}

		idx, r = a.referrers(t, rrepo, subject.digest, "?artifactType="+url.QueryEscape("application/vnd.example.sbom.v1"))
		specWantHeader(t, "filtered referrers", r, "OCI-Filters-Applied", "artifactType")
		if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sbom.digest {
			t.Fatalf("filtered referrers: %s", r.Body)
		}
		idx, r = a.referrers(t, rrepo, subject.digest, "?artifactType="+url.QueryEscape("application/vnd.example.none"))
		specWantHeader(t, "filtered referrers", r, "OCI-Filters-Applied", "artifactType")
		if len(idx.Manifests) != 0 {
			t.Fatalf("filter matching nothing: %s", r.Body)
		}

		// Referrers are scoped to the repository.
		idx, _ = a.referrers(t, "disc/app", subject.digest, "")
		if len(idx.Manifests) != 0 {
			t.Fatalf("referrers leak across repositories: %v", idx.Manifests)
		}

		specWantStatus(t, "DELETE referrer", a.do(t, "DELETE", "/v2/"+rrepo+"/manifests/"+sbom.digest.String(), nil), http.StatusAccepted)
		idx, _ = a.referrers(t, rrepo, subject.digest, "")
		if len(idx.Manifests) != len(want)-1 {
			t.Fatalf("after delete: %d referrers, want %d", len(idx.Manifests), len(want)-1)
		}
		for _, m := range idx.Manifests {
			if m.Digest == sbom.digest {
				t.Fatal("deleted referrer still listed")
			}
		}
		specWantError(t, "referrers of a bad digest", a.do(t, "GET", "/v2/"+rrepo+"/referrers/sha256:nothex", nil), 400, "DIGEST_INVALID")
	})
}

func specVersioned() specs.Versioned { return specs.Versioned{SchemaVersion: 2} }

func specManagement(t *testing.T, a *specClient) {
	const repo = "mgmt/app"

	t.Run("delete manifest by digest", func(t *testing.T) {
		img := a.pushImage(t, repo, "gone", 1, nil)
		a.mustPutManifest(t, repo, "gone2", mtOCIManifest, img.manifest)
		p := "/v2/" + repo + "/manifests/" + img.digest.String()
		specWantStatus(t, "DELETE", a.do(t, "DELETE", p, nil), http.StatusAccepted)
		specWantError(t, "GET deleted", a.do(t, "GET", p, nil), 404, "MANIFEST_UNKNOWN")
		specWantError(t, "GET deleted by tag", a.do(t, "GET", "/v2/"+repo+"/manifests/gone", nil), 404, "MANIFEST_UNKNOWN")
		specWantError(t, "GET deleted by tag", a.do(t, "GET", "/v2/"+repo+"/manifests/gone2", nil), 404, "MANIFEST_UNKNOWN")
		specWantError(t, "DELETE again", a.do(t, "DELETE", p, nil), 404, "MANIFEST_UNKNOWN")
		tags, _ := a.tags(t, repo, "")
		if slices.Contains(tags, "gone") || slices.Contains(tags, "gone2") {
			t.Fatalf("tags of a deleted manifest remain: %v", tags)
		}
		// The blobs stay in the repository.
		if !a.blobExists(t, repo, digest.FromBytes(img.layers[0])) {
			t.Fatal("deleting a manifest unlinked its layer")
		}
	})

	t.Run("delete by tag removes only the tag", func(t *testing.T) {
		img := a.pushImage(t, repo, "keep", 1, nil)
		a.mustPutManifest(t, repo, "drop", mtOCIManifest, img.manifest)
		specWantStatus(t, "DELETE tag", a.do(t, "DELETE", "/v2/"+repo+"/manifests/drop", nil), http.StatusAccepted)
		specWantError(t, "GET deleted tag", a.do(t, "GET", "/v2/"+repo+"/manifests/drop", nil), 404, "MANIFEST_UNKNOWN")
		if !a.manifestExists(t, repo, "keep") || !a.manifestExists(t, repo, img.digest.String()) {
			t.Fatal("deleting a tag removed the manifest or its other tag")
		}
		tags, _ := a.tags(t, repo, "")
		if slices.Contains(tags, "drop") || !slices.Contains(tags, "keep") {
			t.Fatalf("tags %v", tags)
		}
		specWantError(t, "DELETE unknown tag", a.do(t, "DELETE", "/v2/"+repo+"/manifests/drop", nil), 404, "MANIFEST_UNKNOWN")
	})

	t.Run("delete blob", func(t *testing.T) {
		data := specRandBytes(t, 500)
		d := a.pushBlob(t, repo, data)
		a.pushBlob(t, "mgmt/other", data)
		p := "/v2/" + repo + "/blobs/" + d.String()
		r := a.do(t, "DELETE", p, nil)
		specWantStatus(t, "DELETE blob", r, http.StatusAccepted)
		specWantError(t, "GET deleted blob", a.do(t, "GET", p, nil), 404, "BLOB_UNKNOWN")
		specWantStatus(t, "HEAD deleted blob", a.do(t, "HEAD", p, nil), 404)
		specWantError(t, "DELETE again", a.do(t, "DELETE", p, nil), 404, "BLOB_UNKNOWN")
		// Another repository's link is untouched.
		if !a.blobExists(t, "mgmt/other", d) {
			t.Fatal("deleting a blob in one repository removed it from another")
		}
	})

	t.Run("delete unknown manifest", func(t *testing.T) {
		specWantError(t, "DELETE unknown digest", a.do(t, "DELETE", "/v2/"+repo+"/manifests/"+digest.FromString("x").String(), nil), 404, "MANIFEST_UNKNOWN")
		specWantStatus(t, "DELETE in unknown repo", a.do(t, "DELETE", "/v2/mgmt/none/manifests/"+digest.FromString("x").String(), nil), 404)
	})
}

func specMediaTypes(t *testing.T, a *specClient) {
	const repo = "media/app"

	checkGet := func(t *testing.T, ref, mediaType string, body []byte) {
		t.Helper()
		r := a.do(t, "GET", "/v2/"+repo+"/manifests/"+ref, nil)
		specWantStatus(t, "GET "+ref, r, http.StatusOK)
		specWantHeader(t, "GET "+ref, r, "Content-Type", mediaType)
		specWantHeader(t, "GET "+ref, r, "Docker-Content-Digest", digest.FromBytes(body).String())
		if !bytes.Equal(r.Body, body) {
			t.Fatalf("GET %s: body differs", ref)
		}
	}

	amd := a.pushImage(t, repo, "amd64", 1, nil)
	arm := a.pushImage(t, repo, "arm64", 1, nil)

	t.Run("OCI index", func(t *testing.T) {
		d1, d2 := amd.desc, arm.desc
		d1.Platform = &ocispec.Platform{Architecture: "amd64", OS: "linux"}
		d2.Platform = &ocispec.Platform{Architecture: "arm64", OS: "linux"}
		body := specJSON(t, ocispec.Index{Versioned: specVersioned(), MediaType: mtOCIIndex, Manifests: []ocispec.Descriptor{d1, d2}})
		a.mustPutManifest(t, repo, "multi", mtOCIIndex, body)
		checkGet(t, "multi", mtOCIIndex, body)
	})

	var dockerManifest []byte
	t.Run("Docker schema2 manifest", func(t *testing.T) {
		cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
		layer := specRandBytes(t, 2000)
		m := map[string]any{
			"schemaVersion": 2,
			"mediaType":     mtDockerManifest,
			"config":        map[string]any{"mediaType": mtDockerConfig, "digest": a.pushBlob(t, repo, cfg), "size": len(cfg)},
			"layers": []any{
				map[string]any{"mediaType": mtDockerLayer, "digest": a.pushBlob(t, repo, layer), "size": len(layer)},
				// A foreign layer need not be uploaded.
				map[string]any{"mediaType": mtDockerForeign, "digest": digest.FromString("foreign"), "size": 123,
					"urls": []string{"https://example.com/foreign.tar.gz"}},
			},
		}
		dockerManifest = specJSON(t, m)
		a.mustPutManifest(t, repo, "docker", mtDockerManifest, dockerManifest)
		checkGet(t, "docker", mtDockerManifest, dockerManifest)
	})

	t.Run("Docker manifest list", func(t *testing.T) {
		if dockerManifest == nil {
			t.Skip("no Docker manifest")
		}
		body := specJSON(t, map[string]any{
			"schemaVersion": 2,
			"mediaType":     mtDockerList,
			"manifests": []any{map[string]any{
				"mediaType": mtDockerManifest, "digest": digest.FromBytes(dockerManifest), "size": len(dockerManifest),
				"platform": map[string]string{"architecture": "amd64", "os": "linux"},
			}},
		})
		a.mustPutManifest(t, repo, "dockerlist", mtDockerList, body)
		checkGet(t, "dockerlist", mtDockerList, body)
	})

	t.Run("artifact with empty config", func(t *testing.T) {
		d := a.pushBlob(t, repo, []byte("{}"))
		if d.String() != emptyJSONDigest {
			t.Fatalf("digest of {} is %s", d)
		}
		data := []byte("artifact payload")
		body := specJSON(t, map[string]any{
			"schemaVersion": 2,
			"mediaType":     mtOCIManifest,
			"artifactType":  "application/vnd.example.thing.v1",
			"config":        map[string]any{"mediaType": mtEmpty, "digest": emptyJSONDigest, "size": 2},
			"layers": []any{map[string]any{"mediaType": "application/vnd.example.data.v1", "digest": a.pushBlob(t, repo, data), "size": len(data),
				"annotations": map[string]string{"org.opencontainers.image.title": "payload.txt"}}},
		})
		a.mustPutManifest(t, repo, "artifact", mtOCIManifest, body)
		checkGet(t, "artifact", mtOCIManifest, body)
		// The empty descriptor as the only layer, as the image spec suggests.
		body = specJSON(t, map[string]any{
			"schemaVersion": 2,
			"mediaType":     mtOCIManifest,
			"artifactType":  "application/vnd.example.none.v1",
			"config":        map[string]any{"mediaType": mtEmpty, "digest": emptyJSONDigest, "size": 2},
			"layers":        []any{map[string]any{"mediaType": mtEmpty, "digest": emptyJSONDigest, "size": 2}},
		})
		a.mustPutManifest(t, repo, "artifact-empty", mtOCIManifest, body)
		checkGet(t, "artifact-empty", mtOCIManifest, body)
	})

	t.Run("non-distributable layer not uploaded", func(t *testing.T) {
		nd := digest.FromString("non-distributable layer")
		img := a.buildImage(t, repo, 1, func(m *ocispec.Manifest) {
			m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mtNonDistGzip, Digest: nd, Size: 4096,
				URLs: []string{"https://example.com/layer.tar.gz"}})
		})
		a.mustPutManifest(t, repo, "nondist", mtOCIManifest, img.manifest)
		checkGet(t, "nondist", mtOCIManifest, img.manifest)
		if a.blobExists(t, repo, nd) {
			t.Fatal("non-distributable layer appeared as a blob")
		}
	})

	t.Run("mediaType only in Content-Type", func(t *testing.T) {
		img := a.buildImage(t, repo, 1, func(m *ocispec.Manifest) { m.MediaType = "" })
		a.mustPutManifest(t, repo, "notype", mtOCIManifest, img.manifest)
		checkGet(t, "notype", mtOCIManifest, img.manifest)
	})

	t.Run("Content-Type with parameters", func(t *testing.T) {
		img := a.buildImage(t, repo, 1, nil)
		a.mustPutManifest(t, repo, "ctparams", mtOCIManifest+"; charset=utf-8", img.manifest)
		checkGet(t, "ctparams", mtOCIManifest, img.manifest)
	})
}

func specSHA512(t *testing.T, a *specClient) {
	const repo = "sha512/app"

	t.Run("blob by sha512", func(t *testing.T) {
		data := specRandBytes(t, 3000)
		d := digest.SHA512.FromBytes(data)
		r := a.do(t, "POST", specQuery(t, "/v2/"+repo+"/blobs/uploads/", "digest", d.String()), data)
		specWantStatus(t, "POST sha512", r, http.StatusCreated)
		specWantHeader(t, "POST sha512", r, "Docker-Content-Digest", d.String())
		got := a.do(t, "GET", "/v2/"+repo+"/blobs/"+d.String(), nil)
		specWantStatus(t, "GET sha512 blob", got, http.StatusOK)
		specWantHeader(t, "GET sha512 blob", got, "Docker-Content-Digest", d.String())
		if !bytes.Equal(got.Body, data) {
			t.Fatal("body differs")
		}
		// Chunked, committed under sha512.
		data2 := specRandBytes(t, 5000)
		d2 := digest.SHA512.FromBytes(data2)
		loc := a.startUpload(t, repo)
		r = a.do(t, "PATCH", loc, data2[:2500], "Content-Type", "application/octet-stream", "Content-Range", "0-2499")
		specWantStatus(t, "PATCH", r, http.StatusAccepted)
		r = a.do(t, "PUT", specQuery(t, specLocation(t, "PATCH", r), "digest", d2.String()), data2[2500:],
			"Content-Type", "application/octet-stream", "Content-Range", "2500-4999")
		specWantStatus(t, "PUT sha512", r, http.StatusCreated)
		if !a.blobExists(t, repo, d2) {
			t.Fatal("chunked sha512 blob missing")
		}
	})

	t.Run("manifest by sha512", func(t *testing.T) {
		layer := specRandBytes(t, 1500)
		ld := digest.SHA512.FromBytes(layer)
		a.pushBlobAs(t, repo, ld, layer)
		img := a.buildImage(t, repo, 0, func(m *ocispec.Manifest) {
			m.Layers = []ocispec.Descriptor{{MediaType: mtOCILayer, Digest: ld, Size: int64(len(layer))}}
		})
		md := digest.SHA512.FromBytes(img.manifest)
		r := a.putManifest(t, repo, specQuery(t, md.String(), "tag", "s512"), mtOCIManifest, img.manifest)
		specWantStatus(t, "PUT by sha512", r, http.StatusCreated)
		specWantHeader(t, "PUT by sha512", r, "Docker-Content-Digest", md.String())
		for _, ref := range []string{md.String(), "s512"} {
			got := a.do(t, "GET", "/v2/"+repo+"/manifests/"+ref, nil)
			specWantStatus(t, "GET "+ref, got, http.StatusOK)
			specWantHeader(t, "GET "+ref, got, "Docker-Content-Digest", md.String())
			specWantHeader(t, "GET "+ref, got, "Content-Type", mtOCIManifest)
			if !bytes.Equal(got.Body, img.manifest) {
				t.Fatal("body differs")
			}
		}
		// Pushing the same bytes again by tag keeps the tag on the digest
		// it was given (conformance pushes by digest, then by each tag).
		for _, ref := range []string{"s512", specQuery(t, "s512", "tag", "s512b")} {
			r = a.putManifest(t, repo, ref, mtOCIManifest, img.manifest)
			specWantStatus(t, "re-PUT by tag "+ref, r, http.StatusCreated)
			specWantHeader(t, "re-PUT by tag "+ref, r, "Docker-Content-Digest", md.String())
		}
		for _, tag := range []string{"s512", "s512b"} {
			for _, method := range []string{"HEAD", "GET"} {
				got := a.do(t, method, "/v2/"+repo+"/manifests/"+tag, nil)
				specWantStatus(t, method+" "+tag+" after re-PUT", got, http.StatusOK)
				specWantHeader(t, method+" "+tag+" after re-PUT", got, "Docker-Content-Digest", md.String())
			}
		}
		// A sha512 subject in the referrers API.
		ref := a.buildImage(t, repo, 0, func(m *ocispec.Manifest) {
			m.ArtifactType = "application/vnd.example.sig.v1"
			m.Subject = &ocispec.Descriptor{MediaType: mtOCIManifest, Digest: md, Size: int64(len(img.manifest))}
		})
		r = a.putManifest(t, repo, ref.digest.String(), mtOCIManifest, ref.manifest)
		specWantStatus(t, "PUT referrer", r, http.StatusCreated)
		specWantHeader(t, "PUT referrer", r, "OCI-Subject", md.String())
		idx, _ := a.referrers(t, repo, md, "")
		if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != ref.digest {
			t.Fatalf("referrers of sha512 subject: %v", idx.Manifests)
		}
		specWantStatus(t, "DELETE by sha512", a.do(t, "DELETE", "/v2/"+repo+"/manifests/"+md.String(), nil), http.StatusAccepted)
		specWantError(t, "GET deleted", a.do(t, "GET", "/v2/"+repo+"/manifests/s512", nil), 404, "MANIFEST_UNKNOWN")
	})
}

func specNested(t *testing.T, a *specClient) {
	const repo = "a/b/c/d"
	img := a.pushImage(t, repo, "latest", 2, nil)
	r := a.do(t, "GET", "/v2/"+repo+"/manifests/latest", nil)
	specWantStatus(t, "GET nested manifest", r, http.StatusOK)
	specWantHeader(t, "GET nested manifest", r, "Docker-Content-Digest", img.digest.String())
	r = a.do(t, "GET", "/v2/"+repo+"/blobs/"+digest.FromBytes(img.layers[1]).String(), nil)
	if r.Status != 200 || !bytes.Equal(r.Body, img.layers[1]) {
		t.Fatalf("GET nested blob: %s", r)
	}
	tags, _ := a.tags(t, repo, "")
	if !slices.Equal(tags, []string{"latest"}) {
		t.Fatalf("tags %v", tags)
	}
	all, _ := a.catalog(t, "")
	if !slices.Contains(all, repo) {
		t.Fatalf("catalog %v lacks %s", all, repo)
	}
	// The parent path components are not repositories of their own.
	specWantError(t, "tags of a/b", a.do(t, "GET", "/v2/a/b/tags/list", nil), 404, "NAME_UNKNOWN")
	// Chunked upload in a nested repository.
	data := specRandBytes(t, 300)
	loc := a.startUpload(t, repo)
	if !strings.Contains(loc, "/v2/"+repo+"/blobs/uploads/") {
		t.Fatalf("upload Location %q", loc)
	}
	r = a.do(t, "PUT", specQuery(t, loc, "digest", digest.FromBytes(data).String()), data)
	specWantStatus(t, "PUT nested", r, http.StatusCreated)
	specWantStatus(t, "DELETE nested", a.do(t, "DELETE", "/v2/"+repo+"/manifests/"+img.digest.String(), nil), http.StatusAccepted)
}
