package bundle

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/tlog"
)

// Report is the outcome of Verify. The bundle verified when Failures is
// empty; revocations are reported, not failures (the bundle proves them).
type Report struct {
	// Request is what the bundle was exported for (signed in
	// manifest.json): the artifacts named, or the environment and
	// instant. A bundle that verifies proves no more than that.
	Request Request `json:"request"`
	// LayersOmitted counts the layers left out by --metadata-only: their
	// bytes are not in the bundle, so were not verified.
	LayersOmitted int `json:"layersOmitted"`
	// Checkpoint is the audit log's checkpoint the proofs lead to.
	Checkpoint LogRef `json:"checkpoint"`
	// AuditEntries counts the entries whose inclusion was checked.
	AuditEntries int              `json:"auditEntries"`
	Artifacts    []ArtifactReport `json:"artifacts"`
	// Revocations are the artifacts revoked by a record that counts.
	Revocations []Revoked `json:"revocations"`
	Failures    []Failure `json:"failures"`
}

// OK reports whether nothing failed.
func (r *Report) OK() bool { return len(r.Failures) == 0 }

// ArtifactReport is what verified about one artifact.
type ArtifactReport struct {
	Repository   string `json:"repository"`
	Digest       string `json:"digest"`
	Signatures   int    `json:"signatures"`
	Attestations int    `json:"attestations"`
	Promotions   int    `json:"promotions"`
	Revoked      bool   `json:"revoked"`
}

