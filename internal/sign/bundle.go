package sign

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/jsondoc"
)

// Media types, predicate types and annotations cosign uses; custody writes
// and reads the same ones so either tool finds what the other stored.
const (
	// BundleMediaType is the Sigstore bundle v0.3 media type: the layer
	// media type and the artifactType of a bundle referrer.
	BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// InTotoPayloadType is the DSSE payload type of an in-toto statement.
	InTotoPayloadType = "application/vnd.in-toto+json"
	// CosignSignPredicateType is the predicate type of the in-toto
	// statement cosign v3 signs for `cosign sign` (an image signature in
	// the new bundle format, as opposed to an attestation).
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
	// InTotoStatementType is the in-toto statement v1 "_type".
	InTotoStatementType = "https://in-toto.io/Statement/v1"
)

// MaxBundleSize caps a Sigstore bundle or DSSE envelope read from a
// registry or given to Attach (an SBOM attestation can be large).
const MaxBundleSize = 32 << 20

// acceptedBundleMediaTypes are the bundle versions custody reads: v0.3 as
// written by cosign v3 and custody, and the older spellings sigstore
// clients still accept.
var acceptedBundleMediaTypes = map[string]bool{
	BundleMediaType: true,
	"application/vnd.dev.sigstore.bundle+json;version=0.3": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.2": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.1": true,
}

// statement is the subset of an in-toto v1 statement custody writes and
// checks.
type statement struct {
	Type          string          `json:"_type"`
	Subject       []subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate,omitempty"`
}

