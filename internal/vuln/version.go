package vuln

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/semver"
)

// maxVersionLen caps the length of a version string a comparator accepts.
const maxVersionLen = 256

// Compare orders two versions of the OSV ecosystem eco ("Go", "npm",
// "PyPI", "Maven", "Debian", "Debian:12", "Ubuntu:22.04:LTS", "Alpine",
// "Alpine:v3.19") by that ecosystem's rules: -1 if a < b, 0 if equal, +1 if
// a > b. It fails for an ecosystem it has no rules for and for a version
// that does not parse under those rules.
//
// The rules: Go and npm follow Semantic Versioning 2.0 (a leading "v" or
// "=" is ignored; Go toolchain versions such as "1.22rc1" are read as
// "1.22.0-rc1"); PyPI follows PEP 440; Maven follows Maven's
// ComparableVersion; Debian and Ubuntu follow dpkg; Alpine follows apk.
func Compare(eco, a, b string) (int, error) {
	base, _, _ := strings.Cut(eco, ":")
	cmp := comparatorFor(base)
	if cmp == nil {
		return 0, fmt.Errorf("no version ordering for ecosystem %q", eco)
	}
	return cmp(a, b)
}

type comparator func(a, b string) (int, error)

func comparatorFor(base string) comparator {
	switch base {
	case "Go":
		return compareGo
	case "npm":
		return compareSemver
	case "PyPI":
		return comparePyPI
	case "Maven":
		return compareMaven
	case "Debian", "Ubuntu":
		return compareDebian
	case "Alpine":
		return compareAlpine
	}
	return nil
}

// canonSemver turns a SemVer 2.0 string into the "v"-prefixed form
// golang.org/x/mod/semver reads, or fails.
func canonSemver(v string) (string, error) {
	if len(v) > maxVersionLen {
		return "", errors.New("version longer than 256 bytes")
	}
	s := strings.TrimSpace(v)
	s = strings.TrimPrefix(s, "=")
	s = strings.TrimPrefix(s, "v")
	if s == "" || s[0] < '0' || s[0] > '9' {
		return "", fmt.Errorf("%q is not a semantic version", v)
	}
	sv := "v" + s
	if !semver.IsValid(sv) {
		return "", fmt.Errorf("%q is not a semantic version", v)
	}
	return sv, nil
}

// compareSemver orders SemVer 2.0 versions (build metadata ignored).
func compareSemver(a, b string) (int, error) {
	sa, err := canonSemver(a)
	if err != nil {
		return 0, err
	}
	sb, err := canonSemver(b)
	if err != nil {
		return 0, err
	}
	return semver.Compare(sa, sb), nil
}

// goToolchainSemver rewrites Go toolchain versions ("1.21", "1.22rc1",
// "1.21beta2", "go1.21.3") as semantic versions; other input is returned
// without a leading "go" or "v".
func goToolchainSemver(v string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(v, "go"), "v")
	for _, pre := range []string{"rc", "beta", "alpha"} {
		if i := strings.Index(s, pre); i > 0 && !strings.Contains(s[:i], "-") {
			core := s[:i]
			if strings.Count(core, ".") == 1 {
				core += ".0"
			}
			return core + "-" + s[i:]
		}
	}
	return s
}

func compareGo(a, b string) (int, error) {
	return compareSemver(goToolchainSemver(a), goToolchainSemver(b))
}

// compareDigits orders two non-empty strings of ASCII digits numerically,
// whatever their length.
func compareDigits(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
