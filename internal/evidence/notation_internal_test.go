package evidence

import (
	"errors"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/notary"
)

// TestNotationSignatureRule pins when a Notation signature counts: it
// verified under the trust policy, at a level that enforces authenticity.
// Under audit, notation-go accepts a certificate from outside the trust
// store (it only logs), so such a signature must not count.
func TestNotationSignatureRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    notary.Result
		ok   bool
	}{
		{"strict", notary.Result{Level: "strict", AuthenticityEnforced: true}, true},
		{"permissive", notary.Result{Level: "permissive", AuthenticityEnforced: true}, true},
		{"audit", notary.Result{Level: "audit", Policy: "p"}, false},
		{"refused", notary.Result{Level: "strict", AuthenticityEnforced: true, Err: errors.New("untrusted")}, false},
	} {
		n := notationSignature(tc.r)
		if n.Trusted() != tc.ok {
			t.Errorf("%s: Trusted() = %v, want %v (%v)", tc.name, n.Trusted(), tc.ok, n.Err)
		}
		if tc.name == "audit" && !strings.Contains(n.Err.Error(), "does not enforce authenticity") {
			t.Errorf("audit: %v", n.Err)
		}
	}
	s := &Set{Notation: []NotationSignature{notationSignature(notary.Result{Level: "audit"}), notationSignature(notary.Result{Level: "strict", AuthenticityEnforced: true, Identity: "CN=a"})}}
	if got := s.TrustedNotation(); len(got) != 1 || got[0].Identity != "CN=a" {
		t.Fatalf("TrustedNotation = %+v", got)
	}
}
