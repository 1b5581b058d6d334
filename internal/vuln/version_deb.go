package vuln

import (
	"fmt"
	"strings"
)

// debVersion is a dpkg version: [epoch:]upstream[-revision]
// (deb-version(7)).
type debVersion struct {
	epoch    string
	upstream string
	revision string
}

func parseDebian(v string) (debVersion, error) {
	if len(v) > maxVersionLen {
		return debVersion{}, fmt.Errorf("debian version longer than %d bytes", maxVersionLen)
	}
	s := strings.TrimSpace(v)
	d := debVersion{epoch: "0"}
	if e, rest, ok := strings.Cut(s, ":"); ok {
		if !allDigits(e) {
			return debVersion{}, fmt.Errorf("%q is not a Debian version: the epoch must be a number", v)
		}
		d.epoch, s = e, rest
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		d.upstream, d.revision = s[:i], s[i+1:]
		if d.revision == "" {
			return debVersion{}, fmt.Errorf("%q is not a Debian version: empty revision after '-'", v)
		}
	} else {
		d.upstream = s
	}
	if d.upstream == "" || !isDigit(d.upstream[0]) {
		return debVersion{}, fmt.Errorf("%q is not a Debian version: the upstream version must start with a digit", v)
	}
	for _, part := range []string{d.upstream, d.revision} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !isDigit(c) && !isAlpha(c) && !strings.ContainsRune(".+-~:", rune(c)) {
				return debVersion{}, fmt.Errorf("%q is not a Debian version: invalid character %q", v, c)
			}
		}
	}
	return d, nil
}

func compareDebian(a, b string) (int, error) {
	da, err := parseDebian(a)
	if err != nil {
		return 0, err
	}
	db, err := parseDebian(b)
	if err != nil {
		return 0, err
	}
	if c := compareDigits(da.epoch, db.epoch); c != 0 {
		return c, nil
	}
	if c := verrevcmp(da.upstream, db.upstream); c != 0 {
		return c, nil
	}
	return verrevcmp(da.revision, db.revision), nil
}

// debOrder weighs one character of a non-digit run: '~' before the end of
// the string, the end before letters, letters before everything else.
func debOrder(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case isDigit(c):
		return 0
	case isAlpha(c):
		return int(c)
	case c == '~':
		return -1
	default:
		return int(c) + 256
	}
}

// verrevcmp compares upstream versions or revisions as dpkg does:
// alternating runs of non-digits (by debOrder) and digits (numerically).
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := debOrder(a, i), debOrder(b, j)
			if ac != bc {
				return cmpInt(ac, bc)
			}
			i++
			j++
		}
		i, j = min(i, len(a)), min(j, len(b))
		si := i
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		sj := j
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		if c := compareDigits("0"+a[si:i], "0"+b[sj:j]); c != 0 {
			return c
		}
	}
	return 0
}
