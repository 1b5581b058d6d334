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
	"strings"
)

// The ring's time-stamp authority lives in its tsa/ subdirectory:
// <sha256 of the leaf>.pem for every TSA certificate chain the ring has
// had (kept after a replacement so old time-stamps keep verifying), and
// signing.key, the current TSA private key, encrypted like the ring's
// signing keys.
const (
	tsaDir     = "tsa"
	tsaKeyFile = "signing.key"
	// tsaURIFile names, instead of signing.key, a TSA key on a PKCS #11
	// token (its URI without the PIN).
	tsaURIFile = "signing.uri"
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
	_ = os.Remove(filepath.Join(r.dir, tsaDir, tsaURIFile))
	return r.archive("the time-stamp authority is set")
}

// SetTSAOnToken makes chain (PEM, leaf first) and the key on a PKCS #11
// token that uri names (with its PIN) the ring's time-stamp authority.
// The ring records the URI without the PIN, naming the key by label and
// CKA_ID.
func (r *Ring) SetTSAOnToken(chainPEM []byte, uri string) error {
	certs, err := ParseCertificates(chainPEM)
	if err != nil {
		return err
	}
	u, err := ParsePKCS11URI(uri)
	if err != nil {
		return err
	}
	s, c, err := OpenPKCS11(uri)
	if err != nil {
		return err
	}
	defer c.Close()
	if eq, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(s.Public()) {
		return errors.New("the TSA certificate is not for the token's key")
	}
	if ts, ok := s.(tokenSigner); ok && u.ID == nil {
		u.ID = ts.tokenKeyID()
	}
	if err := os.MkdirAll(filepath.Join(r.dir, tsaDir), 0o700); err != nil {
		return err
	}
	sum := sha256.Sum256(certs[0].Raw)
	if err := writeFile(filepath.Join(r.dir, tsaDir, hex.EncodeToString(sum[:])+".pem"), chainPEM, 0o600); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(r.dir, tsaDir, tsaURIFile), []byte(u.Redacted()+"\n"), 0o600); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(r.dir, tsaDir, tsaKeyFile))
	return r.archive("the time-stamp authority is set")
}

// TSAOnToken reports whether the ring's TSA key is on a PKCS #11 token
// (TSASigner then takes the token's PIN, not the ring's passphrase).
func (r *Ring) TSAOnToken() bool {
	_, err := os.Stat(filepath.Join(r.dir, tsaDir, tsaURIFile))
	return err == nil
}

// TSASigner returns the ring's current TSA key, decrypted with
// passphrase, and its certificate chain (PEM, leaf first). It fails with
// ErrNoTSA when the ring has none.
func (r *Ring) TSASigner(passphrase []byte) (crypto.Signer, []byte, error) {
	priv, err := r.tsaKey(passphrase)
	if err != nil {
		return nil, nil, err
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

// tsaKey opens the TSA key: the encrypted file, or the token key (secret
// is then its PIN, unless the recorded URI has a pin-source).
func (r *Ring) tsaKey(secret []byte) (crypto.Signer, error) {
	if b, err := os.ReadFile(filepath.Join(r.dir, tsaDir, tsaURIFile)); err == nil {
		u, err := ParsePKCS11URI(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("TSA key: %w", err)
		}
		if u.PINSource == "" {
			u.PINValue = string(secret)
		}
		s, _, err := OpenPKCS11(u.String())
		if err != nil {
			return nil, fmt.Errorf("TSA key: %w", err)
		}
		return s, nil // the session stays open while the process signs
	}
	enc, err := os.ReadFile(filepath.Join(r.dir, tsaDir, tsaKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoTSA
	}
	if err != nil {
		return nil, err
	}
	priv, err := DecryptPrivateKey(enc, secret)
	if err != nil {
		return nil, fmt.Errorf("TSA key: %w", err)
	}
	return priv, nil
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
