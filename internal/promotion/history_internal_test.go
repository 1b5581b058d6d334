package promotion

import (
	"testing"

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
