// Package ctlog is custody's certificate transparency log: it signs RFC
// 6962 (v1) signed certificate timestamps (SCTs) over the precertificates
// the workload CA (internal/ca) makes, so the certificates it then issues
// carry the embedded SCT list cosign and sigstore-go require, verified
// against the log's key in trusted_root.json (internal/trustedroot). The
// structures and their encoding are google/certificate-transparency-go's,
// the library those verifiers use.
//
// The log signs; it does not serve RFC 6962's read API (get-sth,
// get-entries). What an SCT promises, that the certificate is public,
// custody keeps through its audit log instead: every certificate the CA
// issues is an audit entry (action ca.issue) in the tamper-evident log of
// internal/tlog, with its SHA-256.
package ctlog

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	stdx509 "crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/google/certificate-transparency-go/x509util"

	"github.com/custody-dev/custody/internal/key"
)

// OIDs of RFC 6962 section 3: the critical poison extension that makes a
// certificate a precertificate, and the extension of the final
// certificate that carries the SCT list.
var (
	OIDPoison  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
	OIDSCTList = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
)

// PoisonExtension marks a precertificate (RFC 6962 section 3.1): critical,
// its value ASN.1 NULL, so nothing accepts it as a certificate.
func PoisonExtension() pkix.Extension {
	return pkix.Extension{Id: OIDPoison, Critical: true, Value: asn1.NullBytes}
}

// MaxPrecertBytes bounds the precertificate the log reads.
const MaxPrecertBytes = 64 << 10

// Log signs SCTs with one key.
type Log struct {
	signer crypto.Signer
	id     [sha256.Size]byte
	now    func() time.Time
}

// New returns the log signing with signer, an ECDSA P-256 key (what
// Sigstore's CT logs use and what every CT verifier accepts).
func New(signer crypto.Signer) (*Log, error) {
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("the CT log key must be ECDSA P-256")
	}
	der, err := stdx509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return &Log{signer: signer, id: sha256.Sum256(der), now: time.Now}, nil
}

// Open loads the log's key from keyRef: an encrypted private key file as
// 'custody ca ctlog create' writes it, decrypted with passphrase, or a
// pkcs11: URI of a key on a PKCS #11 token. The closer releases a token
// session.
func Open(keyRef string, passphrase []byte) (*Log, io.Closer, error) {
	var (
		signer crypto.Signer
		closer io.Closer = io.NopCloser(nil)
		err    error
	)
	if key.IsPKCS11URI(keyRef) {
		if signer, closer, err = key.OpenPKCS11(keyRef); err != nil {
			return nil, nil, fmt.Errorf("opening the CT log key: %w", err)
		}
	} else {
		b, err := os.ReadFile(keyRef)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the CT log key: %w", err)
		}
		if signer, err = key.DecryptPrivateKey(b, passphrase); err != nil {
			return nil, nil, fmt.Errorf("the CT log key %s: %w", keyRef, err)
		}
	}
	l, err := New(signer)
	if err != nil {
		closer.Close()
		return nil, nil, err
	}
	return l, closer, nil
}

// ID is the log's ID: the SHA-256 of its PKIX public key (RFC 6962
// section 3.2), the keyId trusted_root.json lists it under.
func (l *Log) ID() [sha256.Size]byte { return l.id }

// Public is the log's public key.
func (l *Log) Public() crypto.PublicKey { return l.signer.Public() }

// SignPrecert returns the log's SCT for a precertificate (DER) issued by
// issuer: a v1 SCT over the precertificate's TBSCertificate without its
// poison extension and the SHA-256 of the issuer's public key, what a
// verifier rebuilds from the final certificate with the SCT list removed.
// The precertificate must carry the critical poison extension and be
// signed by issuer.
func (l *Log) SignPrecert(precertDER []byte, issuer *stdx509.Certificate) (*ct.SignedCertificateTimestamp, error) {
	if len(precertDER) > MaxPrecertBytes {
		return nil, fmt.Errorf("precertificate larger than %d bytes", MaxPrecertBytes)
	}
	pre, err := ctx509.ParseCertificate(precertDER)
	if ctx509.IsFatal(err) {
		return nil, fmt.Errorf("precertificate: %w", err)
	}
	if !hasPoison(pre) {
		return nil, errors.New("not a precertificate: no critical poison extension")
	}
	iss, err := ctx509.ParseCertificate(issuer.Raw)
	if ctx509.IsFatal(err) {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	if !bytes.Equal(pre.RawIssuer, iss.RawSubject) {
		return nil, errors.New("the precertificate names another issuer")
	}
	if err := iss.CheckSignature(pre.SignatureAlgorithm, pre.RawTBSCertificate, pre.Signature); err != nil {
		return nil, fmt.Errorf("the precertificate is not signed by its issuer: %w", err)
	}
	sct := ct.SignedCertificateTimestamp{
		SCTVersion: ct.V1,
		LogID:      ct.LogID{KeyID: l.id},
		Timestamp:  uint64(l.now().UnixMilli()),
		Extensions: ct.CTExtensions{},
	}
	leaf, err := ct.MerkleTreeLeafFromChain([]*ctx509.Certificate{pre, iss}, ct.PrecertLogEntryType, sct.Timestamp)
	if err != nil {
		return nil, err
	}
	input, err := ct.SerializeSCTSignatureInput(sct, ct.LogEntry{Leaf: *leaf})
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(input)
	sig, err := l.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing the SCT: %w", err)
	}
	sct.Signature = ct.DigitallySigned{
		Algorithm: cttls.SignatureAndHashAlgorithm{Hash: cttls.SHA256, Signature: cttls.ECDSA},
		Signature: sig,
	}
	return &sct, nil
}

func hasPoison(c *ctx509.Certificate) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(ctx509.OIDExtensionCTPoison) {
			return e.Critical
		}
	}
	return false
}

// SCTListExtension is the extension that embeds scts in the final
// certificate (RFC 6962 section 3.3): an OCTET STRING holding the TLS
// encoding of the SignedCertificateTimestampList.
func SCTListExtension(scts ...*ct.SignedCertificateTimestamp) (pkix.Extension, error) {
	list, err := x509util.MarshalSCTsIntoSCTList(scts)
	if err != nil {
		return pkix.Extension{}, err
	}
	raw, err := cttls.Marshal(*list)
	if err != nil {
		return pkix.Extension{}, err
	}
	val, err := asn1.Marshal(raw)
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: OIDSCTList, Value: val}, nil
}
