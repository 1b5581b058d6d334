package promotion_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/gate/spec"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/sign"
)

var (
	windowStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	windowEnd   = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
)

type fixture struct {
	host   string
	ci     evidencetest.Key // retired: valid from windowStart to windowEnd
	server evidencetest.Key
	svc    *promotion.Service
}

// newFixture runs a registry and a promotion service for apps/** with dev
// (gate: signed by the CI key) and prod (the same gate, two approvals).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	host, store := evidencetest.RegistryStore(t)
	f := &fixture{host: host,
		ci:     evidencetest.NewKey(t, windowStart, windowEnd),
		server: evidencetest.NewKey(t, windowStart, time.Time{})}
	g, err := gate.Compile(spec.Gate{Rules: []spec.Rule{{Use: gate.RuleSignedByTrustedKey, Params: spec.Params{Keys: []string{f.ci.ID()}}}}})
	if err != nil {
		t.Fatal(err)
	}
	trust, err := evidence.NewTrust(evidencetest.Root(f.ci, f.server))
	if err != nil {
		t.Fatal(err)
	}
	f.svc = &promotion.Service{
		Projects: []promotion.Project{{Repositories: "apps/**", Environments: []promotion.Environment{
			{Name: "dev", Gate: g}, {Name: "prod", Gate: g, Approvals: 2}}}},
		Host: f.host, Signer: f.server,
		Trust: trust.RecordsOnlyBy(f.server.ID()),
		Tags:  store,
	}
	return f
}

// signed pushes apps/web signed by the CI key, claiming signedAt.
func (f *fixture) signed(t *testing.T, signedAt time.Time) name.Digest {
	t.Helper()
	d := evidencetest.Push(t, f.host, "apps/web")
	evidencetest.Sign(t, d, f.ci, signedAt.Format(time.RFC3339))
	return d
}

func (f *fixture) current(t *testing.T, env string) string {
	t.Helper()
	cur, _ := f.svc.Current(context.Background(), "apps/web", env)
	return cur
}

func ruleFailed(res gate.Result, name string) bool {
	return slices.ContainsFunc(res.Failed(), func(r gate.RuleResult) bool { return r.Name == name })
}

// TestGateKeyValidity: the gate counts a signature only when its key was
// valid at the signing time it claims, the rule custody verify applies.
func TestGateKeyValidity(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	inside := f.signed(t, windowEnd.Add(-time.Hour))
	res, facts, err := f.svc.Evaluate(ctx, "apps/web", inside.DigestStr(), "dev")
	if err != nil || !res.Pass || len(facts.Input.Signatures) != 2 || !facts.Input.Signatures[0].SignedAt.Equal(windowEnd.Add(-time.Hour)) {
		t.Fatalf("inside the window: %v %+v %+v", err, res, facts.Input.Signatures)
	}
	if _, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: inside.DigestStr(), Environment: "dev"}, "rel"); err != nil {
		t.Fatal(err)
	}

	outside := f.signed(t, windowEnd.Add(time.Hour))
	res, facts, err = f.svc.Evaluate(ctx, "apps/web", outside.DigestStr(), "dev")
	if err != nil || res.Pass || !ruleFailed(res, gate.RuleSignedByTrustedKey) || len(facts.Input.Signatures) != 0 {
		t.Fatalf("outside the window: %v %+v %+v", err, res, facts.Input.Signatures)
	}
	if len(facts.Evidence.Signatures) != 2 || !strings.Contains(facts.Evidence.Signatures[0].Err.Error(), "not valid at") {
		t.Fatalf("evidence: %+v", facts.Evidence.Signatures)
	}
	out, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: outside.DigestStr(), Environment: "dev"}, "rel")
	if !errors.Is(err, promotion.ErrGate) || out.Promoted {
		t.Fatalf("promote outside the window: %v %+v", err, out)
	}
	if cur := f.current(t, "dev"); cur != inside.DigestStr() {
		t.Fatalf("a refused promotion moved dev to %s", cur)
	}
}

