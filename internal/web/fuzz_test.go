package web

import (
	"strings"
	"testing"
)

// FuzzLocalPath: whatever next= a sign-in carries, the browser is sent to
// a path of this site.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/", "/repositories?q=a", "//evil.example", "/\\evil.example", "https://evil.example", "javascript:x", "/a\r\nSet-Cookie: x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := localPath(next)
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, "/\\") || strings.ContainsAny(got, "\r\n") {
			t.Fatalf("localPath(%q) = %q leaves the site", next, got)
		}
		if got != "/" && got != next {
			t.Fatalf("localPath(%q) = %q changed a local path", next, got)
		}
	})
}

// FuzzDecodePending: the OIDC sign-in cookie comes from the browser; any
// value is decoded or refused, never a panic.
func FuzzDecodePending(f *testing.F) {
	for _, s := range []string{"", "e30", "eyJpIjoiMCIsInMiOiJzIiwibiI6Im4iLCJ2IjoidiIsIngiOiIvIn0", "!!!", strings.Repeat("A", 5000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		p, err := decodePending(v)
		if err != nil && p != (oidcPending{}) {
			t.Fatalf("a refused cookie decoded to %+v", p)
		}
	})
}
