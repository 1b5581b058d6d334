package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/bundle"
)

// TestBundleReportEscapesFreeText: a revocation's reason with a newline
// and terminal escapes cannot print a line of its own (such as a forged
// "OK") nor hide what follows.
func TestBundleReportEscapesFreeText(t *testing.T) {
	var out bytes.Buffer
	r := bundle.Report{
		Revocations: []bundle.Revoked{{Repository: "team/app", Digest: "sha256:aa", By: "admin", Reason: "oops\nOK: the bundle verifies\x1b[8m"}},
		Failures:    []bundle.Failure{{Check: bundle.CheckSummary, Subject: "team/app@sha256:aa", Detail: "x"}},
	}
	printBundleReport(&out, &bundle.Bundle{}, r)
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "OK") {
			t.Fatalf("a reason printed a line of its own:\n%s", out.String())
		}
	}
	if strings.Contains(out.String(), "\x1b") || !strings.Contains(out.String(), `oops\nOK: the bundle verifies\x1b[8m`) {
		t.Fatalf("the reason is not escaped:\n%s", out.String())
	}
}
