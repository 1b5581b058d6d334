// Package drill is the restoration drill: it rebuilds an environment's
// exact artifact set (each service's digest with its signatures and
// attestations) from a registry (custody's store, or an evidence bundle
// served in process) into an empty OCI image layout directory or another
// registry, re-verifies every digest, signature and attestation there,
// checks that every dependency the artifacts' SBOMs and provenance pin by
// digest and that custody stores (base images, generic files) can still be
// retrieved, writes deployment manifests pinned by digest (Kubernetes and
// compose), and reports the time taken and everything missing.
//
// What counts as a trusted signature or attestation is decided by
// internal/evidence; this package only reports its verdicts. See
// docs/drill.md.
package drill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/sign"
)

// PredicateDrill is the predicate type of the signed drill report the
// server records (evidence.PredicateDrill).
const PredicateDrill = evidence.PredicateDrill

// Artifact is one service of the environment.
type Artifact struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
}

// Options is what one drill rebuilds and where.
type Options struct {
	Project     string
	Environment string
	// At is the instant whose environment is rebuilt (zero: now).
	At time.Time
	// Artifacts are the environment's services at At.
	Artifacts []Artifact
	// Source reaches the registry the artifacts are read from; SourceHost
	// names it in references (and tells dependencies custody stores from
	// others: theirs name this host).
	Source     []remote.Option
	SourceHost string
	// SourceAliases are other names of the source in dependencies (the
	// exporting registry's host, when the source is a bundle).
	SourceAliases []string
	// Into is an empty (or absent) directory, written as an OCI image
	// layout, or a registry HOST[:PORT][/PREFIX] (see IsDirectory).
	Into string
	// Target reaches the registry of Into.
	Target []remote.Option
	// Manifests is the directory the deployment manifests are written to
	// (default: Into/deploy for a directory; required for a registry).
	Manifests string
	// Trust decides which signatures and attestations count.
	Trust *evidence.Trust
	Now   func() time.Time
}

// Report is what a drill found.
type Report struct {
	Project     string    `json:"project,omitempty"`
	Environment string    `json:"environment"`
	At          time.Time `json:"at,omitzero"`
	Source      string    `json:"source"`
	Into        string    `json:"into"`
	Started     time.Time `json:"started"`
	// Seconds is the time the drill took, end to end.
	Seconds      float64          `json:"seconds"`
	Artifacts    []ArtifactReport `json:"artifacts"`
	Dependencies []Dependency     `json:"dependencies"`
	// Manifests are the deployment manifests written.
	Manifests []string `json:"manifests"`
	// Missing lists everything missing or failing; empty when OK.
	Missing []string `json:"missing"`
	OK      bool     `json:"ok"`
}

// ArtifactReport is one rebuilt artifact.
type ArtifactReport struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	// Reference is where the rebuilt copy is (a registry reference, or
	// ocidir://DIR@digest).
	Reference string `json:"reference"`
	// Image is true for a runnable image (deployment manifests name it).
	Image bool `json:"image"`
	// Manifests counts the manifests copied: the artifact's, its
	// signature and attestation images and its referrers.
	Manifests int `json:"manifests"`
	// Blobs and Bytes count what was re-hashed in the copy.
	Blobs        int      `json:"blobs"`
	Bytes        int64    `json:"bytes"`
	Signatures   int      `json:"signatures"`
	Attestations int      `json:"attestations"`
	Problems     []string `json:"problems,omitempty"`
}

// Dependency is one dependency an artifact's provenance or SBOM pins by
// digest.
type Dependency struct {
	// Of is the artifact (repository@digest) whose evidence names it.
	Of   string `json:"of"`
	From string `json:"from"` // "provenance" or "sbom"
	URI  string `json:"uri"`
	// Digest is the pinned digest.
	Digest string `json:"digest"`
	// Stored is true when the dependency names the source (custody
	// stores it); only those are checked.
	Stored      bool   `json:"stored"`
	Retrievable bool   `json:"retrievable"`
	Problem     string `json:"problem,omitempty"`
}

