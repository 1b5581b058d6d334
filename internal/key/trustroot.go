package key

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// TrustRootMediaType identifies custody's trust-root file (docs/signing.md).
const TrustRootMediaType = "application/vnd.custody.trust-root.v1+json"

// TrustRoot lists the public keys an offline verifier trusts, each with the
// period in which it was allowed to sign.
type TrustRoot struct {
	MediaType string       `json:"mediaType"`
	Generated time.Time    `json:"generated"`
	Keys      []TrustedKey `json:"keys"`
	// TimestampAuthorities are the RFC 3161 time-stamp authorities whose
	// tokens say when a signature was made (docs/signing.md, "Trusted
	// time"); absent from trust roots written before custody had one.
	TimestampAuthorities []TrustedTSA `json:"timestampAuthorities,omitempty"`
	// CertificateAuthorities are the CAs whose short-lived certificates
	// make keyless signatures count (docs/keyless.md): custody's own
	// (internal/ca) or another Fulcio. Same form as a TSA: the PEM chain,
	// leaf (the issuing CA) first, root last, and the window in which
	// certificates it issued count.
	CertificateAuthorities []TrustedTSA `json:"certificateAuthorities,omitempty"`
	// TransparencyLogs are the Rekor v2 logs whose entries count
	// (docs/keyless.md); absent from trust roots written before custody
	// had one.
	TransparencyLogs []TrustedLog `json:"transparencyLogs,omitempty"`
}

// TrustedTSA is one time-stamp authority of a trust root: its certificate
// chain and the window in which its tokens count (its leaf certificate's
// validity, the names of Sigstore's trusted_root.json).
type TrustedTSA struct {
	// CertChain is the PEM certificate chain, leaf first, root last.
	CertChain string   `json:"certChain"`
	ValidFor  Validity `json:"validFor"`
}

// TrustedKey is one key of a trust root.
type TrustedKey struct {
	ID        string    `json:"keyId"`
	Algorithm Algorithm `json:"algorithm"`
	Status    Status    `json:"status"`
	// PublicKey is the PEM "PUBLIC KEY" block.
	PublicKey string   `json:"publicKey"`
	ValidFor  Validity `json:"validFor"`
}

// Validity is a signing window; a zero End is open-ended.
type Validity struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
}

// TrustRoot returns the trust root of the ring: its active and retired
// keys (revoked keys are left out, so offline verifiers reject them).
func (r *Ring) TrustRoot() (TrustRoot, error) {
	keys, err := r.List()
	if err != nil {
		return TrustRoot{}, err
	}
	tr := TrustRoot{MediaType: TrustRootMediaType, Keys: []TrustedKey{}, Generated: r.Now().UTC().Truncate(time.Second)}
	for _, k := range keys {
		if k.Status == Revoked {
			continue
		}
		pub, err := r.PublicKeyPEM(k)
		if err != nil {
			return TrustRoot{}, err
		}
		tr.Keys = append(tr.Keys, TrustedKey{
			ID:        k.ID,
			Algorithm: k.Algorithm,
			Status:    k.Status,
			PublicKey: string(pub),
			ValidFor:  Validity{Start: k.NotBefore, End: k.NotAfter},
		})
	}
	if tr.TimestampAuthorities, err = r.TimestampAuthorities(); err != nil {
		return TrustRoot{}, err
	}
	tr.CertificateAuthorities = slices.Clone(r.cas)
	if tr.TransparencyLogs, err = r.TransparencyLogs(); err != nil {
		return TrustRoot{}, err
	}
	return tr, nil
}

// TrustCertificateAuthorities makes TrustRoot list cas: certificate
// authorities whose workload certificates make keyless signatures count
// (the server's own CA, internal/ca, whose key and certificate live
// outside the ring). Call it before the ring is shared.
func (r *Ring) TrustCertificateAuthorities(cas ...TrustedTSA) { r.cas = slices.Clone(cas) }

// ParseTrustRoot reads a trust-root file and checks every key in it.
func ParseTrustRoot(b []byte) (TrustRoot, error) {
	var tr TrustRoot
	if err := json.Unmarshal(b, &tr); err != nil {
		return TrustRoot{}, fmt.Errorf("trust root: %w", err)
	}
	if tr.MediaType != TrustRootMediaType {
		return TrustRoot{}, fmt.Errorf("trust root: mediaType %q, want %s", tr.MediaType, TrustRootMediaType)
	}
	for _, k := range tr.Keys {
		pub, err := ParsePublicKey([]byte(k.PublicKey))
		if err != nil {
			return TrustRoot{}, fmt.Errorf("trust root key %s: %w", k.ID, err)
		}
		if id, _ := ID(pub); id != k.ID {
			return TrustRoot{}, fmt.Errorf("trust root key %s: keyId is not the SHA-256 of its public key (%s)", k.ID, id)
		}
	}
	for i, ta := range tr.TimestampAuthorities {
		if _, err := ParseCertificates([]byte(ta.CertChain)); err != nil {
			return TrustRoot{}, fmt.Errorf("trust root timestamp authority %d: %w", i, err)
		}
	}
	for i, ca := range tr.CertificateAuthorities {
		if _, err := ParseCertificates([]byte(ca.CertChain)); err != nil {
			return TrustRoot{}, fmt.Errorf("trust root certificate authority %d: %w", i, err)
		}
	}
	for i, l := range tr.TransparencyLogs {
		if err := l.check(); err != nil {
			return TrustRoot{}, fmt.Errorf("trust root transparency log %d: %w", i, err)
		}
	}
	return tr, nil
}

// KeyAt returns the public key with the given ID if the trust root allows
// it to have signed at t.
func (tr TrustRoot) KeyAt(id string, t time.Time) (crypto.PublicKey, error) {
	for _, k := range tr.Keys {
		if k.ID != id {
			continue
		}
		if t.Before(k.ValidFor.Start) || (!k.ValidFor.End.IsZero() && t.After(k.ValidFor.End)) {
			end := "open"
			if !k.ValidFor.End.IsZero() {
				end = k.ValidFor.End.Format(time.RFC3339)
			}
			return nil, fmt.Errorf("key %s was not valid at %s (valid from %s to %s)",
				id, t.UTC().Format(time.RFC3339), k.ValidFor.Start.Format(time.RFC3339), end)
		}
		return ParsePublicKey([]byte(k.PublicKey))
	}
	return nil, errors.New("key " + id + " is not in the trust root")
}
