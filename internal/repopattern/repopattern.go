// Package repopattern is the one meaning of a repository pattern, the
// notation every part of custody uses to name a set of repositories:
// grants and token scopes, repository policies and their default
// retention, projects, signing.onPush and gc.untaggedManifests.
//
// A pattern is a '/'-separated list of segments, matched segment by
// segment against a repository name:
//
//   - "**", as a whole segment, matches any number of name segments,
//     including none, wherever it stands: "**" matches every repository,
//     "team/**" matches "team", "team/app" and "team/a/b", and
//     "team/**/prod" matches "team/prod" and "team/a/b/prod".
//   - '*' within a segment matches any run of characters other than '/'
//     (including none): "team/*" matches "team/app" but neither "team"
//     nor "team/a/b"; "app-*" matches "app-web" and "app-".
//   - Every other character matches itself.
//
// A valid pattern holds lowercase letters, digits, '.', '_', '-', '/' and
// '*' only (repository-name characters and the wildcard), has no empty
// segment, does not mix "**" with other characters in a segment, and is 1
// to 255 characters long. Validate says what is wrong with an invalid one;
// an invalid pattern matches nothing.
package repopattern

import (
	"fmt"
	"strings"
)

// MaxLen is the longest pattern: the longest repository name.
const MaxLen = 255

// Validate checks a pattern and says what to fix.
func Validate(p string) error {
	if p == "" || len(p) > MaxLen {
		return fmt.Errorf("repository pattern %q must be 1 to %d characters (e.g. team/*, team/**, or ** for all)", p, MaxLen)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			return fmt.Errorf("repository pattern %q has an empty path segment", p)
		}
		for _, c := range seg {
			if !nameChar(c) && c != '*' {
				return fmt.Errorf("repository pattern %q: character %q is not allowed (lowercase repository-name characters, '/', '*' within a segment, '**' as a whole segment)", p, c)
			}
		}
		if seg != "**" && strings.Contains(seg, "**") {
			return fmt.Errorf("repository pattern %q: '**' must be a whole path segment (use '*' within a segment)", p)
		}
	}
	return nil
}

// ValidateAll checks every pattern of ps, naming the first invalid one.
func ValidateAll(ps []string) error {
	for _, p := range ps {
		if err := Validate(p); err != nil {
			return err
		}
	}
	return nil
}

func nameChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// Match reports whether repository name matches pattern. An invalid
// pattern matches nothing, and nothing matches a name with an empty
// segment (such as "" or "a//b"), which is no repository.
func Match(pattern, name string) bool {
	if strings.Contains("/"+name+"/", "//") || Validate(pattern) != nil {
		return false
	}
	return matchSegments(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

// MatchAny reports whether name matches one of patterns.
func MatchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if Match(p, name) {
			return true
		}
	}
	return false
}

// matchSegments matches name segments against pattern segments, "**"
// standing for any run of segments. It backtracks only to the last "**"
// seen, so it takes O(len(p)·len(n)) segment matches at worst.
func matchSegments(p, n []string) bool {
	pi, ni := 0, 0
	star, starNi := -1, 0
	for ni < len(n) {
		switch {
		case pi < len(p) && p[pi] == "**":
			star, starNi = pi, ni
			pi++
		case pi < len(p) && matchSegment(p[pi], n[ni]):
			pi++
			ni++
		case star >= 0:
			// Let the last "**" take one more segment and retry.
			starNi++
			pi, ni = star+1, starNi
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == "**" {
		pi++
	}
	return pi == len(p)
}

// matchSegment matches one name segment against one pattern segment, '*'
// standing for any run of characters; the same backtracking keeps it
// linear in the product of the lengths.
func matchSegment(p, n string) bool {
	pi, ni := 0, 0
	star, starNi := -1, 0
	for ni < len(n) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, starNi = pi, ni
			pi++
		case pi < len(p) && p[pi] == n[ni]:
			pi++
			ni++
		case star >= 0:
			starNi++
			pi, ni = star+1, starNi
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
