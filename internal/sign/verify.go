package sign

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
)

// ErrNoSignature reports an artifact with no signature in either place.
var ErrNoSignature = errors.New("no signature found")

// ErrNotVerified reports an artifact that has signatures, none of which
// verifies with a trusted key for this digest.
var ErrNotVerified = errors.New("no signature verifies")

// KeyResolver gives the public keys signatures are checked against.
// cosign signatures made with a key carry no reliable key ID, so every
// trusted key is tried.
type KeyResolver interface {
	PublicKeys(ctx context.Context) ([]crypto.PublicKey, error)
}

// PublicKeys is a fixed set of trusted keys (ECDSA P-256 or Ed25519).
type PublicKeys []crypto.PublicKey

// PublicKeys returns the keys.
func (k PublicKeys) PublicKeys(context.Context) ([]crypto.PublicKey, error) { return k, nil }

// Source says where a signature was found.
type Source string

// The two places signatures are stored.
const (
	// SourceTag is the sha256-<hex>.sig image cosign v2 writes.
	SourceTag Source = "tag"
	// SourceReferrer is a Sigstore bundle referrer as cosign v3 writes.
	SourceReferrer Source = "referrer"
)

// Verified is one signature that verified.
type Verified struct {
	Source Source
	// Digest is the signed manifest digest (the one Verify was asked about).
	Digest string
	// Container is the digest of the .sig image or referrer manifest the
	// signature was found in.
	Container string
	// KeyID is key.ID of the trusted key that verified it.
	KeyID string
	// DockerReference is the repository the signer named (simple signing
	// signatures only; informational: a signature is valid for the digest in
	// any repository it is copied to).
	DockerReference string
	// Annotations are the signer's claims (simple signing "optional", or the
	// in-toto subject annotations).
	Annotations map[string]string
	// Payload is the signed document: simple signing JSON or the in-toto
	// statement.
	Payload []byte
	// Timestamps are the RFC 3161 time-stamps stored with the signature
	// (cosign's layer annotation, the bundle's verification material),
	// not verified: internal/evidence checks them.
	Timestamps []Timestamp
	// Chain is the certificate chain (leaf first) stored with a keyless
	// signature that verified with the leaf's key (Options.Certificates);
	// KeyID is then that ephemeral key's ID. Nothing about the
	// certificate is verified here: internal/evidence judges it.
	Chain []*x509.Certificate
	// LogEntries are the transparency log entries stored with it (a
	// bundle's), not verified: internal/evidence checks them.
	LogEntries []LogEntry
}

// Rejected is one signature found for the digest that does not verify:
// no trusted key verifies it, or it signs another digest.
type Rejected struct {
	Source Source
	// Container is the digest of the .sig image or referrer manifest the
	// signature was found in.
	Container string
	// Err says why it does not verify.
	Err error

	// What was found: a simple signing payload and its base64 signature
	// (SourceTag), or a Sigstore bundle (SourceReferrer).
	payload []byte
	sig     string
	bundle  []byte
}

// VerifyWith checks the rejected signature again, for digest, with other
// keys: to tell which of them made it (a key no longer trusted).
func (r Rejected) VerifyWith(digest string, keys []crypto.PublicKey) (Verified, error) {
	if len(keys) == 0 {
		return Verified{}, errors.New("no key to verify with")
	}
	if r.Source == SourceReferrer {
		return VerifyBundle(r.bundle, digest, keys)
	}
	return verifySimpleSigning(r.payload, r.sig, digest, keys)
}

// Verify finds the signatures of the manifest ref names, in the
// sha256-<hex>.sig image and in Sigstore bundle referrers, and returns
// those that verify with one of the trusted keys and sign exactly ref's
// digest: a signature copied next to another digest does not verify.
// Bundle referrers that are attestations (any predicate type but
// CosignSignPredicateType) are not signatures and are ignored. It fails
// with ErrNoSignature when there is none, and ErrNotVerified (with the
// reasons) when none verifies.
func Verify(ctx context.Context, ref name.Digest, keys KeyResolver, opts Options) ([]Verified, error) {
	out, _, err := VerifyAll(ctx, ref, keys, opts)
	return out, err
}

