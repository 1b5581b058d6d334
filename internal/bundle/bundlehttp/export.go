// Package bundlehttp writes evidence bundles from the server's stores:
// GET /api/v1/export streams one (internal/bundle's format) and GET
// /api/v1/keys/trust serves the trust.json whose SHA-256 is the
// trust-root fingerprint auditors verify bundles against.
package bundlehttp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/bundle"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/tlog"
)

// Options is what the export is built from.
type Options struct {
	Meta  meta.Store
	Blobs blob.Store
	Log   *tlog.Log
	// Trust returns the keys the server trusts and the IDs of those whose
	// records count (promotionhttp.TrustRoot).
	Trust func() (key.TrustRoot, []string, error)
	// Locks gives each artifact's retention lock and legal hold.
	Locks retention.Store
	// Remote reaches the server's internal registry (named Host), which
	// evidence.Collect reads for the summary.
	Remote []remote.Option
	Host   string
	// Promotion answers environment exports; nil without projects.
	Promotion *promotion.Service
	// Authz is nil when authentication is off.
	Authz  *auth.Service
	Logger *slog.Logger
}

// Handler serves GET /api/v1/export and GET /api/v1/keys/trust.
type Handler struct{ o Options }

// New returns the export handler.
func New(o Options) *Handler { return &Handler{o: o} }

// Register mounts the routes.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/export", h.export)
	mux.HandleFunc("GET /api/v1/keys/trust", h.trust)
}

// TrustJSON returns trust.json's bytes: the ring's trust root (active and
// retired keys with their validity windows; Generated is the latest key
// event, so the bytes change only when the keys do) and the audit log's
// origin and verifier key. Keys are the server's trust, so the bytes
// change only when a key is created, rotated or revoked (or
// promotion.trustRoot changes).
func TrustJSON(trust func() (key.TrustRoot, []string, error), log *tlog.Log) ([]byte, error) {
	tr, recorders, err := trust()
	if err != nil {
		return nil, err
	}
	if recorders == nil {
		recorders = []string{}
	}
	tr.Generated = time.Time{}
	for _, k := range tr.Keys {
		for _, t := range []time.Time{k.ValidFor.Start, k.ValidFor.End} {
			if t.After(tr.Generated) {
				tr.Generated = t.UTC()
			}
		}
	}
	return bundle.Bytes(bundle.Trust{TrustRoot: tr, Recorders: recorders, Log: bundle.LogKey{Origin: log.Origin(), Key: log.VerifierKey()}})
}

