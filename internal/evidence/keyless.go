package evidence

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/certidentity"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/sign"
)

// trustedCA is one certificate authority of the trust root: the roots and
// intermediates of its chain, and the window in which its certificates
// count.
type trustedCA struct {
	roots, intermediates *x509.CertPool
	validFor             key.Validity
}

// parseCA reads a trust root's certificate authority: the last
// certificate of its chain is the root, the others intermediates.
func parseCA(ca key.TrustedTSA) (trustedCA, error) {
	certs, err := key.ParseCertificates([]byte(ca.CertChain))
	if err != nil {
		return trustedCA{}, err
	}
	c := trustedCA{roots: x509.NewCertPool(), intermediates: x509.NewCertPool(), validFor: ca.ValidFor}
	c.roots.AddCert(certs[len(certs)-1])
	for _, x := range certs[:len(certs)-1] {
		c.intermediates.AddCert(x)
	}
	return c, nil
}

// errUntrustedCA marks a keyless signature whose certificate no trusted
// CA issued: it counts for nothing, like a signature by an unknown key.
var errUntrustedCA = errors.New("its certificate was not issued by a certificate authority of the trust root")

// CAs returns the number of trusted certificate authorities.
func (t *Trust) CAs() int { return len(t.cas) }

// certificate decides, in one place, whether a keyless signature (or
// attestation) counts, given the certificate chain stored with it (leaf
// first; the signature verified with the leaf's key) and its RFC 3161
// time-stamps:
//
//   - the signing time comes from a time-stamp by an authority of the
//     trust root (signingTime): a certificate lives minutes, so without
//     one it cannot be judged and does not count;
//   - that time lies inside the leaf certificate's validity;
//   - the chain leads, at that time, to a certificate authority of the
//     trust root whose window holds that time, for code signing
//     (errUntrustedCA otherwise);
//   - the identity is what the certificate names (certidentity.Of); who
//     may sign is for the verifier's identity constraints to say.
//
// It returns the identity (nil when unreadable), the signing time, and why
// the evidence does not count (nil when it does).
func (t *Trust) certificate(chain []*x509.Certificate, stamps []sign.Timestamp) (*certidentity.Identity, time.Time, error) {
	leaf := chain[0]
	var idp *certidentity.Identity
	if id, err := certidentity.Of(leaf); err == nil {
		idp = &id
	}
	if err := t.issuedByTrustedCA(chain, time.Time{}); err != nil {
		return idp, time.Time{}, err
	}
	at, _, err := t.signingTime(stamps, time.Time{})
	if err != nil {
		return idp, time.Time{}, err
	}
	window := fmt.Sprintf("%s to %s", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	if at.IsZero() {
		return idp, time.Time{}, fmt.Errorf("keyless signature carries no time-stamp from a trusted authority: nothing says it was made while its certificate was valid (%s)", window)
	}
	if at.Before(leaf.NotBefore) || at.After(leaf.NotAfter) {
		return idp, at, fmt.Errorf("time-stamped at %s, outside its certificate's validity (%s)", at.UTC().Format(time.RFC3339), window)
	}
	if err := t.issuedByTrustedCA(chain, at); err != nil {
		return idp, at, err
	}
	if idp == nil {
		_, err := certidentity.Of(leaf)
		return nil, at, err
	}
	return idp, at, nil
}

// issuedByTrustedCA checks that chain leads to a CA of the trust root, for
// code signing, at time at (at zero: at the leaf's own issuance, to tell
// an unknown CA from a bad time).
func (t *Trust) issuedByTrustedCA(chain []*x509.Certificate, at time.Time) error {
	leaf := chain[0]
	when := at
	if when.IsZero() {
		when = leaf.NotBefore
	}
	for _, ca := range t.cas {
		if when.Before(ca.validFor.Start) || (!ca.validFor.End.IsZero() && when.After(ca.validFor.End)) {
			continue
		}
		inter := ca.intermediates.Clone()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: ca.roots, Intermediates: inter, CurrentTime: when,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}})
		if err == nil {
			return nil
		}
	}
	return errUntrustedCA
}

// keylessAttestation judges an attestation stored with a certificate
// chain that no trusted key signed: its DSSE signature must verify with
// the certificate's key, be about dgst, and the certificate must count
// (certificate). A keyless attestation is never a server record.
func (t *Trust) keylessAttestation(env []byte, dgst string, stamps []sign.Timestamp, chain []*x509.Certificate) Attestation {
	var a Attestation
	v, err := attest.Verify(env, attest.ResolverFromKeys(chain[0].PublicKey), attest.AllowStatementV01(), attest.AllowPredicateType(known...))
	if err != nil {
		a.Err, a.ClaimedType = err, claimedType(env)
		return a
	}
	a.PredicateType, a.KeyID = v.PredicateType, v.KeyID
	if a.Err = attest.VerifySubject(v, dgst); a.Err != nil {
		return a
	}
	a.Identity, a.SignedAt, a.Err = t.certificate(chain, stamps)
	if errors.Is(a.Err, errUntrustedCA) {
		a.Err = fmt.Errorf("%w: %w", attest.ErrUntrusted, a.Err)
	}
	if a.Err != nil {
		return a
	}
	if slices.Contains(RecordTypes, v.PredicateType) {
		a.Err = errors.New("a server record counts only when signed by the server's keys, not with a certificate")
		return a
	}
	b, err := attest.PredicateJSON(v.Statement)
	if err != nil {
		a.Err = err
		return a
	}
	if v.PredicateType == attest.PredicateSLSAProvenanceV1 {
		if a.Provenance, a.Err = provenance.Parse(b); a.Err != nil {
			a.Provenance = nil
			return a
		}
	}
	a.Verified, a.Predicate = v, b
	return a
}
