// Package attest signs and verifies in-toto attestations: an in-toto
// Statement v1 (https://in-toto.io/Statement/v1) carried in a DSSE v1.0.0
// envelope whose payloadType is "application/vnd.in-toto+json".
//
// The statement types are the in-toto attestation framework's own Go
// bindings (github.com/in-toto/attestation/go/v1); the envelope, its
// pre-authentication encoding (PAE) and the signing and verification loops
// are go-securesystemslib's dsse package. What this package adds is the key
// handling custody needs, the input caps, and the refusals a verifier must
// make (wrong payload type, wrong statement type, no subject, unknown
// predicate type, oversized input).
//
// # Compatibility with cosign
//
// Envelopes from Sign have the shape `cosign attest` writes, and
// `cosign verify-attestation --key` (the envelope stored the cosign way, as
// a .att image) and `cosign verify-blob-attestation --key` accept them;
// Verify accepts what `cosign attest-blob` writes. TestCosignInterop checks
// all of it against the cosign v2.6.5 client:
//
//   - the signature is over PAE(payloadType, payload), base64 (standard
//     alphabet) in the envelope;
//   - ECDSA P-256 signs the SHA-256 of the PAE, ASN.1 DER encoded
//     (key.SignDigest); Ed25519 signs the PAE itself (pure Ed25519, which is
//     what sigstore's Ed25519 verifier checks);
//   - keyid: cosign writes "" and, when it verifies with a key, ignores the
//     keyid (TestCosignInterop shows it accepting custody's key.ID there).
//     sigstore's dsse.WrapVerifier is stricter: it tries a signature only
//     if its keyid is "" or the SSH SHA256 fingerprint of its key
//     (CosignKeyID). Verify passes the envelope's keyid to the
//     KeyResolver, and ResolverFromKeys understands all three forms.
//   - statement _type: cosign v2's `attest` and `attest-blob` still write
//     https://in-toto.io/Statement/v0.1; Verify refuses it unless given
//     AllowStatementV01.
package attest

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/custody-dev/custody/internal/jsondoc"
)

// PayloadType is the DSSE payloadType of an in-toto statement.
const PayloadType = "application/vnd.in-toto+json"

// StatementType is the statement _type Sign writes and Verify accepts.
const StatementType = intoto.StatementTypeUri // "https://in-toto.io/Statement/v1"

// StatementTypeV01 is the legacy statement _type that cosign v2's `attest`
// and `attest-blob` still write. Verify refuses it unless given
// AllowStatementV01.
const StatementTypeV01 = "https://in-toto.io/Statement/v0.1"

// Predicate types custody knows. Verify refuses any other type unless
// AllowPredicateType names it (or AllowAnyPredicateTypeUnsafe is given).
const (
	// PredicateSLSAProvenanceV1 is SLSA provenance v1 (cosign --type slsaprovenance1).
	PredicateSLSAProvenanceV1 = "https://slsa.dev/provenance/v1"
	// PredicateSPDX is an SPDX document (cosign --type spdxjson).
	PredicateSPDX = "https://spdx.dev/Document"
	// PredicateCycloneDX is a CycloneDX BOM (cosign --type cyclonedx).
	PredicateCycloneDX = "https://cyclonedx.org/bom"
	// PredicateCosignCustom is cosign's free-form predicate (cosign --type custom).
	PredicateCosignCustom = "https://cosign.sigstore.dev/attestation/v1"
	// PredicateSLSAVerificationSummaryV1 is a SLSA verification summary (VSA).
	PredicateSLSAVerificationSummaryV1 = "https://slsa.dev/verification_summary/v1"
	// PredicateTestResult is in-toto's test-result predicate.
	PredicateTestResult = "https://in-toto.io/attestation/test-result/v0.1"
	// PredicateVulns is in-toto's vulnerability-scan predicate.
	PredicateVulns = "https://in-toto.io/attestation/vulns/v0.2"
)

