// Package sign makes custody's image signatures and attestations
// cosign-compatible, for cosign v2 and v3 alike.
//
// A signature is stored twice:
//
//   - where cosign v2 looks: a layer (media type SimpleSigningMediaType,
//     the base64 signature in the SignatureAnnotation) appended to the OCI
//     image tagged sha256-<hex>.sig next to the signed manifest; the layer
//     is the "simple signing" JSON payload naming the manifest digest;
//   - where cosign v3 looks: an OCI 1.1 referrer of the signed manifest
//     (artifactType BundleMediaType) whose one layer is a Sigstore bundle
//     v0.3 holding a DSSE envelope around an in-toto statement with
//     predicate type CosignSignPredicateType, exactly as `cosign sign`
//     writes it in v3 (its default, new bundle format).
//
// An attestation (a DSSE envelope around an in-toto statement) is stored
// the same two ways: a layer (DSSEMediaType) of the sha256-<hex>.att image,
// which `cosign verify-attestation` reads, and a bundle referrer.
//
// Options.Storage can restrict writes to one of the two places.
//
// Signing uses a key (ECDSA P-256 or Ed25519) and no transparency log:
// cosign verifies these with `--key PUB --insecure-ignore-tlog=true`.
// cosign v2.6 switches to its bundle verifier as soon as an image has a
// bundle referrer, and that verifier wants a Sigstore trusted root, which
// it fetches from the public-good TUF repository unless given
// `--trusted-root FILE`; air-gapped, pass a trusted root file (one with no
// authorities will do for key-based verification) or write StorageTag only.
// ECDSA signs the SHA-256 of the message, Ed25519 the message itself, as
// sigstore does.
//
// Nothing here is atomic across the two places: a failure after the first
// write leaves a signature cosign v2 finds and v3 does not. Signing again
// is safe: identical layers are not duplicated.
package sign

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/timestamp"
)

// Options configure Sign, Attach, Verify and Attestations.
type Options struct {
	// Remote are the go-containerregistry options for every registry
	// request: authentication (remote.WithAuth, remote.WithAuthFromKeychain),
	// transport, user agent. The context is added by each call.
	Remote []remote.Option
	// Annotations are the signer's claims added to a signature: the
	// "optional" object of the simple signing payload and the subject
	// annotations of the in-toto statement, as `cosign sign -a k=v` does.
	// Sign only.
	Annotations map[string]string
	// Storage selects where Sign and Attach write: both places (the zero
	// value), only the cosign v2 tag, or only the bundle referrer.
	Storage Storage
	// Now returns the time written in the referrer's
	// org.opencontainers.image.created annotation; time.Now when nil.
	Now func() time.Time
	// Timestamper, when set, time-stamps every signature Sign and Attach
	// make (RFC 3161): the token goes in the layer's TimestampAnnotation
	// and the bundle's timestampVerificationData, where cosign puts it.
	Timestamper timestamp.Stamper
	// Chain, when set, is the certificate chain (leaf first) of a keyless
	// signer: a short-lived certificate for the ephemeral signing key
	// (internal/ca, Fulcio). Sign and Attach store it where cosign does
	// (the layer's CertificateAnnotation and ChainAnnotation, the bundle's
	// verification material) instead of a public key hint.
	Chain []*x509.Certificate
	// Certificates makes Verify, VerifyAll and StoredAttestations also
	// return signatures that verify with the key of the certificate
	// stored with them (Verified.Chain set, KeyID the ID of that key):
	// nothing about the certificate is checked here, so only a caller
	// that judges it (internal/evidence) may set this.
	Certificates bool
	// TransparencyLog, when set, logs every bundle signature Sign makes
	// and the signature of an envelope Attach stores (when it has exactly
	// one): it gets the DSSE envelope's PAE as signed, the signature and
	// the signer's public key (Attach: Chain's leaf key, nil without a
	// Chain) and answers the TransparencyLogEntry (protojson), which goes
	// in the bundle's tlogEntries, where cosign v3 puts it. The cosign v2
	// tag has no place for it.
	TransparencyLog func(ctx context.Context, signed, sig []byte, pub crypto.PublicKey) ([]byte, error)
}

// Storage selects where signatures and attestations are written.
type Storage int

const (
	// StorageBoth writes the cosign v2 tag and the bundle referrer.
	StorageBoth Storage = iota
	// StorageTag writes only the sha256-<hex>.sig/.att image (cosign v2,
	// registries without OCI 1.1 referrers).
	StorageTag
	// StorageReferrer writes only the Sigstore bundle referrer (cosign v3).
	StorageReferrer
)

