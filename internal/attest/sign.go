package attest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/custody-dev/custody/internal/key"
)

// Sign encodes a statement, signs it in a DSSE envelope with an ECDSA
// P-256 or Ed25519 signer (a key from internal/key, or any crypto.Signer
// such as an HSM key), and returns the envelope JSON.
//
// keyID is written as the signature's keyid, an unauthenticated hint for
// the verifier's key lookup (Verify never trusts it). Pass custody's
// key.ID of the signer (what ResolverFromKeys and the trust root index
// by), or "" as cosign writes. cosign v2.6.5 ignores the keyid when it
// verifies (TestCosignInterop checks both), but verifiers built on
// sigstore's dsse.WrapVerifier try only "" or CosignKeyID(pub): use "" when
// such third-party verifiers matter more than the hint.
func Sign(ctx context.Context, signer crypto.Signer, keyID string, stmt *Statement) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if signer == nil {
		return nil, errors.New("attest.Sign: no signer")
	}
	pub := signer.Public()
	if _, err := key.AlgorithmOf(pub); err != nil {
		return nil, fmt.Errorf("attest.Sign: %w", err)
	}
	payload, err := MarshalStatement(stmt)
	if err != nil {
		return nil, err
	}
	es, err := dsse.NewEnvelopeSigner(&paeSigner{signer: signer, keyID: keyID})
	if err != nil {
		return nil, err
	}
	env, err := es.SignPayload(ctx, PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("signing attestation: %w", err)
	}
	out, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("%w: envelope would be %d bytes, the limit is %d", ErrTooLarge, len(out), MaxEnvelopeBytes)
	}
	return out, nil
}

// paeSigner is a dsse.Signer over a crypto.Signer.
type paeSigner struct {
	signer crypto.Signer
	keyID  string
}

// Sign signs the PAE bytes: ECDSA over their SHA-256 (ASN.1 DER),
// Ed25519 over the bytes themselves.
func (p *paeSigner) Sign(ctx context.Context, pae []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch p.signer.Public().(type) {
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(pae)
		return key.SignDigest(p.signer, sum[:])
	case ed25519.PublicKey:
		return p.signer.Sign(rand.Reader, pae, crypto.Hash(0))
	}
	return nil, fmt.Errorf("unsupported signer %T", p.signer.Public())
}

func (p *paeSigner) KeyID() (string, error) { return p.keyID, nil }

// verifyPAE checks a signature made by paeSigner.Sign.
func verifyPAE(pub crypto.PublicKey, pae, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(pae)
		return key.VerifyDigest(k, sum[:], sig)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize || !ed25519.Verify(k, pae, sig) {
			return errors.New("signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unsupported public key type %T: use ECDSA P-256 or Ed25519", pub)
}
