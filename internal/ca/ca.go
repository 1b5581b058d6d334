// Package ca is custody's certificate authority for workloads: it issues
// short-lived X.509 code-signing certificates for an ephemeral public key
// to a workload that presents a valid OIDC token of a trusted issuer and
// proves it holds the private key, with the token's identity and build
// platform claims in the extensions Fulcio's certificate specification
// defines (so cosign and sigstore-go read them). The token itself is
// verified by internal/auth, the one place OIDC tokens are judged.
package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"time"

	ct "github.com/google/certificate-transparency-go"

	"github.com/custody-dev/custody/internal/ctlog"
	"github.com/custody-dev/custody/internal/key"
)

// DefaultValidity is how long a workload certificate is valid: long
// enough to sign, short enough that it need never be revoked.
const DefaultValidity = 10 * time.Minute

// MaxValidity bounds the configured validity.
const MaxValidity = 24 * time.Hour

// CA issues workload certificates with one issuing key.
type CA struct {
	signer   crypto.Signer
	chain    []*x509.Certificate // chain[0] is the issuing certificate
	validity time.Duration
	now      func() time.Time
	ctlog    CTLog
}

// CTLog signs certificate timestamps over precertificates:
// internal/ctlog's Log.
type CTLog interface {
	SignPrecert(precertDER []byte, issuer *x509.Certificate) (*ct.SignedCertificateTimestamp, error)
}

// WithCTLog makes the CA issue each certificate as Fulcio does: first a
// precertificate (with the critical poison extension) that the CT log
// signs a timestamp for, then the certificate itself with that SCT
// embedded (RFC 6962 section 3.3), which cosign and sigstore-go verify
// against the log's key in the trusted root.
func (c *CA) WithCTLog(l CTLog) *CA {
	c.ctlog = l
	return c
}

// New returns a CA signing with signer, whose certificate is chain[0]
// (followed by its issuers, if any).
func New(signer crypto.Signer, chain []*x509.Certificate, validity time.Duration) (*CA, error) {
	if len(chain) == 0 {
		return nil, errors.New("the CA needs its certificate")
	}
	c := chain[0]
	if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("the CA certificate is not a CA certificate (basic constraints CA and the certSign key usage)")
	}
	if !samePublicKey(c.PublicKey, signer.Public()) {
		return nil, errors.New("the CA certificate does not certify the CA key")
	}
	if validity == 0 {
		validity = DefaultValidity
	}
	if validity < 0 || validity > MaxValidity {
		return nil, fmt.Errorf("certificate validity %s: must be positive and at most %s", validity, MaxValidity)
	}
	return &CA{signer: signer, chain: chain, validity: validity, now: time.Now}, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	x, err1 := x509.MarshalPKIXPublicKey(a)
	y, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// Open loads the CA: its key from keyRef (an encrypted private key file
// as 'custody ca create' or 'custody key create' writes it, decrypted with
// passphrase, or a pkcs11: URI of a key on a PKCS #11 token) and its
// certificate chain from certFile (PEM, issuing certificate first). The
// closer releases a token session.
func Open(keyRef, certFile string, passphrase []byte, validity time.Duration) (*CA, io.Closer, error) {
	pemChain, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the CA certificate: %w", err)
	}
	chain, err := ParseChain(pemChain)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certFile, err)
	}
	signer, closer, err := key.OpenSigner(keyRef, passphrase)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the CA key: %w", err)
	}
	c, err := New(signer, chain, validity)
	if err != nil {
		closer.Close()
		return nil, nil, err
	}
	return c, closer, nil
}

// ParseChain reads PEM certificates.
func ParseChain(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q is not a certificate", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// CreateRoot makes a self-signed root certificate for a CA key, valid for
// lifetime from now.
func CreateRoot(signer crypto.Signer, commonName string, lifetime time.Duration) (*x509.Certificate, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"custody"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("creating the CA certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// EncodeChain writes certificates as PEM.
func EncodeChain(chain []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range chain {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// Chain returns the CA's certificate chain, issuing certificate first.
func (c *CA) Chain() []*x509.Certificate { return c.chain }

// Validity is how long the certificates issued are valid.
func (c *CA) Validity() time.Duration { return c.validity }

// Issue certifies pub for the identity: a code-signing certificate valid
// for the CA's validity from now, never beyond the CA certificate's own.
// It returns the certificate followed by the CA chain.
func (c *CA) Issue(id Identity, pub crypto.PublicKey) ([]*x509.Certificate, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := c.now()
	notAfter := now.Add(c.validity)
	if notAfter.After(c.chain[0].NotAfter) {
		return nil, errors.New("the CA certificate expires before a certificate issued now would: renew the CA certificate")
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		EmailAddresses:        id.emails(),
		URIs:                  id.uris(),
		ExtraExtensions:       id.Extensions,
	}
	if c.ctlog != nil {
		// The precertificate is the certificate to be, poisoned; the
		// final one replaces the poison by the SCT list, so a verifier
		// that removes the list gets the TBSCertificate the log signed.
		tmpl.ExtraExtensions = append(slices.Clip(id.Extensions), ctlog.PoisonExtension())
		pre, err := x509.CreateCertificate(rand.Reader, tmpl, c.chain[0], pub, c.signer)
		if err != nil {
			return nil, fmt.Errorf("issuing the precertificate: %w", err)
		}
		sct, err := c.ctlog.SignPrecert(pre, c.chain[0])
		if err != nil {
			return nil, fmt.Errorf("getting the signed certificate timestamp: %w", err)
		}
		ext, err := ctlog.SCTListExtension(sct)
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = append(slices.Clip(id.Extensions), ext)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.chain[0], pub, c.signer)
	if err != nil {
		return nil, fmt.Errorf("issuing the certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return append([]*x509.Certificate{leaf}, c.chain...), nil
}

func serialNumber() (*big.Int, error) {
	// 159 random bits: positive and within RFC 5280's 20 octets.
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
}