func (s Storage) check() error {
	if s < StorageBoth || s > StorageReferrer {
		return fmt.Errorf("unknown storage %d: use StorageBoth, StorageTag or StorageReferrer", int(s))
	}
	return nil
}

func (s Storage) tag() bool      { return s == StorageBoth || s == StorageTag }
func (s Storage) referrer() bool { return s == StorageBoth || s == StorageReferrer }

// Result says where Sign or Attach stored a signature.
type Result struct {
	// Tag is the cosign v2 tag (sha256-<hex>.sig or .att) and TagDigest the
	// digest of the image it names after the write (empty with
	// StorageReferrer).
	Tag       name.Tag
	TagDigest string
	// Referrer is the digest of the OCI 1.1 referrer manifest holding
	// Bundle (empty with StorageTag).
	Referrer string
	// Bundle is the Sigstore bundle v0.3 JSON stored in the referrer (built
	// whatever the Storage); write it to a file to verify offline with
	// VerifyBundle.
	Bundle []byte
}

// ResolveDigest parses an image reference (nameOpts as for
// name.ParseReference, e.g. name.Insecure) and, when it names a tag, asks
// the registry for the digest it points at. Sign and verify a digest, never
// a tag: a tag can move between the two steps.
func ResolveDigest(ctx context.Context, ref string, opts Options, nameOpts ...name.Option) (name.Digest, error) {
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	if d, ok := r.(name.Digest); ok {
		return d, nil
	}
	desc, err := remote.Head(r, opts.ropts(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return name.Digest{}, fmt.Errorf("%s is not in the registry", r)
		}
		return name.Digest{}, fmt.Errorf("resolving %s: %w", r, err)
	}
	return r.Context().Digest(desc.Digest.String()), nil
}

// Sign signs the manifest ref names with signer (ECDSA P-256 or Ed25519)
// the way `cosign sign --key` does, and stores the signature both where
// cosign v2 looks (appended to the sha256-<hex>.sig image) and where cosign
// v3 looks (a Sigstore bundle referrer), or only one of them
// (Options.Storage). The manifest must be in the registry. The bundle's key
// hint is the base64 SHA-256 of the signer's PKIX public key, as
// sigstore-go writes it; its DSSE signature has no keyid.
func Sign(ctx context.Context, ref name.Digest, signer crypto.Signer, opts Options) (Result, error) {
	if signer == nil {
		return Result{}, errors.New("no signing key given")
	}
	if err := opts.Storage.check(); err != nil {
		return Result{}, err
	}
	if _, err := key.AlgorithmOf(signer.Public()); err != nil {
		return Result{}, err
	}
	if err := checkChain(opts.Chain, signer.Public()); err != nil {
		return Result{}, err
	}
	subj, err := subjectDescriptor(ctx, ref, opts)
	if err != nil {
		return Result{}, err
	}

	// cosign v2: simple signing payload in the .sig image.
	payload, err := NewPayload(ref.Context().Name(), ref.DigestStr(), opts.Annotations).Marshal()
	if err != nil {
		return Result{}, err
	}
	sig, err := signMessage(signer, payload)
	if err != nil {
		return Result{}, fmt.Errorf("signing %s: %w", ref, err)
	}
	res := Result{Tag: TagFor(ref, SignatureSuffix)}
	if opts.Storage.tag() {
		tsr, err := opts.stamp(ctx, sig)
		if err != nil {
			return Result{}, err
		}
		ann, err := timestampAnnotation(certificateAnnotations(map[string]string{SignatureAnnotation: b64(sig)}, opts.Chain), tsr)
		if err != nil {
			return Result{}, err
		}
		h, err := appendLayer(ctx, res.Tag, payload, SimpleSigningMediaType, ann, opts)
		if err != nil {
			return Result{}, err
		}
		res.TagDigest = h.String()
	}

	// cosign v3: DSSE in-toto statement in a bundle referrer.
	st, err := signStatement(ref.DigestStr(), opts.Annotations)
	if err != nil {
		return Result{}, err
	}
	env, err := signDSSE(signer, InTotoPayloadType, st)
	if err != nil {
		return Result{}, err
	}
	tsr, err := opts.stamp(ctx, env.GetSignatures()[0].GetSig())
	if err != nil {
		return Result{}, err
	}
	if res.Bundle, err = newBundle(env, signer.Public(), opts.Chain, tsr); err != nil {
		return Result{}, err
	}
	if opts.TransparencyLog != nil {
		sig := env.GetSignatures()[0].GetSig()
		tle, err := opts.TransparencyLog(ctx, dsse.PAE(env.GetPayloadType(), env.GetPayload()), sig, signer.Public())
		if err != nil {
			return Result{}, fmt.Errorf("logging the signature: %w", err)
		}
		if res.Bundle, err = addBundleLogEntry(res.Bundle, tle); err != nil {
			return Result{}, err
		}
	}
	if opts.Storage.referrer() {
		h, err := putBundleReferrer(ctx, ref, subj, res.Bundle, CosignSignPredicateType, opts)
		if err != nil {
			return Result{}, err
		}
		res.Referrer = h.String()
	}
	return res, nil
}

