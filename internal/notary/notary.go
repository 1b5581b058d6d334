// Package notary reads, verifies and writes Notary Project (Notation)
// signatures: JWS or COSE envelopes stored as OCI 1.1 referrers with
// artifactType application/vnd.cncf.notary.signature, the way the
// notation CLI, AWS Signer and Azure Key Vault's plugin store them.
//
// Verification is notaryproject/notation-go's own, against a
// Notation-style trust policy document and trust store (X.509 "ca",
// "signingAuthority" and "tsa" stores), so a signature verifies here
// exactly when `notation verify` accepts it under the same policy.
// Whether a verified signature then counts as evidence is decided in
// internal/evidence, not here.
package notary

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-core-go/signature/cose"
	"github.com/notaryproject/notation-core-go/signature/jws"
	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/dir"
	nsigner "github.com/notaryproject/notation-go/signer"
	"github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/notaryproject/notation-go/verifier/truststore"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ArtifactType is the artifactType of a Notation signature referrer.
const ArtifactType = "application/vnd.cncf.notary.signature"

// The envelope media types, and the formats custody names them by.
const (
	MediaTypeJWS  = jws.MediaTypeEnvelope  // application/jose+json
	MediaTypeCOSE = cose.MediaTypeEnvelope // application/cose
	FormatJWS     = "jws"
	FormatCOSE    = "cose"
)

// ThumbprintAnnotation lists the SHA-256 thumbprints of the signing
// certificate chain on a signature manifest (notation writes it; notation
// verify uses it to pick signatures).
const ThumbprintAnnotation = "io.cncf.notary.x509chain.thumbprint#S256"

// Limits on what is read from a registry: anyone who may push can add
// referrers.
const (
	MaxEnvelope   = 1 << 20 // bytes of one envelope
	MaxReferrers  = 256     // Notation signatures read per digest
	maxPolicySize = 1 << 20
)

// MediaTypeOf returns the envelope media type of a format name ("jws" or
// "cose").
func MediaTypeOf(format string) (string, error) {
	switch strings.ToLower(format) {
	case FormatJWS, "":
		return MediaTypeJWS, nil
	case FormatCOSE:
		return MediaTypeCOSE, nil
	}
	return "", fmt.Errorf("unknown Notation envelope format %q: jws or cose", format)
}

// formatOf is the format name of an envelope media type.
func formatOf(mediaType string) string {
	switch mediaType {
	case MediaTypeJWS:
		return FormatJWS
	case MediaTypeCOSE:
		return FormatCOSE
	}
	return mediaType
}

// ParsePolicy reads a Notation trust policy document (trustpolicy.json or
// trustpolicy.oci.json, version 1.0) and validates it as notation does:
// registry scopes, verification levels, trust store names and trusted
// identities.
func ParsePolicy(b []byte) (*trustpolicy.Document, error) {
	if len(b) > maxPolicySize {
		return nil, fmt.Errorf("trust policy is over %d bytes", maxPolicySize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var doc trustpolicy.Document
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("unreadable trust policy: %w", err)
	}
	if dec.More() {
		return nil, errors.New("unreadable trust policy: data after the document")
	}
	if err := doc.Validate(); err != nil {
		return nil, fmt.Errorf("invalid trust policy: %w", err)
	}
	return &doc, nil
}

// storeFS is a Notation trust store directory (holding x509/ca/NAME/,
// x509/signingAuthority/NAME/, x509/tsa/NAME/) as notation-go reads it:
// notation-go asks for "truststore/x509/...", relative to its
// configuration directory.
type storeFS struct {
	fs.FS
	root string
}

func (s storeFS) SysPath(items ...string) (string, error) {
	p := path.Join(items...)
	p = strings.TrimPrefix(p, dir.TrustStoreDir+"/")
	if p == dir.TrustStoreDir {
		p = ""
	}
	return filepath.Join(s.root, filepath.FromSlash(p)), nil
}

// Verifier verifies Notation signatures under one trust policy and trust
// store.
type Verifier struct {
	policy *trustpolicy.Document
	v      notation.Verifier
}

// LoadVerifier reads the trust policy document at policyFile and uses the
// trust store directory store (the layout of notation's
// ~/.config/notation/truststore: x509/<ca|signingAuthority|tsa>/<name>/
// holding PEM or DER certificates).
func LoadVerifier(policyFile, store string) (*Verifier, error) {
	b, err := os.ReadFile(policyFile)
	if err != nil {
		return nil, fmt.Errorf("notation trust policy: %w", err)
	}
	doc, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("notation trust policy %s: %w", policyFile, err)
	}
	if fi, err := os.Stat(store); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("notation trust store %s: not a directory", store)
	}
	return NewVerifier(doc, store)
}