// Revoked is one revoked artifact.
type Revoked struct {
	Repository string    `json:"repository"`
	Digest     string    `json:"digest"`
	By         string    `json:"by"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
}

// Failure is one thing that did not verify.
type Failure struct {
	// Check names the kind of check: layout, checkpoint, audit-entry,
	// consistency, signature, attestation, summary, promotion-chain.
	Check string `json:"check"`
	// Subject is what it concerns (an artifact, a file, an entry index).
	Subject string `json:"subject,omitempty"`
	Detail  string `json:"detail"`
}

func (f Failure) String() string {
	if f.Subject == "" {
		return f.Check + ": " + f.Detail
	}
	return f.Check + " " + f.Subject + ": " + f.Detail
}

// Failure checks.
const (
	CheckLayout         = "layout"
	CheckCheckpoint     = "checkpoint"
	CheckAuditEntry     = "audit-entry"
	CheckConsistency    = "consistency"
	CheckSignature      = "signature"
	CheckAttestation    = "attestation"
	CheckSummary        = "summary"
	CheckPromotionChain = "promotion-chain"
)

func (r *Report) fail(check, subject, format string, args ...any) {
	r.Failures = append(r.Failures, Failure{Check: check, Subject: subject, Detail: fmt.Sprintf(format, args...)})
}

// Verify runs the whole offline verification (Open has checked every
// file's hash, the manifest's signature and the trust root): the
// layout's manifests and the blobs they reference; the checkpoint's
// signature, each audit entry's inclusion proof and the consistency proof
// to the latest checkpoint (internal/tlog); each artifact's signatures by
// keys valid at signing time, its attestations' signatures and subjects,
// its promotion, approval and revocation records (evidence.Collect over
// Transport, the one place those rules live); that the summary claims no
// more than that; and that the promotion records of each environment form
// one chain, in the order the audit log recorded them.
func (b *Bundle) Verify(ctx context.Context) (Report, error) {
	r := Report{Request: b.manifest.Request, Artifacts: []ArtifactReport{}, Revocations: []Revoked{}, Failures: []Failure{}}
	for _, f := range b.manifest.Files {
		if f.Omitted {
			r.LayersOmitted++
		}
	}
	b.verifyLayout(&r)
	entries := b.verifyAudit(&r)
	trust, err := evidence.NewTrust(b.trust.TrustRoot)
	if err != nil {
		r.fail(CheckSignature, TrustPath, "%v", err)
		return r, nil
	}
	trust.RecordsOnlyBy(b.trust.Recorders...)
	opts := sign.Options{Remote: []remote.Option{remote.WithTransport(b.Transport())}}
	inIndex := map[string]bool{}
	for _, d := range b.index.Manifests {
		if d.Annotations[AnnotationRole] == RoleArtifact {
			inIndex[d.Annotations[AnnotationRepository]+"@"+d.Digest.String()] = true
		}
	}
	var records []chainRecord
	seen := map[string]bool{}
	for _, a := range b.summary.Artifacts {
		id := a.Repository + "@" + a.Digest
		if seen[id] {
			r.fail(CheckSummary, id, "listed twice")
			continue
		}
		seen[id] = true
		if !inIndex[id] {
			r.fail(CheckSummary, id, "the summary lists an artifact index.json does not hold")
			continue
		}
		ref, err := name.NewDigest(Host+"/"+id, name.Insecure)
		if err != nil {
			r.fail(CheckSummary, id, "invalid reference: %v", err)
			continue
		}
		set := evidence.Collect(ctx, ref, trust, opts)
		records = append(records, b.checkArtifact(&r, a, set, entries)...)
		checkPushed(&r, a, entries)
	}
	for id := range inIndex {
		if !seen[id] {
			r.fail(CheckSummary, id, "index.json holds an artifact the summary does not list")
		}
	}
	b.checkRefs(&r)
	checkChains(&r, records)
	b.checkEntriesAbout(&r, entries)
	sort.Slice(r.Failures, func(i, j int) bool {
		if r.Failures[i].Check != r.Failures[j].Check {
			return r.Failures[i].Check < r.Failures[j].Check
		}
		return r.Failures[i].Subject < r.Failures[j].Subject
	})
	return r, ctx.Err()
}

// verifyLayout checks that every manifest index.json names is in the
// bundle with its media type and size, and that every blob and child
// manifest it references is present (or, for a layer, left out by
// --metadata-only).
func (b *Bundle) verifyLayout(r *Report) {
	checked := map[digest.Digest]bool{}
	var walk func(d v1.Descriptor, of string, depth int)
	walk = func(d v1.Descriptor, of string, depth int) {
		dg := digest.Digest(d.Digest.String())
		if checked[dg] {
			return
		}
		checked[dg] = true
		body, err := b.readBlob(dg, MaxManifestBlobSize)
		if err != nil {
			r.fail(CheckLayout, of, "manifest %s: %v", dg, err)
			return
		}
		if int64(len(body)) != d.Size {
			r.fail(CheckLayout, of, "manifest %s is %d bytes, its descriptor says %d", dg, len(body), d.Size)
		}
		var m struct {
			MediaType string          `json:"mediaType"`
			Config    v1.Descriptor   `json:"config"`
			Layers    []v1.Descriptor `json:"layers"`
			Manifests []v1.Descriptor `json:"manifests"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			r.fail(CheckLayout, of, "manifest %s is not JSON: %v", dg, err)
			return
		}
		if m.MediaType != "" && m.MediaType != string(d.MediaType) {
			r.fail(CheckLayout, of, "manifest %s is a %s, its descriptor says %s", dg, m.MediaType, d.MediaType)
		}
		if depth > 4 {
			r.fail(CheckLayout, of, "manifests nested deeper than 4")
			return
		}
		need := func(x v1.Descriptor, what string, omittable bool) {
			xd := digest.Digest(x.Digest.String())
			if xd.Validate() != nil {
				r.fail(CheckLayout, of, "%s has an invalid digest %q", what, x.Digest)
				return
			}
			loc, ok := b.files[BlobPath(xd)]
			switch {
			case ok && loc.size != x.Size:
				r.fail(CheckLayout, of, "%s %s is %d bytes, its descriptor says %d", what, xd, loc.size, x.Size)
			case !ok && !(omittable && b.manifest.Request.MetadataOnly && b.omitted(xd)):
				r.fail(CheckLayout, of, "%s %s is not in the bundle", what, xd)
			}
		}
		if m.Config.Digest.Hex != "" {
			need(m.Config, "config", false)
		}
		for i, l := range m.Layers {
			need(l, fmt.Sprintf("layer %d", i+1), true)
		}
		for _, c := range m.Manifests {
			need(c, "child manifest", false)
			if _, ok := b.files[BlobPath(digest.Digest(c.Digest.String()))]; ok {
				walk(c, of, depth+1)
			}
		}
	}
	for _, d := range b.index.Manifests {
		walk(d, d.Annotations[AnnotationRepository]+"@"+d.Digest.String(), 0)
	}
}

