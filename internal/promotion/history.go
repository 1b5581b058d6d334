package promotion

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/tlog"
)

// The kinds of history events.
const (
	KindPush         = "push"
	KindTag          = "tag"
	KindSignature    = "signature"
	KindAttestation  = "attestation"
	KindPromotion    = "promotion"
	KindApproval     = "approval"
	KindRejection    = "rejection"
	KindRollback     = "rollback"
	KindVerification = "verification"
	KindAdmission    = "admission"
	KindHold         = "hold"
	KindRetention    = "retention"
	KindRevocation   = "revocation"
)

// The audit actions of the decisions the server records about a digest
// when asked (the promotion handler records them).
const (
	// ActionVerify: a deploy-time check (custody verify --env).
	ActionVerify = "verify"
	// ActionAdmission: one image's admission webhook decision.
	ActionAdmission = "admission"
	// ActionRevalidate: evidence about the digest that scrub found no
	// longer verifies against the archived trust root.
	ActionRevalidate = "evidence.revalidate"
)

// PromotedReason and ApprovalReason are the reasons of the audit entries
// (action promote) of a promotion and of an approval that does not
// promote yet; Approval tells them apart.
func PromotedReason(env, previous, reason string) string {
	if previous == "" {
		previous = "nothing"
	}
	return fmt.Sprintf("to %s (was %s): %s", env, previous, reason)
}

// ApprovalReason: see PromotedReason.
func ApprovalReason(approvers, needed int, env string) string {
	return fmt.Sprintf("approval %d of %d for %s", approvers, needed, env)
}

// Approval reports whether a promote audit entry's reason is an
// approval's (ApprovalReason).
func Approval(reason string) bool { return strings.HasPrefix(reason, "approval ") }

// Event is one thing that happened to a digest, as the audit log records
// it.
type Event struct {
	Kind   string    `json:"kind"`
	Time   time.Time `json:"time"`
	Action string    `json:"action"` // the audit entry's action
	Actor  string    `json:"actor"`
	Result string    `json:"result"`
	Tag    string    `json:"tag,omitempty"`
	Reason string    `json:"reason,omitempty"`
	// Digest is the entry's digest when it is another manifest's: a
	// signature or attestation stored about the artifact.
	Digest string `json:"digest,omitempty"`
	// PredicateType says what a signature or attestation stored as an
	// OCI referrer is.
	PredicateType string `json:"predicateType,omitempty"`
	AuditIndex    uint64 `json:"auditIndex"`
}

// History is every event about one digest, in audit-log order.
type History struct {
	Repository string  `json:"repository"`
	Digest     string  `json:"digest"`
	Events     []Event `json:"events"`
	// Truncated says more than MaxHistoryEvents entries were found: Events
	// holds the oldest MaxHistoryEvents (the audit search, GET
	// /api/v1/audit/search?digest=&since=, pages through the rest).
	Truncated bool `json:"truncated,omitempty"`
}

// MaxHistoryEvents caps the events of one History, as the audit search
// caps its answers (tlog.MaxEntries): a digest an admission webhook sees
// for every pod start gathers entries without end.
const MaxHistoryEvents = tlog.MaxEntries

