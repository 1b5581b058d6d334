package vuln

import (
	"fmt"
	"strings"
)

// apkVersion is an Alpine package version:
// N(.N)*[letter](_suffix[N])*[~hash][-rN], e.g. "1.2.4_git20230717-r4".
type apkVersion struct {
	numbers  []string
	letter   byte // 0 when absent
	suffixes []apkSuffix
	hash     string // hex commit hash after "~"; "" when absent
	revision string // digits; "" when absent
}

type apkSuffix struct {
	rank int    // negative for pre-releases, positive for post-releases
	num  string // digits; "" when absent, which sorts before any number
}

// apkSuffixRanks orders the suffixes: alpha < beta < pre < rc < (none) <
// cvs < svn < git < hg < p.
var apkSuffixRanks = map[string]int{
	"alpha": -4, "beta": -3, "pre": -2, "rc": -1,
	"cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5,
}

func parseAlpine(v string) (*apkVersion, error) {
	if len(v) > maxVersionLen {
		return nil, fmt.Errorf("alpine version longer than %d bytes", maxVersionLen)
	}
	s := strings.TrimSpace(v)
	bad := func(why string) error { return fmt.Errorf("%q is not an Alpine version: %s", v, why) }
	a := &apkVersion{}
	i := 0
	digits := func() string {
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		return s[j:i]
	}
	n := digits()
	if n == "" {
		return nil, bad("it must start with a number")
	}
	a.numbers = append(a.numbers, n)
	for i < len(s) && s[i] == '.' {
		i++
		if n = digits(); n == "" {
			return nil, bad("'.' must be followed by a number")
		}
		a.numbers = append(a.numbers, n)
	}
	if i < len(s) && s[i] >= 'a' && s[i] <= 'z' {
		a.letter = s[i]
		i++
	}
	for i < len(s) && s[i] == '_' {
		i++
		j := i
		for i < len(s) && s[i] >= 'a' && s[i] <= 'z' {
			i++
		}
		rank, ok := apkSuffixRanks[s[j:i]]
		if !ok {
			return nil, bad(fmt.Sprintf("unknown suffix %q (want alpha, beta, pre, rc, cvs, svn, git, hg or p)", s[j:i]))
		}
		a.suffixes = append(a.suffixes, apkSuffix{rank: rank, num: digits()})
	}
	if i < len(s) && s[i] == '~' {
		i++
		j := i
		for i < len(s) && (isDigit(s[i]) || s[i] >= 'a' && s[i] <= 'f') {
			i++
		}
		if a.hash = s[j:i]; a.hash == "" {
			return nil, bad("'~' must be followed by a hexadecimal commit hash")
		}
	}
	if strings.HasPrefix(s[i:], "-r") {
		i += 2
		if a.revision = digits(); a.revision == "" {
			return nil, bad("'-r' must be followed by a number")
		}
	}
	if i != len(s) {
		return nil, bad(fmt.Sprintf("unexpected %q", s[i:]))
	}
	return a, nil
}

// compare follows apk-tools' ordering: numbers component by component
// (the first numerically; a later one numerically unless either has a
// leading zero, then as strings, so 1.01 < 1.1 as in Gentoo), more
// components sorting higher; then the letter (none first); then the
// suffixes in turn, where a missing suffix sorts after a pre-release
// suffix and before a post-release one, and a suffix without a number
// before the same suffix with one; then the "~" commit hash (none first,
// else as strings); then the "-r" revision (none first).
func (a *apkVersion) compare(b *apkVersion) int {
	for k := 0; k < max(len(a.numbers), len(b.numbers)); k++ {
		if k >= len(a.numbers) {
			return -1
		}
		if k >= len(b.numbers) {
			return 1
		}
		x, y := a.numbers[k], b.numbers[k]
		var c int
		if k > 0 && (strings.HasPrefix(x, "0") || strings.HasPrefix(y, "0")) {
			c = strings.Compare(x, y)
		} else {
			c = compareDigits(x, y)
		}
		if c != 0 {
			return c
		}
	}
	if c := cmpInt(int(a.letter), int(b.letter)); c != 0 {
		return c
	}
	for k := 0; k < max(len(a.suffixes), len(b.suffixes)); k++ {
		if k >= len(a.suffixes) {
			return cmpInt(0, b.suffixes[k].rank)
		}
		if k >= len(b.suffixes) {
			return cmpInt(a.suffixes[k].rank, 0)
		}
		x, y := a.suffixes[k], b.suffixes[k]
		if c := cmpInt(x.rank, y.rank); c != 0 {
			return c
		}
		switch {
		case x.num == "" && y.num != "":
			return -1
		case x.num != "" && y.num == "":
			return 1
		case x.num != "":
			if c := compareDigits(x.num, y.num); c != 0 {
				return c
			}
		}
	}
	switch {
	case a.hash == "" && b.hash != "":
		return -1
	case a.hash != "" && b.hash == "":
		return 1
	default:
		if c := strings.Compare(a.hash, b.hash); c != 0 {
			return c
		}
	}
	switch {
	case a.revision == "" && b.revision == "":
		return 0
	case a.revision == "":
		return -1
	case b.revision == "":
		return 1
	}
	return compareDigits(a.revision, b.revision)
}

func compareAlpine(a, b string) (int, error) {
	va, err := parseAlpine(a)
	if err != nil {
		return 0, err
	}
	vb, err := parseAlpine(b)
	if err != nil {
		return 0, err
	}
	return va.compare(vb), nil
}