// TestApprovalsAndRevocation: prod needs two distinct approvers; only the
// server's records count; a revocation refuses promotion and rollback.
func TestApprovalsAndRevocation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	d := f.signed(t, windowStart.Add(time.Hour))
	req := promotion.Request{Repository: "apps/web", Digest: d.DigestStr(), Environment: "prod"}
	for _, by := range []string{"rel1", "rel1"} {
		out, err := f.svc.Promote(ctx, req, by)
		if err != nil || !out.Pending || out.Promoted || len(out.Approvers) != 1 || out.Needed != 2 {
			t.Fatalf("approval by %s: %v %+v", by, err, out)
		}
	}
	if cur := f.current(t, "prod"); cur != "" {
		t.Fatalf("prod moved with one approver: %s", cur)
	}
	out, err := f.svc.Promote(ctx, req, "rel2")
	if err != nil || !out.Promoted || out.Record == nil || !slices.Equal(out.Record.Approvers, []string{"rel1", "rel2"}) {
		t.Fatalf("second approver: %v %+v", err, out)
	}
	facts, err := f.svc.Gather(ctx, "apps/web", d.DigestStr())
	if err != nil || len(facts.Promotions) != 1 || len(facts.Input.Promotions) != 1 || facts.Input.Promotions[0].Environment != "prod" {
		t.Fatalf("promotion records: %v %+v", err, facts)
	}
	if _, ok := facts.Input.Attestations[evidence.PredicatePromotion]; ok {
		t.Fatal("a gate sees the server's records as attestations")
	}

	// A revocation signed by a trusted key that is not the server's
	// counts for nothing.
	evidencetest.Attest(t, d, f.ci, evidence.PredicateRevocation, evidence.Revocation{By: "ci", Reason: "not mine to say", At: windowStart})
	if facts, err := f.svc.Gather(ctx, "apps/web", d.DigestStr()); err != nil || facts.Revoked != nil || facts.Input.Revoked {
		t.Fatalf("a revocation by a key of the trust root that is not the server's counted: %v %+v", err, facts.Revoked)
	}
	if err := f.svc.Revoke(ctx, "apps/web", d.DigestStr(), "admin", ""); err == nil {
		t.Fatal("a revocation without a reason was recorded")
	}
	if err := f.svc.Revoke(ctx, "apps/web", d.DigestStr(), "admin", "CVE-2026-0001"); err != nil {
		t.Fatal(err)
	}
	res, facts, err := f.svc.Evaluate(ctx, "apps/web", d.DigestStr(), "dev")
	if err != nil || res.Pass || !facts.Input.Revoked || facts.Revoked.Reason != "CVE-2026-0001" || !ruleFailed(res, gate.RuleNotRevoked) {
		t.Fatalf("revoked: %v %+v %+v", err, res, facts.Revoked)
	}
	if _, err := f.svc.Promote(ctx, promotion.Request{Repository: "apps/web", Digest: d.DigestStr(), Environment: "dev"}, "rel1"); !errors.Is(err, promotion.ErrRevoked) {
		t.Fatalf("promoting a revoked digest: %v", err)
	}
	if cur := f.current(t, "dev"); cur != "" {
		t.Fatalf("a revoked digest entered dev: %s", cur)
	}
	// Rolling prod back to it is refused too.
	d2 := f.signed(t, windowStart.Add(time.Hour))
	req.Digest = d2.DigestStr()
	for _, by := range []string{"rel1", "rel2"} {
		if _, err := f.svc.Promote(ctx, req, by); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Rollback(ctx, "apps/web", "prod", []string{d.DigestStr(), d2.DigestStr()}, "rel1", "error rate"); !errors.Is(err, promotion.ErrRevoked) {
		t.Fatalf("rolling back to a revoked digest: %v", err)
	}
	if cur := f.current(t, "prod"); cur != d2.DigestStr() {
		t.Fatalf("a refused rollback moved prod to %s", cur)
	}
}

// TestInputOf: a gate sees the signatures that count, the trusted
// attestations (parsed), not the server's records, and the promotions;
// a trusted attestation it cannot read is a problem, not a fact.
func TestInputOf(t *testing.T) {
	f := newFixture(t)
	d := f.signed(t, windowEnd.Add(time.Hour)) // does not count
	evidencetest.Sign(t, d, f.ci, "")          // counts
	evidencetest.Attest(t, d, f.ci, attest.PredicateSLSAProvenanceV1, evidencetest.Provenance)
	evidencetest.Attest(t, d, f.ci, attest.PredicateTestResult, `{"result":"MAYBE"}`)
	evidencetest.Attest(t, d, f.server, evidence.PredicatePromotion, evidence.Record{Environment: "dev", Repository: "apps/web", Digest: d.DigestStr(), By: "rel", At: windowStart})
	set := evidence.Collect(context.Background(), d, f.svc.Trust, sign.Options{})
	now := windowEnd
	in, problems := promotion.InputOf("apps/web", set, now)
	if len(in.Signatures) != 2 || !in.Signatures[0].SignedAt.IsZero() || in.Signatures[0].KeyID != f.ci.ID() {
		t.Fatalf("signatures: %+v", in.Signatures)
	}
	if len(in.Provenance) != 1 || in.Provenance[0].SourceURI != "https://github.com/acme/app" || len(in.Attestations[attest.PredicateSLSAProvenanceV1]) != 1 {
		t.Fatalf("provenance: %+v", in.Provenance)
	}
	if len(in.TestResults) != 0 || len(problems) != 1 || !strings.Contains(problems[0], "MAYBE") {
		t.Fatalf("unreadable test result: %+v %q", in.TestResults, problems)
	}
	if len(in.Attestations[evidence.PredicatePromotion]) != 0 || len(in.Promotions) != 1 || in.Promotions[0].Environment != "dev" {
		t.Fatalf("records: %+v %+v", in.Attestations, in.Promotions)
	}
	if in.Artifact.Digest != d.DigestStr() || in.Artifact.Repository != "apps/web" || !in.Now.Equal(now) || in.Revoked {
		t.Fatalf("input: %+v", in)
	}
}