// IsDirectory reports whether into names a directory rather than a
// registry: an absolute or ./ ../ path, an existing directory, or a first
// path element that is not a host (no '.' or ':' and not localhost).
func IsDirectory(into string) bool {
	if into == "" {
		return false
	}
	if filepath.IsAbs(into) || strings.HasPrefix(into, "./") || strings.HasPrefix(into, "../") || into == "." {
		return true
	}
	if st, err := os.Stat(into); err == nil && st.IsDir() {
		return true
	}
	host, _, _ := strings.Cut(into, "/")
	return !strings.ContainsAny(host, ".:") && host != "localhost"
}

// Run performs the drill. Its error is for a drill that could not run at
// all (a bad target); everything found missing on the way is in the
// report, with OK false.
func Run(ctx context.Context, o Options) (*Report, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if o.Trust == nil {
		return nil, errors.New("drill: no trust root")
	}
	start := now()
	rep := &Report{Project: o.Project, Environment: o.Environment, At: o.At, Source: o.SourceHost, Into: o.Into,
		Started: start.UTC(), Artifacts: []ArtifactReport{}, Dependencies: []Dependency{}, Manifests: []string{}, Missing: []string{}}
	t, err := newTarget(o)
	if err != nil {
		return nil, err
	}
	if len(o.Artifacts) == 0 {
		rep.Missing = append(rep.Missing, "environment "+o.Environment+" holds no artifact")
	}
	for _, a := range o.Artifacts {
		ar, deps := drillOne(ctx, o, t, a)
		rep.Artifacts = append(rep.Artifacts, ar)
		for _, p := range ar.Problems {
			rep.Missing = append(rep.Missing, a.Repository+"@"+a.Digest+": "+p)
		}
		for _, d := range deps {
			if d.Stored && !d.Retrievable {
				rep.Missing = append(rep.Missing, fmt.Sprintf("dependency %s (%s) of %s: %s", d.URI, d.Digest, d.Of, d.Problem))
			}
		}
		rep.Dependencies = append(rep.Dependencies, deps...)
	}
	dir := o.Manifests
	if dir == "" {
		dir = t.defaultManifests()
	}
	if dir != "" {
		files, err := writeManifests(dir, o.Environment, rep.Artifacts)
		if err != nil {
			rep.Missing = append(rep.Missing, "deployment manifests: "+err.Error())
		}
		rep.Manifests = files
	}
	rep.Seconds = now().Sub(start).Seconds()
	rep.OK = len(rep.Missing) == 0
	return rep, nil
}

func (o Options) sourceRef(repo, dgst string) (name.Digest, error) {
	return name.NewDigest(o.SourceHost+"/"+repo+"@"+dgst, name.Insecure)
}

func (o Options) sourceOpts(ctx context.Context) []remote.Option {
	return append(slices.Clone(o.Source), remote.WithContext(ctx))
}