// VerifyAll is Verify that also returns the signatures found that do not
// verify, each with where it was found and why (when some verify too).
func VerifyAll(ctx context.Context, ref name.Digest, keys KeyResolver, opts Options) ([]Verified, []Rejected, error) {
	var pubs []crypto.PublicKey
	if k, ok := keys.(PublicKeys); !ok || len(k) > 0 || !opts.Certificates {
		var err error
		if pubs, err = trustedKeys(ctx, keys); err != nil {
			return nil, nil, err
		}
	}
	layers, err := readTagLayers(ctx, TagFor(ref, SignatureSuffix), SimpleSigningMediaType, MaxPayloadSize, opts, nil)
	if err != nil {
		return nil, nil, err
	}
	bundles, err := readBundleReferrers(ctx, ref, opts, nil)
	if err != nil {
		return nil, nil, err
	}
	var out []Verified
	var rejected []Rejected
	var reasons []error
	found := 0
	for _, l := range layers {
		found++
		v, err := verifySimpleSigning(l.body, l.annotations[SignatureAnnotation], ref.DigestStr(), pubs)
		if chain := layerChain(l.annotations); err != nil && opts.Certificates && chain != nil {
			if v, err = verifySimpleSigning(l.body, l.annotations[SignatureAnnotation], ref.DigestStr(), chainPublicKeys(chain)); err == nil {
				v.Chain = chain
			}
		}
		if err != nil {
			rejected = append(rejected, Rejected{Source: SourceTag, Container: l.image.String(), Err: err,
				payload: l.body, sig: l.annotations[SignatureAnnotation]})
			reasons = append(reasons, fmt.Errorf("signature in %s@%s: %w", TagFor(ref, SignatureSuffix), l.image, err))
			continue
		}
		v.Container = l.image.String()
		if raw, err := base64.StdEncoding.DecodeString(l.annotations[SignatureAnnotation]); err == nil {
			v.Timestamps = layerTimestamps(l.annotations, raw)
		}
		out = append(out, v)
	}
	for _, b := range bundles {
		if b.predicateType != "" && b.predicateType != CosignSignPredicateType {
			continue // an attestation
		}
		v, err := verifyBundle(b.body, ref.DigestStr(), pubs, opts.Certificates)
		if errors.Is(err, errAttestation) {
			continue
		}
		found++
		if err != nil {
			rejected = append(rejected, Rejected{Source: SourceReferrer, Container: b.manifest.String(), Err: err, bundle: b.body})
			reasons = append(reasons, fmt.Errorf("bundle referrer %s: %w", b.manifest, err))
			continue
		}
		v.Container = b.manifest.String()
		out = append(out, v)
	}
	if len(out) > 0 {
		return out, rejected, nil
	}
	if found == 0 {
		return nil, nil, fmt.Errorf("%s: %w (neither a %s tag nor a signature bundle referrer)", ref, ErrNoSignature, TagFor(ref, SignatureSuffix).TagStr())
	}
	return nil, rejected, fmt.Errorf("%s: %w: %w", ref, ErrNotVerified, errors.Join(reasons...))
}

func trustedKeys(ctx context.Context, keys KeyResolver) ([]crypto.PublicKey, error) {
	if keys == nil {
		return nil, errors.New("no trusted keys given")
	}
	pubs, err := keys.PublicKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading trusted keys: %w", err)
	}
	if len(pubs) == 0 {
		return nil, errors.New("no trusted keys: add a public key to verify against")
	}
	return pubs, nil
}

// verifySimpleSigning checks a cosign v2 signature layer.
func verifySimpleSigning(payload []byte, sigB64, digest string, keys []crypto.PublicKey) (Verified, error) {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) == 0 {
		return Verified{}, fmt.Errorf("%s annotation is missing or not base64", SignatureAnnotation)
	}
	keyID, err := verifyAny(keys, payload, sig)
	if err != nil {
		return Verified{}, err
	}
	p, err := ParsePayload(payload)
	if err != nil {
		return Verified{}, err
	}
	if p.Critical.Image.DockerManifestDigest != digest {
		return Verified{}, fmt.Errorf("signature is for %s, not %s", p.Critical.Image.DockerManifestDigest, digest)
	}
	return Verified{
		Source:          SourceTag,
		Digest:          digest,
		KeyID:           keyID,
		DockerReference: p.Critical.Identity.DockerReference,
		Annotations:     p.Annotations(),
		Payload:         payload,
	}, nil
}

// errAttestation marks a valid-looking bundle that is an attestation, not
// an image signature.
var errAttestation = errors.New("bundle is an attestation, not an image signature")

