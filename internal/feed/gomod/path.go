package gomod

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/module"

	"github.com/custody-dev/custody/internal/feed"
)

// A module path becomes the path segments of a repository (see
// feed.Repository) in two reversible steps:
//
//  1. The GOPROXY case-encoding (module.EscapePath): every uppercase
//     letter is '!' and its lowercase ("github.com/Azure/x" is
//     "github.com/!azure/x"). The result is lowercase letters, digits and
//     "-._~!", split at '/' into elements.
//  2. Each element becomes one OCI name component (lowercase letters and
//     digits separated by '.', '_', "__" or runs of '-'). An element that
//     already is one and has no '_' stands for itself
//     ("golang.org", "go-autorest"). Any other element is written as '0'
//     followed by the element with every byte that is not a lowercase
//     letter or digit escaped as '_' and two lowercase hex digits, except
//     a '.' or '-' between two letters or digits ("!azure" is "0_21azure",
//     "go_x" is "0go_5fx"). Encoded elements always contain '_' and plain
//     ones never do, so the two never collide; the leading '0' keeps an
//     escape from starting the component.
//
// ModuleRepository and ModulePath are inverse; only canonical encodings
// decode (FuzzModulePath).

// ModuleRepository returns the repository of module path in feed; an
// error when path is not a valid module path or too long.
func ModuleRepository(feedName, path string) (string, error) {
	segs, err := moduleSegments(path)
	if err != nil {
		return "", err
	}
	repo, err := feed.Repository(feedName, segs...)
	if err != nil {
		return "", fmt.Errorf("module path %q: %w", path, err)
	}
	return repo, nil
}

// moduleSegments are the repository path segments of module path (steps
// 1 and 2 above).
func moduleSegments(path string) ([]string, error) {
	if err := module.CheckPath(path); err != nil {
		return nil, err
	}
	esc, err := module.EscapePath(path)
	if err != nil {
		return nil, err
	}
	elems := strings.Split(esc, "/")
	segs := make([]string, len(elems))
	for i, e := range elems {
		segs[i] = encodeElem(e)
	}
	return segs, nil
}

// ModulePath reverses ModuleRepository: the module path a repository of
// feed holds; ok is false when repo is not one.
func ModulePath(feedName, repo string) (string, bool) {
	segs, ok := feed.Segments(feedName, repo)
	if !ok {
		return "", false
	}
	elems := make([]string, len(segs))
	for i, s := range segs {
		e, ok := decodeElem(s)
		if !ok {
			return "", false
		}
		elems[i] = e
	}
	path, err := module.UnescapePath(strings.Join(elems, "/"))
	if err != nil || module.CheckPath(path) != nil {
		return "", false
	}
	if r, err := ModuleRepository(feedName, path); err != nil || r != repo {
		return "", false
	}
	return path, true
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// plainElem reports whether e stands for itself: one OCI name component
// without '_'.
func plainElem(e string) bool {
	return feed.ValidComponent(e) && !strings.Contains(e, "_")
}

func encodeElem(e string) string {
	if plainElem(e) {
		return e
	}
	var b strings.Builder
	b.WriteByte('0')
	for i := 0; i < len(e); i++ {
		c := e[i]
		between := i > 0 && i+1 < len(e) && alnum(e[i-1]) && alnum(e[i+1])
		if alnum(c) || (between && (c == '.' || c == '-')) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return b.String()
}

var errEncoding = errors.New("not a canonical element encoding")

func decodeElem(s string) (string, bool) {
	if !strings.Contains(s, "_") {
		return s, plainElem(s)
	}
	rest, ok := strings.CutPrefix(s, "0")
	if !ok {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c != '_' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(rest) {
			return "", false
		}
		v, err := unhex(rest[i+1], rest[i+2])
		if err != nil {
			return "", false
		}
		b.WriteByte(v)
		i += 2
	}
	e := b.String()
	return e, encodeElem(e) == s
}

func unhex(a, b byte) (byte, error) {
	h := func(c byte) (byte, error) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', nil
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, nil
		}
		return 0, errEncoding
	}
	x, err1 := h(a)
	y, err2 := h(b)
	return x<<4 | y, errors.Join(err1, err2)
}
