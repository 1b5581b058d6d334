package verification_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/notary"
	"github.com/custody-dev/custody/internal/sign"
)

// TestJudgeNotation checks how Notation signatures enter custody verify's
// verdict: one that counts satisfies the signature check (and --require
// notation) without a cosign signature; one that fails is reported and
// fails nothing by itself, so with nothing else the artifact is unsigned.
func TestJudgeNotation(t *testing.T) {
	v := verifier(t, evidencetest.NewKey(t, start, time.Time{}))
	good := evidence.NotationSignature{Result: notary.Result{Format: "cose", Identity: "CN=release,O=Acme,ST=WA,C=US", Policy: "p", Level: "strict", AuthenticityEnforced: true}}
	bad := evidence.NotationSignature{Result: notary.Result{Format: "jws", Policy: "p", Level: "strict", Err: errors.New("the signature's certificate chain does not contain any trusted certificate")}}
	set := func(ns ...evidence.NotationSignature) *evidence.Set {
		return &evidence.Set{Digest: "sha256:" + strings.Repeat("a", 64), SignatureErr: fmt.Errorf("no cosign signature: %w", sign.ErrNoSignature), Notation: ns}
	}
	v.Require = []string{"notation"}
	if rep := v.Judge("r", set(bad, good)); !rep.OK || len(rep.Notation) != 2 || rep.Notation[0].OK || !rep.Notation[1].OK || rep.Notation[1].Identity != good.Identity {
		t.Fatalf("a trusted Notation signature: %+v", rep)
	}
	rep := v.Judge("r", set(bad))
	if rep.OK || !strings.Contains(strings.Join(rep.Failures, "\n"), "required notation") || !strings.Contains(strings.Join(rep.Failures, "\n"), "no signature found") {
		t.Fatalf("only a refused Notation signature: %+v", rep)
	}
	if rep.Notation[0].Problem == "" {
		t.Fatalf("the refused signature's reason is not reported: %+v", rep.Notation)
	}
	v.Require = nil
	if rep := v.Judge("r", set()); rep.OK {
		t.Fatalf("nothing signed passed: %+v", rep)
	}
}
