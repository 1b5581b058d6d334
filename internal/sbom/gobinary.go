package sbom

import (
	"bytes"
	"debug/buildinfo"
	"io"
	"runtime/debug"
	"strings"

	packageurl "github.com/package-url/packageurl-go"
)

// isExecutableMagic reports whether b starts like an ELF, Mach-O or PE
// file, the formats Go builds.
func isExecutableMagic(b []byte) bool {
	switch {
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return true
	case bytes.HasPrefix(b, []byte("MZ")):
		return true
	case bytes.HasPrefix(b, []byte{0xfe, 0xed, 0xfa, 0xce}), bytes.HasPrefix(b, []byte{0xce, 0xfa, 0xed, 0xfe}),
		bytes.HasPrefix(b, []byte{0xfe, 0xed, 0xfa, 0xcf}), bytes.HasPrefix(b, []byte{0xcf, 0xfa, 0xed, 0xfe}):
		return true
	}
	return false
}

// goBinaryPackages reads the module build information Go embeds in a
// binary. ok is false when r is not a Go binary (or was stripped of it).
// The result lists the main module, every dependency (after replacements,
// with its go.sum h1 checksum) and the Go standard library, named "stdlib"
// with the toolchain version as its version.
func goBinaryPackages(r io.ReaderAt, location string) (pkgs []Package, ok bool) {
	bi, err := buildinfo.Read(r)
	if err != nil {
		return nil, false
	}
	return buildInfoPackages(bi, location), true
}

func buildInfoPackages(bi *debug.BuildInfo, location string) []Package {
	var pkgs []Package
	loc := []string{location}
	if bi.Main.Path != "" {
		p := Package{Name: bi.Main.Path, Version: bi.Main.Version, Type: TypeGolang, MainModule: true, Locations: loc}
		p.PURL = purlFor(TypeGolang, p.Name, p.Version)
		if bi.Main.Sum != "" {
			p.Hashes = map[string]string{HashGoH1: bi.Main.Sum}
		}
		pkgs = append(pkgs, p)
	}
	for _, d := range bi.Deps {
		if d == nil {
			continue
		}
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		if m.Path == "" {
			continue
		}
		p := Package{Name: m.Path, Version: m.Version, Type: TypeGolang, Locations: loc}
		p.PURL = purlFor(TypeGolang, p.Name, p.Version)
		if m.Sum != "" {
			p.Hashes = map[string]string{HashGoH1: m.Sum}
		}
		pkgs = append(pkgs, p)
	}
	if v := bi.GoVersion; v != "" {
		// "go1.26.8 X:boringcrypto" carries experiments after a space.
		v, _, _ = strings.Cut(v, " ")
		pkgs = append(pkgs, Package{
			Name: "stdlib", Version: v, Type: TypeGolang, Locations: loc,
			PURL: packageurl.NewPackageURL(packageurl.TypeGolang, "", "stdlib", strings.TrimPrefix(v, "go"), nil, "").ToString(),
		})
	}
	return pkgs
}
