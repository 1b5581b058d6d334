package registry

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/custody-dev/custody/internal/jsondoc"
)

// Media types of the manifests custody stores.
const (
	MediaTypeOCIManifest    = v1.MediaTypeImageManifest
	MediaTypeOCIIndex       = v1.MediaTypeImageIndex
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"

	mediaTypeDockerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// descriptor is the subset of an OCI descriptor custody checks.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// ParsedManifest is what custody reads from a manifest body.
type ParsedManifest struct {
	MediaType    string
	ArtifactType string
	Config       *descriptor
	Layers       []descriptor
	Manifests    []descriptor
	Subject      *descriptor
	Annotations  map[string]string
}

// IsIndex reports whether the manifest lists other manifests.
func (p *ParsedManifest) IsIndex() bool {
	return p.MediaType == MediaTypeOCIIndex || p.MediaType == MediaTypeDockerList
}

// ManifestError is a manifest that custody refuses, with the reason.
type ManifestError struct{ Reason string }

func (e *ManifestError) Error() string { return e.Reason }

func invalid(format string, args ...any) error {
	return &ManifestError{Reason: fmt.Sprintf(format, args...)}
}

// ParseManifest parses and validates a manifest body sent with the given
// Content-Type. It enforces: valid JSON object, schemaVersion 2, a
// supported media type that agrees with Content-Type, not both an index and
// a manifest (CVE-2021-41190), and well-formed descriptors. It does not
// check that referenced content exists.
func ParseManifest(contentType string, body []byte) (*ParsedManifest, error) {
	var raw struct {
		SchemaVersion *int              `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		ArtifactType  string            `json:"artifactType"`
		Config        *descriptor       `json:"config"`
		Layers        []descriptor      `json:"layers"`
		Manifests     []descriptor      `json:"manifests"`
		Subject       *descriptor       `json:"subject"`
		Annotations   map[string]string `json:"annotations"`
		FSLayers      json.RawMessage   `json:"fsLayers"`
	}
	if err := jsondoc.Check(body); err != nil {
		return nil, invalid("manifest is not valid JSON: %v", err)
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, invalid("manifest is not valid JSON: %v", err)
	}
	if raw.SchemaVersion == nil || *raw.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2")
	}
	if raw.FSLayers != nil {
		return nil, invalid("Docker schema 1 manifests are not supported")
	}
	isIndex := raw.Manifests != nil
	isManifest := raw.Config != nil || raw.Layers != nil
	if isIndex && isManifest {
		return nil, invalid("a document cannot be both an index (manifests) and a manifest (config/layers)")
	}
	ct, _, _ := strings.Cut(contentType, ";")
	ct = strings.TrimSpace(ct)
	mt := raw.MediaType
	if mt != "" && ct != "" && mt != ct {
		return nil, invalid("mediaType %q does not match Content-Type %q", mt, ct)
	}
	if mt == "" {
		mt = ct
	}
	if mt == "" {
		switch {
		case isIndex:
			mt = MediaTypeOCIIndex
		case isManifest:
			mt = MediaTypeOCIManifest
		}
	}
	p := &ParsedManifest{
		MediaType:    mt,
		ArtifactType: raw.ArtifactType,
		Config:       raw.Config,
		Layers:       raw.Layers,
		Manifests:    raw.Manifests,
		Subject:      raw.Subject,
		Annotations:  raw.Annotations,
	}
	switch mt {
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if isIndex {
			return nil, invalid("media type %s cannot carry manifests", mt)
		}
		if raw.Config == nil {
			return nil, invalid("manifest has no config descriptor")
		}
		if err := checkDescriptor("config", *raw.Config); err != nil {
			return nil, err
		}
		for i, l := range raw.Layers {
			if err := checkDescriptor(fmt.Sprintf("layers[%d]", i), l); err != nil {
				return nil, err
			}
		}
		if mt == MediaTypeDockerManifest && raw.ArtifactType != "" {
			return nil, invalid("Docker manifests cannot carry artifactType")
		}
		if p.ArtifactType == "" && mt == MediaTypeOCIManifest {
			// OCI 1.1: the config media type stands in for artifactType,
			// also when it is the ordinary image config media type (the
			// distribution spec's referrers API requires it).
			p.ArtifactType = raw.Config.MediaType
		}
	case MediaTypeOCIIndex, MediaTypeDockerList:
		if isManifest {
			return nil, invalid("media type %s cannot carry config or layers", mt)
		}
		for i, m := range raw.Manifests {
			if err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), m); err != nil {
				return nil, err
			}
		}
	default:
		return nil, invalid("unsupported manifest media type %q", mt)
	}
	if raw.Subject != nil {
		if err := checkDescriptor("subject", *raw.Subject); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func checkDescriptor(where string, d descriptor) error {
	if d.MediaType == "" {
		return invalid("%s: mediaType is missing", where)
	}
	if err := d.Digest.Validate(); err != nil {
		return invalid("%s: invalid digest %q: %v", where, truncate(string(d.Digest), 200), err)
	}
	if _, err := parseDigest(string(d.Digest)); err != nil {
		return invalid("%s: unsupported digest %q", where, truncate(string(d.Digest), 200))
	}
	if d.Size < 0 {
		return invalid("%s: negative size", where)
	}
	return nil
}

// nonDistributable reports whether a layer may live outside the registry
// (OCI non-distributable or Docker foreign layers), so its absence from
// the repository is not an error.
func nonDistributable(d descriptor) bool {
	switch d.MediaType {
	//lint:ignore SA1019 deprecated for new layers, still valid to read
	case v1.MediaTypeImageLayerNonDistributable, v1.MediaTypeImageLayerNonDistributableGzip, v1.MediaTypeImageLayerNonDistributableZstd,
		mediaTypeDockerForeign:
		return true
	}
	return false
}
