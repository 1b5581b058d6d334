package vuln

import (
	"errors"
	"fmt"
	"strings"
)

// Maven versions are ordered as Maven's ComparableVersion orders them (the
// algorithm of Maven 3.x, as documented in
// https://maven.apache.org/pom.html#version-order-specification):
//
//   - the version is lower-cased and split at "." and "-" and at every
//     switch between digits and letters; "-" (and a digit/letter switch)
//     opens a nested list;
//   - numbers compare numerically; qualifiers order as
//     alpha < beta < milestone < rc = cr < snapshot < "" = ga = final =
//     release < sp < any other qualifier (those lexically); "a", "b" and
//     "m" directly followed by a digit mean alpha, beta and milestone;
//   - trailing zeros and release qualifiers are dropped from each list;
//   - a number is greater than a qualifier and than a list; a list is
//     greater than a qualifier.

type mavenKind int

const (
	mavenInt mavenKind = iota
	mavenString
	mavenList
)

type mavenItem struct {
	kind  mavenKind
	num   string // digits without leading zeros ("" is zero), mavenInt
	qual  string // qualifier after aliasing, mavenString
	items []*mavenItem
}

var mavenQualifiers = []string{"alpha", "beta", "milestone", "rc", "snapshot", "", "sp"}

func mavenQualifierRank(q string) (int, string) {
	for i, k := range mavenQualifiers {
		if q == k {
			return i, ""
		}
	}
	return len(mavenQualifiers), q
}

func newMavenString(s string, followedByDigit bool) *mavenItem {
	if followedByDigit && len(s) == 1 {
		switch s {
		case "a":
			s = "alpha"
		case "b":
			s = "beta"
		case "m":
			s = "milestone"
		}
	}
	switch s {
	case "ga", "final", "release":
		s = ""
	case "cr":
		s = "rc"
	}
	return &mavenItem{kind: mavenString, qual: s}
}

func newMavenItem(s string) *mavenItem {
	if allDigits(s) {
		return &mavenItem{kind: mavenInt, num: strings.TrimLeft(s, "0")}
	}
	return newMavenString(s, false)
}

func (m *mavenItem) isNull() bool {
	switch m.kind {
	case mavenInt:
		return m.num == ""
	case mavenString:
		return m.qual == ""
	default:
		return len(m.items) == 0
	}
}

// parseMaven parses a Maven version into ComparableVersion's item tree.
func parseMaven(v string) (*mavenItem, error) {
	if len(v) > maxVersionLen {
		return nil, fmt.Errorf("maven version longer than %d bytes", maxVersionLen)
	}
	s := strings.ToLower(strings.TrimSpace(v))
	if s == "" {
		return nil, errors.New("empty Maven version")
	}
	root := &mavenItem{kind: mavenList}
	list := root
	stack := []*mavenItem{root}
	push := func() {
		l := &mavenItem{kind: mavenList}
		list.items = append(list.items, l)
		list = l
		stack = append(stack, l)
	}
	digit := false
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if i == start {
				list.items = append(list.items, &mavenItem{kind: mavenInt})
			} else {
				list.items = append(list.items, newMavenItem(s[start:i]))
			}
			start = i + 1
		case c == '-':
			if i == start {
				list.items = append(list.items, &mavenItem{kind: mavenInt})
			} else {
				list.items = append(list.items, newMavenItem(s[start:i]))
			}
			start = i + 1
			push()
		case isDigit(c):
			if !digit && i > start {
				list.items = append(list.items, newMavenString(s[start:i], true))
				start = i
				push()
			}
			digit = true
		default:
			if digit && i > start {
				list.items = append(list.items, newMavenItem(s[start:i]))
				start = i
				push()
			}
			digit = false
		}
	}
	if len(s) > start {
		list.items = append(list.items, newMavenItem(s[start:]))
	}
	for k := len(stack) - 1; k >= 0; k-- {
		stack[k].normalize()
	}
	return root, nil
}

// normalize drops trailing null items (0, release qualifiers, empty
// lists), stopping at the first non-null item that is not a list.
func (m *mavenItem) normalize() {
	for i := len(m.items) - 1; i >= 0; i-- {
		it := m.items[i]
		if it.isNull() {
			m.items = append(m.items[:i], m.items[i+1:]...)
		} else if it.kind != mavenList {
			break
		}
	}
}

// compare orders m against o; o may be nil, standing for a missing item.
func (m *mavenItem) compare(o *mavenItem) int {
	switch m.kind {
	case mavenInt:
		if o == nil {
			if m.num == "" {
				return 0
			}
			return 1
		}
		switch o.kind {
		case mavenInt:
			return compareDigits("0"+m.num, "0"+o.num)
		default:
			return 1
		}
	case mavenString:
		if o == nil {
			return cmpQual(m.qual, "")
		}
		switch o.kind {
		case mavenInt:
			return -1
		case mavenString:
			return cmpQual(m.qual, o.qual)
		default:
			return -1
		}
	default:
		if o == nil {
			if len(m.items) == 0 {
				return 0
			}
			return m.items[0].compare(nil)
		}
		switch o.kind {
		case mavenInt:
			return -1
		case mavenString:
			return 1
		}
		for i := 0; i < max(len(m.items), len(o.items)); i++ {
			var l, r *mavenItem
			if i < len(m.items) {
				l = m.items[i]
			}
			if i < len(o.items) {
				r = o.items[i]
			}
			var c int
			if l == nil {
				if r != nil {
					c = -r.compare(nil)
				}
			} else {
				c = l.compare(r)
			}
			if c != 0 {
				return c
			}
		}
		return 0
	}
}

func cmpQual(a, b string) int {
	ra, sa := mavenQualifierRank(a)
	rb, sb := mavenQualifierRank(b)
	if c := cmpInt(ra, rb); c != 0 {
		return c
	}
	return strings.Compare(sa, sb)
}

func compareMaven(a, b string) (int, error) {
	ma, err := parseMaven(a)
	if err != nil {
		return 0, err
	}
	mb, err := parseMaven(b)
	if err != nil {
		return 0, err
	}
	return ma.compare(mb), nil
}