// Caps on input sizes. Verify and the parsers refuse anything larger
// before decoding it.
const (
	// MaxEnvelopeBytes caps a whole DSSE envelope (JSON, payload base64).
	MaxEnvelopeBytes = 16 << 20
	// MaxStatementBytes caps a decoded statement (the envelope payload).
	MaxStatementBytes = MaxEnvelopeBytes / 4 * 3
	// MaxSignatures caps the signatures of one envelope (each may cost a
	// verification per candidate key).
	MaxSignatures = 16
	// MaxSubjects caps the subjects of one statement.
	MaxSubjects = 4096
	// MaxProvenancePredicateBytes caps an SLSA provenance or verification
	// summary predicate.
	MaxProvenancePredicateBytes = 4 << 20
	// MaxPredicateBytes caps any other predicate (SBOMs are the large ones).
	MaxPredicateBytes = MaxStatementBytes
	// maxRecursion bounds nesting (a structpb value costs two protobuf
	// levels per JSON level).
	maxRecursion = 200
)

// Statement is an in-toto Statement v1 (the framework's own Go binding).
type Statement = intoto.Statement

// ResourceDescriptor is an in-toto ResourceDescriptor: a statement subject,
// or a dependency in a predicate.
type ResourceDescriptor = intoto.ResourceDescriptor

// Envelope is a DSSE envelope (go-securesystemslib's type).
type Envelope = dsse.Envelope

// ErrTooLarge reports an input over one of the caps.
var ErrTooLarge = errors.New("attestation too large")

// ErrUntrusted is wrapped by Verify when no signature of the envelope
// verifies with a trusted key: the attestation says nothing a verifier
// may rely on (as opposed to a trusted attestation that is wrong).
var ErrUntrusted = errors.New("no valid signature on the attestation")

// Subject returns a subject descriptor for an artifact: name (for instance
// an image reference or a file name) and its digest in OCI form,
// "sha256:<hex>" or "sha512:<hex>".
func Subject(name, dgst string) (*ResourceDescriptor, error) {
	d, err := digest.Parse(dgst)
	if err != nil {
		return nil, fmt.Errorf("subject %q: digest %q: %w (want sha256:<64 hex>)", name, dgst, err)
	}
	alg := string(d.Algorithm())
	if alg != "sha256" && alg != "sha512" {
		return nil, fmt.Errorf("subject %q: digest algorithm %s not supported: use sha256 or sha512", name, alg)
	}
	return &ResourceDescriptor{Name: name, Digest: map[string]string{alg: d.Encoded()}}, nil
}

// NewStatement builds a statement from subjects, a predicate type and the
// predicate as a JSON object. It checks the result as Verify would
// (except for the predicate type allow-list).
func NewStatement(subjects []*ResourceDescriptor, predicateType string, predicate []byte) (*Statement, error) {
	if predicateType == "" {
		return nil, errors.New("statement needs a predicate type")
	}
	if n := len(predicate); n > predicateCap(predicateType) {
		return nil, fmt.Errorf("%w: predicate is %d bytes, the limit for %s is %d", ErrTooLarge, n, predicateType, predicateCap(predicateType))
	}
	pred := &structpb.Struct{}
	if err := (protojson.UnmarshalOptions{RecursionLimit: maxRecursion}).Unmarshal(predicate, pred); err != nil {
		return nil, fmt.Errorf("predicate must be a JSON object: %w", err)
	}
	s := &Statement{
		Type:          StatementType,
		Subject:       subjects,
		PredicateType: predicateType,
		Predicate:     pred,
	}
	if err := check(s, false); err != nil {
		return nil, err
	}
	return s, nil
}

// StatementFor builds a statement about one artifact (name, "sha256:<hex>"
// digest) with a predicate type and JSON predicate.
func StatementFor(name, dgst, predicateType string, predicate []byte) (*Statement, error) {
	sub, err := Subject(name, dgst)
	if err != nil {
		return nil, err
	}
	return NewStatement([]*ResourceDescriptor{sub}, predicateType, predicate)
}

// MarshalStatement encodes a statement as JSON (the DSSE payload).
func MarshalStatement(s *Statement) ([]byte, error) {
	if err := check(s, false); err != nil {
		return nil, err
	}
	b, err := protojson.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding statement: %w", err)
	}
	if len(b) > MaxStatementBytes {
		return nil, fmt.Errorf("%w: statement is %d bytes, the limit is %d", ErrTooLarge, len(b), MaxStatementBytes)
	}
	return b, nil
}

