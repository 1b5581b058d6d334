// Package trustedroot writes Sigstore's trust distribution documents from
// what a custody server has: trusted_root.json (what a verifier trusts:
// certificate authorities, time-stamp authorities, CT logs and
// transparency logs, each with the window in which it counts) and
// signing_config.json (where a signer finds those services). The
// formats are sigstore/protobuf-specs' TrustedRoot (media type
// application/vnd.dev.sigstore.trustedroot+json;version=0.1) and
// SigningConfig v0.2, written with protojson from the generated Go types,
// so cosign and sigstore-go read them as they read the public Sigstore's.
//
// The input is plain data (Input): internal/server fills it from the
// CA, the key ring's TSA chains, the CT log and the transparency logs;
// adding a service is one more element of a slice.
package trustedroot

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Media types of the two documents.
const (
	TrustedRootMediaType   = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
	SigningConfigMediaType = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
)

// Operator names custody in the documents' operator fields.
const Operator = "custody"

// Input is what the documents are made of. Current and retired material
// alike: a retired element has a closed window (End set) and no URL, so
// verifiers keep accepting what it certified, time-stamped or logged
// inside its window while signers no longer use it.
type Input struct {
	// CertificateAuthorities issue signing certificates (Fulcio's role).
	CertificateAuthorities []Authority
	// TimestampAuthorities are RFC 3161 time-stamp authorities.
	TimestampAuthorities []Authority
	// CTLogs sign certificate timestamps embedded in the certificates.
	CTLogs []Log
	// TransparencyLogs are Rekor logs of signing events.
	TransparencyLogs []Log
	// OIDCURLs are OIDC providers a signer may get its identity token from.
	OIDCURLs []Service
}

// Authority is a certificate authority or a time-stamp authority.
type Authority struct {
	// URL is where signers reach it (a CA's base URL, a TSA's full
	// time-stamp URL), for signing_config.json; empty for retired ones.
	URL string
	// Chain is its certificate chain, its own certificate first, the root
	// last.
	Chain []*x509.Certificate
	// Start and End bound when it counts; a zero End is open.
	Start, End time.Time
}

// Log is a CT log or a transparency log.
type Log struct {
	// URL is the log's base URL (signing_config.json for transparency
	// logs; informative for CT logs); empty for retired ones.
	URL string
	// PublicKey verifies the log's signatures.
	PublicKey crypto.PublicKey
	// Start and End bound when its signatures count; a zero End is open.
	Start, End time.Time
	// LogID is the log's ID; default the SHA-256 of its PKIX public key
	// (what RFC 6962 and Rekor v1 use).
	LogID []byte
	// CheckpointKeyID is the key ID of its signed checkpoints (C2SP
	// signed note) for a Rekor v2 log; nil otherwise.
	CheckpointKeyID []byte
	// APIVersion is the major API version in signing_config.json (Rekor
	// v2 logs: 2; default 1).
	APIVersion uint32
}

// Service is a URL with its API version and window, for signing_config.json.
type Service struct {
	URL        string
	APIVersion uint32 // default 1
	Start, End time.Time
}

// TrustedRoot returns trusted_root.json for in.
func TrustedRoot(in Input) ([]byte, error) {
	tr := &prototrustroot.TrustedRoot{MediaType: TrustedRootMediaType}
	for i, a := range in.CertificateAuthorities {
		ca, err := authority(a)
		if err != nil {
			return nil, fmt.Errorf("certificate authority %d: %w", i, err)
		}
		tr.CertificateAuthorities = append(tr.CertificateAuthorities, ca)
	}
	for i, a := range in.TimestampAuthorities {
		ta, err := authority(a)
		if err != nil {
			return nil, fmt.Errorf("timestamp authority %d: %w", i, err)
		}
		tr.TimestampAuthorities = append(tr.TimestampAuthorities, ta)
	}
	for i, l := range in.CTLogs {
		p, err := logInstance(l)
		if err != nil {
			return nil, fmt.Errorf("CT log %d: %w", i, err)
		}
		tr.Ctlogs = append(tr.Ctlogs, p)
	}
	for i, l := range in.TransparencyLogs {
		p, err := logInstance(l)
		if err != nil {
			return nil, fmt.Errorf("transparency log %d: %w", i, err)
		}
		tr.Tlogs = append(tr.Tlogs, p)
	}
	return marshal(tr)
}