// Attach stores a signed DSSE envelope (an in-toto statement, as
// attest.Sign returns it) for the manifest ref names: appended to the
// sha256-<hex>.att image, where `cosign verify-attestation --type
// predicateType` finds it, and as a Sigstore bundle referrer. The
// statement must name ref's digest as a subject; predicateType, when not
// empty, must equal the statement's. Attach checks no signature: verifiers
// do.
//
// cosign matches a signature's non-empty keyid against the SSH-style
// fingerprint of the key it verifies with ("SHA256:..." as
// go-securesystemslib's dsse.SHA256KeyID computes it) and ignores the
// signature when they differ. An envelope whose keyids are empty or of that
// form is stored byte for byte; otherwise its keyids (which no signature
// covers) are cleared in the stored copies, so cosign can verify it.
func Attach(ctx context.Context, ref name.Digest, envelope []byte, predicateType string, opts Options) (Result, error) {
	if err := opts.Storage.check(); err != nil {
		return Result{}, err
	}
	env, err := parseEnvelope(envelope)
	if err != nil {
		return Result{}, err
	}
	if env.PayloadType != InTotoPayloadType {
		return Result{}, fmt.Errorf("DSSE payload type is %q: cosign reads only in-toto attestations (%s)", env.PayloadType, InTotoPayloadType)
	}
	st, err := parseStatement(env.Payload)
	if err != nil {
		return Result{}, err
	}
	if predicateType == "" {
		predicateType = st.PredicateType
	}
	if st.PredicateType != predicateType {
		return Result{}, fmt.Errorf("statement predicate type is %q, not %q", st.PredicateType, predicateType)
	}
	if !st.names(ref.DigestStr()) {
		return Result{}, fmt.Errorf("the statement's subjects do not include %s: attest the digest being attached to", ref.DigestStr())
	}
	subj, err := subjectDescriptor(ctx, ref, opts)
	if err != nil {
		return Result{}, err
	}
	stored := envelope
	if !cosignKeyIDs(env) {
		// cosign would skip every signature whose keyid is not the key's
		// SSH-style fingerprint; the keyid is unsigned, so drop it.
		for _, s := range env.Signatures {
			s.Keyid = ""
		}
		if stored, err = envelopeJSON(env); err != nil {
			return Result{}, err
		}
	}
	res := Result{Tag: TagFor(ref, AttestationSuffix)}
	if opts.Storage.tag() {
		tsr, err := opts.stamp(ctx, stored)
		if err != nil {
			return Result{}, err
		}
		ann, err := timestampAnnotation(certificateAnnotations(map[string]string{
			SignatureAnnotation:     "",
			PredicateTypeAnnotation: predicateType,
		}, opts.Chain), tsr)
		if err != nil {
			return Result{}, err
		}
		h, err := appendLayer(ctx, res.Tag, stored, DSSEMediaType, ann, opts)
		if err != nil {
			return Result{}, err
		}
		res.TagDigest = h.String()
	}
	var tsr []byte
	if len(env.GetSignatures()) > 0 {
		if tsr, err = opts.stamp(ctx, env.GetSignatures()[0].GetSig()); err != nil {
			return Result{}, err
		}
	}
	if res.Bundle, err = newBundle(env, nil, opts.Chain, tsr); err != nil {
		return Result{}, err
	}
	if opts.TransparencyLog != nil && len(env.GetSignatures()) == 1 {
		var pub crypto.PublicKey
		if len(opts.Chain) > 0 {
			pub = opts.Chain[0].PublicKey
		}
		tle, err := opts.TransparencyLog(ctx, dsse.PAE(env.GetPayloadType(), env.GetPayload()), env.GetSignatures()[0].GetSig(), pub)
		if err != nil {
			return Result{}, fmt.Errorf("logging the attestation: %w", err)
		}
		if res.Bundle, err = addBundleLogEntry(res.Bundle, tle); err != nil {
			return Result{}, err
		}
	}
	if opts.Storage.referrer() {
		h, err := putBundleReferrer(ctx, ref, subj, res.Bundle, predicateType, opts)
		if err != nil {
			return Result{}, err
		}
		res.Referrer = h.String()
	}
	return res, nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
