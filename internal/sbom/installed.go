package sbom

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"

	"github.com/custody-dev/custody/internal/ecosystem"
)

// isPythonMetadata reports whether p is the metadata of an installed Python
// distribution (site-packages/<name>-<version>.dist-info/METADATA or
// <name>.egg-info/PKG-INFO).
func isPythonMetadata(p string) bool {
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	return (base == "METADATA" && strings.HasSuffix(dir, ".dist-info")) ||
		(base == "PKG-INFO" && strings.HasSuffix(dir, ".egg-info"))
}

// parsePythonMetadata reads the e-mail-style header block of a core
// metadata file (PEP 566 / PEP 639): Name, Version, License-Expression or
// License.
func parsePythonMetadata(data []byte, location string) ([]Package, error) {
	var name, version, licExpr, lic string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxStanzaLine)
	for sc.Scan() {
		t := strings.TrimRight(sc.Text(), "\r")
		if t == "" {
			break // the body (long description) follows
		}
		if t[0] == ' ' || t[0] == '\t' {
			continue
		}
		k, v, ok := strings.Cut(t, ":")
		if !ok {
			return nil, fmt.Errorf("python metadata %s: %q is not a header line", location, truncate(t, 60))
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "name":
			name = v
		case "version":
			version = v
		case "license-expression":
			licExpr = v
		case "license":
			lic = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("python metadata %s: %w", location, err)
	}
	if name == "" || version == "" {
		return nil, nil
	}
	p := Package{Name: name, Version: version, Type: TypePyPI, PURL: purlFor(TypePyPI, name, version), Locations: []string{location}}
	switch {
	case licExpr != "":
		p.Licenses = []string{licExpr}
	case lic != "" && len(lic) <= 100 && !strings.Contains(lic, "\n") && strings.ToUpper(lic) != "UNKNOWN":
		// Older packages put whole license texts here; keep only short names.
		p.Licenses = []string{lic}
	}
	return []Package{p}, nil
}

// isNodeModulePackageJSON reports whether p is the package.json of a
// package installed in node_modules (node_modules/<name>/package.json or
// node_modules/@scope/<name>/package.json), not of files inside it.
func isNodeModulePackageJSON(p string) bool {
	if path.Base(p) != "package.json" {
		return false
	}
	parts := strings.Split(path.Dir(p), "/")
	n := len(parts)
	switch {
	case n >= 2 && parts[n-2] == "node_modules" && !strings.HasPrefix(parts[n-1], "@") && !strings.HasPrefix(parts[n-1], "."):
		return true
	case n >= 3 && parts[n-3] == "node_modules" && strings.HasPrefix(parts[n-2], "@"):
		return true
	}
	return false
}

// parseNodePackageJSON reads an installed package's package.json.
func parseNodePackageJSON(data []byte, location string) ([]Package, error) {
	var pj struct {
		Name    string          `json:"name"`
		Version string          `json:"version"`
		License json.RawMessage `json:"license"`
	}
	if err := json.Unmarshal(data, &pj); err != nil {
		return nil, fmt.Errorf("package.json %s: %w", location, err)
	}
	// A name such as "@scope/" names no package (and no package URL).
	if !ecosystem.NPMNameOK(pj.Name) || pj.Version == "" {
		return nil, nil
	}
	p := Package{Name: pj.Name, Version: pj.Version, Type: TypeNPM, PURL: purlFor(TypeNPM, pj.Name, pj.Version), Locations: []string{location}}
	var s string
	var obj struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(pj.License, &s) == nil && s != "" {
		p.Licenses = []string{s}
	} else if json.Unmarshal(pj.License, &obj) == nil && obj.Type != "" {
		p.Licenses = []string{obj.Type}
	}
	return []Package{p}, nil
}

// dpkgCopyrightPackage returns the package a Debian copyright file
// documents (usr/share/doc/<package>/copyright), or "".
func dpkgCopyrightPackage(p string) string {
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if base != "copyright" || path.Dir(dir) != "usr/share/doc" {
		return ""
	}
	return path.Base(dir)
}

var (
	copyrightLicense = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^License:\s*(\S.*)$`) })
	licenseSplit     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)\s+(?:or|and)\s+|,\s*`) })
)

// parseDpkgCopyright collects the license names of a machine-readable
// Debian copyright file (the "License:" fields; their expressions are
// split on "or", "and" and ","), as syft does. Free-form copyright files
// yield nothing.
func parseDpkgCopyright(data []byte) []string {
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxStanzaLine)
	for sc.Scan() {
		m := copyrightLicense().FindStringSubmatch(strings.TrimRight(sc.Text(), "\r"))
		if m == nil {
			continue
		}
		for _, f := range licenseSplit().Split(m[1], -1) {
			f = strings.Trim(strings.TrimSpace(f), "()")
			if f == "" || len(f) > 64 || strings.ContainsAny(f, " \t") || seen[f] {
				continue
			}
			seen[f] = true
			out = append(out, f)
		}
		if len(out) > 100 {
			break
		}
	}
	return out
}
