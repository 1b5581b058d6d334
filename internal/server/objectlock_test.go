package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob/s3"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/scrub"
	"github.com/custody-dev/custody/internal/server"
)

// s3Config points cfg at the MinIO of CUSTODY_TEST_S3 (fresh prefix) and
// returns a raw store on the same prefix, to look at the bucket directly.
func s3Config(t *testing.T, cfg *config.Config) *s3.Store {
	t.Helper()
	raw := os.Getenv("CUSTODY_TEST_S3")
	if raw == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CUSTODY_TEST_S3 is not set under CI: scripts/test.sh starts MinIO")
		}
		t.Skip("CUSTODY_TEST_S3 not set; eval \"$(bash scripts/minio.sh start)\"")
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		t.Fatalf("CUSTODY_TEST_S3: %v", err)
	}
	secret, _ := u.User.Password()
	t.Setenv("AWS_ACCESS_KEY_ID", u.User.Username())
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "server-" + hex.EncodeToString(b[:])
	bucket := strings.Trim(u.Path, "/")
	cfg.Blobs = "s3://" + bucket + "/" + prefix
	cfg.S3.Endpoint = u.Scheme + "://" + u.Host
	st, err := s3.New(s3.Options{Endpoint: u.Host, Secure: u.Scheme == "https", AccessKey: u.User.Username(), SecretKey: secret, Bucket: bucket, Prefix: prefix + "/"})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestObjectLockMirrored: on an Object Lock bucket, custody's retention
// and legal holds become the bucket's own, on every object of the
// artifact, and scrub reports an object whose bucket lock was weakened.
func TestObjectLockMirrored(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = t.TempDir()
	bucket := s3Config(t, &cfg)
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	host := strings.TrimPrefix(hs.URL, "http://")

	img, _ := random.Image(1024, 2)
	ref, _ := name.ParseReference(host+"/locked/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	md, _ := img.Digest()
	objs := []digest.Digest{digest.Digest(md.String())}
	ls, _ := img.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		objs = append(objs, digest.Digest(d.String()))
	}
	cd, _ := img.ConfigName()
	objs = append(objs, digest.Digest(cd.String()))

	until := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second)
	put := func(path string, body any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPut, hs.URL+path, strings.NewReader(string(b)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	put("/api/v1/retention/locked/app/@"+md.String(), map[string]any{"mode": "governance", "retainUntil": until})
	put("/api/v1/hold/locked/app/@"+md.String(), nil)

	ctx := context.Background()
	waitFor := func(what string, ok func(d digest.Digest) bool) {
		t.Helper()
		for _, d := range objs {
			deadline := time.Now().Add(10 * time.Second)
			for !ok(d) {
				if time.Now().After(deadline) {
					mode, u, hold, err := bucket.BucketLock(ctx, d)
					t.Fatalf("%s on %s: bucket has %q until %s, hold %v (%v)", what, d, mode, u, hold, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	waitFor("governance retention and legal hold", func(d digest.Digest) bool {
		mode, u, hold, err := bucket.BucketLock(ctx, d)
		return err == nil && mode == "governance" && !u.Before(until) && hold
	})
	// The bucket itself now refuses deleting the layer.
	if err := bucket.Delete(ctx, objs[1]); err == nil {
		t.Fatal("the bucket deleted a held object")
	}

	scrubNow := func() []scrub.Problem {
		t.Helper()
		resp, err := http.Post(hs.URL+"/api/v1/scrub", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rep scrub.Report
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			t.Fatal(err)
		}
		return rep.Problems
	}
	// Scrub lets the mirror finish what is queued first: nothing to report.
	for _, p := range scrubNow() {
		if p.Kind == "object-lock" {
			t.Fatalf("scrub reported a mirrored lock: %+v", p)
		}
	}

	// Weaken the bucket behind custody's back: scrub reports it.
	if err := bucket.SetLegalHold(ctx, objs[1], false); err != nil {
		t.Fatal(err)
	}
	rep := scrub.Report{Problems: scrubNow()}
	found := false
	for _, p := range rep.Problems {
		if p.Kind == "object-lock" && p.Digest == objs[1] && strings.Contains(p.Detail, "legal hold") {
			found = true
		}
	}
	if !found {
		t.Fatalf("scrub did not report the weakened object: %+v", rep.Problems)
	}

	// Clearing custody's hold clears the bucket's (retention stays).
	req, _ := http.NewRequest(http.MethodDelete, hs.URL+"/api/v1/hold/locked/app/@"+md.String(), nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("clear hold: %v %v", err, resp)
	}
	waitFor("hold cleared, retention kept", func(d digest.Digest) bool {
		mode, _, hold, err := bucket.BucketLock(ctx, d)
		return err == nil && !hold && mode == "governance"
	})
}

// TestBlobRedirect: with s3.redirect the registry answers blob downloads
// with a presigned URL of the bucket, and clients get the same bytes.
func TestBlobRedirect(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Mode = "none"
	cfg.Data = t.TempDir()
	s3Config(t, &cfg)
	cfg.S3.Redirect = true
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	img, _ := random.Image(4096, 1)
	ref, _ := name.ParseReference(strings.TrimPrefix(hs.URL, "http://")+"/redir/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	ld, _ := ls[0].Digest()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(hs.URL + "/v2/redir/app/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(loc, "X-Amz-Signature") {
		t.Fatalf("GET blob: %d %q", resp.StatusCode, loc)
	}
	// A real client follows it and verifies the digest.
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	gl, _ := got.Layers()
	rc, err := gl[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatalf("reading the redirected layer: %v", err)
	}
	rc.Close()
}
