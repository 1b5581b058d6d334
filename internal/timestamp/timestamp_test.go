package timestamp_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/asn1"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dts "github.com/digitorus/timestamp"

	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/timestamp"
)

var policy = asn1.ObjectIdentifier{1, 2, 3, 4, 5}

func newAuthority(t testing.TB, alg key.Algorithm, now func() time.Time) *timestamp.Authority {
	t.Helper()
	signer, err := key.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := timestamp.NewChain(signer, "test TSA", time.Now().Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, err := timestamp.New(timestamp.Config{Signer: signer, Chain: chain, Policy: policy, Accuracy: 250 * time.Millisecond, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func serve(t *testing.T, a *timestamp.Authority) string {
	mux := http.NewServeMux()
	mux.Handle("POST "+timestamp.Path, a.Serve(nil))
	mux.HandleFunc("GET "+timestamp.ChainPath, a.ServeChain)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestOpenSSL asks the endpoint over HTTP with openssl ts -query and checks
// the reply with openssl ts -verify against the chain the endpoint serves:
// signature, ESS signing-certificate-v2, imprint, nonce echo and policy.
func TestOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	for _, alg := range []key.Algorithm{key.ECDSAP256} {
		t.Run(string(alg), func(t *testing.T) {
			url := serve(t, newAuthority(t, alg, nil))
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			os.WriteFile(data, []byte("signature bytes"), 0o600)
			run(t, "openssl", "ts", "-query", "-data", data, "-sha256", "-cert", "-tspolicy", policy.String(), "-out", filepath.Join(dir, "q.tsq"))
			q, _ := os.ReadFile(filepath.Join(dir, "q.tsq"))
			resp, err := http.Post(url+timestamp.Path, timestamp.QueryMediaType, bytes.NewReader(q))
			if err != nil {
				t.Fatal(err)
			}
			reply, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != timestamp.ReplyMediaType {
				t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), reply)
			}
			os.WriteFile(filepath.Join(dir, "r.tsr"), reply, 0o600)
			chainResp, err := http.Get(url + timestamp.ChainPath)
			if err != nil {
				t.Fatal(err)
			}
			chainPEM, _ := io.ReadAll(chainResp.Body)
			chainResp.Body.Close()
			chain, err := timestamp.ParseChain(chainPEM)
			if err != nil || len(chain) != 2 {
				t.Fatalf("chain: %v (%d)", err, len(chain))
			}
			os.WriteFile(filepath.Join(dir, "root.pem"), timestamp.EncodeChain(chain[1:]), 0o600)
			os.WriteFile(filepath.Join(dir, "leaf.pem"), timestamp.EncodeChain(chain[:1]), 0o600)
			out := run(t, "openssl", "ts", "-verify", "-queryfile", filepath.Join(dir, "q.tsq"), "-in", filepath.Join(dir, "r.tsr"),
				"-CAfile", filepath.Join(dir, "root.pem"), "-untrusted", filepath.Join(dir, "leaf.pem"))
			if !strings.Contains(out, "Verification: OK") {
				t.Fatalf("openssl ts -verify: %s", out)
			}
			text := run(t, "openssl", "ts", "-reply", "-in", filepath.Join(dir, "r.tsr"), "-text")
			for _, want := range []string{"Granted", "Policy OID: " + policy.String(), "0xFA millis", "Nonce: 0x"} {
				if !strings.Contains(text, want) {
					t.Errorf("reply lacks %q:\n%s", want, text)
				}
			}
			// A reply to another nonce fails openssl's check of the query.
			run(t, "openssl", "ts", "-query", "-data", data, "-sha256", "-cert", "-out", filepath.Join(dir, "q2.tsq"))
			if out, err := exec.Command("openssl", "ts", "-verify", "-queryfile", filepath.Join(dir, "q2.tsq"), "-in", filepath.Join(dir, "r.tsr"),
				"-CAfile", filepath.Join(dir, "root.pem"), "-untrusted", filepath.Join(dir, "leaf.pem")).CombinedOutput(); err == nil {
				t.Fatalf("openssl accepted a reply for another nonce: %s", out)
			}
		})
	}
}

// TestRefusals: requests custody does not answer are 400 problems.
func TestRefusals(t *testing.T) {
	url := serve(t, newAuthority(t, key.ECDSAP256, nil))
	sum := sha256.Sum256([]byte("x"))
	other, _ := (&dts.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:], TSAPolicyOID: asn1.ObjectIdentifier{1, 9}}).Marshal()
	sha1q, _ := (&dts.Request{HashAlgorithm: crypto.SHA1, HashedMessage: sum[:20]}).Marshal()
	short, _ := (&dts.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:10]}).Marshal()
	good, _ := (&dts.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:]}).Marshal()
	for name, c := range map[string]struct {
		ct   string
		body []byte
	}{
		"garbage":      {timestamp.QueryMediaType, []byte("not DER")},
		"other policy": {timestamp.QueryMediaType, other},
		"sha1":         {timestamp.QueryMediaType, sha1q},
		"short":        {timestamp.QueryMediaType, short},
		"trailing":     {timestamp.QueryMediaType, append(good, 0)},
		"content type": {"application/json", good},
		"too large":    {timestamp.QueryMediaType, make([]byte, timestamp.MaxRequestSize+1)},
	} {
		resp, err := http.Post(url+timestamp.Path, c.ct, bytes.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 4 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s %s", name, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
}

// TestClientAndVerify: the client's token verifies against the authority's
// chain inside its window, over exactly the stamped bytes, and not against
// another authority's chain or outside the window.
func TestClientAndVerify(t *testing.T) {
	at := time.Now().UTC().Truncate(time.Second)
	a := newAuthority(t, key.ECDSAP256, func() time.Time { return at })
	stamp := timestamp.Client(serve(t, a)+timestamp.Path, nil)
	resp, err := stamp(context.Background(), []byte("sig"))
	if err != nil {
		t.Fatal(err)
	}
	trusted := key.TrustedTSA{CertChain: string(a.ChainPEM()), ValidFor: key.Validity{Start: at.Add(-time.Hour)}}
	got, err := timestamp.Verify(resp, []byte("sig"), []key.TrustedTSA{trusted})
	if err != nil || !got.Equal(at) {
		t.Fatalf("Verify = %v, %v; want %v", got, err, at)
	}
	if _, err := timestamp.Verify(resp, []byte("other"), []key.TrustedTSA{trusted}); err == nil {
		t.Fatal("a token over other bytes verified")
	}
	stranger := newAuthority(t, key.ECDSAP256, nil)
	if _, err := timestamp.Verify(resp, []byte("sig"), []key.TrustedTSA{{CertChain: string(stranger.ChainPEM())}}); err == nil {
		t.Fatal("a token verified against an untrusted authority")
	}
	window := trusted
	window.ValidFor = key.Validity{Start: at.Add(time.Minute)}
	if _, err := timestamp.Verify(resp, []byte("sig"), []key.TrustedTSA{window}); err == nil {
		t.Fatal("a token outside the authority's window verified")
	}
	// In process, Stamp gives the same kind of token.
	own, err := a.Stamp(context.Background(), []byte("sig"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := timestamp.Verify(own, []byte("sig"), []key.TrustedTSA{trusted}); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseRequest(f *testing.F) {
	sum := sha256.Sum256([]byte("x"))
	for _, r := range []dts.Request{
		{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:]},
		{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:], Certificates: true, TSAPolicyOID: policy},
		{HashAlgorithm: crypto.SHA512, HashedMessage: make([]byte, 64)},
	} {
		b, _ := r.Marshal()
		f.Add(b)
	}
	f.Add([]byte{0x30, 0x00})
	a := newAuthority(f, key.ECDSAP256, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := timestamp.ParseRequest(b, policy)
		if err != nil {
			return
		}
		if len(req.HashedMessage) != req.HashAlgorithm.Size() {
			t.Fatalf("accepted an imprint of %d bytes for %v", len(req.HashedMessage), req.HashAlgorithm)
		}
		if _, err := a.Respond(b); err != nil {
			t.Fatalf("accepted request not answered: %v", err)
		}
	})
}

// BenchmarkRespond measures answering one time-stamp request (parse,
// sign with ECDSA P-256, encode), the work behind POST /api/v1/timestamp.
func BenchmarkRespond(b *testing.B) {
	a := newAuthority(b, key.ECDSAP256, nil)
	sum := sha256.Sum256([]byte("x"))
	q, _ := (&dts.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:], Certificates: true}).Marshal()
	for b.Loop() {
		if _, err := a.Respond(q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures checking one token against a trusted chain.
func BenchmarkVerify(b *testing.B) {
	a := newAuthority(b, key.ECDSAP256, nil)
	resp, err := a.Stamp(context.Background(), []byte("sig"))
	if err != nil {
		b.Fatal(err)
	}
	trusted := []key.TrustedTSA{{CertChain: string(a.ChainPEM())}}
	for b.Loop() {
		if _, err := timestamp.Verify(resp, []byte("sig"), trusted); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConcurrentRequests: the authority answers concurrent requests, each
// with its own nonce echoed (run with -race).
func TestConcurrentRequests(t *testing.T) {
	a := newAuthority(t, key.ECDSAP256, nil)
	stamp := timestamp.Client(serve(t, a)+timestamp.Path, nil)
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			data := []byte{byte(i)}
			resp, err := stamp(context.Background(), data)
			if err == nil {
				_, err = timestamp.Verify(resp, data, []key.TrustedTSA{{CertChain: string(a.ChainPEM())}})
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