// VerifyBundle checks a Sigstore bundle image signature (as Sign returns
// it or `cosign sign` v3 writes it) for digest against trusted keys: the
// DSSE signature verifies with one of keys, the statement's predicate type
// is CosignSignPredicateType and its subjects include digest. Bundles with
// a message signature are refused: cosign writes DSSE for images.
func VerifyBundle(bundle []byte, digest string, keys []crypto.PublicKey) (Verified, error) {
	return verifyBundle(bundle, digest, keys, false)
}

// verifyBundle is VerifyBundle that, with certs, also accepts a bundle
// whose DSSE signature verifies with the key of its own certificate
// (Verified.Chain set; the certificate is for the caller to judge).
func verifyBundle(bundle []byte, digest string, keys []crypto.PublicKey, certs bool) (Verified, error) {
	pb, err := parseBundle(bundle)
	if err != nil {
		return Verified{}, err
	}
	c, ok := pb.GetContent().(*protobundle.Bundle_DsseEnvelope)
	if !ok {
		return Verified{}, errors.New("bundle holds a message signature: custody verifies image signatures in DSSE bundles, as cosign v3 writes them")
	}
	env := c.DsseEnvelope
	if env.GetPayloadType() != InTotoPayloadType {
		return Verified{}, fmt.Errorf("bundle DSSE payload type is %q, want %s", env.GetPayloadType(), InTotoPayloadType)
	}
	keyID, err := verifyEnvelope(env, keys)
	var chain []*x509.Certificate
	if err != nil && certs {
		if chain = bundleChain(pb); chain != nil {
			keyID, err = verifyEnvelope(env, chainPublicKeys(chain))
		}
	}
	if err != nil {
		return Verified{}, err
	}
	st, err := parseStatement(env.GetPayload())
	if err != nil {
		return Verified{}, err
	}
	if st.PredicateType != CosignSignPredicateType {
		return Verified{}, fmt.Errorf("%w (predicate type %s)", errAttestation, st.PredicateType)
	}
	if !st.names(digest) {
		return Verified{}, fmt.Errorf("signed statement does not name %s", digest)
	}
	var ann map[string]string
	for _, s := range st.Subject {
		if len(s.Annotations) > 0 {
			ann = s.Annotations
			break
		}
	}
	var sig []byte
	if sigs := env.GetSignatures(); len(sigs) > 0 {
		sig = sigs[0].GetSig()
	}
	return Verified{
		Source:      SourceReferrer,
		Digest:      digest,
		KeyID:       keyID,
		Annotations: ann,
		Payload:     env.GetPayload(),
		Timestamps:  bundleTimestamps(pb, sig),
		Chain:       chain,
		LogEntries:  bundleLogEntries(pb, sig),
	}, nil
}

// Attestations returns the attestations stored for the manifest ref
// names, as DSSE envelope JSON: the layers of the sha256-<hex>.att image
// (as stored) and the DSSE envelopes of bundle referrers that are not image
// signatures (re-encoded as standard DSSE JSON, without keyids). An
// envelope stored in both places is returned once, as the .att copy. Nothing is verified here: check each envelope's
// signature and subject (attest.Verify) before trusting it.
func Attestations(ctx context.Context, ref name.Digest, opts Options) ([][]byte, error) {
	stored, err := StoredAttestations(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(stored))
	for _, a := range stored {
		out = append(out, a.Envelope)
	}
	return out, nil
}

// StoredAttestation is one attestation envelope and where it was found.
type StoredAttestation struct {
	Source Source
	// Container is the digest of the .att image or bundle referrer
	// manifest holding it.
	Container string
	// Envelope is the DSSE envelope JSON, as Attestations returns it.
	Envelope []byte
	// Timestamps are the RFC 3161 time-stamps stored with it, unverified.
	Timestamps []Timestamp
	// Chain is the certificate chain stored with a keyless attestation
	// (leaf first; nil for a key-based one), unverified.
	Chain []*x509.Certificate
	// Key names the stored content (see ListAttestations); Normal is the
	// SHA-256 of the envelope without key IDs, the same for one envelope
	// stored as a layer and in a bundle (the copies are listed once).
	Key    string
	Normal [32]byte
	// NotAttestation: ListAttestations read this content and found no
	// attestation in it (see there); only Source, Key and Container are set.
	NotAttestation bool
	// LogEntries are the transparency log entries stored with it,
	// unverified.
	LogEntries []LogEntry
}

