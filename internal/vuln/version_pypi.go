package vuln

import (
	"fmt"
	"strings"
)

// pep440 is a parsed PEP 440 version
// (https://packaging.python.org/en/latest/specifications/version-specifiers/).
type pep440 struct {
	epoch   string   // digits, "0" when absent
	release []string // digit strings, trailing zeros kept (ignored when comparing)
	preKind int      // 0 none; 1 a, 2 b, 3 rc
	preNum  string
	post    string // digits; "" when absent
	hasPost bool
	dev     string
	hasDev  bool
	local   []string // lower-case segments
}

// parsePEP440 parses a version in PEP 440's permissive (normalisable)
// form: case-insensitive, an optional leading "v", the alternative spellings
// of pre-releases (alpha, beta, c, pre, preview), post-releases (rev, r,
// "-N") and optional separators ("." "-" "_") and numbers.
func parsePEP440(v string) (*pep440, error) {
	if len(v) > maxVersionLen {
		return nil, fmt.Errorf("PEP 440 version longer than %d bytes", maxVersionLen)
	}
	s := strings.ToLower(strings.TrimSpace(v))
	s = strings.TrimPrefix(s, "v")
	bad := func(why string) error { return fmt.Errorf("%q is not a PEP 440 version: %s", v, why) }
	p := &pep440{epoch: "0"}
	i := 0
	digits := func() string {
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		return s[j:i]
	}
	// Epoch and release.
	n := digits()
	if n == "" {
		return nil, bad("no release number")
	}
	if i < len(s) && s[i] == '!' {
		p.epoch = n
		i++
		if n = digits(); n == "" {
			return nil, bad("no release number after the epoch")
		}
	}
	p.release = append(p.release, n)
	for i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
		i++
		p.release = append(p.release, digits())
	}
	sep := func() bool {
		if i < len(s) && (s[i] == '.' || s[i] == '-' || s[i] == '_') {
			i++
			return true
		}
		return false
	}
	word := func(words ...string) string {
		for _, w := range words {
			if strings.HasPrefix(s[i:], w) {
				i += len(w)
				return w
			}
		}
		return ""
	}
	// Pre-release.
	save := i
	sep()
	switch word("alpha", "beta", "preview", "pre", "rc", "a", "b", "c") {
	case "alpha", "a":
		p.preKind = 1
	case "beta", "b":
		p.preKind = 2
	case "rc", "c", "pre", "preview":
		p.preKind = 3
	default:
		i = save
	}
	if p.preKind != 0 {
		s2 := i
		sep()
		if p.preNum = digits(); p.preNum == "" {
			i = s2
			p.preNum = "0"
		}
	}
	// Post-release: "-N" or [sep](post|rev|r)[sep][N].
	save = i
	if i+1 < len(s) && s[i] == '-' && isDigit(s[i+1]) {
		i++
		p.post, p.hasPost = digits(), true
	} else {
		sep()
		if word("post", "rev", "r") != "" {
			p.hasPost = true
			s2 := i
			sep()
			if p.post = digits(); p.post == "" {
				i = s2
				p.post = "0"
			}
		} else {
			i = save
		}
	}
	// Development release.
	save = i
	sep()
	if word("dev") != "" {
		p.hasDev = true
		s2 := i
		sep()
		if p.dev = digits(); p.dev == "" {
			i = s2
			p.dev = "0"
		}
	} else {
		i = save
	}
	// Local version label.
	if i < len(s) && s[i] == '+' {
		i++
		for _, seg := range strings.FieldsFunc(s[i:], func(r rune) bool { return r == '.' || r == '-' || r == '_' }) {
			for k := 0; k < len(seg); k++ {
				if !isDigit(seg[k]) && !isAlpha(seg[k]) {
					return nil, bad("invalid character in local version label")
				}
			}
			p.local = append(p.local, seg)
		}
		if len(p.local) == 0 || strings.HasSuffix(s, ".") || strings.HasSuffix(s, "-") || strings.HasSuffix(s, "_") {
			return nil, bad("empty local version label")
		}
		i = len(s)
	}
	if i != len(s) {
		return nil, bad(fmt.Sprintf("unexpected %q", s[i:]))
	}
	return p, nil
}

func comparePyPI(a, b string) (int, error) {
	pa, err := parsePEP440(a)
	if err != nil {
		return 0, err
	}
	pb, err := parsePEP440(b)
	if err != nil {
		return 0, err
	}
	return pa.compare(pb), nil
}

// compare orders two versions as the packaging library's sort key does:
// epoch, release (trailing zeros ignored), then pre-release (a dev release
// of a final version sorts before its pre-releases; a final sorts after
// them), post-release (none before any), dev release (none after any), and
// the local label (none before any; numeric segments after alphanumeric).
func (p *pep440) compare(q *pep440) int {
	if c := compareDigits(p.epoch, q.epoch); c != 0 {
		return c
	}
	for k := 0; k < max(len(p.release), len(q.release)); k++ {
		x, y := "0", "0"
		if k < len(p.release) {
			x = p.release[k]
		}
		if k < len(q.release) {
			y = q.release[k]
		}
		if c := compareDigits(x, y); c != 0 {
			return c
		}
	}
	if c := cmpInt(p.preRank(), q.preRank()); c != 0 {
		return c
	}
	if p.preKind != 0 && q.preKind != 0 {
		if c := compareDigits(p.preNum, q.preNum); c != 0 {
			return c
		}
	}
	if p.hasPost != q.hasPost {
		if p.hasPost {
			return 1
		}
		return -1
	}
	if p.hasPost {
		if c := compareDigits(p.post, q.post); c != 0 {
			return c
		}
	}
	if p.hasDev != q.hasDev {
		if p.hasDev {
			return -1
		}
		return 1
	}
	if p.hasDev {
		if c := compareDigits(p.dev, q.dev); c != 0 {
			return c
		}
	}
	for k := 0; k < max(len(p.local), len(q.local)); k++ {
		if k >= len(p.local) {
			return -1
		}
		if k >= len(q.local) {
			return 1
		}
		x, y := p.local[k], q.local[k]
		xn, yn := allDigits(x), allDigits(y)
		switch {
		case xn && yn:
			if c := compareDigits(x, y); c != 0 {
				return c
			}
		case xn:
			return 1
		case yn:
			return -1
		default:
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
		}
	}
	return 0
}

// preRank places the pre-release phase: a dev release of a final version
// (no pre, no post) before everything, then a < b < rc, then finals.
func (p *pep440) preRank() int {
	switch {
	case p.preKind != 0:
		return p.preKind
	case p.hasDev && !p.hasPost:
		return -1
	default:
		return 4
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
