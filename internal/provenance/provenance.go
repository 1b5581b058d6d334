// Package provenance builds, parses and checks SLSA provenance v1
// predicates (https://slsa.dev/provenance/v1), the predicate custody signs
// into an in-toto statement with internal/attest.
//
// Two ways to build one:
//
//   - FromEnv, run inside the CI job (SLSA build levels 1 and 2): the job
//     describes itself from its environment (GitHub Actions, GitLab CI, or
//     the generic CUSTODY_BUILD_* variables) and the lockfiles in its
//     workspace. Everything in it is the job's own word.
//   - FromClaims, run by the custody server (the platform mode, toward
//     level 3): repository, ref, commit, workflow and run are taken only
//     from the claims of an OIDC token the server has verified, never from
//     what the job says.
//
// # Shape
//
// custody writes one externalParameters shape on every platform, so a
// verifier needs no per-platform code:
//
//	"externalParameters": {
//	  "source":   {"uri": "git+https://github.com/acme/app", "ref": "refs/heads/main", "commit": "<sha1>"},
//	  "workflow": {"repository": "git+https://github.com/acme/app", "path": ".github/workflows/release.yml",
//	               "ref": "refs/heads/main", "digest": {"sha256": "<hex>"}}
//	}
//
// workflow carries the GitHub build type's repository/path/ref fields
// (https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1),
// so GitHub's own provenance parses into the same struct. The source commit
// is also the first resolvedDependency, as SLSA recommends:
// {"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "<sha1>"}}.
//
// Dependencies from lockfiles are ResourceDescriptors whose uri is a
// package URL (purl) and whose digest is what the lockfile records, named
// as in-toto's DigestSet specification (v1.1) says: sha256/sha512/sha1 in
// lowercase hex, and for go.sum the module "h1:" hash as "dirHash" (the
// in-toto name for Go's directory Hash1, hex instead of base64; the older
// v0.1 name was "goModuleH1").
package provenance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/jsondoc"
)

// PredicateType is the in-toto predicate type of SLSA provenance v1.
const PredicateType = "https://slsa.dev/provenance/v1"

// Build types custody writes. Each names the externalParameters shape
// described in the package documentation, with the platform it came from.
const (
	BuildTypeGitHubActions = "https://github.com/custody-dev/custody/buildtypes/github-actions/v1"
	BuildTypeGitLabCI      = "https://github.com/custody-dev/custody/buildtypes/gitlab-ci/v1"
	BuildTypeGeneric       = "https://github.com/custody-dev/custody/buildtypes/generic/v1"
)

// Limits.
const (
	// MaxPredicateBytes caps a predicate Parse reads (attest caps SLSA
	// predicates at the same size).
	MaxPredicateBytes = 4 << 20
	// MaxDependencies caps resolvedDependencies.
	MaxDependencies = 10000
)

// Predicate is an SLSA provenance v1 predicate.
type Predicate struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition is what was built and with which inputs.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   ExternalParameters   `json:"externalParameters"`
	InternalParameters   InternalParameters   `json:"internalParameters,omitzero"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies,omitempty"`
}

// ExternalParameters are the inputs a tenant controls. Fields other than
// source and workflow (from other builders' provenance) are kept as they
// are in Other and written back on marshalling.
type ExternalParameters struct {
	Source   *Source                    `json:"source,omitempty"`
	Workflow *Workflow                  `json:"workflow,omitempty"`
	Other    map[string]json.RawMessage `json:"-"`
}

// InternalParameters are the inputs the platform sets. custody writes
// only strings (Strings); other builders' non-string values are kept as
// they are in Other and written back on marshalling.
type InternalParameters struct {
	Strings map[string]string
	Other   map[string]json.RawMessage
}

// IsZero reports an empty set (left out of the JSON).
func (p InternalParameters) IsZero() bool { return len(p.Strings) == 0 && len(p.Other) == 0 }

// MarshalJSON writes one JSON object.
func (p InternalParameters) MarshalJSON() ([]byte, error) {
	m := make(map[string]json.RawMessage, len(p.Strings)+len(p.Other))
	for k, v := range p.Other {
		m[k] = v
	}
	for k, v := range p.Strings {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m[k] = b
	}
	return json.Marshal(m)
}

// UnmarshalJSON sorts string values into Strings, the rest into Other.
func (p *InternalParameters) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("internalParameters must be a JSON object: %w", err)
	}
	*p = InternalParameters{}
	for k, v := range m {
		var s string
		if json.Unmarshal(v, &s) == nil {
			if p.Strings == nil {
				p.Strings = map[string]string{}
			}
			p.Strings[k] = s
			continue
		}
		if p.Other == nil {
			p.Other = map[string]json.RawMessage{}
		}
		p.Other[k] = v
	}
	return nil
}

