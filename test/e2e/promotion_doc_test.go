package e2e

import (
	"strings"
	"testing"
)

// TestPromotionDocWalkthrough runs the shell blocks of docs/promotion.md's
// walkthrough exactly as written, in one bash shell in an empty
// directory: server key, configuration, a default (authentication on)
// server, people, CI, refusals, promotions, verify, rollback, revocation.
// A step that fails (or a 'refused' step that succeeds) fails the test.
func TestPromotionDocWalkthrough(t *testing.T) {
	out := walkthrough{doc: "docs/promotion.md", from: "## Walkthrough", to: "## API", addrs: []string{"R"}}.run(t)
	for _, want := range []string{"FAIL promoted_to_previous", "only by promotion", "approval recorded: 1 of 2", "rolled prod of apps/web back", "revoked by admin",
		"prod of project apps/**", "INDEX",
		"requires a second factor", "Enrolled. Recovery codes"} {
		if !strings.Contains(out, want) {
			t.Errorf("walkthrough output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
