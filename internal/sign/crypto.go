package sign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"

	"github.com/custody-dev/custody/internal/key"
)

// signMessage signs msg the way cosign and sigstore-go sign with a key:
// ECDSA P-256 over the SHA-256 of msg (ASN.1 signature), Ed25519 over msg
// itself (pure Ed25519).
func signMessage(s crypto.Signer, msg []byte) ([]byte, error) {
	alg, err := key.AlgorithmOf(s.Public())
	if err != nil {
		return nil, err
	}
	switch alg {
	case key.Ed25519:
		return s.Sign(rand.Reader, msg, crypto.Hash(0))
	default:
		sum := sha256.Sum256(msg)
		return key.SignDigest(s, sum[:])
	}
}

// verifyMessage checks a signature made by signMessage or by cosign: for
// Ed25519, pure Ed25519 (cosign v2, sigstore-go) or Ed25519ph (cosign v3's
// default for Ed25519 keys).
func verifyMessage(pub crypto.PublicKey, msg, sig []byte) error {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if ed25519.Verify(p, msg, sig) {
			return nil
		}
		// cosign v3 signs images with Ed25519ph (over SHA-512 of the
		// message) by default.
		sum := sha512.Sum512(msg)
		if ed25519.VerifyWithOptions(p, sum[:], sig, &ed25519.Options{Hash: crypto.SHA512}) == nil {
			return nil
		}
		return errors.New("signature does not verify")
	case *ecdsa.PublicKey:
		if _, err := key.AlgorithmOf(p); err != nil {
			return err
		}
		sum := sha256.Sum256(msg)
		return key.VerifyDigest(p, sum[:], sig)
	}
	return fmt.Errorf("unsupported public key type %T: use ECDSA P-256 or Ed25519", pub)
}

// verifyAny tries every trusted key and returns the ID of the one that
// verifies sig over msg.
func verifyAny(keys []crypto.PublicKey, msg, sig []byte) (string, error) {
	for _, pub := range keys {
		if verifyMessage(pub, msg, sig) == nil {
			return key.ID(pub)
		}
	}
	return "", fmt.Errorf("signature does not verify with any of the %d trusted keys", len(keys))
}
