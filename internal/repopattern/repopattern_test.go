package repopattern

import (
	"regexp"
	"strings"
	"testing"
)

// TestMatch pins the meaning of a repository pattern (see the package
// documentation and docs/security.md); every part of custody that matches
// one goes through Match.
func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		// "**" alone: every repository.
		{"**", "a", true}, {"**", "a/b/c", true},
		// '*' stays within one segment and may match nothing.
		{"team/*", "team/app", true}, {"team/*", "team/a/b", false}, {"team/*", "team", false},
		{"*/app", "x/app", true}, {"*/app", "x/y/app", false},
		{"app-*", "app-web", true}, {"app-*", "app-", true}, {"app-*", "app", false},
		{"*-web", "app-web", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false},
		{"*", "a", true}, {"*", "a/b", false},
		// "team/**": team itself and everything below it, nothing beside it.
		{"team/**", "team", true}, {"team/**", "team/a", true}, {"team/**", "team/a/b", true},
		{"team/**", "teams", false}, {"team/**", "teams/a", false}, {"team/**", "other/team", false},
		// "**" anywhere, matching zero or more segments.
		{"team/**/x", "team/x", true}, {"team/**/x", "team/a/b/x", true}, {"team/**/x", "team/a/b/y", false},
		{"**/prod", "prod", true}, {"**/prod", "a/b/prod", true}, {"**/prod", "a/prod/b", false},
		{"**/*/prod", "prod", false}, {"**/*/prod", "a/prod", true},
		{"**/**", "a/b", true}, {"a/**/b/**/c", "a/x/b/y/z/c", true}, {"a/**/b/**/c", "a/c", false},
		// Exact otherwise.
		{"team/app", "team/app", true}, {"team/app", "team/app2", false}, {"team/app", "team", false},
		{"a.b_c-d", "a.b_c-d", true},
		// Invalid patterns match nothing; the empty name matches nothing.
		{"", "a", false}, {"Team/*", "team/a", false}, {"team/a**", "team/ab", false},
		{"team//a", "team/a", false}, {"[ab]", "a", false}, {"?", "a", false}, {"**", "", false},
		{"**", "a//b", false}, {"*/*", "/", false}, {"**/*", "a/", false},
	} {
		if got := Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
	if !MatchAny([]string{"x", "team/**"}, "team") || MatchAny(nil, "team") || MatchAny([]string{"x/*"}, "team") {
		t.Error("MatchAny")
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []string{"**", "*", "team/*", "team/**", "team/**/prod", "a.b_c-d/*-web", strings.Repeat("a", MaxLen)} {
		if err := Validate(p); err != nil {
			t.Errorf("Validate(%q): %v", p, err)
		}
	}
	for p, want := range map[string]string{
		"":                       "1 to 255",
		strings.Repeat("a", 256): "1 to 255",
		"a//b":                   "empty path segment",
		"/a":                     "empty path segment",
		"a/":                     "empty path segment",
		"A/b":                    "'A' is not allowed",
		"a/b c":                  "' ' is not allowed",
		"a?":                     "'?' is not allowed",
		"[ab]":                   "'[' is not allowed",
		"team@sha256":            "'@' is not allowed",
		"team/a**":               "whole path segment",
		"***":                    "whole path segment",
		"team/{repository}":      "'{' is not allowed",
	} {
		err := Validate(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%q) = %v, want an error saying %q", p, err, want)
		}
	}
	if err := ValidateAll([]string{"a", "b/**", "B"}); err == nil || !strings.Contains(err.Error(), `"B"`) {
		t.Errorf("ValidateAll names the invalid pattern: %v", err)
	}
}

// reference is a direct transcription of the documented meaning into a
// regular expression: "**" is any run of whole segments, '*' any run of
// characters but '/'.
func reference(pattern, name string) bool {
	if Validate(pattern) != nil || strings.Contains("/"+name+"/", "//") {
		return false
	}
	segs := strings.Split(pattern, "/")
	if strings.Trim(strings.ReplaceAll(pattern, "**", ""), "/") == "" {
		return true // only "**" segments: any name
	}
	var b strings.Builder
	b.WriteString("^")
	slash := false // whether the next segment needs a '/' before it
	for _, s := range segs {
		switch {
		case s == "**" && slash:
			b.WriteString(`(?:/[^/]+)*`)
		case s == "**":
			b.WriteString(`(?:[^/]+/)*`)
		default:
			if slash {
				b.WriteString("/")
			}
			b.WriteString(strings.ReplaceAll(regexp.QuoteMeta(s), `\*`, `[^/]*`))
			slash = true
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String()).MatchString(name)
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"**", "a/b"}, {"team/**", "team"}, {"team/*", "team/a/b"}, {"a/**/b/**/c", "a/x/b/y/c"},
		{"**/prod", "prod"}, {"a*b*c", "axbxc"}, {"*/*", "a/b"}, {"x/**/**", "x"}, {"team/a**", "team/ab"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(pattern) > 64 || len(name) > 64 {
			return
		}
		got := Match(pattern, name)
		if want := reference(pattern, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, the documented meaning says %v", pattern, name, got, want)
		}
		if got && Validate(pattern) != nil {
			t.Fatalf("invalid pattern %q matched %q", pattern, name)
		}
		// A valid repository name is a pattern matching exactly itself.
		if Validate(name) == nil && !strings.Contains(name, "*") && !Match(name, name) {
			t.Fatalf("name %q does not match itself", name)
		}
	})
}
