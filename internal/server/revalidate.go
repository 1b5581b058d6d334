package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/promotion/promotionhttp"
	"github.com/custody-dev/custody/internal/scrub"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/tlog"
)

// revalidation makes scrub re-verify the signatures and attestations of
// stored artifacts against the archived trust root: the key ring's
// trust-root history (internal/key, Archive) plus promotion.trustRoot,
// read through the server's internal registry.
type revalidation struct {
	ring   *key.Ring
	extra  string // promotion.trustRoot
	remote []remote.Option
	host   string
	audit  audit.Auditor
	tl     *tlog.Log
	log    *slog.Logger
	// reported holds the failures the last run recorded in the audit
	// log, so a failure that persists is recorded once, not every run.
	// Guarded by maintenance.scrubMu.
	reported map[string]bool
}

// prepare archives the ring's trust root (recording a new version in the
// audit log) and sets sc up to re-verify evidence against it. It leaves
// sc alone when there is no key to verify against.
func (rv *revalidation) prepare(ctx context.Context, sc *scrub.Scrubber) error {
	keys, err := rv.ring.List()
	if err != nil {
		return fmt.Errorf("reading the key ring: %w", err)
	}
	hist, err := rv.ring.History()
	if err != nil {
		return err
	}
	if len(keys) == 0 && len(hist) == 0 && rv.extra == "" {
		return nil
	}
	own, _, err := rv.ring.Archive()
	if err != nil {
		if own.MediaType == "" {
			return err
		}
		rv.log.Warn("scrub: verifying against the trust-root history and the key ring as they are", "err", err)
	}
	if err := rv.anchor(ctx); err != nil {
		return err
	}
	trust, tr, err := promotionhttp.ServerTrust(own, rv.extra)
	if err != nil {
		return err
	}
	if hist, err = rv.ring.History(); err != nil {
		return err
	}
	if trust, err = trust.ExplainRevoked(key.RevokedKeys(hist)); err != nil {
		return err
	}
	if trust.Keys() == 0 {
		return nil
	}
	b, err := json.Marshal(tr)
	if err != nil {
		return err
	}
	sc.TrustRoot = fingerprint(b)
	sc.Revalidate = func(ctx context.Context, repo string, d digest.Digest) *evidence.Set {
		ref, err := name.NewDigest(rv.host+"/"+repo+"@"+d.String(), name.Insecure)
		if err != nil {
			return &evidence.Set{Digest: d.String(), SignatureErr: err}
		}
		ctx = identity.With(ctx, identity.Server)
		return evidence.Collect(ctx, ref, trust, sign.Options{Remote: append(slices.Clone(rv.remote), remote.WithContext(ctx))})
	}
	return nil
}

// anchor records each version of the ring's trust-root history that the
// audit log does not hold yet (found by its digest), so the history cannot
// be rewritten unnoticed: 'custody audit verify' proves the log, and each
// version's digest is in it.
func (rv *revalidation) anchor(ctx context.Context) error {
	vs, err := rv.ring.Versions()
	if err != nil {
		return err
	}
	for _, v := range vs {
		d, err := digest.Parse(v.Digest)
		if err != nil {
			return err
		}
		found, err := rv.tl.Search(ctx, tlog.Query{Digest: v.Digest, Limit: 1})
		if err != nil {
			return fmt.Errorf("searching the audit log: %w", err)
		}
		if len(found) > 0 {
			continue
		}
		rv.audit.Record(identity.With(ctx, identity.Server), audit.Event{Action: "trust-root.archive", Digest: d, Result: "ok",
			Reason: "trust-root history version recorded " + v.Generated.UTC().Format(time.RFC3339) + ": " + describeKeys(v.TrustRoot)})
	}
	return nil
}

// report logs what the run found and records each evidence failure not
// recorded by the previous run in the audit log.
func (rv *revalidation) report(ctx context.Context, rep *scrub.Report) {
	now := map[string]bool{}
	for _, f := range rep.EvidenceFailures {
		rv.log.Error("scrub: evidence no longer verifies", "repository", f.Repo, "artifact", f.Artifact, "kind", f.Kind,
			"evidence", f.Evidence, "predicateType", f.PredicateType, "keyId", f.KeyID, "reason", f.Reason)
		k := strings.Join([]string{f.Repo, string(f.Artifact), f.Kind, f.Evidence, f.Reason}, "\x00")
		now[k] = true
		if rv.reported[k] {
			continue
		}
		what := f.Kind
		if f.Evidence != "" {
			what += " " + f.Evidence
		}
		if f.PredicateType != "" {
			what += " (" + f.PredicateType + ")"
		}
		rv.audit.Record(identity.With(ctx, identity.Server), audit.Event{Action: promotion.ActionRevalidate, Repo: f.Repo, Digest: f.Artifact,
			Result: "invalid", Reason: what + " no longer verifies against trust root " + rep.TrustRoot + ": " + f.Reason})
	}
	rv.reported = now
	if n := len(rep.RetiredKeyEvidence); n > 0 {
		// One line, not one per item: after a rotation that is every
		// artifact the old key signed (the report lists them).
		rv.log.Info("scrub: evidence verifies with a retired key (listed in the report's retiredKeyEvidence)", "count", n, "trustRoot", rep.TrustRoot)
	}
}

// fingerprint names a trust root by the SHA-256 of its JSON.
func fingerprint(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// describeKeys lists a trust root's keys with their status and window.
func describeKeys(tr key.TrustRoot) string {
	if len(tr.Keys) == 0 {
		return "no key"
	}
	var parts []string
	for _, k := range tr.Keys {
		end := "open"
		if !k.ValidFor.End.IsZero() {
			end = k.ValidFor.End.UTC().Format(time.RFC3339)
		}
		parts = append(parts, fmt.Sprintf("%s %s %s..%s", k.ID, k.Status, k.ValidFor.Start.UTC().Format(time.RFC3339), end))
	}
	return strings.Join(parts, ", ")
}