// History returns every audit-log entry about repo@dgst, in log order
// (the order things happened): its push, tag moves, the signatures and
// attestations stored about it (the cosign sha256-<hex>.sig/.att tags and
// the OCI referrers of the digest), the server's signatures and
// attestations, promotions, approvals, rollbacks, revocations,
// deploy-time verifications, admission decisions, holds and retention.
func (s *Service) History(ctx context.Context, repo, dgst string) (History, error) {
	h := History{Repository: repo, Digest: dgst, Events: []Event{}}
	if s.Audit == nil {
		return h, errors.New("promotion: no audit log to read the history from")
	}
	d, err := s.ref(repo, dgst)
	if err != nil {
		return h, err
	}
	// What is stored about the digest as OCI referrers, by manifest.
	referrers := map[string]string{}
	if idx, err := remote.Referrers(d, s.opts(ctx).Remote...); err == nil {
		if m, err := idx.IndexManifest(); err == nil {
			for _, r := range m.Manifests {
				referrers[r.Digest.String()] = r.Annotations[sign.BundlePredicateTypeAnnotation]
			}
		}
	}
	cosignTag := strings.Replace(dgst, ":", "-", 1) + "."
	// The entries are read by digest (the artifact's, its referrers' and
	// every manifest its cosign tags named), never the whole
	// repository's log, each search capped: memory stays bounded
	// however long the repository's history is.
	digests := []string{dgst}
	for r := range referrers {
		digests = append(digests, r)
	}
	if s.Tags != nil {
		for _, suffix := range []string{"sig", "att"} {
			hist, err := s.Tags.TagHistory(ctx, repo, cosignTag+suffix)
			if err != nil {
				return h, fmt.Errorf("tag history of %s:%s: %w", repo, cosignTag+suffix, err)
			}
			for _, e := range hist {
				digests = append(digests, e.Digest.String())
			}
		}
	}
	slices.Sort(digests)
	digests = slices.Compact(digests)
	var leaves []tlog.Leaf
	for _, d := range digests {
		found, err := s.Audit.Search(ctx, tlog.Query{Repo: repo, Digest: d, Limit: MaxHistoryEvents + 1})
		if err != nil {
			return h, fmt.Errorf("searching the audit log: %w", err)
		}
		leaves = append(leaves, found...)
	}
	slices.SortFunc(leaves, func(a, b tlog.Leaf) int { return cmp.Compare(a.Index, b.Index) })
	leaves = slices.CompactFunc(leaves, func(a, b tlog.Leaf) bool { return a.Index == b.Index })
	for _, l := range leaves {
		if len(h.Events) == MaxHistoryEvents {
			h.Truncated = true
			break
		}
		e, err := tlog.ParseEntry(l.Entry)
		if err != nil {
			continue
		}
		ev := Event{Action: e.Action, Actor: e.Actor, Result: e.Result, Tag: e.Tag, Reason: e.Reason, AuditIndex: l.Index}
		ev.Time, _ = time.Parse(time.RFC3339Nano, e.Time)
		pt, referrer := referrers[e.Digest]
		switch {
		case e.Digest == dgst:
			ev.Kind = kindOf(e)
		case referrer && e.Action == "manifest.put":
			ev.Kind, ev.Digest, ev.PredicateType = KindAttestation, e.Digest, pt
			if pt == sign.CosignSignPredicateType {
				ev.Kind = KindSignature
			}
		case strings.HasPrefix(e.Tag, cosignTag) && strings.HasPrefix(e.Action, "tag."):
			ev.Kind, ev.Digest = KindAttestation, e.Digest
			if strings.HasSuffix(e.Tag, ".sig") {
				ev.Kind = KindSignature
			}
		default:
			continue
		}
		h.Events = append(h.Events, ev)
	}
	return h, nil
}

// kindOf names what an audit entry about the digest itself records.
func kindOf(e tlog.Entry) string {
	switch a := e.Action; {
	case a == "manifest.put":
		return KindPush
	case strings.HasPrefix(a, "tag."):
		return KindTag
	case a == "sign":
		return KindSignature
	case a == "sbom", a == "provenance", a == "scan":
		return KindAttestation
	case a == "promote" && Approval(e.Reason):
		return KindApproval
	case a == "promote":
		return KindPromotion
	case a == "reject":
		return KindRejection
	case a == "rollback":
		return KindRollback
	case a == "revoke":
		return KindRevocation
	case a == ActionVerify, a == "gate.violation", a == ActionRevalidate:
		return KindVerification
	case a == ActionAdmission:
		return KindAdmission
	case strings.HasPrefix(a, "hold."):
		return KindHold
	case strings.HasPrefix(a, "retention."):
		return KindRetention
	}
	return e.Action
}
