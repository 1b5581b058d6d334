package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/certificate-transparency-go/ctutil"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/google/certificate-transparency-go/x509util"

	"github.com/custody-dev/custody/internal/ctlog"
	"github.com/custody-dev/custody/internal/key"
)

// TestCAOnPKCS11Token: the CA key and its CT log's key live on a
// SoftHSM2 token (set up by scripts/softhsm.sh); certificates it issues
// chain to its root and embed an SCT that verifies with the log's key.
func TestCAOnPKCS11Token(t *testing.T) {
	base := os.Getenv("CUSTODY_TEST_PKCS11_URI")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CUSTODY_TEST_PKCS11_URI is not set under CI: scripts/softhsm.sh must set up the SoftHSM2 token")
		}
		t.Skip("CUSTODY_TEST_PKCS11_URI is not set; run `eval \"$(bash scripts/softhsm.sh start)\"` to test a CA key on a token")
	}
	u, err := key.ParsePKCS11URI(base)
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	u.Object = "ca-" + hex.EncodeToString(suffix)
	signer, err := key.GeneratePKCS11(u.String(), key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := signer.(interface{ Close() error }); ok {
		defer c.Close()
	}
	root, err := CreateRoot(signer, "token CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(certFile, EncodeChain([]*x509.Certificate{root}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, closer, err := Open(u.String(), certFile, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	u.Object = "ctlog-" + hex.EncodeToString(suffix)
	if _, err := key.GeneratePKCS11(u.String(), key.ECDSAP256); err != nil {
		t.Fatal(err)
	}
	l, closeLog, err := ctlog.Open(u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog.Close()
	c.WithCTLog(l)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, err := c.Issue(Identity{Issuer: "https://i", URI: "https://i/job"}, &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
		t.Fatalf("a certificate from the token CA does not verify: %v", err)
	}
	scts, err := x509util.ParseSCTsFromCertificate(chain[0].Raw)
	if err != nil || len(scts) != 1 {
		t.Fatalf("SCTs: %v, %v", scts, err)
	}
	ctChain, _ := ctx509.ParseCertificates(append(append([]byte{}, chain[0].Raw...), root.Raw...))
	if err := ctutil.VerifySCT(l.Public(), ctChain, scts[0], true); err != nil {
		t.Fatalf("the SCT of the token CT log does not verify: %v", err)
	}
}