// NewVerifier verifies under doc with the trust store directory store.
func NewVerifier(doc *trustpolicy.Document, store string) (*Verifier, error) {
	v, err := verifier.New(doc, truststore.NewX509TrustStore(storeFS{FS: os.DirFS(store), root: store}), nil)
	if err != nil {
		return nil, err
	}
	return &Verifier{policy: doc, v: v}, nil
}

// Stored is one Notation signature found as a referrer.
type Stored struct {
	// Manifest is the digest of the signature manifest.
	Manifest string
	// MediaType is the envelope's media type.
	MediaType string
	// Envelope is the envelope as stored.
	Envelope []byte
}

// Result is what verifying one stored signature established.
type Result struct {
	Stored
	// Format is "jws" or "cose".
	Format string
	// Policy is the name of the trust policy statement that applied, and
	// Level its signatureVerification level (strict, permissive, audit,
	// skip).
	Policy string
	Level  string
	// AuthenticityEnforced is true when the level enforces that the
	// certificate chain ends in the trust store (strict, permissive).
	AuthenticityEnforced bool
	// Identity is the signing certificate's subject (an X.509
	// distinguished name, as trustedIdentities name it), Issuer its
	// issuer; Thumbprints the chain's SHA-256 thumbprints, leaf first.
	Identity    string
	Issuer      string
	Thumbprints []string
	// SignedAt is the signing time the envelope claims (or, with a
	// trusted timestamp, still the signer's claim: notation-go checks the
	// timestamp against the certificate).
	SignedAt time.Time
	// Err says why the signature fails the policy; nil when it verified.
	Err error
}

// Verify verifies st as a signature of subject, reached by reference
// (host/repository@digest, what the policy's registryScopes match).
func (v *Verifier) Verify(ctx context.Context, reference string, subject v1.Descriptor, st Stored) Result {
	r := Result{Stored: st, Format: formatOf(st.MediaType)}
	if p, err := v.policy.GetApplicableTrustPolicy(reference); err == nil {
		r.Policy = p.Name
		if lvl, err := p.SignatureVerification.GetVerificationLevel(); err == nil {
			r.Level = lvl.Name
			r.AuthenticityEnforced = lvl.Enforcement[trustpolicy.TypeAuthenticity] == trustpolicy.ActionEnforce
		}
	}
	desc := ocispec.Descriptor{MediaType: string(subject.MediaType), Digest: digest.Digest(subject.Digest.String()), Size: subject.Size}
	out, err := v.v.Verify(ctx, desc, st.Envelope, notation.VerifierVerifyOptions{ArtifactReference: reference, SignatureMediaType: st.MediaType})
	if out != nil && out.EnvelopeContent != nil {
		info := out.EnvelopeContent.SignerInfo
		if len(info.CertificateChain) > 0 {
			r.Identity = info.CertificateChain[0].Subject.String()
			r.Issuer = info.CertificateChain[0].Issuer.String()
		}
		r.Thumbprints = Thumbprints(info.CertificateChain)
		r.SignedAt = info.SignedAttributes.SigningTime
	}
	if err == nil && (out == nil || out.EnvelopeContent == nil) {
		err = errors.New("the trust policy skips verification")
	}
	r.Err = err
	return r
}