// Source is the source revision built.
type Source struct {
	// URI is the repository, "git+https://host/owner/repo".
	URI string `json:"uri"`
	// Ref is the full git ref ("refs/heads/main", "refs/tags/v1.2.0").
	Ref string `json:"ref,omitempty"`
	// Commit is the commit hash (hex).
	Commit string `json:"commit,omitempty"`
}

// Workflow is the CI definition that ran: a GitHub workflow file or a
// GitLab CI configuration.
type Workflow struct {
	// Repository holds the workflow file; the source repository unless a
	// reusable workflow or remote configuration ran.
	Repository string `json:"repository,omitempty"`
	// Path of the file inside its repository.
	Path string `json:"path,omitempty"`
	// Ref the file was taken at.
	Ref string `json:"ref,omitempty"`
	// Digest of the file: {"sha256": ...} when read from the workspace,
	// {"gitCommit": ...} when a token names the commit it came from.
	Digest map[string]string `json:"digest,omitempty"`
}

// ResourceDescriptor is an in-toto ResourceDescriptor (a dependency or a
// byproduct).
type ResourceDescriptor struct {
	URI              string            `json:"uri,omitempty"`
	Name             string            `json:"name,omitempty"`
	Digest           map[string]string `json:"digest,omitempty"`
	DownloadLocation string            `json:"downloadLocation,omitempty"`
	MediaType        string            `json:"mediaType,omitempty"`
	// Annotations is kept as raw JSON (any JSON object).
	Annotations json.RawMessage `json:"annotations,omitempty"`
}

// RunDetails is who ran the build, and when.
type RunDetails struct {
	Builder    Builder              `json:"builder"`
	Metadata   *Metadata            `json:"metadata,omitempty"`
	Byproducts []ResourceDescriptor `json:"byproducts,omitempty"`
}

// Builder identifies the build platform (the trust boundary).
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// Metadata identifies the run.
type Metadata struct {
	InvocationID string     `json:"invocationId,omitempty"`
	StartedOn    *time.Time `json:"startedOn,omitempty"`
	FinishedOn   *time.Time `json:"finishedOn,omitempty"`
}

// MarshalJSON writes source and workflow plus any other parameters.
func (e ExternalParameters) MarshalJSON() ([]byte, error) {
	m := make(map[string]json.RawMessage, len(e.Other)+2)
	for k, v := range e.Other {
		m[k] = v
	}
	if e.Source != nil {
		b, err := json.Marshal(e.Source)
		if err != nil {
			return nil, err
		}
		m["source"] = b
	}
	if e.Workflow != nil {
		b, err := json.Marshal(e.Workflow)
		if err != nil {
			return nil, err
		}
		m["workflow"] = b
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads source and workflow when they have custody's (or
// GitHub's) shape, and keeps every other parameter in Other.
func (e *ExternalParameters) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("externalParameters must be a JSON object: %w", err)
	}
	*e = ExternalParameters{}
	for k, v := range m {
		switch k {
		case "source":
			var s Source
			if json.Unmarshal(v, &s) == nil {
				e.Source = &s
				continue
			}
		case "workflow":
			var w Workflow
			if json.Unmarshal(v, &w) == nil {
				e.Workflow = &w
				continue
			}
		}
		if e.Other == nil {
			e.Other = map[string]json.RawMessage{}
		}
		e.Other[k] = v
	}
	return nil
}

// Parse decodes a predicate of at most MaxPredicateBytes and checks that
// it names a build type and a builder. Unknown fields are ignored, as SLSA
// requires of consumers.
func Parse(b []byte) (*Predicate, error) {
	if len(b) > MaxPredicateBytes {
		return nil, fmt.Errorf("provenance predicate is %d bytes, the limit is %d", len(b), MaxPredicateBytes)
	}
	if err := jsondoc.Check(b); err != nil {
		return nil, fmt.Errorf("not an SLSA provenance v1 predicate: %w", err)
	}
	var p Predicate
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("not an SLSA provenance v1 predicate: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not an SLSA provenance v1 predicate: trailing data after the JSON object")
	}
	if p.BuildDefinition.BuildType == "" {
		return nil, errors.New("provenance has no buildDefinition.buildType")
	}
	if p.RunDetails.Builder.ID == "" {
		return nil, errors.New("provenance has no runDetails.builder.id")
	}
	if n := len(p.BuildDefinition.ResolvedDependencies); n > MaxDependencies {
		return nil, fmt.Errorf("provenance lists %d dependencies, the limit is %d", n, MaxDependencies)
	}
	// The in-toto attestation framework's own binding checks the schema
	// (types, timestamps, required fields, digest encodings and lengths).
	var pb slsa.Provenance
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true, RecursionLimit: 200}).Unmarshal(b, &pb); err != nil {
		return nil, fmt.Errorf("not an SLSA provenance v1 predicate: %w", err)
	}
	if err := pb.Validate(); err != nil {
		return nil, fmt.Errorf("invalid SLSA provenance v1 predicate: %w", err)
	}
	return &p, nil
}