// drillOne copies one artifact with its signatures, attestations and
// referrers, re-hashes the copy and verifies its evidence.
func drillOne(ctx context.Context, o Options, t target, a Artifact) (ArtifactReport, []Dependency) {
	ar := ArtifactReport{Repository: a.Repository, Digest: a.Digest, Reference: t.reference(a.Repository, a.Digest)}
	src, err := o.sourceRef(a.Repository, a.Digest)
	if err != nil {
		ar.Problems = append(ar.Problems, err.Error())
		return ar, nil
	}
	so := o.sourceOpts(ctx)
	desc, err := remote.Get(src, so...)
	if err != nil {
		ar.Problems = append(ar.Problems, "not retrievable from the source: "+err.Error())
		return ar, nil
	}
	ar.Image = isImage(desc)
	if err := t.put(ctx, a.Repository, "", o.Environment, desc); err != nil {
		ar.Problems = append(ar.Problems, "copy: "+err.Error())
		return ar, nil
	}
	ar.Manifests++
	// cosign v2's signature and attestation images, by tag.
	for _, suffix := range []string{sign.SignatureSuffix, sign.AttestationSuffix} {
		tag := sign.TagFor(src, suffix)
		d, err := remote.Get(tag, so...)
		if err != nil {
			continue // none of this kind
		}
		if err := t.put(ctx, a.Repository, tag.TagStr(), tag.TagStr(), d); err != nil {
			ar.Problems = append(ar.Problems, "copy "+tag.TagStr()+": "+err.Error())
			continue
		}
		ar.Manifests++
	}
	// OCI 1.1 referrers (cosign v3 bundles, custody's records).
	if idx, err := remote.Referrers(src, so...); err == nil {
		im, err := idx.IndexManifest()
		if err == nil {
			for _, r := range im.Manifests {
				rd, err := remote.Get(src.Context().Digest(r.Digest.String()), so...)
				if err != nil {
					ar.Problems = append(ar.Problems, "referrer "+r.Digest.String()+" not retrievable: "+err.Error())
					continue
				}
				if err := t.put(ctx, a.Repository, "", "", rd); err != nil {
					ar.Problems = append(ar.Problems, "copy referrer "+r.Digest.String()+": "+err.Error())
					continue
				}
				ar.Manifests++
			}
		}
	} else {
		ar.Problems = append(ar.Problems, "referrers not readable: "+err.Error())
	}
	// Re-hash the copy: the artifact and everything it references.
	n, size, err := verifyTree(ctx, t.reader(a.Repository), a.Digest)
	ar.Blobs, ar.Bytes = n, size
	if err != nil {
		ar.Problems = append(ar.Problems, "the copy does not verify: "+err.Error())
	}
	// Evidence, judged by internal/evidence.
	ref, eo := t.evidence(ctx, o, a)
	set := evidence.Collect(ctx, ref, o.Trust, eo)
	ar.Signatures = len(set.TrustedSignatures())
	if ar.Signatures == 0 {
		msg := "no trusted signature"
		if set.SignatureErr != nil {
			msg += ": " + set.SignatureErr.Error()
		}
		ar.Problems = append(ar.Problems, msg)
	}
	for _, s := range set.Signatures {
		if !s.Trusted() {
			ar.Problems = append(ar.Problems, "signature by key "+s.KeyID+" does not count: "+s.Err.Error())
		}
	}
	if set.AttestationErr != nil {
		ar.Problems = append(ar.Problems, "attestations not readable: "+set.AttestationErr.Error())
	}
	var deps []Dependency
	of := a.Repository + "@" + a.Digest
	for _, at := range set.Attestations {
		if !at.Trusted() {
			ar.Problems = append(ar.Problems, "attestation does not verify: "+at.Err.Error())
			continue
		}
		ar.Attestations++
		switch {
		case at.Provenance != nil:
			for _, rd := range at.Provenance.BuildDefinition.ResolvedDependencies {
				if h := rd.Digest["sha256"]; h != "" {
					deps = append(deps, Dependency{Of: of, From: "provenance", URI: rd.URI, Digest: "sha256:" + strings.ToLower(h)})
				}
			}
		case slices.Contains(evidence.SBOMTypes, at.PredicateType):
			deps = append(deps, sbomDependencies(of, at.Predicate)...)
		}
	}
	deps = dedupe(deps)
	for i := range deps {
		checkDependency(ctx, o, &deps[i])
	}
	return ar, deps
}