// PredicateJSON returns a statement's predicate as JSON, for decoding into
// the predicate's own type.
func PredicateJSON(s *Statement) ([]byte, error) {
	if s.GetPredicate() == nil {
		return nil, errors.New("statement has no predicate")
	}
	return protojson.Marshal(s.GetPredicate())
}

// rawEnvelope is the strict wire form of a DSSE envelope.
type rawEnvelope struct {
	PayloadType *string `json:"payloadType"`
	Payload     *string `json:"payload"`
	Signatures  []struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	} `json:"signatures"`
}

// ParseEnvelope decodes a DSSE envelope of at most MaxEnvelopeBytes. It
// checks the shape (payloadType and payload present, payload valid base64,
// 1 to MaxSignatures signatures each with valid base64) but not the
// payload type or the signatures: Verify does that.
func ParseEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("%w: envelope is %d bytes, the limit is %d", ErrTooLarge, len(b), MaxEnvelopeBytes)
	}
	if err := jsondoc.Check(b); err != nil {
		return nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	var raw rawEnvelope
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not a DSSE envelope: trailing data after the JSON object")
	}
	if raw.PayloadType == nil || raw.Payload == nil {
		return nil, errors.New("not a DSSE envelope: payloadType and payload are required")
	}
	if len(raw.Signatures) == 0 {
		return nil, errors.New("DSSE envelope has no signatures")
	}
	if len(raw.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("%w: envelope has %d signatures, the limit is %d", ErrTooLarge, len(raw.Signatures), MaxSignatures)
	}
	env := &Envelope{PayloadType: *raw.PayloadType, Payload: *raw.Payload}
	if _, err := env.DecodeB64Payload(); err != nil {
		return nil, fmt.Errorf("DSSE payload: %w", err)
	}
	for i, s := range raw.Signatures {
		if _, err := decodeB64(s.Sig); err != nil || s.Sig == "" {
			return nil, fmt.Errorf("DSSE signature %d is not base64", i)
		}
		env.Signatures = append(env.Signatures, dsse.Signature{KeyID: s.KeyID, Sig: s.Sig})
	}
	return env, nil
}

// decodeB64 accepts both base64 alphabets, as DSSE allows.
func decodeB64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.URLEncoding.DecodeString(s)
}

// rawStatement is read first, with encoding/json, to check the type and
// measure the predicate before the protobuf decoder sees it.
type rawStatement struct {
	Type          string            `json:"_type"`
	Subject       []json.RawMessage `json:"subject"`
	PredicateType string            `json:"predicateType"`
	Predicate     json.RawMessage   `json:"predicate"`
}

// ParseStatement decodes an in-toto Statement v1 of at most
// MaxStatementBytes and checks it: _type is https://in-toto.io/Statement/v1,
// 1 to MaxSubjects subjects each with a valid digest, a predicate type, and
// a predicate object within its cap. Unknown fields are ignored, as the
// in-toto specification requires. It does not check the predicate type
// against an allow-list: Verify does that.
func ParseStatement(b []byte) (*Statement, error) {
	return parseStatement(b, false)
}

// parseStatement is ParseStatement, optionally also accepting the legacy
// https://in-toto.io/Statement/v0.1 type.
func parseStatement(b []byte, allowV01 bool) (*Statement, error) {
	if len(b) > MaxStatementBytes {
		return nil, fmt.Errorf("%w: statement is %d bytes, the limit is %d", ErrTooLarge, len(b), MaxStatementBytes)
	}
	var raw rawStatement
	if err := jsondoc.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not an in-toto statement: %w", err)
	}
	if raw.Type != StatementType && !(allowV01 && raw.Type == StatementTypeV01) {
		return nil, fmt.Errorf("statement _type is %q, want %q", raw.Type, StatementType)
	}
	if len(raw.Subject) > MaxSubjects {
		return nil, fmt.Errorf("%w: statement has %d subjects, the limit is %d", ErrTooLarge, len(raw.Subject), MaxSubjects)
	}
	if n, c := len(raw.Predicate), predicateCap(raw.PredicateType); n > c {
		return nil, fmt.Errorf("%w: predicate is %d bytes, the limit for %s is %d", ErrTooLarge, n, raw.PredicateType, c)
	}
	s := &Statement{}
	opts := protojson.UnmarshalOptions{DiscardUnknown: true, RecursionLimit: maxRecursion}
	if err := opts.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("not an in-toto statement: %w", err)
	}
	if err := check(s, allowV01); err != nil {
		return nil, err
	}
	// encoding/json matches keys case-insensitively and protojson does
	// not, so measure again what protojson actually decoded.
	if n, c := proto.Size(s.GetPredicate()), predicateCap(s.GetPredicateType()); n > c {
		return nil, fmt.Errorf("%w: predicate is %d bytes, the limit for %s is %d", ErrTooLarge, n, s.GetPredicateType(), c)
	}
	return s, nil
}

