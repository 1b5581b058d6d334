package sign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/custody-dev/custody/internal/jsondoc"
)

// SimpleSigningType is the "critical.type" of a cosign image signature
// payload (the "simple signing" format containers/image also reads).
const SimpleSigningType = "cosign container image signature"

// MaxPayloadSize caps a simple signing payload. cosign's payloads are a few
// hundred bytes; the cap leaves room for generous annotations.
const MaxPayloadSize = 1 << 20

// Payload is the simple signing document cosign signs for a container image:
//
//	{"critical":{"identity":{"docker-reference":"host/repo"},
//	             "image":{"docker-manifest-digest":"sha256:..."},
//	             "type":"cosign container image signature"},
//	 "optional":{...}}
type Payload struct {
	Critical Critical `json:"critical"`
	// Optional holds the signer's annotations (cosign sign -a key=value).
	// cosign writes null when there are none; any JSON value is accepted on
	// reading, and only string values are kept.
	Optional map[string]any `json:"optional"`
}

// Critical is the part of a Payload a verifier must check.
type Critical struct {
	Identity Identity `json:"identity"`
	Image    Image    `json:"image"`
	Type     string   `json:"type"`
}

// Identity names the repository the signer meant.
type Identity struct {
	DockerReference string `json:"docker-reference"`
}

// Image names the signed manifest.
type Image struct {
	DockerManifestDigest string `json:"docker-manifest-digest"`
}

// NewPayload builds the payload cosign signs for the manifest digest of
// an image in repository (host/path, as name.Repository.Name gives it).
func NewPayload(repository, digest string, annotations map[string]string) Payload {
	p := Payload{Critical: Critical{
		Identity: Identity{DockerReference: repository},
		Image:    Image{DockerManifestDigest: digest},
		Type:     SimpleSigningType,
	}}
	if len(annotations) > 0 {
		p.Optional = make(map[string]any, len(annotations))
		for k, v := range annotations {
			p.Optional[k] = v
		}
	}
	return p
}

// Marshal encodes the payload as JSON.
func (p Payload) Marshal() ([]byte, error) { return json.Marshal(p) }

// Annotations returns the string values of Optional.
func (p Payload) Annotations() map[string]string {
	if len(p.Optional) == 0 {
		return nil
	}
	out := make(map[string]string, len(p.Optional))
	for k, v := range p.Optional {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// ParsePayload reads a simple signing payload. It refuses documents over
// MaxPayloadSize, trailing data, a type other than SimpleSigningType and a
// missing manifest digest. It does not check any signature: verify the
// signature over the exact bytes first, then parse them.
func ParsePayload(b []byte) (Payload, error) {
	if len(b) > MaxPayloadSize {
		return Payload{}, fmt.Errorf("signature payload is %d bytes, over the %d-byte limit", len(b), MaxPayloadSize)
	}
	if err := jsondoc.Check(b); err != nil {
		return Payload{}, fmt.Errorf("signature payload is not simple signing JSON: %w", err)
	}
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		return Payload{}, fmt.Errorf("signature payload is not simple signing JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Payload{}, errors.New("signature payload has data after the JSON document")
	}
	if p.Critical.Type != SimpleSigningType {
		return Payload{}, fmt.Errorf("signature payload type is %q, want %q", p.Critical.Type, SimpleSigningType)
	}
	if p.Critical.Image.DockerManifestDigest == "" {
		return Payload{}, errors.New("signature payload names no docker-manifest-digest")
	}
	return p, nil
}
