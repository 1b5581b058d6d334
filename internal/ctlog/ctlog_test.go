package ctlog_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/google/certificate-transparency-go/x509util"

	"github.com/custody-dev/custody/internal/ctlog"
)

type issuer struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newIssuer(t testing.TB, name string) issuer {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return issuer{k, c}
}

// issue makes a leaf for a fresh key with extra extensions.
func (is issuer) issue(t testing.TB, exts ...pkix.Extension) []byte {
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), NotBefore: time.Unix(1_800_000_000, 0), NotAfter: time.Unix(1_800_000_600, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses: []string{"ci@example.com"}, ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.cert, &leafKey.PublicKey, is.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func newLog(t testing.TB) (*ctlog.Log, *ecdsa.PrivateKey) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	l, err := ctlog.New(k)
	if err != nil {
		t.Fatal(err)
	}
	return l, k
}

// TestEmbeddedSCT: the SCT the log signs over a precertificate verifies,
// with certificate-transparency-go's verifier (the one sigstore-go calls),
// over the final certificate that embeds it, and names the log by the
// SHA-256 of its key.
func TestEmbeddedSCT(t *testing.T) {
	l, logKey := newLog(t)
	is := newIssuer(t, "ca")
	// The same template twice: poisoned, then with the SCT list. Both
	// certificates must have the same TBSCertificate apart from those.
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), NotBefore: time.Now(), NotAfter: time.Now().Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses: []string{"ci@example.com"}, ExtraExtensions: []pkix.Extension{ctlog.PoisonExtension()},
	}
	pre, err := x509.CreateCertificate(rand.Reader, tmpl, is.cert, &leafKey.PublicKey, is.key)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	sct, err := l.SignPrecert(pre, is.cert)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&logKey.PublicKey)
	if sct.LogID.KeyID != sha256.Sum256(spki) || l.ID() != sha256.Sum256(spki) {
		t.Fatal("the log ID is not the SHA-256 of the log's public key")
	}
	if at := ct.TimestampToTime(sct.Timestamp); at.Before(before.Truncate(time.Millisecond)) || at.After(time.Now()) {
		t.Fatalf("SCT time %s is not now", at)
	}
	ext, err := ctlog.SCTListExtension(sct)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ExtraExtensions = []pkix.Extension{ext}
	final, err := x509.CreateCertificate(rand.Reader, tmpl, is.cert, &leafKey.PublicKey, is.key)
	if err != nil {
		t.Fatal(err)
	}
	scts, err := x509util.ParseSCTsFromCertificate(final)
	if err != nil || len(scts) != 1 {
		t.Fatalf("SCTs in the certificate: %v, %v", scts, err)
	}
	chain, err := ctx509.ParseCertificates(append(append([]byte{}, final...), is.cert.Raw...))
	if err != nil {
		t.Fatal(err)
	}
	if err := ctutil.VerifySCT(&logKey.PublicKey, chain, scts[0], true); err != nil {
		t.Fatalf("the embedded SCT does not verify: %v", err)
	}
	// Another log's key, or another issuer, does not verify it.
	_, other := newLog(t)
	if err := ctutil.VerifySCT(&other.PublicKey, chain, scts[0], true); err == nil {
		t.Fatal("verified with another log's key")
	}
	otherCA := newIssuer(t, "ca")
	chain2, _ := ctx509.ParseCertificates(append(append([]byte{}, final...), otherCA.cert.Raw...))
	if err := ctutil.VerifySCT(&logKey.PublicKey, chain2, scts[0], true); err == nil {
		t.Fatal("verified with another issuer's key hash")
	}
}

// TestSignPrecertRefusals: the log signs only a poisoned certificate
// signed by the issuer given, and only with a P-256 key.
func TestSignPrecertRefusals(t *testing.T) {
	l, _ := newLog(t)
	is := newIssuer(t, "ca")
	for _, tc := range []struct {
		name, want string
		der        []byte
		issuer     *x509.Certificate
	}{
		{"a certificate without poison", "no critical poison", is.issue(t), is.cert},
		{"a non-critical poison", "no critical poison", is.issue(t, pkix.Extension{Id: ctlog.OIDPoison, Value: []byte{5, 0}}), is.cert},
		{"another issuer's key", "not signed by its issuer", is.issue(t, ctlog.PoisonExtension()), func() *x509.Certificate {
			// Same name, another key: a forged issuer.
			other := newIssuer(t, "ca")
			return other.cert
		}()},
		{"another issuer's name", "names another issuer", is.issue(t, ctlog.PoisonExtension()), newIssuer(t, "other").cert},
		{"garbage", "precertificate", []byte("not DER"), is.cert},
		{"too large", "larger than", make([]byte, ctlog.MaxPrecertBytes+1), is.cert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sct, err := l.SignPrecert(tc.der, tc.issuer)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, %v; want an error with %q", sct, err, tc.want)
			}
		})
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := ctlog.New(ed); err == nil {
		t.Fatal("an Ed25519 CT log key was accepted")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := ctlog.New(p384); err == nil {
		t.Fatal("a P-384 CT log key was accepted")
	}
}

// FuzzSignPrecert: whatever bytes come as a precertificate, the log
// either refuses them or signs an SCT that verifies over them.
func FuzzSignPrecert(f *testing.F) {
	l, logKey := newLog(f)
	is := newIssuer(f, "ca")
	f.Add(is.issue(f, ctlog.PoisonExtension()))
	f.Add(is.issue(f))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		sct, err := l.SignPrecert(der, is.cert)
		if err != nil {
			return
		}
		chain, err := ctx509.ParseCertificates(append(append([]byte{}, der...), is.cert.Raw...))
		if err != nil {
			t.Fatalf("signed a precertificate that does not parse back: %v", err)
		}
		if err := ctutil.VerifySCT(&logKey.PublicKey, chain, sct, false); err != nil {
			t.Fatalf("signed an SCT that does not verify: %v", err)
		}
	})
}