// Inspect reads an envelope of mediaType without trusting it: its
// payload's target digest and the signer's certificate subject. It is
// what custody reports of a signature it cannot verify.
func Inspect(mediaType string, env []byte) (target, identity string, err error) {
	e, err := signature.ParseEnvelope(mediaType, env)
	if err != nil {
		return "", "", err
	}
	c, err := e.Content()
	if err != nil {
		return "", "", err
	}
	var p struct {
		TargetArtifact struct {
			Digest string `json:"digest"`
		} `json:"targetArtifact"`
	}
	if err := json.Unmarshal(c.Payload.Content, &p); err != nil {
		return "", "", fmt.Errorf("unreadable payload: %w", err)
	}
	if len(c.SignerInfo.CertificateChain) > 0 {
		identity = c.SignerInfo.CertificateChain[0].Subject.String()
	}
	return p.TargetArtifact.Digest, identity, nil
}

// Thumbprints returns the hex SHA-256 of each certificate's DER.
func Thumbprints(chain []*x509.Certificate) []string {
	out := make([]string, 0, len(chain))
	for _, c := range chain {
		s := sha256.Sum256(c.Raw)
		out = append(out, hex.EncodeToString(s[:]))
	}
	return out
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && (te.StatusCode == 404)
}

// Read returns the Notation signatures stored as referrers of d.
// Referrers of other artifact types are skipped, as notation does;
// malformed signature manifests are skipped too (anyone who may push can
// add one).
func Read(ctx context.Context, d name.Digest, ropts ...remote.Option) ([]Stored, error) {
	ropts = append(slices.Clone(ropts), remote.WithContext(ctx))
	idx, err := remote.Referrers(d, append(ropts, remote.WithFilter("artifactType", ArtifactType))...)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing referrers of %s: %w", d, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("listing referrers of %s: %w", d, err)
	}
	var out []Stored
	for _, desc := range im.Manifests {
		if desc.ArtifactType != ArtifactType {
			continue
		}
		if len(out) == MaxReferrers {
			return out, fmt.Errorf("%s has over %d Notation signatures; read the first %d", d, MaxReferrers, MaxReferrers)
		}
		ref := d.Context().Digest(desc.Digest.String())
		got, err := remote.Get(ref, ropts...)
		if err != nil {
			return out, fmt.Errorf("reading signature manifest %s: %w", ref, err)
		}
		m, err := v1.ParseManifest(bytes.NewReader(got.Manifest))
		if err != nil || m.Subject == nil || m.Subject.Digest.String() != d.DigestStr() || len(m.Layers) != 1 {
			continue
		}
		l := m.Layers[0]
		if (l.MediaType != MediaTypeJWS && l.MediaType != MediaTypeCOSE) || l.Size > MaxEnvelope {
			continue
		}
		body, err := readBlob(d.Context().Digest(l.Digest.String()), ropts)
		if err != nil {
			return out, fmt.Errorf("reading signature envelope %s: %w", l.Digest, err)
		}
		out = append(out, Stored{Manifest: desc.Digest.String(), MediaType: string(l.MediaType), Envelope: body})
	}
	return out, nil
}

func readBlob(d name.Digest, ropts []remote.Option) ([]byte, error) {
	l, err := remote.Layer(d, ropts...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed() // checked against its digest at EOF
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxEnvelope+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEnvelope {
		return nil, fmt.Errorf("envelope over %d bytes", MaxEnvelope)
	}
	return b, nil
}

// Signer signs with a private key and its X.509 certificate chain (leaf
// first), as notation's local signer does.
type Signer struct {
	g     *nsigner.GenericSigner
	chain []*x509.Certificate
}

// NewSigner signs with key, certified by chain (leaf first; the leaf must
// hold key's public key and be a code-signing certificate).
func NewSigner(key crypto.PrivateKey, chain []*x509.Certificate) (*Signer, error) {
	g, err := nsigner.NewGenericSigner(key, chain)
	if err != nil {
		return nil, err
	}
	return &Signer{g: g, chain: chain}, nil
}

// LoadSigner reads a PEM private key file and a PEM certificate chain
// file (leaf first), the files `notation cert generate-test` writes.
func LoadSigner(keyFile, certFile string) (*Signer, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("notation key and certificate: %w", err)
	}
	var chain []*x509.Certificate
	for _, der := range pair.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", certFile, err)
		}
		chain = append(chain, c)
	}
	s, err := NewSigner(pair.PrivateKey, chain)
	if err != nil {
		return nil, fmt.Errorf("notation key and certificate: %w", err)
	}
	return s, nil
}

