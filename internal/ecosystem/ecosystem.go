// Package ecosystem is custody's knowledge of language package ecosystems,
// kept in one place so that provenance (resolvedDependencies), the SBOM
// cataloguer and vulnerability matching read every format the same way:
//
//   - lockfile and manifest parsers, one per format (go.sum, go.mod,
//     package-lock.json, requirements.txt, poetry.lock, Cargo.lock,
//     pom.xml, pom.properties), returning [Package];
//   - package URLs and names: [PURL], [NormalizePyPIName] (PEP 503);
//   - hashes: [ParseSRI] (W3C Subresource Integrity), [FileHash] (pip and
//     poetry "alg:hex");
//   - versions: [IsVersionConstraint], the one rule for "this is a
//     constraint, not one resolved version".
//
// Parsers never touch the file system; callers read the bytes (with their
// own size caps) and decide what of a Package they keep.
package ecosystem

import (
	"regexp"
	"strings"
	"sync"

	packageurl "github.com/package-url/packageurl-go"
)

// Package URL types of the ecosystems the parsers read.
const (
	TypeGolang = "golang"
	TypeNPM    = "npm"
	TypePyPI   = "pypi"
	TypeCargo  = "cargo"
	TypeMaven  = "maven"
)

// Package is one dependency a lockfile or manifest names.
type Package struct {
	// Type is the package URL type (TypeGolang, TypeNPM, ...).
	Type string
	// Name as the ecosystem spells it: "github.com/x/y", "@types/node",
	// "Django" (not normalised), "group:artifact" for Maven.
	Name    string
	Version string
	// Hashes maps an algorithm ("sha1", "sha256", "sha384", "sha512") to
	// a lowercase hex digest of the package's archive: npm integrity,
	// Cargo checksum, or the single file hash of a Python requirement.
	Hashes map[string]string
	// FileHashes are a Python requirement's or poetry package's
	// per-distribution-file hashes, "alg:hex" (lowercase), in file order.
	FileHashes []string
	// GoH1 is go.sum's "h1:<base64>" module hash (a verified 32-byte
	// SHA-256 dirhash).
	GoH1 string
	// Resolved is npm's "resolved" download URL, as written.
	Resolved string
	// Source is Cargo's "source"; empty for the workspace's own crates.
	Source string
	// License is npm's "license" when it is a string.
	License string
}

// PURL returns the package's package URL.
func (p Package) PURL() string { return PURL(p.Type, p.Name, p.Version) }

// PURL builds a package URL of type typ. Go and npm names carry their
// namespace in the name ("github.com/x/y", "@types/node"), Maven names are
// "group:artifact", and PyPI names are PEP 503 normalised.
func PURL(typ, name, version string) string {
	ns, n := "", name
	switch typ {
	case TypeGolang:
		if i := strings.LastIndex(name, "/"); i >= 0 {
			ns, n = name[:i], name[i+1:]
		}
	case TypeNPM:
		if strings.HasPrefix(name, "@") {
			if i := strings.Index(name, "/"); i > 0 {
				ns, n = name[:i], name[i+1:]
			}
		}
	case TypePyPI:
		n = NormalizePyPIName(name)
	case TypeMaven:
		if g, a, ok := strings.Cut(name, ":"); ok {
			ns, n = g, a
		}
	}
	return packageurl.NewPackageURL(typ, ns, n, version, nil, "").ToString()
}

var pypiNameRun = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[-_.]+`) })

// NormalizePyPIName applies PEP 503 normalisation: lower case, and every
// run of "-", "_" and "." becomes one "-".
func NormalizePyPIName(n string) string {
	return strings.ToLower(pypiNameRun().ReplaceAllString(n, "-"))
}

// constraintChars are the characters that make a version string a
// constraint rather than one version: comparison and range operators of
// npm (^ ~ < > = || x-ranges with *), PEP 440 (== != ~= >= , and *),
// Cargo (^ ~ * , and comparison) and Go (none), and the space that
// separates the parts of a compound range.
const constraintChars = " <>=!*^~|,"

// IsVersionConstraint reports whether v, as an SBOM or manifest records
// it, is a constraint (or nothing) rather than one version: it is empty or
// contains any of " <>=!*^~|,". An exact pin spelled with an operator
// ("==1.2.3", "=1.2.3") is a constraint here; whether it names exactly one
// version is ecosystem-specific (vuln.Unpinned decides that).
func IsVersionConstraint(v string) bool {
	v = strings.TrimSpace(v)
	return v == "" || strings.ContainsAny(v, constraintChars)
}