// StoredAttestations is Attestations with where each envelope was found.
func StoredAttestations(ctx context.Context, ref name.Digest, opts Options) ([]StoredAttestation, error) {
	all, err := ListAttestations(ctx, ref, opts, nil)
	if err != nil {
		return nil, err
	}
	seen := map[[32]byte]bool{}
	var out []StoredAttestation
	for _, a := range all {
		if !a.NotAttestation && !seen[a.Normal] {
			seen[a.Normal] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// ListAttestations is StoredAttestations, except that the attestations
// whose Key known reports are listed, not read: they come back with their
// Key, Source and Container only (no Envelope, no Timestamps, no Normal),
// for a caller that remembers what it made of that content. A Key names
// immutable content (a layer's digest with its annotations, a referrer
// manifest's digest), so the same Key is the same envelope and
// time-stamps. known may be nil (everything is read). Unlike
// StoredAttestations, an envelope stored twice (as a layer and in a
// bundle) is listed twice, with the same Normal: the caller knows each
// copy by its Key; and what was read and found to hold no attestation (an
// image signature's bundle, a malformed entry) is listed with
// NotAttestation, so that it too need not be read again.
func ListAttestations(ctx context.Context, ref name.Digest, opts Options, known func(key string) bool) ([]StoredAttestation, error) {
	layers, err := readTagLayers(ctx, TagFor(ref, AttestationSuffix), DSSEMediaType, MaxBundleSize, opts, known)
	if err != nil {
		return nil, err
	}
	bundles, err := readBundleReferrers(ctx, ref, opts, known)
	if err != nil {
		return nil, err
	}
	var out []StoredAttestation
	add := func(src Source, key, container string, raw []byte, ts []Timestamp, chain []*x509.Certificate, logs []LogEntry) error {
		env, err := parseEnvelope(raw)
		if err != nil {
			return err
		}
		for _, s := range env.Signatures {
			s.Keyid = "" // unsigned; the bundle copy has none
		}
		norm, err := envelopeJSON(env)
		if err != nil {
			return err
		}
		out = append(out, StoredAttestation{Source: src, Key: key, Container: container, Envelope: raw, Timestamps: ts, Normal: sha256.Sum256(norm), Chain: chain, LogEntries: logs})
		return nil
	}
	// Malformed entries are skipped, not fatal: anyone who may push could
	// otherwise block verification with one bad layer.
	for _, l := range layers {
		if l.known {
			out = append(out, StoredAttestation{Source: SourceTag, Key: layerKey(l), Container: l.image.String()})
			continue
		}
		if add(SourceTag, layerKey(l), l.image.String(), l.body, layerTimestamps(l.annotations, l.body), layerChain(l.annotations), nil) != nil {
			out = append(out, StoredAttestation{Source: SourceTag, Key: layerKey(l), Container: l.image.String(), NotAttestation: true})
		}
	}
	for _, b := range bundles {
		none := StoredAttestation{Source: SourceReferrer, Key: referrerKey(b.manifest), Container: b.manifest.String(), NotAttestation: true}
		if b.known {
			none.NotAttestation = false
			out = append(out, none)
			continue
		}
		if b.predicateType == CosignSignPredicateType {
			out = append(out, none)
			continue
		}
		pb, err := parseBundle(b.body)
		if err != nil {
			out = append(out, none)
			continue
		}
		c, ok := pb.GetContent().(*protobundle.Bundle_DsseEnvelope)
		if !ok {
			out = append(out, none)
			continue
		}
		if st, err := parseStatement(c.DsseEnvelope.GetPayload()); err == nil && st.PredicateType == CosignSignPredicateType {
			out = append(out, none) // an image signature
			continue
		}
		raw, err := envelopeJSON(c.DsseEnvelope)
		if err != nil {
			return nil, err
		}
		var sig []byte
		if sigs := c.DsseEnvelope.GetSignatures(); len(sigs) > 0 {
			sig = sigs[0].GetSig()
		}
		if add(SourceReferrer, referrerKey(b.manifest), b.manifest.String(), raw, bundleTimestamps(pb, sig), bundleChain(pb), bundleLogEntries(pb, sig)) != nil {
			out = append(out, none)
		}
	}
	return out, nil
}
