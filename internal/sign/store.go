package sign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where cosign v2 keeps signatures and attestations: an OCI image under a
// tag derived from the signed digest, one layer per signature.
const (
	// SimpleSigningMediaType is the layer media type of a cosign image
	// signature in a sha256-<hex>.sig image.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// DSSEMediaType is the layer media type of an attestation (a DSSE
	// envelope) in a sha256-<hex>.att image.
	DSSEMediaType = "application/vnd.dsse.envelope.v1+json"
	// SignatureAnnotation holds a layer's base64 signature (empty for an
	// attestation, whose signatures are inside the envelope).
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// PredicateTypeAnnotation names an attestation layer's predicate type.
	PredicateTypeAnnotation = "predicateType"
	// BundleContentAnnotation and BundlePredicateTypeAnnotation are the
	// annotations cosign v3 puts on a bundle referrer manifest.
	BundleContentAnnotation       = "dev.sigstore.bundle.content"
	BundlePredicateTypeAnnotation = "dev.sigstore.bundle.predicateType"
	// SignatureSuffix and AttestationSuffix end the tags cosign v2 uses.
	SignatureSuffix   = "sig"
	AttestationSuffix = "att"

	emptyMediaType = "application/vnd.oci.empty.v1+json"
	createdAnnot   = "org.opencontainers.image.created"
)

// Limits on what custody reads back from a registry.
const (
	// MaxSignatureLayers caps the layers read from one .sig or .att image.
	MaxSignatureLayers = 1000
	// MaxReferrers caps the referrers examined for one artifact.
	MaxReferrers = 1000
)

// TagFor returns the tag cosign v2 uses for the signatures (suffix
// SignatureSuffix) or attestations (AttestationSuffix) of digest:
// <repo>:sha256-<hex>.<suffix>.
func TagFor(d name.Digest, suffix string) name.Tag {
	return d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + "." + suffix)
}

// IsEvidenceTag reports whether tag is one of the tags cosign's layout
// gives evidence about another manifest rather than an artifact:
// sha256-<hex>.sig, .att, .sbom (and sha512-), or the bare sha256-<hex> of
// the OCI referrers fallback. Such tags are neither signed on push,
// exported as artifact tags, nor assessed as artifacts.
func IsEvidenceTag(tag string) bool {
	base, _, _ := strings.Cut(tag, ".")
	hex, ok := strings.CutPrefix(base, "sha256-")
	if !ok {
		hex, ok = strings.CutPrefix(base, "sha512-")
	}
	return ok && hex != "" && strings.Trim(hex, "0123456789abcdef") == ""
}

// Pulling returns o with one go-containerregistry Puller shared by every
// read made with it, so the registry is pinged (GET /v2/) and credentials
// are set up once per repository, not before every request: a
// verification reads a manifest, a referrers list and several blobs.
func (o Options) Pulling(ctx context.Context) (Options, error) {
	p, err := remote.NewPuller(o.ropts(ctx)...)
	if err != nil {
		return o, err
	}
	o.Remote = append(slices.Clone(o.Remote), remote.Reuse(p))
	return o, nil
}

