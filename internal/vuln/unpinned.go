package vuln

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	packageurl "github.com/package-url/packageurl-go"

	"github.com/custody-dev/custody/internal/ecosystem"
)

// UnpinnedReason says why a dependency is not pinned.
type UnpinnedReason string

// The reasons.
const (
	// ReasonRange: the dependency is declared with a version range or a
	// moving label ("^1.2", ">=2,<3", "[1.0,2.0)", "latest", "*") and no
	// lockfile pins it.
	ReasonRange UnpinnedReason = "range"
	// ReasonUnlocked: the dependency names one version but has no
	// lockfile entry, so nothing records its checksum or pins what it pulls
	// in.
	ReasonUnlocked UnpinnedReason = "unlocked"
	// ReasonTag: an image is referenced by tag, which can be moved, rather
	// than by digest.
	ReasonTag UnpinnedReason = "tag"
)

// Dependency is one declared dependency, as a manifest or Dockerfile
// states it.
type Dependency struct {
	// PURL names a package dependency. Empty for images.
	PURL string
	// Constraint is the version as declared: "1.2.3", "==1.2.3", "^1.2.0",
	// ">=2,<3", "[1.0,2.0)", "latest". When empty, the PURL's version is
	// used; a dependency with neither declares no version at all.
	Constraint string
	// Locked is true when a lockfile (package-lock.json, poetry.lock,
	// go.sum, ...) records an exact version of this dependency.
	Locked bool
	// Image is an image reference for a base image ("alpine:3.19",
	// "docker.io/library/alpine@sha256:..."); set it instead of PURL.
	// "scratch" (no base image) is always pinned.
	Image string
	// Location says where the dependency is declared ("Dockerfile:1",
	// "requirements.txt").
	Location string
}

// Unpinned returns a KindUnpinned finding for each dependency that is not
// pinned to one immutable version, in input order:
//
//   - an image (Image set) not referenced by a sha256 or sha512 digest
//     (ReasonTag);
//   - a package with no lockfile entry (Locked false) whose Constraint is
//     not one exact version for its ecosystem (ReasonRange), or is one
//     (ReasonUnlocked).
//
// A package with a lockfile entry is pinned whatever its constraint. The
// findings carry SeverityLow, ID "UNPINNED-" plus the reason in upper
// case, the constraint as Version and the dependency's Location.
func Unpinned(deps []Dependency) []Finding {
	var out []Finding
	for _, d := range deps {
		if d.Constraint == "" && d.PURL != "" {
			if p, err := packageurl.FromString(d.PURL); err == nil {
				d.Constraint = p.Version
			}
		}
		var reason UnpinnedReason
		var why string
		switch {
		case d.Image != "":
			if d.Image == "scratch" || imageDigest().MatchString(d.Image) {
				continue
			}
			reason = ReasonTag
			why = fmt.Sprintf("image %s is referenced by tag, not by digest; pin it as name@sha256:<digest>", d.Image)
		case d.Locked:
			continue
		case exactVersion(d.PURL, d.Constraint):
			reason = ReasonUnlocked
			why = fmt.Sprintf("%s %s has no lockfile entry; commit a lockfile that records it", d.PURL, d.Constraint)
		default:
			reason = ReasonRange
			c := d.Constraint
			if c == "" {
				c = "(no version)"
			}
			why = fmt.Sprintf("%s is declared as %s, not one exact version, and no lockfile pins it", d.PURL, c)
		}
		name := d.PURL
		if d.Image != "" {
			name = d.Image
		}
		out = append(out, Finding{
			Kind:     KindUnpinned,
			ID:       "UNPINNED-" + strings.ToUpper(string(reason)),
			PURL:     name,
			Version:  d.Constraint,
			Severity: SeverityLow,
			Summary:  why,
			Reason:   reason,
			Location: d.Location,
		})
	}
	return out
}

var imageDigest = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`@sha(256:[0-9a-f]{64}|512:[0-9a-f]{128})$`) })

// exactVersion reports whether constraint names exactly one version in
// purl's ecosystem. The ecosystem's exact-pin operator ("=" for npm and
// Go, "==" or "===" for PyPI) is taken off first; what remains must not be
// a constraint by the one shared rule (ecosystem.IsVersionConstraint),
// and must then be one full version of that ecosystem.
func exactVersion(purl, constraint string) bool {
	c := strings.TrimSpace(constraint)
	typ := ""
	if p, err := packageurl.FromString(purl); err == nil {
		typ = p.Type
	}
	switch typ {
	case "npm", "golang":
		if ecosystem.IsVersionConstraint(strings.TrimPrefix(c, "=")) {
			return false
		}
		// A full major.minor.patch: npm reads "1.2" as the range 1.2.x.
		core, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(c, "="), "v"), "-")
		core, _, _ = strings.Cut(core, "+")
		_, err := canonSemver(c)
		return err == nil && strings.Count(core, ".") == 2
	case "pypi":
		if v, ok := strings.CutPrefix(c, "==="); ok {
			return !ecosystem.IsVersionConstraint(v) // arbitrary equality: any one string
		}
		c = strings.TrimPrefix(c, "==")
		if ecosystem.IsVersionConstraint(c) {
			return false
		}
		_, err := parsePEP440(c)
		return err == nil
	}
	if ecosystem.IsVersionConstraint(c) {
		return false
	}
	switch typ {
	case "maven":
		if strings.ContainsAny(c, "[]()") {
			return false
		}
		switch strings.ToUpper(c) {
		case "LATEST", "RELEASE":
			return false
		}
		// A SNAPSHOT is rebuilt in place under the same version.
		return !strings.HasSuffix(strings.ToUpper(c), "-SNAPSHOT")
	}
	switch strings.ToLower(c) {
	case "latest", "x", "next", "stable":
		return false
	}
	return true
}
