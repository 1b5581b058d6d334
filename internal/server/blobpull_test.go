package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/server"
)

// s3Requests is a reverse proxy in front of the test MinIO that records the
// method of each request for a key containing a substring.
type s3Requests struct {
	mu   sync.Mutex
	key  string
	reqs []string
}

func (l *s3Requests) watch(key string) {
	l.mu.Lock()
	l.key, l.reqs = key, nil
	l.mu.Unlock()
}

func (l *s3Requests) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.reqs
	l.reqs = nil
	return r
}

func (l *s3Requests) proxy(t *testing.T, endpoint string) string {
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host // the host the request was signed for
		l.mu.Lock()
		if l.key != "" && strings.Contains(pr.In.URL.Path, l.key) {
			l.reqs = append(l.reqs, pr.In.Method)
		}
		l.mu.Unlock()
	}}
	hs := httptest.NewServer(rp)
	t.Cleanup(hs.Close)
	return hs.URL
}

// TestBlobPullOnS3: on the S3 store with verification on read, a blob GET
// costs one S3 request (a GET whose response tells the version it reads
// and its verified marker: no HEAD to open it, none to verify it), also
// on a server that has just started, and a HEAD costs one HEAD. Ranges
// are served from the same object. An object replaced behind custody's
// back is hashed before anything is sent, refused with OCI error JSON and
// left as it is.
func TestBlobPullOnS3(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = t.TempDir()
	s3Config(t, &cfg)
	var l s3Requests
	minioURL := cfg.S3.Endpoint
	cfg.S3.Endpoint = l.proxy(t, minioURL)
	var stop func()
	start := func() *httptest.Server {
		s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(s.Handler())
		stop = func() { hs.Close(); s.Close() }
		return hs
	}
	hs := start()
	t.Cleanup(func() { stop() })
	img, _ := random.Image(300<<10, 1)
	ref, _ := name.ParseReference(strings.TrimPrefix(hs.URL, "http://")+"/pull/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	ld, _ := ls[0].Digest()
	rc, _ := ls[0].Compressed()
	content, _ := io.ReadAll(rc)
	rc.Close()
	blobURL := hs.URL + "/v2/pull/app/blobs/" + ld.String()
	key := "/blobs/sha256/" + ld.Hex
	get := func(u string, hdr ...string) (int, http.Header, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
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
		return resp.StatusCode, resp.Header, b
	}

	l.watch(key)
	for i := range 2 {
		code, _, b := get(blobURL)
		if code != http.StatusOK || !bytes.Equal(b, content) {
			t.Fatalf("GET blob: %d, %d bytes, want 200 and %d", code, len(b), len(content))
		}
		if reqs := l.take(); strings.Join(reqs, " ") != "GET" {
			t.Errorf("GET blob (%d): S3 requests %q, want one GET", i+1, reqs)
		}
	}
	resp, err := http.Head(blobURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(content)) || resp.Header.Get("Docker-Content-Digest") != ld.String() {
		t.Fatalf("HEAD blob: %d, length %d, digest %q", resp.StatusCode, resp.ContentLength, resp.Header.Get("Docker-Content-Digest"))
	}
	if reqs := l.take(); strings.Join(reqs, " ") != "HEAD" {
		t.Errorf("HEAD blob: S3 requests %q, want one HEAD", reqs)
	}
	code, h, b := get(blobURL, "Range", "bytes=1000-299999")
	if code != http.StatusPartialContent || !bytes.Equal(b, content[1000:300000]) || h.Get("Content-Range") == "" {
		t.Fatalf("GET blob range: %d, %d bytes, %q", code, len(b), h.Get("Content-Range"))
	}

	// A server that has just started knows the blob verified from its
	// object's marker, which the GET's response carries.
	stop()
	hs = start()
	blobURL = hs.URL + "/v2/pull/app/blobs/" + ld.String()
	l.take()
	if code, _, b := get(blobURL); code != http.StatusOK || !bytes.Equal(b, content) {
		t.Fatalf("GET blob after a restart: %d, %d bytes", code, len(b))
	}
	if reqs := l.take(); strings.Join(reqs, " ") != "GET" {
		t.Errorf("GET blob after a restart: S3 requests %q, want one GET", reqs)
	}

	// Replace the object behind custody's back: same length, one byte
	// changed, no marker.
	u, _ := url.Parse(os.Getenv("CUSTODY_TEST_S3"))
	secret, _ := u.User.Password()
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(u.User.Username(), secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(cfg.Blobs, "s3://"), "/")
	objKey := prefix + key
	bad := bytes.Clone(content)
	bad[len(bad)/2] ^= 1
	if _, err := mc.PutObject(t.Context(), bucket, objKey, bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	l.take()
	code, h, b = get(blobURL)
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if code != http.StatusInternalServerError || json.Unmarshal(b, &e) != nil || len(e.Errors) != 1 || e.Errors[0].Code != "BLOB_UNKNOWN" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("GET of a replaced blob: %d %q %q, want 500 with OCI error JSON", code, h.Get("Content-Type"), b)
	}
	if reqs := l.take(); strings.Join(reqs, " ") != "GET GET" {
		t.Errorf("GET of a replaced blob: S3 requests %q, want the GET and the GET hashing it", reqs)
	}
	// Nothing changed: the object is still the replaced one.
	obj, err := mc.GetObject(t.Context(), bucket, objKey, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if got, err := io.ReadAll(obj); err != nil || !bytes.Equal(got, bad) {
		t.Fatalf("replaced object changed: %v", err)
	}
}