type subject struct {
	Name        string            `json:"name,omitempty"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// signStatement is the statement cosign v3 signs for an image: the
// manifest digest as the only subject, the signer's annotations on it, an
// empty predicate.
func signStatement(digest string, annotations map[string]string) ([]byte, error) {
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok {
		return nil, fmt.Errorf("digest %q is not algorithm:hex", digest)
	}
	return json.Marshal(statement{
		Type:          InTotoStatementType,
		Subject:       []subject{{Digest: map[string]string{alg: hex}, Annotations: annotations}},
		PredicateType: CosignSignPredicateType,
		Predicate:     json.RawMessage(`{}`),
	})
}

// parseStatement reads an in-toto statement (v0.1 or v1 "_type").
func parseStatement(b []byte) (statement, error) {
	var st statement
	if err := jsondoc.Unmarshal(b, &st); err != nil {
		return statement{}, fmt.Errorf("DSSE payload is not an in-toto statement: %w", err)
	}
	if !strings.HasPrefix(st.Type, "https://in-toto.io/Statement/") {
		return statement{}, fmt.Errorf("DSSE payload _type is %q, want an in-toto statement", st.Type)
	}
	if st.PredicateType == "" {
		return statement{}, errors.New("in-toto statement has no predicateType")
	}
	return st, nil
}

// names reports whether the statement has digest (algorithm:hex) as a
// subject.
func (st statement) names(digest string) bool {
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok {
		return false
	}
	for _, s := range st.Subject {
		if v, ok := s.Digest[alg]; ok && v == hex {
			return true
		}
	}
	return false
}

// signDSSE signs payload as a DSSE envelope with one signature and no
// keyid, as sigstore-go does (see newBundle).
func signDSSE(s crypto.Signer, payloadType string, payload []byte) (*protodsse.Envelope, error) {
	sig, err := signMessage(s, dsse.PAE(payloadType, payload))
	if err != nil {
		return nil, fmt.Errorf("signing DSSE envelope: %w", err)
	}
	return &protodsse.Envelope{
		Payload:     payload,
		PayloadType: payloadType,
		Signatures:  []*protodsse.Signature{{Sig: sig}},
	}, nil
}

// newBundle wraps a DSSE envelope in a v0.3 bundle. Key-based signing has
// no certificate: the verification material is a public key hint, the
// base64 SHA-256 of the PKIX public key as sigstore-go writes it (empty when
// the key is unknown). The envelope's keyids are cleared, as sigstore-go
// leaves them: cosign checks a non-empty keyid against the SSH-style
// fingerprint of the verifying key (go-securesystemslib's SHA256KeyID) and
// skips the signature when they differ. A keyid is not signed, so clearing
// it changes nothing the signature covers.
//
// A keyless signature (chain not empty) carries its leaf certificate
// instead of the hint.
func newBundle(env *protodsse.Envelope, pub crypto.PublicKey, chain []*x509.Certificate, timestamp []byte) ([]byte, error) {
	hint := ""
	if pub != nil {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(der)
		hint = base64.StdEncoding.EncodeToString(sum[:])
	}
	clean := &protodsse.Envelope{Payload: env.GetPayload(), PayloadType: env.GetPayloadType()}
	for _, s := range env.GetSignatures() {
		clean.Signatures = append(clean.Signatures, &protodsse.Signature{Sig: s.GetSig()})
	}
	env = clean
	b := &protobundle.Bundle{
		MediaType: BundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{
				PublicKey: &protocommon.PublicKeyIdentifier{Hint: hint},
			},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: env},
	}
	if len(chain) > 0 {
		b.VerificationMaterial = certificateMaterial(chain)
	}
	addBundleTimestamp(b, timestamp)
	return protojson.Marshal(b)
}

// parseBundle reads a Sigstore bundle's JSON. It checks the size, the media
// type and that there is content; it does not verify anything.
func parseBundle(b []byte) (*protobundle.Bundle, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("bundle is %d bytes, over the %d-byte limit", len(b), MaxBundleSize)
	}
	if err := jsondoc.Check(b); err != nil {
		return nil, fmt.Errorf("not a Sigstore bundle: %w", err)
	}
	var pb protobundle.Bundle
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &pb); err != nil {
		return nil, fmt.Errorf("not a Sigstore bundle: %w", err)
	}
	if !acceptedBundleMediaTypes[pb.GetMediaType()] {
		return nil, fmt.Errorf("bundle media type %q is not a Sigstore bundle version custody reads (want %s)", pb.GetMediaType(), BundleMediaType)
	}
	switch c := pb.GetContent().(type) {
	case *protobundle.Bundle_DsseEnvelope:
		if c.DsseEnvelope == nil || len(c.DsseEnvelope.GetSignatures()) == 0 {
			return nil, errors.New("bundle's DSSE envelope has no signature")
		}
	case *protobundle.Bundle_MessageSignature:
		if c.MessageSignature == nil || len(c.MessageSignature.GetSignature()) == 0 {
			return nil, errors.New("bundle's message signature is empty")
		}
	default:
		return nil, errors.New("bundle has neither a DSSE envelope nor a message signature")
	}
	return &pb, nil
}

// parseEnvelope reads DSSE envelope JSON (as attest.Sign and cosign write
// it) into its protobuf form, decoding the base64 fields.
func parseEnvelope(b []byte) (*protodsse.Envelope, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("DSSE envelope is %d bytes, over the %d-byte limit", len(b), MaxBundleSize)
	}
	if err := jsondoc.Check(b); err != nil {
		return nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	var e dsse.Envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("DSSE envelope has data after the JSON document")
	}
	if e.PayloadType == "" {
		return nil, errors.New("DSSE envelope has no payloadType")
	}
	payload, err := decodeB64(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("DSSE payload is not base64: %w", err)
	}
	if len(e.Signatures) == 0 {
		return nil, errors.New("DSSE envelope has no signatures")
	}
	out := &protodsse.Envelope{Payload: payload, PayloadType: e.PayloadType}
	for i, s := range e.Signatures {
		sig, err := decodeB64(s.Sig)
		if err != nil || len(sig) == 0 {
			return nil, fmt.Errorf("DSSE signature %d is empty or not base64", i)
		}
		out.Signatures = append(out.Signatures, &protodsse.Signature{Sig: sig, Keyid: s.KeyID})
	}
	return out, nil
}

// envelopeJSON encodes a protobuf DSSE envelope as standard DSSE JSON.
func envelopeJSON(e *protodsse.Envelope) ([]byte, error) {
	out := dsse.Envelope{
		PayloadType: e.GetPayloadType(),
		Payload:     base64.StdEncoding.EncodeToString(e.GetPayload()),
		Signatures:  []dsse.Signature{},
	}
	for _, s := range e.GetSignatures() {
		out.Signatures = append(out.Signatures, dsse.Signature{KeyID: s.GetKeyid(), Sig: base64.StdEncoding.EncodeToString(s.GetSig())})
	}
	return json.Marshal(out)
}

// decodeB64 accepts standard and URL-safe base64, padded or not, as DSSE
// implementations differ.
func decodeB64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("invalid base64")
}

// verifyEnvelope checks that one of the envelope's signatures verifies
// with one of keys over the DSSE pre-authentication encoding, and returns
// that key's ID.
func verifyEnvelope(e *protodsse.Envelope, keys []crypto.PublicKey) (string, error) {
	pae := dsse.PAE(e.GetPayloadType(), e.GetPayload())
	var last error
	for _, s := range e.GetSignatures() {
		id, err := verifyAny(keys, pae, s.GetSig())
		if err == nil {
			return id, nil
		}
		last = err
	}
	if last == nil {
		last = errors.New("DSSE envelope has no signatures")
	}
	return "", last
}

// cosignKeyIDs reports whether cosign can match every keyid of the
// envelope: empty, or an SSH-style "SHA256:" fingerprint (what
// go-securesystemslib's SHA256KeyID computes from the verifying key).
func cosignKeyIDs(e *protodsse.Envelope) bool {
	for _, s := range e.GetSignatures() {
		if s.GetKeyid() != "" && !strings.HasPrefix(s.GetKeyid(), "SHA256:") {
			return false
		}
	}
	return true
}
