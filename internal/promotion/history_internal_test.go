package promotion

import (
	"slices"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/tlog"
)

// TestKindOf: each audited action about a digest has its kind; an
// approval is told from the promotion by the reason the handler writes.
func TestKindOf(t *testing.T) {
	for _, c := range []struct {
		e    tlog.Entry
		want string
	}{
		{tlog.Entry{Action: "manifest.put"}, KindPush},
		{tlog.Entry{Action: "tag.set"}, KindTag},
		{tlog.Entry{Action: "sign"}, KindSignature},
		{tlog.Entry{Action: "provenance"}, KindAttestation},
		{tlog.Entry{Action: "promote", Reason: ApprovalReason(1, 2, "prod")}, KindApproval},
		{tlog.Entry{Action: "promote", Reason: PromotedReason("prod", "", "release")}, KindPromotion},
		{tlog.Entry{Action: "promote", Result: "denied", Reason: "gate refused"}, KindPromotion},
		{tlog.Entry{Action: "reject"}, KindRejection},
		{tlog.Entry{Action: "rollback"}, KindRollback},
		{tlog.Entry{Action: "revoke"}, KindRevocation},
		{tlog.Entry{Action: ActionVerify}, KindVerification},
		{tlog.Entry{Action: "gate.violation"}, KindVerification},
		{tlog.Entry{Action: ActionRevalidate}, KindVerification}, // scrub's revalidation
		{tlog.Entry{Action: ActionAdmission}, KindAdmission},
		{tlog.Entry{Action: "hold.clear"}, KindHold},
		{tlog.Entry{Action: "retention.set"}, KindRetention},
		{tlog.Entry{Action: "something.new"}, "something.new"},
	} {
		if got := kindOf(c.e); got != c.want {
			t.Errorf("%+v: %s, want %s", c.e, got, c.want)
		}
	}
}

// TestApproversSinceRejection: a rejection withdraws the approvals for
// its environment recorded before it, not those after it or for another
// environment; an approver counts once.
func TestApproversSinceRejection(t *testing.T) {
	t0 := time.Date(2026, 3, 3, 14, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	f := &Facts{
		Approvals: []evidence.Approval{
			{Environment: "prod", By: "rel1", At: at(1)},
			{Environment: "test", By: "rel1", At: at(2)},
			{Environment: "prod", By: "rel2", At: at(4)},
			{Environment: "prod", By: "rel2", At: at(5)},
			{Environment: "prod", By: "rel3", At: at(6)},
		},
		Rejections: []evidence.Rejection{{Environment: "prod", By: "rel3", At: at(3)}, {Environment: "other", At: at(9)}},
	}
	if got := f.Approvers("prod"); !slices.Equal(got, []string{"rel2", "rel3"}) {
		t.Errorf("prod: %v", got)
	}
	if got := f.Approvers("test"); !slices.Equal(got, []string{"rel1"}) {
		t.Errorf("test: %v", got)
	}
	if got := f.Approvers("other"); len(got) != 0 {
		t.Errorf("other: %v", got)
	}
}