func (h *Handler) trust(w http.ResponseWriter, r *http.Request) {
	b, err := TrustJSON(h.o.Trust, h.o.Log)
	if err != nil {
		problem.Fail(w, r, h.o.Logger, "reading the trust root", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Custody-Trust-Root-Fingerprint", bundle.Fingerprint(b))
	_, _ = w.Write(b)
}

// target is one artifact to export.
type target struct {
	repo   string
	digest digest.Digest
	dep    *promotion.Deployment
}

func (h *Handler) export(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := bundle.Request{Refs: q["ref"], Environment: q.Get("environment"), Project: q.Get("project")}
	if v := q.Get("metadataOnly"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problem.Write(w, problem.Invalid, "metadataOnly must be true or false")
			return
		}
		req.MetadataOnly = b
	}
	if at := q.Get("at"); at != "" {
		t, err := promotion.ParseTime(at)
		if err != nil {
			problem.Write(w, problem.Invalid, err.Error())
			return
		}
		req.At = t
	}
	if (len(req.Refs) == 0) == (req.Environment == "") {
		problem.Write(w, problem.Invalid, "give ref=REPOSITORY@DIGEST (or :TAG), repeated, or environment=ENV[&project=P][&at=TIME]")
		return
	}
	if len(req.Refs) > 0 && (req.Project != "" || !req.At.IsZero()) {
		problem.Write(w, problem.Invalid, "project and at go with environment, not with ref")
		return
	}
	r, targets, ok := h.targets(w, r, &req)
	if !ok {
		return
	}
	c, err := h.contents(r.Context(), req, targets)
	if err != nil {
		var nf *notFound
		if errors.As(err, &nf) {
			problem.Write(w, problem.NotFound, nf.Error())
			return
		}
		problem.Fail(w, r, h.o.Logger, "assembling the evidence bundle", err)
		return
	}
	var total int64
	_, files, err := bundle.Plan(c)
	if err != nil {
		problem.Fail(w, r, h.o.Logger, "assembling the evidence bundle", err)
		return
	}
	for _, f := range files {
		if !f.Omitted {
			total += f.Size
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="evidence.tar"`)
	w.Header().Set("X-Custody-Bundle-Bytes", strconv.FormatInt(total, 10))
	open := func(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
		return h.o.Blobs.Open(ctx, d)
	}
	if err := bundle.Write(r.Context(), w, c, open, h.o.Log.SignNote); err != nil {
		// The status is sent: cut the response so the client sees a
		// truncated bundle, which every reader refuses.
		h.o.Logger.Error("writing an evidence bundle failed", "err", err)
		panic(http.ErrAbortHandler)
	}
}

type notFound struct{ msg string }

func (e *notFound) Error() string { return e.msg }

// targets resolves the request to artifacts. For an environment it
// first checks, as GET /api/v1/environments does for a project, that the
// caller is signed in and may pull every repository of the project.
func (h *Handler) targets(w http.ResponseWriter, r *http.Request, req *bundle.Request) (*http.Request, []target, bool) {
	var out []target
	if req.Environment != "" {
		if h.o.Promotion == nil {
			problem.Write(w, problem.NotFound, "no projects are configured, so no environment has artifacts")
			return r, nil, false
		}
		if h.o.Authz != nil {
			var pr *auth.Principal
			var ok bool
			if r, pr, ok = h.o.Authz.Require(w, r, "export", "", 0); !ok {
				return r, nil, false
			}
			_, repos, err := h.o.Promotion.Repositories(r.Context(), req.Project, req.Environment)
			if err != nil {
				h.environmentError(w, r, err)
				return r, nil, false
			}
			for _, repo := range repos {
				if !pr.Can(repo, auth.PermPull) {
					h.o.Authz.Require(w, r, "export", repo, auth.PermPull) // answers the refusal
					return r, nil, false
				}
			}
		}
		at := req.At
		if at.IsZero() {
			at = time.Now()
		}
		deps, err := h.o.Promotion.EnvironmentAt(r.Context(), req.Project, req.Environment, at)
		if err != nil {
			h.environmentError(w, r, err)
			return r, nil, false
		}
		for _, d := range deps {
			if d.Digest == "" {
				continue
			}
			out = append(out, target{repo: d.Repository, digest: digest.Digest(d.Digest), dep: &d})
		}
		if len(out) == 0 {
			problem.Write(w, problem.NotFound, fmt.Sprintf("nothing ran in %s at %s", req.Environment, at.UTC().Format(time.RFC3339)))
			return r, nil, false
		}
		return r, out, true
	}
	seen, allowed := map[string]bool{}, map[string]bool{}
	for _, ref := range req.Refs {
		repo, dg, tag, err := parseRef(ref)
		if err != nil {
			problem.Write(w, problem.InvalidName, err.Error())
			return r, nil, false
		}
		// Reading an artifact's evidence requires pull on its
		// repository, checked before looking the reference up: whether
		// it exists is the repository's business too.
		if h.o.Authz != nil && !allowed[repo] {
			var ok bool
			if r, _, ok = h.o.Authz.Require(w, r, "export", repo, auth.PermPull); !ok {
				return r, nil, false
			}
			allowed[repo] = true
		}
		d, err := h.resolve(r.Context(), ref, repo, dg, tag)
		if err != nil {
			var nf *notFound
			if errors.As(err, &nf) {
				problem.Write(w, problem.NotFound, err.Error())
			} else {
				problem.Fail(w, r, h.o.Logger, "resolving "+ref, err)
			}
			return r, nil, false
		}
		if !seen[repo+"@"+d.String()] {
			seen[repo+"@"+d.String()] = true
			out = append(out, target{repo: repo, digest: d})
		}
	}
	return r, out, true
}

// environmentError answers an error of the environment lookup as
// GET /api/v1/environments does.
func (h *Handler) environmentError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, promotion.ErrWhichProject):
		problem.Write(w, problem.Invalid, err.Error())
	case errors.Is(err, promotion.ErrNoProject), errors.Is(err, promotion.ErrNoEnv):
		problem.Write(w, problem.NotFound, err.Error())
	default:
		problem.Fail(w, r, h.o.Logger, "reading the environment", err)
	}
}

var errInvalidRef = errors.New("invalid reference")

// parseRef reads REPOSITORY@DIGEST or REPOSITORY:TAG.
func parseRef(ref string) (repo string, d digest.Digest, tag string, err error) {
	repo, dg, isDigest := strings.Cut(ref, "@")
	if !isDigest {
		i := strings.LastIndex(ref, ":")
		if i < 0 || strings.Contains(ref[i:], "/") {
			return "", "", "", fmt.Errorf("%w %q: give REPOSITORY@DIGEST or REPOSITORY:TAG", errInvalidRef, ref)
		}
		repo, tag = ref[:i], ref[i+1:]
	}
	if !registry.ValidName(repo) {
		return "", "", "", fmt.Errorf("%w: repository %q", errInvalidRef, repo)
	}
	if isDigest {
		if d, err = digest.Parse(dg); err != nil {
			return "", "", "", fmt.Errorf("%w %q: %v", errInvalidRef, ref, err)
		}
	}
	return repo, d, tag, nil
}

// resolve looks up ref (parsed by parseRef: a digest, or else a tag) in
// repo.
func (h *Handler) resolve(ctx context.Context, ref, repo string, d digest.Digest, tag string) (digest.Digest, error) {
	if d != "" {
		if _, err := h.o.Meta.GetManifest(ctx, repo, d); err != nil {
			if errors.Is(err, meta.ErrNotFound) {
				return "", &notFound{ref + " is not in the registry"}
			}
			return "", err
		}
		return d, nil
	}
	d, err := h.o.Meta.ResolveTag(ctx, repo, tag)
	if errors.Is(err, meta.ErrNotFound) {
		return "", &notFound{ref + " is not in the registry"}
	}
	return d, err
}

// collector gathers the manifests and blobs of the bundle.
type collector struct {
	h            *Handler
	ctx          context.Context
	metadataOnly bool
	blobs        map[digest.Digest]bundle.BlobFile
	index        []v1.Descriptor
	// manifests are the bundle's manifests with the repository each was
	// exported from: the audit entries are those about these pairs.
	manifests []repoDigest
}

// repoDigest is one manifest of one repository.
type repoDigest struct {
	repo string
	d    digest.Digest
}

// parsed is the part of a manifest the export reads.
type parsed struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       v1.Descriptor     `json:"config"`
	Layers       []v1.Descriptor   `json:"layers"`
	Manifests    []v1.Descriptor   `json:"manifests"`
	Annotations  map[string]string `json:"annotations"`
}

// addBlob adds a blob, reading its size from the store (and its SHA-256
// for a sha512 blob).
func (c *collector) addBlob(d digest.Digest, omit bool) error {
	if prev, ok := c.blobs[d]; ok {
		if prev.Omitted && !omit {
			prev.Omitted = false
			c.blobs[d] = prev
		}
		return nil
	}
	size, err := c.h.o.Blobs.Stat(c.ctx, d)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	bf := bundle.BlobFile{Digest: d, Size: size, Omitted: omit}
	if d.Algorithm() != digest.SHA256 {
		rc, _, err := c.h.o.Blobs.Open(c.ctx, d)
		if err != nil {
			return err
		}
		s := sha256.New()
		_, err = io.Copy(s, rc)
		rc.Close()
		if err != nil {
			return err
		}
		bf.SHA256 = hex.EncodeToString(s.Sum(nil))
	}
	c.blobs[d] = bf
	return nil
}

// addManifest adds a manifest, its config and layers (layers omitted with
// metadataOnly unless evidence) and its children; it returns the manifest.
func (c *collector) addManifest(repo string, d digest.Digest, evidenceLayers bool, depth int) (parsed, int64, error) {
	var p parsed
	if depth > 4 {
		return p, 0, errors.New("manifests nested deeper than 4")
	}
	rc, size, err := c.h.o.Blobs.Open(c.ctx, d)
	if err != nil {
		return p, 0, fmt.Errorf("manifest %s: %w", d, err)
	}
	body, err := io.ReadAll(io.LimitReader(rc, bundle.MaxManifestBlobSize+1))
	rc.Close()
	if err != nil {
		return p, 0, err
	}
	if len(body) > bundle.MaxManifestBlobSize {
		return p, 0, fmt.Errorf("manifest %s is larger than %d bytes", d, bundle.MaxManifestBlobSize)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return p, 0, fmt.Errorf("manifest %s: %w", d, err)
	}
	if err := c.addBlob(d, false); err != nil {
		return p, 0, err
	}
	c.manifests = append(c.manifests, repoDigest{repo, d})
	if p.Config.Digest.Hex != "" {
		if err := c.addBlob(digest.Digest(p.Config.Digest.String()), false); err != nil {
			return p, 0, err
		}
	}
	for _, l := range p.Layers {
		if err := c.addBlob(digest.Digest(l.Digest.String()), c.metadataOnly && !evidenceLayers); err != nil {
			return p, 0, err
		}
	}
	for _, m := range p.Manifests {
		if _, _, err := c.addManifest(repo, digest.Digest(m.Digest.String()), evidenceLayers, depth+1); err != nil {
			return p, 0, err
		}
	}
	return p, size, nil
}

// refName is the layout name of a manifest: the repository with "/" as
// "+" (OCI layout names take no "/"), "@", the digest.
func refName(repo string, d digest.Digest) string {
	return strings.ReplaceAll(repo, "/", "+") + "@" + d.String()
}

func (c *collector) describe(repo string, d digest.Digest, p parsed, size int64, role string, ann map[string]string) {
	a := map[string]string{
		bundle.AnnotationRefName:    refName(repo, d),
		bundle.AnnotationRepository: repo,
		bundle.AnnotationRole:       role,
	}
	for k, v := range ann {
		a[k] = v
	}
	mt := p.MediaType
	if mt == "" {
		mt = string(types.OCIManifestSchema1)
	}
	h, _ := v1.NewHash(d.String())
	desc := v1.Descriptor{MediaType: types.MediaType(mt), Digest: h, Size: size, Annotations: a}
	if role == bundle.RoleReferrer {
		desc.ArtifactType = p.ArtifactType
	}
	c.index = append(c.index, desc)
}

// contents assembles everything but the blob bytes.
func (h *Handler) contents(ctx context.Context, req bundle.Request, targets []target) (bundle.Contents, error) {
	c := &collector{h: h, ctx: ctx, metadataOnly: req.MetadataOnly, blobs: map[digest.Digest]bundle.BlobFile{}}
	trustJSON, err := TrustJSON(h.o.Trust, h.o.Log)
	if err != nil {
		return bundle.Contents{}, err
	}
	root, recorders, err := h.o.Trust()
	if err != nil {
		return bundle.Contents{}, err
	}
	trust, err := evidence.NewTrust(root)
	if err != nil {
		return bundle.Contents{}, err
	}
	trust.RecordsOnlyBy(recorders...)
	cp, err := h.checkpoint(ctx)
	if err != nil {
		return bundle.Contents{}, err
	}
	var summary bundle.Summary
	summary.Artifacts = []bundle.Artifact{}
	for _, t := range targets {
		a, err := c.artifact(t, trust)
		if err != nil {
			return bundle.Contents{}, err
		}
		summary.Artifacts = append(summary.Artifacts, a)
	}
	audit, err := h.audit(ctx, cp, c.manifests)
	if err != nil {
		return bundle.Contents{}, err
	}
	for i := range summary.Artifacts {
		fillFromAudit(&summary.Artifacts[i], audit)
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: c.index}
	out := bundle.Contents{Request: req, Log: bundle.LogRef{Origin: cp.Origin, Size: cp.Size, Root: hex.EncodeToString(cp.Root)}, Trust: trustJSON}
	if out.Index, err = bundle.Bytes(idx); err != nil {
		return out, err
	}
	if out.Audit, err = bundle.Bytes(audit); err != nil {
		return out, err
	}
	if out.Summary, err = bundle.Bytes(summary); err != nil {
		return out, err
	}
	out.SummaryMD = bundle.Markdown(req, out.Log, summary)
	for _, d := range sortedDigests(c.blobs) {
		out.Blobs = append(out.Blobs, c.blobs[d])
	}
	return out, nil
}

func sortedDigests(m map[digest.Digest]bundle.BlobFile) []digest.Digest {
	out := make([]digest.Digest, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// checkpoint returns the latest signed checkpoint, signing one first when
// the log has grown past it (a checkpoint is no audit entry: exporting
// again with no change in between gives the same bytes).
func (h *Handler) checkpoint(ctx context.Context) (tlog.Checkpoint, error) {
	h.o.Log.Flush()
	cp, err := h.o.Log.Latest(ctx)
	if err == nil && cp.Size >= h.o.Log.Size() {
		return cp, nil
	}
	if err != nil && !errors.Is(err, tlog.ErrNotFound) {
		return cp, err
	}
	return h.o.Log.Checkpoint(ctx)
}

// artifact adds one artifact with its evidence manifests and returns its
// summary.
func (c *collector) artifact(t target, trust *evidence.Trust) (bundle.Artifact, error) {
	ctx := c.ctx
	a := bundle.Artifact{Repository: t.repo, Digest: t.digest.String(), Tags: []string{}, Signatures: []bundle.Signature{},
		Attestations: []bundle.Attestation{}, Promotions: []bundle.Promotion{}, Approvals: []bundle.Approval{},
		Revocations: []bundle.Revocation{}, Evidence: []string{}, LayersOmitted: c.metadataOnly}
	if _, err := c.h.o.Meta.GetManifest(ctx, t.repo, t.digest); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return a, &notFound{t.repo + "@" + t.digest.String() + " is not in the registry"}
		}
		return a, err
	}
	p, size, err := c.addManifest(t.repo, t.digest, false, 0)
	if err != nil {
		return a, err
	}
	a.MediaType = p.MediaType
	tags, err := c.tagsOf(t.repo, t.digest)
	if err != nil {
		return a, err
	}
	a.Tags = tags
	ann := map[string]string{}
	if len(tags) > 0 {
		ann[bundle.AnnotationTags] = strings.Join(tags, ",")
	}
	switch {
	case types.MediaType(p.MediaType).IsIndex():
		ann["kind"] = "dev.cosignproject.cosign/imageIndex"
	default:
		ann["kind"] = "dev.cosignproject.cosign/image"
	}
	c.describe(t.repo, t.digest, p, size, bundle.RoleArtifact, ann)
	ref, err := name.NewDigest(c.h.o.Host+"/"+t.repo+"@"+t.digest.String(), name.Insecure)
	if err != nil {
		return a, err
	}
	// The cosign v2 tags, then the OCI 1.1 referrers.
	for _, ev := range []struct{ suffix, role, kind string }{
		{sign.SignatureSuffix, bundle.RoleSignature, "dev.cosignproject.cosign/sigs"},
		{sign.AttestationSuffix, bundle.RoleAttestation, "dev.cosignproject.cosign/atts"},
	} {
		tag := sign.TagFor(ref, ev.suffix).TagStr()
		d, err := c.h.o.Meta.ResolveTag(ctx, t.repo, tag)
		if errors.Is(err, meta.ErrNotFound) {
			continue
		}
		if err != nil {
			return a, err
		}
		p, size, err := c.addManifest(t.repo, d, true, 0)
		if err != nil {
			return a, err
		}
		c.describe(t.repo, d, p, size, ev.role, map[string]string{bundle.AnnotationTag: tag, bundle.AnnotationSubject: t.digest.String(), "kind": ev.kind})
		a.Evidence = append(a.Evidence, d.String())
	}
	refs, err := c.h.o.Meta.Referrers(ctx, t.repo, t.digest, "", "", sign.MaxReferrers)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return a, err
	}
	for _, rd := range refs {
		p, size, err := c.addManifest(t.repo, rd.Digest, true, 0)
		if err != nil {
			return a, err
		}
		c.describe(t.repo, rd.Digest, p, size, bundle.RoleReferrer, map[string]string{bundle.AnnotationSubject: t.digest.String()})
		a.Evidence = append(a.Evidence, rd.Digest.String())
	}
	// What the evidence says, judged by the rules every verifier uses.
	set := evidence.Collect(ctx, ref, trust, sign.Options{Remote: c.h.o.Remote})
	summarize(&a, set)
	if t.dep != nil {
		a.Environments = append(a.Environments, bundle.Deployment{Environment: t.dep.Environment, Since: t.dep.Since.UTC(), AuditIndex: t.dep.AuditIndex})
	}
	if c.h.o.Locks != nil {
		l, err := c.h.o.Locks.GetLock(ctx, t.repo, t.digest)
		switch {
		case err == nil:
			a.Retention = &bundle.Retention{Mode: l.Mode, RetainUntil: l.RetainUntil, LegalHold: l.LegalHold}
		case !errors.Is(err, retention.ErrNotFound):
			return a, err
		}
	}
	return a, nil
}

// tagsOf lists the tags of repo naming d (not the cosign tags).
func (c *collector) tagsOf(repo string, d digest.Digest) ([]string, error) {
	out := []string{}
	last := ""
	for {
		tags, err := c.h.o.Meta.Tags(c.ctx, repo, last, 1000)
		if err != nil {
			return nil, err
		}
		for _, t := range tags {
			if sign.IsEvidenceTag(t) {
				continue
			}
			td, err := c.h.o.Meta.ResolveTag(c.ctx, repo, t)
			if err == nil && td == d {
				out = append(out, t)
			}
		}
		if len(tags) < 1000 {
			return out, nil
		}
		last = tags[len(tags)-1]
	}
}

// summarize copies what counts of the evidence into the summary.
func summarize(a *bundle.Artifact, set *evidence.Set) {
	for _, s := range set.TrustedSignatures() {
		at := s.SignedAt
		if !at.IsZero() {
			at = at.UTC()
		}
		a.Signatures = append(a.Signatures, bundle.Signature{KeyID: s.KeyID, SignedAt: at, Source: string(s.Source)})
	}
	for _, at := range set.Attestations {
		if !at.Trusted() {
			continue
		}
		a.Attestations = append(a.Attestations, bundle.Attestation{PredicateType: at.PredicateType, KeyID: at.KeyID})
		if at.Provenance != nil && a.Source == nil {
			a.Source = bundle.SourceOf(at.Provenance)
		}
	}
	for _, p := range set.Promotions {
		a.Promotions = append(a.Promotions, bundle.Promotion{Environment: p.Environment, Previous: p.Previous, By: p.By, Approvers: p.Approvers, At: p.At, Rollback: p.Rollback})
	}
	for _, p := range set.Approvals {
		a.Approvals = append(a.Approvals, bundle.Approval{Environment: p.Environment, By: p.By, At: p.At})
	}
	for _, p := range set.Revocations {
		a.Revocations = append(a.Revocations, bundle.Revocation{By: p.By, Reason: p.Reason, At: p.At})
	}
}

// audit gathers the entries about the bundle's manifests with their
// inclusion proofs to cp. An entry counts only for the repository the
// manifest was exported from: the same digest in another repository is
// that repository's business, which the caller may not be allowed to
// read.
func (h *Handler) audit(ctx context.Context, cp tlog.Checkpoint, manifests []repoDigest) (bundle.Audit, error) {
	out := bundle.Audit{Checkpoint: string(cp.Note), Latest: string(cp.Note), Entries: []bundle.AuditEntry{}, Consistency: [][]byte{}}
	byIndex := map[uint64][]byte{}
	searched := map[repoDigest]bool{}
	for _, m := range manifests {
		if searched[m] {
			continue
		}
		searched[m] = true
		leaves, err := h.o.Log.Search(ctx, tlog.Query{Repo: m.repo, Digest: m.d.String()})
		if err != nil {
			return out, err
		}
		for _, l := range leaves {
			if l.Index < cp.Size {
				byIndex[l.Index] = l.Entry
			}
		}
	}
	idx := make([]uint64, 0, len(byIndex))
	for i := range byIndex {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		p, err := h.o.Log.InclusionProof(ctx, i, cp.Size)
		if err != nil {
			return out, err
		}
		if p == nil {
			p = [][]byte{}
		}
		out.Entries = append(out.Entries, bundle.AuditEntry{Index: i, Entry: string(byIndex[i]), Inclusion: p})
	}
	return out, nil
}

// fillFromAudit sets who pushed the artifact and when, from the first
// successful manifest push in the log.
func fillFromAudit(a *bundle.Artifact, au bundle.Audit) {
	for _, e := range au.Entries {
		var en tlog.Entry
		if json.Unmarshal([]byte(e.Entry), &en) != nil {
			continue
		}
		if en.Digest == a.Digest && en.Repo == a.Repository && en.Result == "ok" && en.Action == "manifest.put" {
			t, _ := time.Parse(tlog.TimeFormat, en.Time)
			a.Pushed = &bundle.Event{By: en.Actor, At: t, AuditIndex: e.Index}
			return
		}
	}
}
