// Package scrub checks the integrity of a custody store: it re-hashes
// stored blobs and manifests and checks every reference (repository link →
// blob, manifest → blobs, index → manifests, referrer → subject, tag →
// manifest), and, given a Collector, re-verifies the signatures and
// attestations of stored artifacts against the archived trust root. It
// only reads, so it is safe while a server writes the same store. See
// docs/maintenance.md.
package scrub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/meta"
)

// Store is the metadata scrub reads. Each method reads one snapshot.
type Store interface {
	// ScrubLinks calls fn for every blob linked into a repository.
	ScrubLinks(ctx context.Context, fn func(repo string, d digest.Digest, size int64) error) error
	// ScrubManifests calls fn for every manifest record, with Repo,
	// Digest, Size, MediaType, Subject, Blobs and Manifests filled.
	ScrubManifests(ctx context.Context, fn func(m meta.Manifest) error) error
	// ScrubTags calls fn for every tag.
	ScrubTags(ctx context.Context, fn func(repo, tag string, d digest.Digest) error) error
}

// Subset selects the blobs whose content is re-hashed: bucket N (1-based)
// of T, by digest. The zero value selects every blob.
type Subset struct{ N, T uint32 }

// ParseSubset parses restic's "n/t" notation.
func ParseSubset(s string) (Subset, error) {
	a, b, ok := strings.Cut(s, "/")
	n, err1 := strconv.ParseUint(a, 10, 32)
	t, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil || t == 0 || n == 0 || n > t {
		return Subset{}, fmt.Errorf("read-data-subset %q: use n/t with 1 <= n <= t (e.g. 1/7)", s)
	}
	return Subset{N: uint32(n), T: uint32(t)}, nil
}

// Contains reports whether d's bucket is selected.
func (s Subset) Contains(d digest.Digest) bool {
	if s.T <= 1 {
		return true
	}
	enc := d.Encoded()
	if len(enc) < 8 {
		return true
	}
	v, err := strconv.ParseUint(enc[:8], 16, 32)
	if err != nil {
		return true
	}
	return uint32(v)%s.T == s.N-1
}

// Problem kinds.
const (
	// KindDamaged: stored bytes do not hash to their digest, or their size
	// differs from what the metadata records.
	KindDamaged = "damaged"
	// KindMissing: something references content that is not stored.
	KindMissing = "missing"
	// KindMissingManifest: an index or a tag names a manifest the
	// repository does not hold.
	KindMissingManifest = "missing-manifest"
)

// Problem is one damaged or missing object.
type Problem struct {
	Kind   string        `json:"kind"`
	Digest digest.Digest `json:"digest"`
	// Repos are the repositories that link or reference the object.
	Repos  []string `json:"repositories"`
	Detail string   `json:"detail"`
}

// Warning is a finding that is legal but worth knowing, such as a referrer
// whose subject is absent (OCI allows pushing referrers first).
type Warning struct {
	Digest digest.Digest `json:"digest"`
	Repo   string        `json:"repository"`
	Detail string        `json:"detail"`
}

// Report is the result of one scrub.
type Report struct {
	Started      time.Time `json:"started"`
	Duration     string    `json:"duration"`
	Subset       string    `json:"subset"`
	Blobs        int       `json:"blobs"`
	BlobsHashed  int       `json:"blobsHashed"`
	BytesHashed  int64     `json:"bytesHashed"`
	Manifests    int       `json:"manifests"`
	Tags         int       `json:"tags"`
	Links        int       `json:"links"`
	Problems     []Problem `json:"problems"`
	Warnings     []Warning `json:"warnings"`
	DamagedCount int       `json:"damagedObjects"`

	// Evidence revalidation (only with a Collector): the archived trust
	// root used (sha256 of its JSON), the artifacts whose evidence was
	// re-verified and how many signatures and attestations they hold.
	TrustRoot            string `json:"trustRoot,omitempty"`
	ArtifactsRevalidated int    `json:"artifactsRevalidated"`
	EvidenceChecked      int    `json:"evidenceChecked"`
	// EvidenceFailures is the evidence that no longer verifies.
	EvidenceFailures []EvidenceFinding `json:"evidenceFailures"`
	// RetiredKeyEvidence is the evidence that verifies with a retired key
	// (informational: rotation is not compromise).
	RetiredKeyEvidence []EvidenceFinding `json:"retiredKeyEvidence"`
}

// OK reports whether nothing was found damaged or missing, and all the
// evidence re-verified still verifies.
func (r *Report) OK() bool { return len(r.Problems) == 0 && len(r.EvidenceFailures) == 0 }

// Scrubber checks one pair of stores.
type Scrubber struct {
	Blobs  blob.Store
	Meta   Store
	Subset Subset
	// Revalidate, when set, re-verifies the signatures and attestations
	// of every artifact in the Subset that has any; TrustRoot names the
	// trust root it verifies against in the report.
	Revalidate Collector
	TrustRoot  string
	// Now returns the current time (tests may replace it).
	Now func() time.Time
}

