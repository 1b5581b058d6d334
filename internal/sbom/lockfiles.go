package sbom

import (
	"fmt"

	"github.com/custody-dev/custody/internal/ecosystem"
)

// The lockfile and manifest formats are read by internal/ecosystem; these
// turn what it returns into catalogue packages found at location.

// purlFor builds a package URL (ecosystem.PURL).
func purlFor(t PackageType, name, version string) string {
	return ecosystem.PURL(string(t), name, version)
}

// catalogued converts parsed packages of type t read from location. The
// hashes kept are the strongest of an npm integrity (W3C SRI priority), a
// Cargo checksum and go.sum's h1; a Python file hash names one
// distribution file, not the package, and is not kept.
func catalogued(ps []ecosystem.Package, t PackageType, location string) []Package {
	var out []Package
	for _, e := range ps {
		p := Package{Name: e.Name, Version: e.Version, Type: t, PURL: purlFor(t, e.Name, e.Version), Locations: []string{location}}
		switch t {
		case TypeNPM, TypeCargo:
			if alg, v, ok := ecosystem.Strongest(e.Hashes); ok {
				p.Hashes = map[string]string{alg: v}
			}
		case TypeGolang:
			if e.GoH1 != "" {
				p.Hashes = map[string]string{HashGoH1: e.GoH1}
			}
		}
		if e.License != "" {
			p.Licenses = []string{e.License}
		}
		out = append(out, p)
	}
	return out
}

// parseWith runs an ecosystem parser, naming the file in its error.
func parseWith(parse func([]byte) ([]ecosystem.Package, error), what string, t PackageType, data []byte, location string) ([]Package, error) {
	ps, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, location, err)
	}
	return catalogued(ps, t, location), nil
}

// goSum maps "module@version" to its h1 checksum.
type goSum map[string]string

// parseGoSum reads go.sum; lines for a module's go.mod only do not mean
// the module's code is used and are left out.
func parseGoSum(data []byte, location string) (goSum, []Package, error) {
	pkgs, err := parseWith(ecosystem.ParseGoSum, "go.sum", TypeGolang, data, location)
	if err != nil {
		return nil, nil, err
	}
	sums := goSum{}
	for _, p := range pkgs {
		sums[p.Name+"@"+p.Version] = p.Hashes[HashGoH1]
	}
	return sums, pkgs, nil
}
