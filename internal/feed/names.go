package feed

import (
	"errors"
	"fmt"
	"strings"

	"github.com/custody-dev/custody/internal/registry"
)

// Repository returns the OCI repository of a package of feed: the feed's
// name followed by the package's path segments ("@scope/name" in npm is
// the segments "scope" and "name"). Each segment must be one component of
// the OCI name grammar (lowercase letters and digits, separated by '.',
// '_', "__" or runs of '-'), which is also what keeps a package name from
// escaping its feed: no "..", no '/', no empty segment, nothing to
// percent-decode. The mapping is the identity on segments, so it is
// reversible (Segments) and two packages never share a repository.
// Ecosystems whose names use other characters map them into this alphabet
// reversibly first.
func Repository(feedName string, segments ...string) (string, error) {
	if !ValidComponent(feedName) {
		return "", fmt.Errorf("feed name %q is not a repository name component", feedName)
	}
	if len(segments) == 0 {
		return "", errors.New("empty package name")
	}
	for _, s := range segments {
		if !ValidComponent(s) {
			return "", fmt.Errorf("%q: each part of a package name must be lowercase letters and digits, separated by '.', '_', '__' or '-'", s)
		}
	}
	repo := feedName + "/" + strings.Join(segments, "/")
	if !registry.ValidName(repo) {
		return "", fmt.Errorf("package name too long: the repository %q would exceed 255 characters", repo)
	}
	return repo, nil
}

// Segments reverses Repository: the package path segments of repo, a
// repository of feed; ok is false when repo is not one.
func Segments(feedName, repo string) ([]string, bool) {
	rest, ok := strings.CutPrefix(repo, feedName+"/")
	if !ok || rest == "" || !registry.ValidName(repo) {
		return nil, false
	}
	return strings.Split(rest, "/"), true
}

// ValidComponent reports whether s is one component of an OCI repository
// name.
func ValidComponent(s string) bool {
	return s != "" && !strings.Contains(s, "/") && registry.ValidName(s)
}

// Tags are the OCI tag grammar: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
// Versions map onto tags byte by byte: letters, digits, '.' and '-' stand
// for themselves; every other byte, '_' included, is escaped as '_'
// followed by its two lowercase hex digits ("1.0.0+build" is
// "1.0.0_2bbuild"), and so is a leading '.' or '-'. Escapes always put a
// hex digit after '_', so tags beginning "__" are never versions: they are
// the label log's (see Labels).

// VersionTag maps a version to its tag; an error when the version is empty
// or its tag would be longer than 128 characters.
func VersionTag(version string) (string, error) {
	if version == "" {
		return "", errors.New("empty version")
	}
	var b strings.Builder
	for i := 0; i < len(version); i++ {
		c := version[i]
		plain := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || (i > 0 && (c == '.' || c == '-'))
		if plain {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	t := b.String()
	if !registry.ValidTag(t) {
		return "", fmt.Errorf("version %q is too long (its tag would be %d characters; at most 128)", version, len(t))
	}
	return t, nil
}

// TagVersion reverses VersionTag; ok is false for a tag VersionTag never
// returns (a label, or a tag pushed by other means).
func TagVersion(tag string) (string, bool) {
	if tag == "" || !registry.ValidTag(tag) {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if c != '_' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(tag) {
			return "", false
		}
		v, ok := unhex(tag[i+1], tag[i+2])
		if !ok {
			return "", false
		}
		b.WriteByte(v)
		i += 2
	}
	v := b.String()
	// Only canonical escapes reverse: the round trip must give tag back.
	if t, err := VersionTag(v); err != nil || t != tag {
		return "", false
	}
	return v, true
}

func unhex(a, b byte) (byte, bool) {
	h := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, true
		}
		return 0, false
	}
	x, ok1 := h(a)
	y, ok2 := h(b)
	return x<<4 | y, ok1 && ok2
}