// Run scrubs the store. It returns an error only when it cannot read the
// stores; damage goes into the report.
func (s *Scrubber) Run(ctx context.Context) (*Report, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	start := now()
	rep := &Report{Started: start.UTC(), Subset: "all", Problems: []Problem{}, Warnings: []Warning{},
		TrustRoot: s.TrustRoot, EvidenceFailures: []EvidenceFinding{}, RetiredKeyEvidence: []EvidenceFinding{}}
	if s.Subset.T > 1 {
		rep.Subset = fmt.Sprintf("%d/%d", s.Subset.N, s.Subset.T)
	}

	// Who uses what, for reporting repositories.
	users := map[digest.Digest]map[string]bool{}
	use := func(d digest.Digest, repo string) {
		if users[d] == nil {
			users[d] = map[string]bool{}
		}
		users[d][repo] = true
	}
	type link struct {
		repo string
		d    digest.Digest
		size int64
	}
	var links []link
	if err := s.Meta.ScrubLinks(ctx, func(repo string, d digest.Digest, size int64) error {
		links = append(links, link{repo, d, size})
		use(d, repo)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("scrub: links: %w", err)
	}
	var manifests []meta.Manifest
	records := map[string]bool{} // repo + "@" + digest
	if err := s.Meta.ScrubManifests(ctx, func(m meta.Manifest) error {
		manifests = append(manifests, m)
		records[m.Repo+"@"+m.Digest.String()] = true
		use(m.Digest, m.Repo)
		for _, b := range m.Blobs {
			use(b, m.Repo)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("scrub: manifests: %w", err)
	}
	repos := func(d digest.Digest) []string {
		out := make([]string, 0, len(users[d]))
		for r := range users[d] {
			out = append(out, r)
		}
		sort.Strings(out)
		return out
	}
	problem := func(kind string, d digest.Digest, rs []string, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{Kind: kind, Digest: d, Repos: rs, Detail: fmt.Sprintf(format, args...)})
	}

	// Blob content: every stored blob in the subset, and every manifest.
	stored := map[digest.Digest]int64{}
	if err := s.Blobs.Walk(ctx, func(d digest.Digest, size int64) error {
		stored[d] = size
		return nil
	}); err != nil {
		return nil, fmt.Errorf("scrub: walk blobs: %w", err)
	}
	rep.Blobs = len(stored)
	isManifest := map[digest.Digest]bool{}
	for _, m := range manifests {
		isManifest[m.Digest] = true
	}
	damaged := map[digest.Digest]bool{}
	digests := make([]digest.Digest, 0, len(stored))
	for d := range stored {
		digests = append(digests, d)
	}
	slices.Sort(digests)
	for _, d := range digests {
		if !isManifest[d] && !s.Subset.Contains(d) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := s.hash(ctx, d)
		rep.BlobsHashed++
		rep.BytesHashed += n
		if errors.Is(err, blob.ErrNotFound) {
			delete(stored, d) // deleted meanwhile (GC); references are checked below
			continue
		}
		if err != nil {
			if !errors.Is(err, blob.ErrDigestMismatch) {
				return nil, fmt.Errorf("scrub: %w", err)
			}
			damaged[d] = true
			problem(KindDamaged, d, repos(d), "%v", err)
		}
	}

	// References.
	for _, l := range links {
		rep.Links++
		size, ok := stored[l.d]
		switch {
		case !ok:
			problem(KindMissing, l.d, []string{l.repo}, "linked into %s but not stored", l.repo)
		case size != l.size && !damaged[l.d]:
			problem(KindDamaged, l.d, []string{l.repo}, "stored size %d, linked as %d bytes", size, l.size)
		}
	}
	for _, m := range manifests {
		rep.Manifests++
		size, ok := stored[m.Digest]
		switch {
		case !ok:
			problem(KindMissing, m.Digest, []string{m.Repo}, "manifest content not stored")
		case size != m.Size && !damaged[m.Digest]:
			problem(KindDamaged, m.Digest, []string{m.Repo}, "manifest stored with %d bytes, recorded as %d", size, m.Size)
		}
		for _, b := range m.Blobs {
			if _, ok := stored[b]; !ok {
				problem(KindMissing, b, []string{m.Repo}, "referenced by manifest %s but not stored", m.Digest)
			}
		}
		for _, c := range m.Manifests {
			if !records[m.Repo+"@"+c.String()] {
				problem(KindMissingManifest, c, []string{m.Repo}, "referenced by index %s but not in the repository", m.Digest)
			}
		}
		if m.Subject != "" && !records[m.Repo+"@"+m.Subject.String()] {
			rep.Warnings = append(rep.Warnings, Warning{Digest: m.Digest, Repo: m.Repo,
				Detail: fmt.Sprintf("subject %s is not in the repository", m.Subject)})
		}
	}
	var evidenceTags []artifact
	if err := s.Meta.ScrubTags(ctx, func(repo, tag string, d digest.Digest) error {
		rep.Tags++
		if m := evidenceTag().FindStringSubmatch(tag); m != nil && s.Revalidate != nil {
			evidenceTags = append(evidenceTags, artifact{repo, digest.NewDigestFromEncoded(digest.SHA256, m[1])})
		}
		if !records[repo+"@"+d.String()] {
			problem(KindMissingManifest, d, []string{repo}, "tag %s points at a manifest not in the repository", tag)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("scrub: tags: %w", err)
	}
	if s.Revalidate != nil {
		if err := s.revalidate(ctx, withEvidence(manifests, evidenceTags, records, s.Subset), rep); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Digest < rep.Problems[j].Digest })
	seen := map[digest.Digest]bool{}
	for _, p := range rep.Problems {
		seen[p.Digest] = true
	}
	rep.DamagedCount = len(seen)
	rep.Duration = now().Sub(start).String()
	return rep, nil
}

// hash re-reads blob d and returns how many bytes it read, and an error
// wrapping blob.ErrDigestMismatch if they do not hash to d.
func (s *Scrubber) hash(ctx context.Context, d digest.Digest) (int64, error) {
	f, _, err := s.Blobs.Open(ctx, d)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := d.Algorithm().Hash()
	n, err := io.Copy(h, f)
	if err != nil {
		return n, fmt.Errorf("reading %s: %w", d, err)
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		return n, fmt.Errorf("%w: stored content hashes to %s", blob.ErrDigestMismatch, got)
	}
	return n, nil
}
