// Package rekor is custody's transparency log for signing events: a Rekor
// v2 compatible log (its write API, its entry format, C2SP tlog-tiles
// reads) kept by a second instance of internal/tlog's Merkle log, with its
// own origin and key. See docs/keyless.md.
//
// Entries are what Rekor v2 (github.com/sigstore/rekor-tiles) logs: a
// hashedrekord v0.0.2 entry, whose request rekor-tiles' own code checks
// (hashedrekord.ToLogEntry: a supported algorithm, the digest's size, the
// signature over the digest), serialised with protojson and canonicalised
// (RFC 8785); the Merkle leaf is that body. sigstore-go rebuilds the same
// body from a bundle to check inclusion, so the entries verify unchanged.
package rekor

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	v1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/rekor-tiles/v2/pkg/types/hashedrekord"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/tlog"
)

// The kind and version of every entry (the only kind Rekor v2 logs).
const (
	Kind    = "hashedrekord"
	Version = "0.0.2"
)

// MaxRequestBytes caps a CreateEntryRequest's body. A hashedrekord request
// holds a digest, a signature and a certificate (a few KiB); a DSSE
// request holds the envelope, whose payload (an in-toto statement) may be
// larger.
const MaxRequestBytes = 4 << 20

// allowedAlgorithms are the signature algorithms entries may use: Rekor
// v2's default set.
var allowedAlgorithms = []v1.PublicKeyDetails{
	v1.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256,
	v1.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256,
	v1.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256,
	v1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
	v1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384,
	v1.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512,
	v1.PublicKeyDetails_PKIX_ED25519,
	v1.PublicKeyDetails_PKIX_ED25519_PH,
}

var registry = func() *signature.AlgorithmRegistryConfig {
	r, err := signature.NewAlgorithmRegistryConfig(allowedAlgorithms)
	if err != nil {
		panic(err)
	}
	return r
}()

// ErrInvalid is wrapped by the errors of requests the log refuses: the
// request is malformed, its signature does not verify, or its certificate
// does not chain to a trusted CA. Nothing is logged.
var ErrInvalid = errors.New("invalid entry")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// ParseRequest decodes a CreateEntryRequest as cosign and sigstore-go
// send it (protojson): a hashedrekord v0.0.2 request, or a dsse v0.0.2
// request, which it turns into the hashedrekord request sigstore-go sends
// for a DSSE envelope since Rekor v2 dropped the dsse kind: the digest of
// the envelope's PAE and its one signature. Unknown fields are refused.
func ParseRequest(body []byte) (*pb.HashedRekordRequestV002, error) {
	var req pb.CreateEntryRequest
	if err := protojson.Unmarshal(body, &req); err != nil {
		return nil, invalid("not a CreateEntryRequest: %v", err)
	}
	switch s := req.GetSpec().(type) {
	case *pb.CreateEntryRequest_HashedRekordRequestV002:
		if s.HashedRekordRequestV002 == nil {
			return nil, invalid("empty hashedRekordRequestV002")
		}
		return s.HashedRekordRequestV002, nil
	case *pb.CreateEntryRequest_DsseRequestV002:
		return fromDSSE(s)
	default:
		return nil, invalid("the request has neither hashedRekordRequestV002 nor dsseRequestV002")
	}
}

// Trust says which certificates may sign entries: those that chain to
// Roots (through Intermediates) and are valid for code signing at the
// moment they are logged. Public keys are logged as Rekor logs them.
type Trust struct {
	Roots         *x509.CertPool
	Intermediates *x509.CertPool
}

// TrustOf sorts a CA chain's certificates into a Trust: the self-signed
// ones are roots, the others intermediates.
func TrustOf(certs []*x509.Certificate) Trust {
	t := Trust{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool()}
	for _, c := range certs {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			t.Roots.AddCert(c)
		} else {
			t.Intermediates.AddCert(c)
		}
	}
	return t
}

// Entry is a verified entry: its body, the Merkle leaf.
type Entry struct {
	// Body is the canonicalized entry body: canonical JSON of the
	// protojson encoding of the rekor-tiles Entry.
	Body []byte
	// LeafHash is the RFC 6962 leaf hash of Body.
	LeafHash []byte
	// Digest is the signed digest and Algorithm its hash.
	Digest    []byte
	Algorithm v1.HashAlgorithm
	// Certificate is the signer's certificate, nil for a public key.
	Certificate *x509.Certificate
}

// NewEntry checks a request and builds its entry: rekor-tiles'
// hashedrekord.ToLogEntry checks the algorithm, the digest's size and the
// signature; a certificate must also chain to trust at now. The error of a
// refused request wraps ErrInvalid.
func NewEntry(req *pb.HashedRekordRequestV002, trust Trust, now time.Time) (*Entry, error) {
	e, err := hashedrekord.ToLogEntry(req, registry)
	if err != nil {
		return nil, invalid("%v", err)
	}
	var cert *x509.Certificate
	if raw := req.GetSignature().GetVerifier().GetX509Certificate().GetRawBytes(); raw != nil {
		if cert, err = x509.ParseCertificate(raw); err != nil {
			return nil, invalid("certificate: %v", err)
		}
		if trust.Roots == nil {
			return nil, invalid("certificate entries are not accepted: this server has no certificate authority")
		}
		if _, err := cert.Verify(x509.VerifyOptions{
			Roots: trust.Roots, Intermediates: trust.Intermediates, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		}); err != nil {
			return nil, invalid("certificate is not one this server's CA issued and still valid: %v", err)
		}
	}
	body, err := canonical(e)
	if err != nil {
		return nil, err
	}
	if len(body) > math.MaxUint16 {
		// An entry bundle (C2SP tlog-tiles) gives each entry's size in
		// two bytes.
		return nil, invalid("entry of %d bytes: at most %d", len(body), math.MaxUint16)
	}
	hr := e.GetSpec().GetHashedRekordV002()
	return &Entry{
		Body: body, LeafHash: tlog.LeafHash(body),
		Digest: hr.GetData().GetDigest(), Algorithm: hr.GetData().GetAlgorithm(),
		Certificate: cert,
	}, nil
}

// canonical is an entry's body as rekor-tiles writes it: protojson, then
// RFC 8785 canonical JSON.
func canonical(e *pb.Entry) ([]byte, error) {
	j, err := protojson.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encoding entry: %w", err)
	}
	body, err := jsoncanonicalizer.Transform(j)
	if err != nil {
		return nil, fmt.Errorf("canonicalizing entry: %w", err)
	}
	return body, nil
}

// ParseBody decodes a logged entry body and checks that it is a
// hashedrekord v0.0.2 entry in canonical form.
func ParseBody(body []byte) (*pb.Entry, error) {
	var e pb.Entry
	if err := protojson.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("entry body: %w", err)
	}
	if e.GetKind() != Kind || e.GetApiVersion() != Version || e.GetSpec().GetHashedRekordV002() == nil {
		return nil, fmt.Errorf("entry body: not a %s %s entry", Kind, Version)
	}
	c, err := canonical(&e)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(c, body) {
		return nil, errors.New("entry body is not in canonical form")
	}
	return &e, nil
}
