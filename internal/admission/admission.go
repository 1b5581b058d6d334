// Package admission is custody's Kubernetes validating admission webhook
// (AdmissionReview admission.k8s.io/v1, see docs/admission.md).
//
// The Kubernetes API server POSTs an AdmissionReview for every Pod and pod
// template it is about to store (Pods, Deployments, StatefulSets,
// DaemonSets, ReplicaSets, ReplicationControllers, Jobs, CronJobs). The
// handler returned by NewHandler extracts every image of the object
// (containers, initContainers, ephemeralContainers and image volumes),
// parses each reference, pins it to a digest (the digest written in the
// reference, or the one Options.ResolveTag resolves a tag to), asks a
// Decider about the digests and answers with an AdmissionReview response:
// allowed, or denied with status code 403 and a message that names every
// denied image and why.
//
// The package decides nothing about promotion itself: the Decider does.
// It fails closed: an image that cannot be parsed, a tag-only reference
// that cannot be resolved, and a Decider error all deny the request, and a
// request that cannot be decoded is answered with HTTP 400, never with an
// allowed response.
package admission

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
)

// Decider decides whether the images of one admission request may run in
// a namespace. custody's implementation checks that each digest was
// promoted to the environment the namespace belongs to.
type Decider interface {
	// Admit returns one Denial for every image that must not run in
	// namespace; nil or empty admits them all. Every image passed has a
	// valid Digest. An error denies the whole request (the webhook fails
	// closed) and its text is shown to the user, so it should say what
	// failed, not leak secrets.
	//
	// The request being reviewed (kind, name, operation, user, dry run) is
	// available from ctx with RequestFromContext. Admit runs within the API
	// server's webhook timeout; it must honour ctx.
	Admit(ctx context.Context, namespace string, images []Image) ([]Denial, error)
}

// DeciderFunc adapts a function to the Decider interface.
type DeciderFunc func(ctx context.Context, namespace string, images []Image) ([]Denial, error)

// Admit calls f.
func (f DeciderFunc) Admit(ctx context.Context, namespace string, images []Image) ([]Denial, error) {
	return f(ctx, namespace, images)
}

// ContainerKind says where in a pod spec an image is used.
type ContainerKind string

// The places of a pod spec that name images.
const (
	Container          ContainerKind = "container"          // spec.containers[]
	InitContainer      ContainerKind = "initContainer"      // spec.initContainers[]
	EphemeralContainer ContainerKind = "ephemeralContainer" // spec.ephemeralContainers[]
	// ImageVolume is an image volume (spec.volumes[].image, Kubernetes
	// 1.31+): the kubelet pulls it like a container image and mounts its
	// content. Image.Container is then the volume's name.
	ImageVolume ContainerKind = "imageVolume"
)

// Image is one container image of the object under review.
type Image struct {
	// Container is the container's name (the volume's name for an
	// ImageVolume).
	Container string
	// Kind is where the image is used.
	Kind ContainerKind
	// Path is the JSON path of the image field in the object, e.g.
	// "spec.template.spec.initContainers[0].image".
	Path string
	// Reference is the image reference exactly as written in the spec,
	// e.g. "registry.example.com:5000/team/app:1.4@sha256:…".
	Reference string
	// Repository is the fully qualified repository the reference names,
	// with the registry host (and port) and Docker Hub's defaults applied,
	// e.g. "registry.example.com:5000/team/app" or
	// "index.docker.io/library/nginx".
	Repository string
	// Tag is the tag written in the reference, "" when there is none. A
	// reference with neither tag nor digest means tag "latest" to a
	// container runtime and is reported with Tag "latest".
	Tag string
	// Digest is the digest the node will run: the one written in the
	// reference, or, when the reference names only a tag, the digest
	// Options.ResolveTag resolved it to (then Resolved is true). It is ""
	// only for a tag-only reference that was not resolved; such images are
	// denied by the handler and never passed to a Decider.
	Digest digest.Digest
	// Resolved reports that Digest came from Options.ResolveTag, not from
	// the reference: the node pulls the tag and may get another digest if
	// the tag moves before it pulls.
	Resolved bool
}

// Denial is one image that must not run, and why.
type Denial struct {
	// Image is the denied image, as passed to the Decider.
	Image Image
	// Reason says why, for the person who applied the object, e.g.
	// "sha256:ab… is not promoted to environment prod (it is in staging)".
	Reason string
}

// TagResolver resolves a reference that names only a tag to the digest the
// tag points at now. ref is fully qualified (registry, repository, tag).
// A returned error denies the image and its text is shown to the user.
type TagResolver func(ctx context.Context, ref name.Tag) (digest.Digest, error)

// DefaultMaxRequestBytes is the default cap on an AdmissionReview body:
// the API server stores objects of at most about 1.5 MiB (etcd's request
// limit), and an UPDATE review carries the object and the old object.
const DefaultMaxRequestBytes = 4 << 20

// Options tunes the handler. The zero value denies every image referenced
// by tag only and caps requests at DefaultMaxRequestBytes.
type Options struct {
	// ResolveTag, when set, resolves images referenced by tag only (no
	// digest) so the Decider can judge the digest the tag names now. When
	// nil, such images are denied with a message asking to pin them by
	// digest.
	ResolveTag TagResolver
	// RequireDigest denies every image whose reference has no digest, even
	// when ResolveTag resolved its tag; the denial then names the exact
	// reference to pin (repository@digest). The Decider still judges the
	// resolved digest, so the message also says whether pinning alone
	// would be enough.
	RequireDigest bool
	// MaxRequestBytes caps the request body; larger requests get HTTP 413.
	// Zero means DefaultMaxRequestBytes.
	MaxRequestBytes int64
}

// Request describes the admission request being reviewed. The handler puts
// it into the context it passes to Decider.Admit and Options.ResolveTag.
type Request struct {
	// UID identifies the API server's webhook call (not the user's
	// request); it correlates custody's logs with the API server's.
	UID string
	// Group, Version and Kind are the type of the object, e.g. "apps",
	// "v1", "Deployment" ("" group for core kinds such as Pod).
	Group, Version, Kind string
	// Namespace and Name identify the object. Name is "" when the object
	// is created with metadata.generateName.
	Namespace, Name string
	// Operation is "CREATE" or "UPDATE" (other operations are admitted
	// without asking the Decider).
	Operation string
	// SubResource is "" or "ephemeralcontainers".
	SubResource string
	// User is the name of the user (or service account) making the change.
	User string
	// DryRun reports that the API server will not persist the object
	// (kubectl --dry-run=server); the decision must not have side effects
	// beyond logging.
	DryRun bool
}

type requestKey struct{}

// RequestFromContext returns the admission request a Decider or TagResolver
// is being called for.
func RequestFromContext(ctx context.Context) (Request, bool) {
	r, ok := ctx.Value(requestKey{}).(Request)
	return r, ok
}

func withRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}