// check validates a statement (in-toto's own rules, plus v1 only and a
// sha256 or sha512 digest on every subject).
func check(s *Statement, allowV01 bool) error {
	if s == nil {
		return errors.New("no statement")
	}
	if s.GetType() != StatementType && !(allowV01 && s.GetType() == StatementTypeV01) {
		return fmt.Errorf("statement _type is %q, want %q", s.GetType(), StatementType)
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("invalid in-toto statement: %w", err)
	}
	if len(s.GetSubject()) > MaxSubjects {
		return fmt.Errorf("%w: statement has %d subjects, the limit is %d", ErrTooLarge, len(s.GetSubject()), MaxSubjects)
	}
	for i, sub := range s.GetSubject() {
		d := sub.GetDigest()
		if d["sha256"] == "" && d["sha512"] == "" {
			return fmt.Errorf("subject %d (%q) has no sha256 or sha512 digest", i, sub.GetName())
		}
	}
	return nil
}

// predicateCap is the byte limit for a predicate of the given type.
func predicateCap(predicateType string) int {
	switch predicateType {
	case PredicateSLSAProvenanceV1, PredicateSLSAVerificationSummaryV1:
		return MaxProvenancePredicateBytes
	}
	return MaxPredicateBytes
}

// knownPredicate reports whether Verify accepts a predicate type by default.
func knownPredicate(t string) bool {
	switch t {
	case PredicateSLSAProvenanceV1, PredicateSPDX, PredicateCycloneDX, PredicateCosignCustom,
		PredicateSLSAVerificationSummaryV1, PredicateTestResult, PredicateVulns:
		return true
	}
	return false
}

// CosignKeyID returns the DSSE keyid sigstore's dsse.WrapVerifier computes
// for a public key (the SSH SHA256 fingerprint, "SHA256:<base64>"); a
// signature carrying it, or an empty keyid, is one that verifier will try.
func CosignKeyID(pub crypto.PublicKey) (string, error) {
	id, err := dsse.SHA256KeyID(pub)
	if err != nil {
		return "", fmt.Errorf("computing cosign keyid: %w", err)
	}
	return id, nil
}

// VerifySubject checks that a verified statement is about the artifact with
// the given digest ("sha256:<hex>" or "sha512:<hex>"): some subject must
// carry exactly that digest. Names are not compared; the digest is what
// the signature binds.
func VerifySubject(v *Verified, dgst string) error {
	if v == nil || v.Statement == nil {
		return errors.New("no verified statement")
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return fmt.Errorf("digest %q: %w", dgst, err)
	}
	alg, want := string(d.Algorithm()), d.Encoded()
	for _, s := range v.Statement.GetSubject() {
		if got, ok := s.GetDigest()[alg]; ok && strings.EqualFold(got, want) {
			return nil
		}
	}
	return fmt.Errorf("attestation is not about %s: its subjects are %s", dgst, subjectList(v.Statement))
}

func subjectList(s *Statement) string {
	var parts []string
	for i, sub := range s.GetSubject() {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(s.GetSubject())-5))
			break
		}
		for alg, hex := range sub.GetDigest() {
			if alg == "sha256" || alg == "sha512" {
				parts = append(parts, fmt.Sprintf("%s@%s:%s", sub.GetName(), alg, hex))
			}
		}
	}
	return strings.Join(parts, ", ")
}