func dedupe(deps []Dependency) []Dependency {
	seen := map[string]bool{}
	out := deps[:0]
	for _, d := range deps {
		k := d.URI + " " + d.Digest
		if !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}

// isImage reports whether desc is a runnable image (or an index of them).
func isImage(desc *remote.Descriptor) bool {
	if desc.MediaType.IsIndex() {
		return true
	}
	var m struct {
		Config struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	if json.Unmarshal(desc.Manifest, &m) != nil {
		return false
	}
	return m.Config.MediaType == "application/vnd.oci.image.config.v1+json" ||
		m.Config.MediaType == "application/vnd.docker.container.image.v1+json"
}

// contentReader reads manifests and blobs of one repository by digest.
type contentReader interface {
	manifest(ctx context.Context, d string) ([]byte, error)
	blob(ctx context.Context, d string) (io.ReadCloser, error)
}

// verifyTree re-hashes manifest d and everything it references (config,
// layers, child manifests). It returns the blobs and bytes hashed.
func verifyTree(ctx context.Context, r contentReader, d string) (int, int64, error) {
	b, err := r.manifest(ctx, d)
	if err != nil {
		return 0, 0, fmt.Errorf("manifest %s: %w", d, err)
	}
	if got := sha(b); got != d {
		return 0, 0, fmt.Errorf("manifest %s hashes to %s", d, got)
	}
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, 0, fmt.Errorf("manifest %s: %w", d, err)
	}
	n, size := 1, int64(len(b))
	blobs := m.Layers
	if m.Config != nil {
		blobs = append([]v1.Descriptor{*m.Config}, blobs...)
	}
	for _, l := range blobs {
		if len(l.URLs) > 0 {
			continue // a foreign layer is not stored
		}
		rc, err := r.blob(ctx, l.Digest.String())
		if err != nil {
			return n, size, fmt.Errorf("blob %s: %w", l.Digest, err)
		}
		h := sha256.New()
		c, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return n, size, fmt.Errorf("blob %s: %w", l.Digest, err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.Digest.String() || c != l.Size {
			return n, size, fmt.Errorf("blob %s hashes to %s (%d bytes, want %d)", l.Digest, got, c, l.Size)
		}
		n, size = n+1, size+c
	}
	for _, c := range m.Manifests {
		cn, cs, err := verifyTree(ctx, r, c.Digest.String())
		n, size = n+cn, size+cs
		if err != nil {
			return n, size, err
		}
	}
	return n, size, nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// target is where a drill rebuilds: an OCI layout or a registry.
type target interface {
	// put copies desc (with everything it references) into repo, under
	// tag when not empty; label names it in a layout (default: its
	// digest).
	put(ctx context.Context, repo, tag, label string, desc *remote.Descriptor) error
	reference(repo, dgst string) string
	reader(repo string) contentReader
	// evidence returns where evidence.Collect reads the copy's evidence.
	evidence(ctx context.Context, o Options, a Artifact) (name.Digest, sign.Options)
	defaultManifests() string
}

func newTarget(o Options) (target, error) {
	if o.Into == "" {
		return nil, errors.New("drill: give --into DIR or REGISTRY")
	}
	if IsDirectory(o.Into) {
		return newLayout(o.Into)
	}
	base := strings.TrimSuffix(o.Into, "/")
	if _, err := name.NewRepository(base+"/x", name.Insecure); err != nil {
		return nil, fmt.Errorf("drill: --into %s is neither a directory nor a registry: %w", o.Into, err)
	}
	if o.Manifests == "" {
		return nil, errors.New("drill: into a registry, give the directory for the deployment manifests (--manifests DIR)")
	}
	return &registryTarget{base: base, opts: o.Target}, nil
}

// layoutTarget writes one OCI image layout holding every artifact.
type layoutTarget struct {
	dir  string
	path layout.Path
}

// RefNameAnnotation names an image of the layout (regctl's
// ocidir://DIR:NAME, skopeo's oci:DIR:NAME); RepositoryAnnotation keeps the
// repository it came from.
const (
	RefNameAnnotation    = "org.opencontainers.image.ref.name"
	RepositoryAnnotation = "dev.custody.repository"
)

func newLayout(dir string) (*layoutTarget, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	if len(ents) > 0 {
		return nil, fmt.Errorf("drill: %s is not empty: a drill rebuilds into an empty directory", dir)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	return &layoutTarget{dir: dir, path: p}, nil
}

// RefName is the name (a valid tag) an artifact of repo gets in a
// drill's layout: the repository with '/' as '_', then '.' and label:
// the environment for the artifact itself (apps_web.prod), the cosign tag
// for its signature and attestation images, sha256-<hex> for referrers.
func RefName(repo, label string) string {
	return strings.ReplaceAll(repo, "/", "_") + "." + label
}

func (l *layoutTarget) put(_ context.Context, repo, _, label string, desc *remote.Descriptor) error {
	if label == "" {
		label = strings.ReplaceAll(desc.Digest.String(), ":", "-")
	}
	ann := layout.WithAnnotations(map[string]string{RefNameAnnotation: RefName(repo, label), RepositoryAnnotation: repo})
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		return l.path.AppendIndex(idx, ann)
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	return l.path.AppendImage(img, ann)
}

func (l *layoutTarget) reference(repo, dgst string) string {
	return "ocidir://" + l.dir + "@" + dgst
}

func (l *layoutTarget) defaultManifests() string { return filepath.Join(l.dir, "deploy") }

func (l *layoutTarget) reader(string) contentReader { return l }

func (l *layoutTarget) open(d string) (io.ReadCloser, error) {
	alg, hx, ok := strings.Cut(d, ":")
	if !ok || alg != "sha256" || len(hx) != 64 || strings.ContainsAny(hx, "/.\\") {
		return nil, fmt.Errorf("bad digest %q", d)
	}
	return os.Open(filepath.Join(l.dir, "blobs", alg, hx))
}

func (l *layoutTarget) manifest(_ context.Context, d string) ([]byte, error) {
	f, err := l.open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 4<<20))
}

func (l *layoutTarget) blob(_ context.Context, d string) (io.ReadCloser, error) { return l.open(d) }

// evidence of a layout copy is read from the source: the layout holds the
// same signature and attestation manifests by digest, and verifyTree
// re-hashed them there.
func (l *layoutTarget) evidence(ctx context.Context, o Options, a Artifact) (name.Digest, sign.Options) {
	ref, _ := o.sourceRef(a.Repository, a.Digest)
	return ref, sign.Options{Remote: o.sourceOpts(ctx)}
}

// registryTarget copies into another registry, under the same
// repository names below an optional prefix.
type registryTarget struct {
	base string
	opts []remote.Option
}

func (r *registryTarget) repo(repo string) (name.Repository, error) {
	return name.NewRepository(r.base+"/"+repo, name.Insecure)
}

func (r *registryTarget) ropts(ctx context.Context) []remote.Option {
	return append(slices.Clone(r.opts), remote.WithContext(ctx))
}

func (r *registryTarget) put(ctx context.Context, repo, tag, _ string, desc *remote.Descriptor) error {
	rp, err := r.repo(repo)
	if err != nil {
		return err
	}
	var ref name.Reference = rp.Digest(desc.Digest.String())
	if tag != "" {
		ref = rp.Tag(tag)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		return remote.WriteIndex(ref, idx, r.ropts(ctx)...)
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	return remote.Write(ref, img, r.ropts(ctx)...)
}

func (r *registryTarget) reference(repo, dgst string) string { return r.base + "/" + repo + "@" + dgst }

func (r *registryTarget) defaultManifests() string { return "" }

func (r *registryTarget) reader(repo string) contentReader {
	rp, err := r.repo(repo)
	return registryReader{rp: rp, err: err, opts: r.opts}
}

func (r *registryTarget) evidence(ctx context.Context, _ Options, a Artifact) (name.Digest, sign.Options) {
	rp, _ := r.repo(a.Repository)
	return rp.Digest(a.Digest), sign.Options{Remote: r.ropts(ctx)}
}

type registryReader struct {
	rp   name.Repository
	err  error
	opts []remote.Option
}

func (g registryReader) manifest(ctx context.Context, d string) ([]byte, error) {
	if g.err != nil {
		return nil, g.err
	}
	desc, err := remote.Get(g.rp.Digest(d), append(slices.Clone(g.opts), remote.WithContext(ctx))...)
	if err != nil {
		return nil, err
	}
	return desc.Manifest, nil
}

func (g registryReader) blob(ctx context.Context, d string) (io.ReadCloser, error) {
	if g.err != nil {
		return nil, g.err
	}
	l, err := remote.Layer(g.rp.Digest(d), append(slices.Clone(g.opts), remote.WithContext(ctx))...)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}