// verifyAudit checks the checkpoint, every entry's inclusion and the
// consistency proof, and returns the entries that verified.
func (b *Bundle) verifyAudit(r *Report) []loggedEntry {
	cp, err := tlog.OpenCheckpoint(b.trust.Log.Key, []byte(b.audit.Checkpoint))
	if err != nil {
		r.fail(CheckCheckpoint, AuditPath, "%v", err)
		return nil
	}
	r.Checkpoint = LogRef{Origin: cp.Origin, Size: cp.Size, Root: hex.EncodeToString(cp.Root)}
	if r.Checkpoint != b.manifest.Log {
		r.fail(CheckCheckpoint, AuditPath, "the checkpoint (size %d, root %s) is not the one manifest.json names (size %d, root %s)", cp.Size, r.Checkpoint.Root, b.manifest.Log.Size, b.manifest.Log.Root)
	}
	latest, err := tlog.OpenCheckpoint(b.trust.Log.Key, []byte(b.audit.Latest))
	if err != nil {
		r.fail(CheckConsistency, AuditPath, "latest checkpoint: %v", err)
	} else if err := tlog.VerifyConsistency(cp, latest, b.audit.Consistency); err != nil {
		r.fail(CheckConsistency, AuditPath, "%v", err)
	}
	var out []loggedEntry
	prev := int64(-1)
	for _, e := range b.audit.Entries {
		subject := fmt.Sprintf("index %d", e.Index)
		if int64(e.Index) <= prev {
			r.fail(CheckAuditEntry, subject, "entries are not in increasing index order")
		}
		prev = int64(e.Index)
		parsed, err := tlog.ParseEntry([]byte(e.Entry))
		if err != nil {
			r.fail(CheckAuditEntry, subject, "%v", err)
			continue
		}
		if err := tlog.VerifyInclusion(cp, e.Index, []byte(e.Entry), e.Inclusion); err != nil {
			r.fail(CheckAuditEntry, subject, "%v", err)
			continue
		}
		r.AuditEntries++
		out = append(out, loggedEntry{index: e.Index, Entry: parsed})
	}
	return out
}

type loggedEntry struct {
	index uint64
	tlog.Entry
}

// chainRecord is a promotion record that counts, with the audit entry
// that logged it.
type chainRecord struct {
	evidence.Record
	index *uint64
}