// Signed is a signature Sign stored.
type Signed struct {
	// Manifest is the digest of the signature manifest.
	Manifest string
	// MediaType is the envelope's media type.
	MediaType string
	// Identity is the signing certificate's subject.
	Identity string
}

// Sign signs the manifest d names with an envelope of mediaType
// (MediaTypeJWS or MediaTypeCOSE) and stores it as a referrer of d
// (Attach).
func (s *Signer) Sign(ctx context.Context, d name.Digest, mediaType string, ropts ...remote.Option) (Signed, error) {
	subject, err := subjectOf(ctx, d, ropts)
	if err != nil {
		return Signed{}, err
	}
	desc := ocispec.Descriptor{MediaType: string(subject.MediaType), Digest: digest.Digest(subject.Digest.String()), Size: subject.Size}
	env, _, err := s.g.Sign(ctx, desc, notation.SignerSignOptions{SignatureMediaType: mediaType, SigningAgent: "custody"})
	if err != nil {
		return Signed{}, fmt.Errorf("signing %s: %w", d, err)
	}
	h, err := Attach(ctx, d, mediaType, env, ropts...)
	if err != nil {
		return Signed{}, err
	}
	return Signed{Manifest: h, MediaType: mediaType, Identity: s.chain[0].Subject.String()}, nil
}

func subjectOf(ctx context.Context, d name.Digest, ropts []remote.Option) (*v1.Descriptor, error) {
	subject, err := remote.Head(d, append(slices.Clone(ropts), remote.WithContext(ctx))...)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%s is not in the registry: push it before signing", d)
		}
		return nil, fmt.Errorf("looking up %s: %w", d, err)
	}
	if subject.Digest.String() != d.DigestStr() {
		return nil, fmt.Errorf("registry answered digest %s for %s", subject.Digest, d)
	}
	return subject, nil
}

// Attach stores the envelope env (of mediaType) as a referrer of d, laid
// out as notation does: an image manifest with artifactType ArtifactType,
// an empty config of that media type, the envelope as its only layer, and
// the signing chain's thumbprints and the signing time as annotations
// (read from the envelope, unverified). It returns the referrer
// manifest's digest.
func Attach(ctx context.Context, d name.Digest, mediaType string, env []byte, ropts ...remote.Option) (string, error) {
	e, err := signature.ParseEnvelope(mediaType, env)
	if err != nil {
		return "", err
	}
	c, err := e.Content()
	if err != nil {
		return "", err
	}
	subject, err := subjectOf(ctx, d, ropts)
	if err != nil {
		return "", err
	}
	ropts = append(slices.Clone(ropts), remote.WithContext(ctx))
	thumbs, err := json.Marshal(Thumbprints(c.SignerInfo.CertificateChain))
	if err != nil {
		return "", err
	}
	cfg := static.NewLayer([]byte("{}"), types.MediaType(ArtifactType))
	layer := static.NewLayer(env, types.MediaType(mediaType))
	for _, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(d.Context(), l, ropts...); err != nil {
			return "", fmt.Errorf("uploading signature to %s: %w", d.Context(), err)
		}
	}
	cfgDigest, _ := cfg.Digest()
	layerDigest, _ := layer.Digest()
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        v1.Descriptor{MediaType: types.MediaType(ArtifactType), Size: 2, Digest: cfgDigest},
		Layers:        []v1.Descriptor{{MediaType: types.MediaType(mediaType), Size: int64(len(env)), Digest: layerDigest}},
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Size: subject.Size, Digest: subject.Digest},
		Annotations: map[string]string{
			ThumbprintAnnotation:      string(thumbs),
			ocispec.AnnotationCreated: c.SignerInfo.SignedAttributes.SigningTime.UTC().Format(time.RFC3339),
		},
	}
	body, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	h, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	if err := remote.Put(d.Context().Digest(h.String()), rawManifest(body), ropts...); err != nil {
		return "", fmt.Errorf("storing signature referrer for %s: %w", d, err)
	}
	return h.String(), nil
}

type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
