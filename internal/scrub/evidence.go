package scrub

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/sign"
)

// Collector reads and verifies the evidence (signatures and attestations)
// of one artifact against the archived trust root: evidence.Collect over
// the server's registry.
type Collector func(ctx context.Context, repo string, d digest.Digest) *evidence.Set

// The kinds of evidence a finding is about.
const (
	EvidenceSignature   = "signature"
	EvidenceAttestation = "attestation"
)

// EvidenceFinding is one piece of evidence about a stored artifact that no
// longer verifies (or, in RetiredKeyEvidence, that verifies with a retired
// key only).
type EvidenceFinding struct {
	Repo     string        `json:"repository"`
	Artifact digest.Digest `json:"artifact"`
	Kind     string        `json:"kind"`
	// Evidence is the digest of the .sig or .att image or the referrer
	// manifest that holds it ("" when the evidence could not be read).
	Evidence      string `json:"evidence,omitempty"`
	PredicateType string `json:"predicateType,omitempty"`
	KeyID         string `json:"keyId,omitempty"`
	Reason        string `json:"reason"`
}

// evidenceTag matches the tags cosign v2 keeps signatures and attestations
// under: sha256-<hex>.sig and sha256-<hex>.att.
var evidenceTag = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^sha256-([0-9a-f]{64})\.(sig|att)$`) })

// artifact is one stored manifest that has evidence.
type artifact struct {
	repo string
	d    digest.Digest
}

// withEvidence returns the artifacts in the subset that have signatures or
// attestations (a referrer, or a .sig/.att tag) and are in their
// repository, sorted.
func withEvidence(manifests []meta.Manifest, tags []artifact, records map[string]bool, sub Subset) []artifact {
	seen := map[artifact]bool{}
	add := func(a artifact) {
		if records[a.repo+"@"+a.d.String()] && sub.Contains(a.d) {
			seen[a] = true
		}
	}
	for _, m := range manifests {
		if m.Subject != "" {
			add(artifact{m.Repo, m.Subject})
		}
	}
	for _, t := range tags {
		add(t)
	}
	out := make([]artifact, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b artifact) int {
		if c := strings.Compare(a.repo, b.repo); c != 0 {
			return c
		}
		return strings.Compare(string(a.d), string(b.d))
	})
	return out
}

// revalidate re-verifies the evidence of each artifact and adds what no
// longer verifies, and what verifies with a retired key only, to rep.
func (s *Scrubber) revalidate(ctx context.Context, arts []artifact, rep *Report) error {
	for _, a := range arts {
		if err := ctx.Err(); err != nil {
			return err
		}
		set := s.Revalidate(ctx, a.repo, a.d)
		rep.ArtifactsRevalidated++
		fail := func(f EvidenceFinding) {
			f.Repo, f.Artifact = a.repo, a.d
			rep.EvidenceFailures = append(rep.EvidenceFailures, f)
		}
		retired := func(f EvidenceFinding) {
			f.Repo, f.Artifact = a.repo, a.d
			rep.RetiredKeyEvidence = append(rep.RetiredKeyEvidence, f)
		}
		for _, sg := range set.Signatures {
			rep.EvidenceChecked++
			f := EvidenceFinding{Kind: EvidenceSignature, Evidence: sg.Container, KeyID: sg.KeyID}
			switch {
			case !sg.Trusted():
				f.Reason = sg.Err.Error()
				fail(f)
			case sg.KeyStatus == key.Retired:
				f.Reason = "verifies with retired key " + sg.KeyID
				retired(f)
			}
		}
		for _, r := range set.Rejected {
			rep.EvidenceChecked++
			fail(EvidenceFinding{Kind: EvidenceSignature, Evidence: r.Container, Reason: r.Err.Error()})
		}
		if err := set.SignatureErr; err != nil && !errors.Is(err, sign.ErrNoSignature) && !errors.Is(err, sign.ErrNotVerified) {
			fail(EvidenceFinding{Kind: EvidenceSignature, Reason: fmt.Sprintf("reading the signatures: %v", err)})
		}
		for _, at := range set.Attestations {
			rep.EvidenceChecked++
			f := EvidenceFinding{Kind: EvidenceAttestation, Evidence: at.Container, PredicateType: at.PredicateType, KeyID: at.KeyID}
			switch {
			case !at.Trusted():
				f.Reason = at.Err.Error()
				fail(f)
			case at.KeyStatus == key.Retired:
				f.Reason = "verifies with retired key " + at.KeyID
				retired(f)
			}
		}
		if err := set.AttestationErr; err != nil {
			fail(EvidenceFinding{Kind: EvidenceAttestation, Reason: fmt.Sprintf("reading the attestations: %v", err)})
		}
	}
	return nil
}