// checkArtifact compares the evidence recomputed from the bundle with
// what the summary claims, and returns the artifact's promotion records.
func (b *Bundle) checkArtifact(r *Report, a Artifact, set *evidence.Set, entries []loggedEntry) []chainRecord {
	id := a.Repository + "@" + a.Digest
	ar := ArtifactReport{Repository: a.Repository, Digest: a.Digest}
	trusted := set.TrustedSignatures()
	ar.Signatures = len(trusted)
	for _, s := range set.Signatures {
		if !s.Trusted() {
			r.fail(CheckSignature, id, "signature by key %s (in %s) does not count: %v", s.KeyID, s.Container, s.Err)
		}
	}
	for _, claim := range a.Signatures {
		if !slices.ContainsFunc(trusted, func(s evidence.Signature) bool {
			return s.KeyID == claim.KeyID && s.SignedAt.Equal(claim.SignedAt) && string(s.Source) == claim.Source
		}) {
			detail := "no such signature verifies in the bundle"
			if set.SignatureErr != nil {
				detail += " (" + set.SignatureErr.Error() + ")"
			}
			r.fail(CheckSignature, id, "the summary claims a %s signature by key %s: %s", claim.Source, claim.KeyID, detail)
		}
	}
	if set.AttestationErr != nil {
		r.fail(CheckAttestation, id, "attestations unreadable: %v", set.AttestationErr)
	}
	var trustedAtt []evidence.Attestation
	for _, at := range set.Attestations {
		if !at.Trusted() {
			what := at.PredicateType
			if what == "" {
				what = "attestation"
			}
			r.fail(CheckAttestation, id, "%s does not verify: %v", what, at.Err)
			continue
		}
		trustedAtt = append(trustedAtt, at)
	}
	ar.Attestations = len(trustedAtt)
	for _, claim := range a.Attestations {
		if !slices.ContainsFunc(trustedAtt, func(at evidence.Attestation) bool {
			return at.PredicateType == claim.PredicateType && at.KeyID == claim.KeyID
		}) {
			r.fail(CheckAttestation, id, "the summary claims a %s attestation by key %s that does not verify in the bundle", claim.PredicateType, claim.KeyID)
		}
	}
	if a.Source != nil && !slices.ContainsFunc(trustedAtt, func(at evidence.Attestation) bool {
		return at.Provenance != nil && *SourceOf(at.Provenance) == *a.Source
	}) {
		r.fail(CheckAttestation, id, "the summary says it was built from %s at commit %s by %s; no trusted provenance in the bundle says so", a.Source.Repository, a.Source.Commit, a.Source.Builder)
	}
	var out []chainRecord
	for _, p := range set.Promotions {
		if p.Repository != a.Repository || p.Digest != a.Digest {
			r.fail(CheckPromotionChain, id, "a promotion record names %s@%s", p.Repository, p.Digest)
			continue
		}
		cr := chainRecord{Record: p}
		for _, e := range entries {
			if e.Result == "ok" && (e.Action == "promote" || e.Action == "rollback") && e.Repo == p.Repository && e.Digest == p.Digest && e.Tag == p.Environment {
				cr.index = &e.index
				if t, err := time.Parse(tlog.TimeFormat, e.Time); err == nil && !t.Before(p.At.Truncate(time.Second)) {
					break
				}
			}
		}
		out = append(out, cr)
	}
	ar.Promotions = len(out)
	for _, claim := range a.Promotions {
		if !slices.ContainsFunc(set.Promotions, func(p evidence.Record) bool {
			return p.Environment == claim.Environment && p.At.Equal(claim.At) && p.By == claim.By && p.Rollback == claim.Rollback
		}) {
			r.fail(CheckPromotionChain, id, "the summary claims a promotion to %s at %s by %s that no record in the bundle proves", claim.Environment, claim.At.Format(time.RFC3339), claim.By)
		}
	}
	// An environment's bundle proves what ran there at its instant: each
	// artifact ran there, since no later than that instant.
	if q := b.manifest.Request; q.Environment != "" {
		i := slices.IndexFunc(a.Environments, func(d Deployment) bool { return d.Environment == q.Environment })
		switch {
		case i < 0:
			r.fail(CheckPromotionChain, id, "the bundle is for what ran in %s, and the summary does not say it ran in %s", q.Environment, q.Environment)
		case !q.At.IsZero() && a.Environments[i].Since.After(q.At):
			r.fail(CheckPromotionChain, id, "it ran in %s only since %s, after the bundle's instant %s", q.Environment,
				a.Environments[i].Since.Format(time.RFC3339), q.At.UTC().Format(time.RFC3339))
		}
	}
	for _, dep := range a.Environments {
		if !slices.ContainsFunc(set.Promotions, func(p evidence.Record) bool {
			return p.Environment == dep.Environment && p.At.Equal(dep.Since)
		}) {
			r.fail(CheckPromotionChain, id, "the summary says it ran in %s since %s; no promotion record in the bundle proves it", dep.Environment, dep.Since.Format(time.RFC3339))
		}
		if dep.AuditIndex != nil && !slices.ContainsFunc(entries, func(e loggedEntry) bool {
			return e.index == *dep.AuditIndex && e.Result == "ok" && (e.Action == "promote" || e.Action == "rollback") &&
				e.Repo == a.Repository && e.Digest == a.Digest && e.Tag == dep.Environment
		}) {
			r.fail(CheckPromotionChain, id, "the summary names audit entry %d for its promotion to %s, which the bundle does not prove", *dep.AuditIndex, dep.Environment)
		}
	}
	for _, claim := range a.Approvals {
		if !slices.ContainsFunc(set.Approvals, func(p evidence.Approval) bool {
			return p.Environment == claim.Environment && p.At.Equal(claim.At) && p.By == claim.By
		}) {
			r.fail(CheckAttestation, id, "the summary claims an approval for %s by %s that no record in the bundle proves", claim.Environment, claim.By)
		}
	}
	for _, rv := range set.Revocations {
		r.Revocations = append(r.Revocations, Revoked{Repository: a.Repository, Digest: a.Digest, By: rv.By, Reason: rv.Reason, At: rv.At})
		ar.Revoked = true
	}
	if len(a.Revocations) != len(set.Revocations) {
		r.fail(CheckAttestation, id, "the summary lists %d revocation(s), the bundle proves %d", len(a.Revocations), len(set.Revocations))
	}
	r.Artifacts = append(r.Artifacts, ar)
	return out
}

// SourceOf is what a SLSA provenance says about the build: the source
// repository, the first git commit it resolved, the builder.
func SourceOf(p *provenance.Predicate) *Source {
	src := &Source{Repository: p.SourceURI(), Builder: p.RunDetails.Builder.ID}
	for _, d := range p.BuildDefinition.ResolvedDependencies {
		if c := d.Digest["gitCommit"]; c != "" {
			src.Commit = c
			break
		}
	}
	return src
}

