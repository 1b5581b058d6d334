// Package artifact pushes and pulls plain files as OCI 1.1 artifacts.
//
// An artifact is an OCI image manifest whose artifactType names what it
// holds, whose config is the empty descriptor ({}), and which has one layer
// per file. Each layer carries the file's base name in the standard
// org.opencontainers.image.title annotation, the same layout oras uses, so
// artifacts pushed here can be pulled by oras and vice versa.
//
// Files are streamed from and to disk; neither Push nor Pull holds a whole
// file in memory.
package artifact

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Well-known media types and annotations.
const (
	// DefaultArtifactType is the artifactType of manifests pushed by Push
	// unless PushOptions.ArtifactType says otherwise.
	DefaultArtifactType = "application/vnd.custody.files.v1"
	// DefaultFileMediaType is the media type of file layers unless
	// PushOptions.MediaType says otherwise.
	DefaultFileMediaType = "application/octet-stream"
	// EmptyMediaType is the media type of the OCI empty descriptor, used as
	// the config of artifact manifests.
	EmptyMediaType = "application/vnd.oci.empty.v1+json"
	// AnnotationTitle is the layer annotation holding a file's name.
	AnnotationTitle = "org.opencontainers.image.title"
)

// emptyJSON is the content of the OCI empty descriptor.
var emptyJSON = []byte("{}")

// emptyDescriptor is the OCI 1.1 empty descriptor: the config of an
// artifact that has no configuration.
var emptyDescriptor = v1.Descriptor{
	MediaType: EmptyMediaType,
	Size:      int64(len(emptyJSON)),
	Digest: v1.Hash{
		Algorithm: "sha256",
		Hex:       "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
	},
	Data: emptyJSON,
}

// Options configure how Push and Pull talk to the registry.
type Options struct {
	// PlainHTTP allows talking to the registry over plain HTTP. Registries
	// on localhost, loopback and private (RFC 1918) addresses are always
	// allowed to use plain HTTP.
	PlainHTTP bool
	// Insecure implies PlainHTTP and additionally skips TLS certificate
	// verification.
	Insecure bool
	// Keychain resolves registry credentials. Nil means
	// authn.DefaultKeychain (the docker config.json and its helpers).
	Keychain authn.Keychain
	// Transport is the HTTP transport to use. Nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// UserAgent is sent to the registry, in addition to ggcr's own.
	UserAgent string
	// Progress, if set, is called as bytes are transferred. Calls are never
	// concurrent with each other.
	Progress func(Progress)
}

// Progress reports how many bytes of a transfer are done.
type Progress struct {
	// Complete is the number of bytes transferred so far.
	Complete int64
	// Total is the number of bytes the whole transfer is expected to move.
	Total int64
}

// File describes one file of an artifact.
type File struct {
	// Name is the file name recorded in the artifact (the title annotation,
	// or the digest hex when a pulled layer has no title).
	Name string `json:"name"`
	// Path is the local file: the source for Push, the destination for Pull.
	Path string `json:"path,omitempty"`
	// Digest is the content digest ("sha256:...").
	Digest string `json:"digest"`
	// Size is the content size in bytes.
	Size int64 `json:"size"`
	// MediaType is the layer media type.
	MediaType string `json:"mediaType,omitempty"`
}

// Result describes a pushed or pulled artifact.
type Result struct {
	// Reference is the reference that was pushed or pulled, as parsed.
	Reference string `json:"reference"`
	// Digest is the manifest digest.
	Digest string `json:"digest"`
	// MediaType is the manifest media type.
	MediaType string `json:"mediaType"`
	// ArtifactType is the manifest's artifactType, if any.
	ArtifactType string `json:"artifactType,omitempty"`
	// Dir is the directory files were written to (Pull only).
	Dir string `json:"directory,omitempty"`
	// Size is the total size of the files in bytes.
	Size int64 `json:"size"`
	// Files lists the artifact's files in manifest order.
	Files []File `json:"files"`
}

// parseReference parses ref, honouring the plain-HTTP options.
func parseReference(ref string, o Options) (name.Reference, error) {
	var nopts []name.Option
	if o.PlainHTTP || o.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("invalid reference %q: %w (expected REGISTRY/REPOSITORY[:TAG|@DIGEST], e.g. 127.0.0.1:5000/team/files:v1)", ref, err)
	}
	return r, nil
}

// remoteOptions turns o into go-containerregistry remote options.
func remoteOptions(ctx context.Context, o Options) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	t := o.Transport
	if t == nil {
		t = remote.DefaultTransport
	}
	if o.Insecure {
		if ht, ok := t.(*http.Transport); ok {
			ht = ht.Clone()
			if ht.TLSClientConfig == nil {
				ht.TLSClientConfig = &tls.Config{}
			}
			ht.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // explicitly requested with --insecure
			t = ht
		}
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(t),
	}
	if o.UserAgent != "" {
		ropts = append(ropts, remote.WithUserAgent(o.UserAgent))
	}
	return ropts
}

// isManifestType reports whether mt is a single (non-index) image manifest.
func isManifestType(mt types.MediaType) bool {
	return mt == types.OCIManifestSchema1 || mt == types.DockerManifestSchema2
}