func (o Options) ropts(ctx context.Context) []remote.Option {
	return append(append([]remote.Option{}, o.Remote...), remote.WithContext(ctx))
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// appendLayer adds one layer to the image under tag, creating the image
// when the tag does not exist yet, as cosign v2 does. An identical layer
// (same bytes, same signature annotation) already there is not added
// again. It returns the digest of the image the tag now names.
//
// The tag is read, extended and rewritten: two writers racing on the same
// tag can lose one layer. The referrer copy each writer also stores is
// never lost.
func appendLayer(ctx context.Context, tag name.Tag, payload []byte, mediaType types.MediaType, annotations map[string]string, o Options) (v1.Hash, error) {
	ropts := o.ropts(ctx)
	layer := static.NewLayer(payload, mediaType)
	ld, err := layer.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	base, err := remote.Image(tag, ropts...)
	switch {
	case isNotFound(err):
		base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	case err != nil:
		return v1.Hash{}, fmt.Errorf("reading %s: %w", tag, err)
	default:
		m, err := base.Manifest()
		if err != nil {
			return v1.Hash{}, fmt.Errorf("reading %s: %w", tag, err)
		}
		if len(m.Layers) >= MaxSignatureLayers {
			return v1.Hash{}, fmt.Errorf("%s already holds %d layers, the most custody writes", tag, len(m.Layers))
		}
		for _, l := range m.Layers {
			if l.Digest == ld && l.Annotations[SignatureAnnotation] == annotations[SignatureAnnotation] {
				return base.Digest()
			}
		}
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, Annotations: annotations, MediaType: mediaType})
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(tag, img, ropts...); err != nil {
		return v1.Hash{}, fmt.Errorf("writing %s: %w", tag, err)
	}
	return img.Digest()
}

// rawManifest is a manifest pushed byte for byte.
type rawManifest struct {
	body      []byte
	mediaType types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.body, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mediaType, nil }

