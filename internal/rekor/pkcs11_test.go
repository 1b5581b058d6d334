package rekor_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	pbs "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/rekor"
)

// TestLogKeyOnPKCS11Token: the log key lives on a SoftHSM2 token (set up
// by scripts/softhsm.sh), opened as the server opens it (key.OpenSigner);
// its checkpoints verify as sigstore-go verifies them.
func TestLogKeyOnPKCS11Token(t *testing.T) {
	base := os.Getenv("CUSTODY_TEST_PKCS11_URI")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CUSTODY_TEST_PKCS11_URI is not set under CI: scripts/softhsm.sh must set up the SoftHSM2 token")
		}
		t.Skip("CUSTODY_TEST_PKCS11_URI is not set; run `eval \"$(bash scripts/softhsm.sh start)\"` to test a log key on a token")
	}
	u, err := key.ParsePKCS11URI(base)
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	u.Object = "rekor-" + hex.EncodeToString(suffix)
	gen, err := key.GeneratePKCS11(u.String(), key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := gen.(interface{ Close() error }); ok {
		c.Close()
	}
	signer, closer, err := key.OpenSigner(u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	md, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	l, err := rekor.Open(t.Context(), rekor.Options{Store: md.SigningLog(), Signer: signer, URL: "https://log.test", Closer: closer})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	k, err := key.Generate(key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	d := sha256.Sum256([]byte("on a token"))
	sig, _ := ecdsa.SignASN1(rand.Reader, k.(*ecdsa.PrivateKey), d[:])
	e, err := l.Check(hashedRequest(d[:], sig, &pb.Verifier{Verifier: &pb.Verifier_PublicKey{PublicKey: &pb.PublicKey{RawBytes: der}}, KeyDetails: v1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}))
	if err != nil {
		t.Fatal(err)
	}
	tle, err := l.Add(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	if err := rekor.VerifyEntry(tle, []rekor.TrustedLog{l.Trusted()}, e.LeafHash); err != nil {
		t.Fatalf("entry signed on the token: %v", err)
	}
}

// TestConcurrentAdds: clients adding at once each get an entry whose
// proof verifies in its checkpoint; a request sent twice at once is
// logged once (run with -race).
func TestConcurrentAdds(t *testing.T) {
	s := startLog(t, nil)
	k, _ := key.Generate(key.ECDSAP256)
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	v := &pb.Verifier{Verifier: &pb.Verifier_PublicKey{PublicKey: &pb.PublicKey{RawBytes: der}}, KeyDetails: v1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}
	const distinct = 12
	reqs := make([][]byte, distinct)
	for i := range reqs {
		d := sha256.Sum256([]byte{byte(i)})
		sig, _ := ecdsa.SignASN1(rand.Reader, k.(*ecdsa.PrivateKey), d[:])
		reqs[i] = hashedRequest(d[:], sig, v)
	}
	errs := make(chan error, 2*distinct)
	for i := range 2 * distinct {
		req := reqs[i%distinct] // each request twice
		go func() {
			errs <- func() error {
				code, body := post(t, s, req)
				if code != http.StatusCreated {
					return &httpError{code, string(body)}
				}
				var tle pbs.TransparencyLogEntry
				if err := protojson.Unmarshal(body, &tle); err != nil {
					return err
				}
				e, err := s.log.Check(req)
				if err != nil {
					return err
				}
				return rekor.VerifyEntry(&tle, []rekor.TrustedLog{s.log.Trusted()}, e.LeafHash)
			}()
		}()
	}
	for range 2 * distinct {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := size(t, s); got != distinct {
		t.Fatalf("log size %d, want %d", got, distinct)
	}
}

type httpError struct {
	code int
	body string
}

func (e *httpError) Error() string { return http.StatusText(e.code) + ": " + e.body }
