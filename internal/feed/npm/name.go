package npm

import (
	"fmt"
	"strings"

	"github.com/custody-dev/custody/internal/feed"
)

// maxName is npm's longest package name.
const maxName = 214

// Name is an npm package name: "base" or "@scope/base".
type Name struct {
	Scope string // without '@'; empty when unscoped
	Base  string
}

func (n Name) String() string {
	if n.Scope == "" {
		return n.Base
	}
	return "@" + n.Scope + "/" + n.Base
}

// ParseName reads "base" or "@scope/base". Each part must be one
// component of the OCI name grammar (lowercase letters and digits,
// separated by '.', '_', "__" or runs of '-'): the names npm accepts for
// new packages, less a few it allows for old ones ('~', "..", uppercase,
// a trailing '-'), which custody refuses rather than store under another
// name. So nothing in a name can traverse a path or need escaping.
func ParseName(s string) (Name, error) {
	if s == "" || len(s) > maxName {
		return Name{}, fmt.Errorf("package name must be 1 to %d characters", maxName)
	}
	var n Name
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		scope, base, ok := strings.Cut(rest, "/")
		if !ok {
			return Name{}, fmt.Errorf("scoped package name %q must be @scope/name", s)
		}
		n = Name{Scope: scope, Base: base}
	} else {
		n = Name{Base: s}
	}
	parts := []string{n.Base}
	if strings.HasPrefix(s, "@") {
		parts = append(parts, n.Scope)
	}
	for _, part := range parts {
		if !feed.ValidComponent(part) {
			return Name{}, fmt.Errorf("invalid package name %q: use lowercase letters and digits, separated by '.', '_' or '-'", s)
		}
	}
	return n, nil
}

// Repository is the OCI repository of the package in feed: <feed>/<base>
// or <feed>/<scope>/<base>. An unscoped package never shares one with a
// scoped one: they differ in depth.
func (n Name) Repository(feedName string) (string, error) {
	if n.Scope == "" {
		return feed.Repository(feedName, n.Base)
	}
	return feed.Repository(feedName, n.Scope, n.Base)
}

// NameOf reverses Repository: the package a repository of feed holds.
func NameOf(feedName, repo string) (Name, bool) {
	segs, ok := feed.Segments(feedName, repo)
	if !ok {
		return Name{}, false
	}
	switch len(segs) {
	case 1:
		return Name{Base: segs[0]}, true
	case 2:
		return Name{Scope: segs[0], Base: segs[1]}, true
	}
	return Name{}, false
}
