package key

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// The ring's time-stamp authority lives in its tsa/ subdirectory:
// <sha256 of the leaf>.pem for every TSA certificate chain the ring has
// had (kept after a replacement so old time-stamps keep verifying), and
// signing.key, the current TSA private key, encrypted like the ring's
// signing keys.
const (
	tsaDir     = "tsa"
	tsaKeyFile = "signing.key"
)

// ErrNoTSA reports a ring without a time-stamp authority.
var ErrNoTSA = errors.New("the key ring has no time-stamp authority (custody key tsa create)")

// TimestampAuthorities returns the ring's TSA certificate chains, each
// valid for its leaf certificate's validity, in a stable order.
func (r *Ring) TimestampAuthorities() ([]TrustedTSA, error) {
	matches, err := filepath.Glob(filepath.Join(r.dir, tsaDir, "*.pem"))
	if err != nil {
		return nil, err
	}
	slices.Sort(matches)
	var out []TrustedTSA
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		certs, err := ParseCertificates(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		out = append(out, TrustedTSA{CertChain: string(b), ValidFor: Validity{Start: certs[0].NotBefore.UTC(), End: certs[0].NotAfter.UTC()}})
	}
	return out, nil
}

// SetTSA makes chain (PEM, leaf first) and priv the ring's time-stamp
// authority, encrypting priv with passphrase. Chains set before stay in
// the trust root.
func (r *Ring) SetTSA(chainPEM []byte, priv crypto.Signer, passphrase []byte) error {
	certs, err := ParseCertificates(chainPEM)
	if err != nil {
		return err
	}
	if eq, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(priv.Public()) {
		return errors.New("the TSA certificate is not for the TSA key")
	}
	enc, err := EncryptPrivateKey(priv, passphrase)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(r.dir, tsaDir), 0o700); err != nil {
		return err
	}
	sum := sha256.Sum256(certs[0].Raw)
	if err := writeFile(filepath.Join(r.dir, tsaDir, hex.EncodeToString(sum[:])+".pem"), chainPEM, 0o600); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(r.dir, tsaDir, tsaKeyFile), enc, 0o600); err != nil {
		return err
	}
	return r.archive("the time-stamp authority is set")
}

// TSASigner returns the ring's current TSA key, decrypted with
// passphrase, and its certificate chain (PEM, leaf first). It fails with
// ErrNoTSA when the ring has none.
func (r *Ring) TSASigner(passphrase []byte) (crypto.Signer, []byte, error) {
	enc, err := os.ReadFile(filepath.Join(r.dir, tsaDir, tsaKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, ErrNoTSA
	}
	if err != nil {
		return nil, nil, err
	}
	priv, err := DecryptPrivateKey(enc, passphrase)
	if err != nil {
		return nil, nil, fmt.Errorf("TSA key: %w", err)
	}
	tsas, err := r.TimestampAuthorities()
	if err != nil {
		return nil, nil, err
	}
	for _, ta := range tsas {
		certs, _ := ParseCertificates([]byte(ta.CertChain))
		if eq, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && eq.Equal(priv.Public()) {
			return priv, []byte(ta.CertChain), nil
		}
	}
	return nil, nil, errors.New("no TSA certificate chain in the key ring is for its TSA key")
}

// ParseCertificates reads PEM CERTIFICATE blocks (a chain, leaf first).
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate chain: unexpected PEM block %q", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate chain: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("certificate chain: no certificate")
	}
	return out, nil
}
