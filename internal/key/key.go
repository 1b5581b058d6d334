// Package key manages custody's signing keys: ECDSA P-256 and Ed25519 keys
// held as files encrypted at rest with a passphrase, in the format cosign
// uses for its own keys (so `cosign sign --key` takes them as they are), a
// key ring directory with one metadata file per key, rotation, and the
// trust-root file offline verifiers use. See docs/signing.md.
package key

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// Algorithm names a signing key algorithm.
type Algorithm string

// The supported algorithms.
const (
	ECDSAP256 Algorithm = "ecdsa-p256"
	Ed25519   Algorithm = "ed25519"
)

// PEM block types. The private key type is the one cosign and sigstore
// write and read (cosign's SigstorePrivateKeyPemType).
const (
	PrivateKeyPEMType = "ENCRYPTED SIGSTORE PRIVATE KEY"
	PublicKeyPEMType  = "PUBLIC KEY"
)

// ErrPassphrase reports a private key that does not decrypt with the
// passphrase given.
var ErrPassphrase = errors.New("wrong passphrase")

// ParseAlgorithm checks an algorithm name.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch a := Algorithm(s); a {
	case ECDSAP256, Ed25519:
		return a, nil
	}
	return "", fmt.Errorf("unsupported key algorithm %q: use %s or %s", s, ECDSAP256, Ed25519)
}

// Generate creates a new private key.
func Generate(alg Algorithm) (crypto.Signer, error) {
	switch alg {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	_, err := ParseAlgorithm(string(alg))
	return nil, err
}

// AlgorithmOf returns the algorithm of a public key.
func AlgorithmOf(pub crypto.PublicKey) (Algorithm, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() {
			return ECDSAP256, nil
		}
		return "", fmt.Errorf("unsupported ECDSA curve %s: only P-256 keys are supported", p.Curve.Params().Name)
	case ed25519.PublicKey:
		return Ed25519, nil
	}
	return "", fmt.Errorf("unsupported public key type %T: use ECDSA P-256 or Ed25519", pub)
}

// ID returns a key's identifier: the hex SHA-256 of its PKIX (DER) public key.
func ID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// EncryptPrivateKey encodes a private key as cosign does: the PKCS #8 DER
// encrypted with go-securesystemslib's encrypted package (scrypt and NaCl
// secretbox), whose JSON is the body of an "ENCRYPTED SIGSTORE PRIVATE KEY"
// PEM block.
func EncryptPrivateKey(priv crypto.Signer, passphrase []byte) ([]byte, error) {
	if _, err := AlgorithmOf(priv.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	enc, err := encrypted.Encrypt(der, passphrase)
	if err != nil {
		return nil, fmt.Errorf("encrypting private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PrivateKeyPEMType, Bytes: enc}), nil
}

// DecryptPrivateKey reads a private key written by EncryptPrivateKey (or by
// `cosign generate-key-pair`). A wrong passphrase gives ErrPassphrase.
func DecryptPrivateKey(data, passphrase []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM file: expected an ENCRYPTED SIGSTORE PRIVATE KEY block")
	}
	// cosign still reads its older block type; so do we.
	if block.Type != PrivateKeyPEMType && block.Type != "ENCRYPTED COSIGN PRIVATE KEY" {
		return nil, fmt.Errorf("PEM block %q is not an encrypted private key: expected %s", block.Type, PrivateKeyPEMType)
	}
	der, err := encrypted.Decrypt(block.Bytes, passphrase)
	if err != nil {
		if err.Error() == "encrypted: decryption failed" {
			return nil, ErrPassphrase
		}
		return nil, fmt.Errorf("decrypting private key: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	if _, err := AlgorithmOf(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// MarshalPublicKey encodes a public key as a PKIX "PUBLIC KEY" PEM block.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: PublicKeyPEMType, Bytes: der}), nil
}

// ParsePublicKey reads a "PUBLIC KEY" PEM block.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != PublicKeyPEMType {
		return nil, errors.New("not a PEM public key: expected a PUBLIC KEY block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	if _, err := AlgorithmOf(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// SignDigest signs a SHA-256 digest: ECDSA over the digest (ASN.1
// signature), Ed25519 over the digest bytes as the message.
func SignDigest(s crypto.Signer, digest []byte) ([]byte, error) {
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("digest is %d bytes, want a %d-byte SHA-256 digest", len(digest), sha256.Size)
	}
	var opts crypto.SignerOpts = crypto.SHA256
	if _, ok := s.Public().(ed25519.PublicKey); ok {
		opts = crypto.Hash(0)
	}
	return s.Sign(rand.Reader, digest, opts)
}

// VerifyDigest checks a signature made by SignDigest.
func VerifyDigest(pub crypto.PublicKey, digest, sig []byte) error {
	ok := false
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(p, digest, sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(p, digest, sig)
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
	if !ok {
		return errors.New("signature does not verify")
	}
	return nil
}