// SigningConfig returns signing_config.json for in: the services with a
// URL, newest first as clients expect, with their windows; a signer uses
// any one CA, transparency log and TSA valid now.
func SigningConfig(in Input) ([]byte, error) {
	sc := &prototrustroot.SigningConfig{
		MediaType:       SigningConfigMediaType,
		RekorTlogConfig: &prototrustroot.ServiceConfiguration{Selector: prototrustroot.ServiceSelector_ANY},
		TsaConfig:       &prototrustroot.ServiceConfiguration{Selector: prototrustroot.ServiceSelector_ANY},
	}
	for _, a := range newestFirst(in.CertificateAuthorities) {
		if a.URL != "" {
			sc.CaUrls = append(sc.CaUrls, service(Service{URL: a.URL, Start: a.Start, End: a.End}))
		}
	}
	for _, a := range newestFirst(in.TimestampAuthorities) {
		if a.URL != "" {
			sc.TsaUrls = append(sc.TsaUrls, service(Service{URL: a.URL, Start: a.Start, End: a.End}))
		}
	}
	for _, l := range in.TransparencyLogs {
		if l.URL != "" {
			sc.RekorTlogUrls = append(sc.RekorTlogUrls, service(Service{URL: l.URL, APIVersion: l.APIVersion, Start: l.Start, End: l.End}))
		}
	}
	for _, o := range in.OIDCURLs {
		sc.OidcUrls = append(sc.OidcUrls, service(o))
	}
	return marshal(sc)
}

func newestFirst(as []Authority) []Authority {
	out := make([]Authority, 0, len(as))
	for i := len(as) - 1; i >= 0; i-- {
		out = append(out, as[i])
	}
	return out
}

func marshal(m proto.Message) ([]byte, error) {
	return protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
}

func service(s Service) *prototrustroot.Service {
	v := s.APIVersion
	if v == 0 {
		v = 1
	}
	return &prototrustroot.Service{Url: s.URL, MajorApiVersion: v, ValidFor: timeRange(s.Start, s.End), Operator: Operator}
}

func timeRange(start, end time.Time) *protocommon.TimeRange {
	r := &protocommon.TimeRange{Start: timestamppb.New(start.UTC())}
	if !end.IsZero() {
		r.End = timestamppb.New(end.UTC())
	}
	return r
}

func authority(a Authority) (*prototrustroot.CertificateAuthority, error) {
	if len(a.Chain) == 0 {
		return nil, errors.New("no certificate chain")
	}
	if a.Start.IsZero() {
		return nil, errors.New("no start of its validity")
	}
	if !a.End.IsZero() && a.End.Before(a.Start) {
		return nil, errors.New("its validity ends before it starts")
	}
	chain := &protocommon.X509CertificateChain{}
	for _, c := range a.Chain {
		chain.Certificates = append(chain.Certificates, &protocommon.X509Certificate{RawBytes: c.Raw})
	}
	subj := a.Chain[0].Subject
	return &prototrustroot.CertificateAuthority{
		Subject:   &protocommon.DistinguishedName{Organization: first(subj.Organization), CommonName: subj.CommonName},
		Uri:       a.URL,
		CertChain: chain,
		ValidFor:  timeRange(a.Start, a.End),
		Operator:  Operator,
	}, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func logInstance(l Log) (*prototrustroot.TransparencyLogInstance, error) {
	if l.Start.IsZero() {
		return nil, errors.New("no start of its validity")
	}
	if !l.End.IsZero() && l.End.Before(l.Start) {
		return nil, errors.New("its validity ends before it starts")
	}
	der, err := x509.MarshalPKIXPublicKey(l.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	details, err := keyDetails(l.PublicKey)
	if err != nil {
		return nil, err
	}
	id := l.LogID
	if id == nil {
		sum := sha256.Sum256(der)
		id = sum[:]
	}
	p := &prototrustroot.TransparencyLogInstance{
		BaseUrl:       l.URL,
		HashAlgorithm: protocommon.HashAlgorithm_SHA2_256,
		PublicKey: &protocommon.PublicKey{
			RawBytes:   der,
			KeyDetails: details,
			ValidFor:   timeRange(l.Start, l.End),
		},
		LogId:    &protocommon.LogId{KeyId: id},
		Operator: Operator,
	}
	if l.CheckpointKeyID != nil {
		p.CheckpointKeyId = &protocommon.LogId{KeyId: l.CheckpointKeyID}
	}
	return p, nil
}

// keyDetails names a log key's algorithm as protobuf-specs does.
func keyDetails(pub crypto.PublicKey) (protocommon.PublicKeyDetails, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, nil
		case elliptic.P384():
			return protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384, nil
		case elliptic.P521():
			return protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512, nil
		}
	case ed25519.PublicKey:
		return protocommon.PublicKeyDetails_PKIX_ED25519, nil
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256, nil
		case 3072:
			return protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256, nil
		case 4096:
			return protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256, nil
		}
	}
	return 0, fmt.Errorf("unsupported log key type %T", pub)
}