// checkChains checks, per repository and environment, that the
// promotion records follow each other (each names the digest of the one
// before as its previous, when that one is in the bundle) and that the
// audit log recorded them in the same order.
func checkChains(r *Report, records []chainRecord) {
	by := map[string][]chainRecord{}
	for _, c := range records {
		k := c.Repository + " " + c.Environment
		by[k] = append(by[k], c)
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cs := by[k]
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].At.Before(cs[j].At) })
		subject := strings.Replace(k, " ", " in ", 1)
		for i, c := range cs {
			if c.index == nil {
				r.fail(CheckPromotionChain, subject, "the promotion of %s at %s has no audit entry in the bundle", c.Digest, c.At.Format(time.RFC3339))
				continue
			}
			if i == 0 {
				continue
			}
			p := cs[i-1]
			if c.Previous != "" && c.Previous != p.Digest {
				r.fail(CheckPromotionChain, subject, "the promotion of %s at %s follows %s, not %s as its record says", c.Digest, c.At.Format(time.RFC3339), p.Digest, c.Previous)
			}
			if p.index != nil && *p.index >= *c.index {
				r.fail(CheckPromotionChain, subject, "the audit log recorded the promotion of %s (index %d) before that of %s (index %d), against the records' times", c.Digest, *c.index, p.Digest, *p.index)
			}
		}
	}
}

// checkRefs checks that a bundle of named artifacts holds exactly what
// its request names: each REPOSITORY@DIGEST, an artifact of REPOSITORY
// tagged TAG for each REPOSITORY:TAG, and nothing else.
func (b *Bundle) checkRefs(r *Report) {
	refs := b.manifest.Request.Refs
	if len(refs) == 0 {
		return
	}
	named := map[int]bool{}
	for _, ref := range refs {
		i := -1
		if repo, d, ok := strings.Cut(ref, "@"); ok {
			i = slices.IndexFunc(b.summary.Artifacts, func(a Artifact) bool { return a.Repository == repo && a.Digest == d })
		} else if j := strings.LastIndex(ref, ":"); j > 0 {
			repo, tag := ref[:j], ref[j+1:]
			i = slices.IndexFunc(b.summary.Artifacts, func(a Artifact) bool { return a.Repository == repo && slices.Contains(a.Tags, tag) })
		}
		if i < 0 {
			r.fail(CheckSummary, ref, "the bundle was exported for %s, which it does not hold", ref)
			continue
		}
		named[i] = true
	}
	for i, a := range b.summary.Artifacts {
		if !named[i] {
			r.fail(CheckSummary, a.Repository+"@"+a.Digest, "the bundle holds an artifact its request does not name")
		}
	}
}

// checkPushed checks the summary's push claim against the audit entry
// it names.
func checkPushed(r *Report, a Artifact, entries []loggedEntry) {
	if a.Pushed == nil {
		return
	}
	id := a.Repository + "@" + a.Digest
	for _, e := range entries {
		if e.index != a.Pushed.AuditIndex {
			continue
		}
		t, err := time.Parse(tlog.TimeFormat, e.Time)
		if err != nil || e.Action != "manifest.put" || e.Result != "ok" || e.Repo != a.Repository || e.Digest != a.Digest ||
			e.Actor != a.Pushed.By || !t.Equal(a.Pushed.At) {
			r.fail(CheckSummary, id, "the summary says %s pushed it at %s, audit entry %d says otherwise", a.Pushed.By, a.Pushed.At.Format(time.RFC3339), e.index)
		}
		return
	}
	r.fail(CheckSummary, id, "the summary names audit entry %d for its push, which the bundle does not prove", a.Pushed.AuditIndex)
}

// checkEntriesAbout checks that every audit entry is about a manifest of
// the bundle in the repository it was exported from (the same digest in
// another repository is another repository's history).
func (b *Bundle) checkEntriesAbout(r *Report, entries []loggedEntry) {
	t := &transport{b: b}
	t.once.Do(t.build)
	for _, e := range entries {
		rv := t.repo[e.Repo]
		if rv != nil {
			if _, ok := rv.manifests[digest.Digest(e.Digest)]; ok {
				continue
			}
		}
		r.fail(CheckAuditEntry, fmt.Sprintf("index %d", e.index), "is about %s@%s, which the bundle does not hold", e.Repo, e.Digest)
	}
}

// ErrFailed is returned by callers that turn a failed Report into an
// error (custody verify --bundle, import).
var ErrFailed = errors.New("the evidence bundle does not verify")
