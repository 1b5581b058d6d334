package web

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzLocalPath: whatever next= a sign-in carries, the browser is sent to
// a path of this site, as a browser reads the Location (it drops tabs and
// line breaks, trims control characters and spaces, reads '\\' as '/').
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/", "/repositories?q=a", "//evil.example", "/\\evil.example", "https://evil.example", "javascript:x",
		"/a\r\nSet-Cookie: x", "", "/\t/evil.example", "/\n/evil.example", "/\t\\evil.example", "/%09/evil.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := localPath(next)
		if host := browserResolve(got); host != "site.example" {
			t.Fatalf("localPath(%q) = %q leads a browser to %q", next, got, host)
		}
		if got != "/" && got != next {
			t.Fatalf("localPath(%q) = %q changed a local path", next, got)
		}
	})
}

// browserResolve is the host a browser on https://site.example/ goes to
// when told Location: loc (the WHATWG URL parser's clean-ups first).
func browserResolve(loc string) string {
	loc = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(loc)
	loc = strings.TrimFunc(loc, func(c rune) bool { return c <= 0x20 })
	loc = strings.ReplaceAll(loc, "\\", "/")
	base, _ := url.Parse("https://site.example/")
	u, err := url.Parse(loc)
	if err != nil { // a bad %-escape: a browser keeps it as it is
		if strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") {
			return base.Host
		}
		return "unparsable"
	}
	return base.ResolveReference(u).Host
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