// putBundleReferrer stores bundle as an OCI 1.1 referrer of subject, laid
// out as cosign v3 does: an empty config, the bundle as the only layer,
// artifactType BundleMediaType. It returns the referrer manifest's digest.
func putBundleReferrer(ctx context.Context, d name.Digest, subjectDesc v1.Descriptor, bundle []byte, predicateType string, o Options) (v1.Hash, error) {
	ropts := o.ropts(ctx)
	cfg := static.NewLayer([]byte("{}"), emptyMediaType)
	layer := static.NewLayer(bundle, BundleMediaType)
	for _, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(d.Context(), l, ropts...); err != nil {
			return v1.Hash{}, fmt.Errorf("uploading bundle to %s: %w", d.Context(), err)
		}
	}
	cfgDigest, _ := cfg.Digest()
	layerDigest, _ := layer.Digest()
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  BundleMediaType,
		Config:        v1.Descriptor{MediaType: emptyMediaType, Size: 2, Digest: cfgDigest},
		Layers:        []v1.Descriptor{{MediaType: BundleMediaType, Size: int64(len(bundle)), Digest: layerDigest}},
		Subject:       &v1.Descriptor{MediaType: subjectDesc.MediaType, Size: subjectDesc.Size, Digest: subjectDesc.Digest},
		Annotations: map[string]string{
			createdAnnot:                  o.now().UTC().Format(time.RFC3339),
			BundleContentAnnotation:       "dsse-envelope",
			BundlePredicateTypeAnnotation: predicateType,
		},
	}
	body, err := json.Marshal(m)
	if err != nil {
		return v1.Hash{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Put(d.Context().Digest(h.String()), rawManifest{body, types.OCIManifestSchema1}, ropts...); err != nil {
		return v1.Hash{}, fmt.Errorf("storing bundle referrer for %s: %w", d, err)
	}
	return h, nil
}

// subjectDescriptor returns the descriptor of the manifest d names,
// failing when it is not in the registry.
func subjectDescriptor(ctx context.Context, d name.Digest, o Options) (v1.Descriptor, error) {
	desc, err := remote.Head(d, o.ropts(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return v1.Descriptor{}, fmt.Errorf("%s is not in the registry: push it before signing", d)
		}
		return v1.Descriptor{}, fmt.Errorf("looking up %s: %w", d, err)
	}
	if desc.Digest.String() != d.DigestStr() {
		return v1.Descriptor{}, fmt.Errorf("registry answered digest %s for %s", desc.Digest, d)
	}
	return *desc, nil
}

// storedLayer is one layer of a .sig or .att image.
type storedLayer struct {
	image       v1.Hash // the .sig/.att image holding it
	mediaType   types.MediaType
	annotations map[string]string
	digest      v1.Hash
	body        []byte
}

// readTagLayers returns the layers of mediaType in the image under tag
// (none when the tag does not exist), each read up to limit bytes.
func readTagLayers(ctx context.Context, tag name.Tag, mediaType types.MediaType, limit int64, o Options) ([]storedLayer, error) {
	img, err := remote.Image(tag, o.ropts(ctx)...)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", tag, err)
	}
	h, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if len(m.Layers) > MaxSignatureLayers {
		return nil, fmt.Errorf("%s holds %d layers, over the limit of %d", tag, len(m.Layers), MaxSignatureLayers)
	}
	var out []storedLayer
	for _, l := range m.Layers {
		if l.MediaType != mediaType {
			continue
		}
		if l.Size > limit {
			continue // cannot be a valid entry; anyone who may push could add one
		}
		out = append(out, storedLayer{image: h, mediaType: l.MediaType, annotations: l.Annotations, digest: l.Digest})
	}
	// The layers are fetched blobFetches at a time, not one round trip
	// after the other.
	errs := make([]error, len(out))
	sem := make(chan struct{}, blobFetches)
	var wg sync.WaitGroup
	for i := range out {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			l := &out[i]
			if l.body, errs[i] = readBlob(ctx, tag.Context().Digest(l.digest.String()), limit, o); errs[i] != nil {
				errs[i] = fmt.Errorf("reading layer %s of %s: %w", l.digest, tag, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// blobFetches bounds the blobs one readTagLayers fetches at once.
const blobFetches = 8

// readBlob fetches a blob, verifying its digest, refusing more than limit
// bytes.
func readBlob(ctx context.Context, d name.Digest, limit int64, o Options) ([]byte, error) {
	l, err := remote.Layer(d, o.ropts(ctx)...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed() // the blob as stored; go-containerregistry checks its digest at EOF
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s is over the %d-byte limit", d.DigestStr(), limit)
	}
	return b, nil
}

// storedBundle is a bundle found as a referrer.
type storedBundle struct {
	manifest      v1.Hash // the referrer manifest
	predicateType string  // its BundlePredicateTypeAnnotation, if any
	body          []byte
}

// readBundleReferrers returns the Sigstore bundles stored as referrers of
// d. Referrers that are not bundles are skipped, as cosign does.
func readBundleReferrers(ctx context.Context, d name.Digest, o Options) ([]storedBundle, error) {
	ropts := o.ropts(ctx)
	idx, err := remote.Referrers(d, ropts...)
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
	if len(im.Manifests) > MaxReferrers {
		return nil, fmt.Errorf("%s has %d referrers, over the limit of %d", d, len(im.Manifests), MaxReferrers)
	}
	var out []storedBundle
	for _, desc := range im.Manifests {
		if desc.ArtifactType != "" && !strings.HasPrefix(desc.ArtifactType, "application/vnd.dev.sigstore.bundle") {
			continue
		}
		ref := d.Context().Digest(desc.Digest.String())
		got, err := remote.Get(ref, ropts...)
		if err != nil {
			return nil, fmt.Errorf("reading referrer %s: %w", ref, err)
		}
		m, err := v1.ParseManifest(bytes.NewReader(got.Manifest))
		if err != nil || m.Subject == nil || m.Subject.Digest.String() != d.DigestStr() {
			continue // not an image manifest about d
		}
		if len(m.Layers) != 1 || !strings.HasPrefix(string(m.Layers[0].MediaType), "application/vnd.dev.sigstore.bundle") {
			continue
		}
		if m.Layers[0].Size > MaxBundleSize {
			continue // over the limit: not read
		}
		body, err := readBlob(ctx, d.Context().Digest(m.Layers[0].Digest.String()), MaxBundleSize, o)
		if err != nil {
			return nil, fmt.Errorf("reading bundle of referrer %s: %w", ref, err)
		}
		out = append(out, storedBundle{manifest: desc.Digest, predicateType: m.Annotations[BundlePredicateTypeAnnotation], body: body})
	}
	return out, nil
}
