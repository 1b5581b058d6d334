// Package builds defines the build metadata index: which artifacts were
// built from a commit, the history of a tag, and every version of a
// repository.
//
// The index is filled from the OCI annotations of every manifest (pushed
// over /v2/ or through /generic/) in the same metadata transaction that
// records the manifest; tag history is written by the same transaction that
// moves a tag. internal/meta/sqlite implements Index; package buildshttp
// serves it under /api/v1/. This package imports neither, so backends can
// implement Index without depending on the HTTP layer.
package builds

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// Annotation keys the index records.
const (
	AnnotationRevision    = "org.opencontainers.image.revision"
	AnnotationSource      = "org.opencontainers.image.source"
	AnnotationVersion     = "org.opencontainers.image.version"
	AnnotationCreated     = "org.opencontainers.image.created"
	AnnotationBuildNumber = "dev.custody.build.number"
	AnnotationPipelineRun = "dev.custody.pipeline.run"
)

// Keys are the indexed annotation keys.
var Keys = []string{
	AnnotationRevision, AnnotationSource, AnnotationVersion,
	AnnotationCreated, AnnotationBuildNumber, AnnotationPipelineRun,
}

// Build is one indexed manifest with its build metadata.
type Build struct {
	Repo        string        `json:"repo"`
	Digest      digest.Digest `json:"digest"`
	Tags        []string      `json:"tags"`
	Revision    string        `json:"revision,omitempty"`
	Source      string        `json:"source,omitempty"`
	Version     string        `json:"version,omitempty"`
	Created     string        `json:"created,omitempty"` // the annotation, as pushed
	BuildNumber string        `json:"buildNumber,omitempty"`
	PipelineRun string        `json:"pipelineRun,omitempty"`
	Pushed      time.Time     `json:"pushed"` // when custody recorded the manifest
}

// TagEvent is one position of a tag: it pointed at Digest from At.
type TagEvent struct {
	Digest digest.Digest `json:"digest"`
	At     time.Time     `json:"at"`
}

// Index answers the build metadata queries.
type Index interface {
	// Builds lists the manifests whose revision annotation is revision,
	// oldest first.
	Builds(ctx context.Context, revision string) ([]Build, error)
	// TagHistory lists every digest tag has pointed at in repo, oldest
	// first. It is empty for a tag that never existed.
	TagHistory(ctx context.Context, repo, tag string) ([]TagEvent, error)
	// TaggedRepositories lists, in lexical (byte) order, the repositories
	// that exist and whose tag named tag has a history (pointed at
	// something at any time, whether or not it still exists): the
	// repositories an environment tag ever named, read from an index
	// rather than one history per repository. It is empty, not nil, when
	// there are none.
	TaggedRepositories(ctx context.Context, tag string) ([]string, error)
	// Versions lists the manifests of repo that carry a version
	// annotation, oldest first.
	Versions(ctx context.Context, repo string) ([]Build, error)
}

// BuildList is the JSON answer of GET /api/v1/builds?revision=.
type BuildList struct {
	Revision string  `json:"revision"`
	Builds   []Build `json:"builds"`
}

// TagHistory is the JSON answer of GET /api/v1/tags/<repo>/<tag>/history.
type TagHistory struct {
	Repo    string     `json:"repo"`
	Tag     string     `json:"tag"`
	History []TagEvent `json:"history"`
}

// VersionList is the JSON answer of GET /api/v1/versions/<repo>.
type VersionList struct {
	Repo     string  `json:"repo"`
	Versions []Build `json:"versions"`
}
