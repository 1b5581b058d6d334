package e2e

import (
	"strings"
	"testing"
)

// TestForensicsDocWalkthrough runs the shell blocks of docs/forensics.md's
// walkthrough exactly as written: two releases through prod, what ran at
// an instant between them and its history, an evidence bundle exported and
// verified with the server stopped, a tampered copy refused, the
// environment rebuilt from the bundle alone, and the bundle imported into a
// second server.
func TestForensicsDocWalkthrough(t *testing.T) {
	out := walkthrough{doc: "docs/forensics.md", from: "## Walkthrough", to: "## Assessing the whole", addrs: []string{"R", "R2"}}.run(t)
	for _, want := range []string{"custody/manifest.json", "import", "Enrolled. Recovery codes"} {
		if !strings.Contains(out, want) {
			t.Errorf("walkthrough output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
