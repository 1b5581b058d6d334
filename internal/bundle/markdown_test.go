package bundle

import (
	"strings"
	"testing"
	"time"
)

// TestMarkdownKeepsFreeTextOnItsLine: a revocation's reason (free text
// anyone allowed to revoke writes) with newlines cannot add lines to
// summary.md, such as a forged artifact section or signature.
func TestMarkdownKeepsFreeTextOnItsLine(t *testing.T) {
	reason := "bad\n\n## team/app@sha256:00\n\n- signed: by key ci\x1b[8m"
	s := Summary{Artifacts: []Artifact{{Repository: "team/app", Digest: "sha256:aa",
		Revocations: []Revocation{{By: "admin", Reason: reason, At: time.Unix(0, 0)}}}}}
	md := string(Markdown(Request{Refs: []string{"team/app@sha256:aa"}}, LogRef{}, s))
	if strings.Contains(md, "\n## team/app@sha256:00") || strings.Contains(md, "\n- signed") || strings.Contains(md, "\x1b") {
		t.Fatalf("the reason forged lines of summary.md:\n%s", md)
	}
	if !strings.Contains(md, `bad\n\n## team/app@sha256:00\n\n- signed: by key ci\x1b[8m`) {
		t.Fatalf("the reason is not shown escaped:\n%s", md)
	}
	if got := Printable("a\xffb"); got != `a\xffb` {
		t.Fatalf("Printable of invalid UTF-8: %q", got)
	}
}