// SourceURI returns the source repository the provenance names:
// externalParameters.source.uri, else externalParameters.workflow.repository
// (GitHub's build type), else the first resolved dependency with a
// gitCommit digest (its "@ref" suffix removed). Empty if none.
func (p *Predicate) SourceURI() string {
	ep := p.BuildDefinition.ExternalParameters
	if ep.Source != nil && ep.Source.URI != "" {
		return ep.Source.URI
	}
	if ep.Workflow != nil && ep.Workflow.Repository != "" {
		return ep.Workflow.Repository
	}
	for _, d := range p.BuildDefinition.ResolvedDependencies {
		if d.Digest["gitCommit"] != "" && d.URI != "" {
			if i := strings.LastIndex(d.URI, "@"); i > strings.Index(d.URI, "://") {
				return d.URI[:i]
			}
			return d.URI
		}
	}
	return ""
}

// SourceCommit returns the source commit the provenance names:
// externalParameters.source.commit, else the gitCommit digest of the first
// resolved dependency that has one. Empty if none.
func (p *Predicate) SourceCommit() string {
	if src := p.BuildDefinition.ExternalParameters.Source; src != nil && src.Commit != "" {
		return src.Commit
	}
	for _, d := range p.BuildDefinition.ResolvedDependencies {
		if c := d.Digest["gitCommit"]; c != "" {
			return c
		}
	}
	return ""
}

// Hosted reports whether the provenance names a hosted build platform:
// custody's GitHub Actions or GitLab CI build types (from the CI job's
// environment, or written by the server from its OIDC claims), or another
// builder's own build type. The generic CUSTODY_BUILD_* shape, which any
// machine can produce, is not hosted.
func (p *Predicate) Hosted() bool {
	bt := p.BuildDefinition.BuildType
	return bt != "" && bt != BuildTypeGeneric && p.RunDetails.Builder.ID != ""
}

// Expect is what a verifier requires of a provenance. Empty fields are not
// checked, but at least one field must be set.
//
// Exact fields compare whole strings (source URIs after normalisation:
// a "git+" scheme prefix, a trailing ".git" and a trailing "/" are
// removed, so "git+https://github.com/acme/app.git" equals
// "https://github.com/acme/app"). Prefix fields match at a path boundary:
// the prefix "https://github.com/acme" matches ".../acme/app" and
// ".../acme" but not ".../acme-evil/app"; a prefix ending in "/" or "@"
// matches anything below it.
type Expect struct {
	BuilderID       string
	BuilderIDPrefix string
	SourceURI       string
	SourceURIPrefix string
}

// Check checks a provenance against what the verifier expects and reports
// every mismatch in one error.
func Check(p *Predicate, want Expect) error {
	if p == nil {
		return errors.New("no provenance")
	}
	if want == (Expect{}) {
		return errors.New("provenance.Check: Expect sets no constraint; name the builder ID or source URI you trust")
	}
	var problems []string
	id := p.RunDetails.Builder.ID
	if want.BuilderID != "" && id != want.BuilderID {
		problems = append(problems, fmt.Sprintf("builder %q is not %q", id, want.BuilderID))
	}
	if want.BuilderIDPrefix != "" && !hasPathPrefix(id, want.BuilderIDPrefix) {
		problems = append(problems, fmt.Sprintf("builder %q is not under %q", id, want.BuilderIDPrefix))
	}
	src := normalizeURI(p.SourceURI())
	if (want.SourceURI != "" || want.SourceURIPrefix != "") && src == "" {
		problems = append(problems, "provenance names no source repository")
	} else {
		if want.SourceURI != "" && src != normalizeURI(want.SourceURI) {
			problems = append(problems, fmt.Sprintf("source %q is not %q", p.SourceURI(), want.SourceURI))
		}
		if want.SourceURIPrefix != "" && !hasPathPrefix(src, normalizePrefix(want.SourceURIPrefix)) {
			problems = append(problems, fmt.Sprintf("source %q is not under %q", p.SourceURI(), want.SourceURIPrefix))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("provenance does not match policy: %s", strings.Join(problems, "; "))
	}
	return nil
}

func normalizeURI(u string) string {
	u = strings.TrimPrefix(u, "git+")
	u = strings.TrimSuffix(u, "/")
	return strings.TrimSuffix(u, ".git")
}

func normalizePrefix(u string) string { return strings.TrimPrefix(u, "git+") }

// hasPathPrefix reports whether s is prefix or lies below it.
func hasPathPrefix(s, prefix string) bool {
	if prefix == "" || !strings.HasPrefix(s, prefix) {
		return false
	}
	if len(s) == len(prefix) || strings.HasSuffix(prefix, "/") || strings.HasSuffix(prefix, "@") {
		return true
	}
	switch s[len(prefix)] {
	case '/', '@':
		return true
	}
	return false
}
