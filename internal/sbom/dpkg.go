package sbom

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	packageurl "github.com/package-url/packageurl-go"
)

// maxStanzaLine caps one line of a dpkg or apk database; descriptions are
// short, so a longer line means the file is not what its name says.
const maxStanzaLine = 1 << 20

// parseStanzas splits Debian control-format data (RFC 822-like "Field:
// value" paragraphs separated by blank lines, continuation lines starting
// with a space or tab) into field maps. Only the first line of each field
// is kept: every field the cataloguer reads is single-line.
func parseStanzas(data []byte) ([]map[string]string, error) {
	var out []map[string]string
	cur := map[string]string{}
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxStanzaLine)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(t) == "" {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
			}
			last = ""
			continue
		}
		if t[0] == ' ' || t[0] == '\t' {
			if last == "" {
				return nil, fmt.Errorf("line %d: continuation line outside a field", line)
			}
			continue
		}
		if t[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(t, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not a \"Field: value\" line", line, truncate(t, 60))
		}
		k = strings.TrimSpace(k)
		cur[k] = strings.TrimSpace(v)
		last = k
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// parseDpkgStatus reads a dpkg status file (var/lib/dpkg/status) or one
// file of var/lib/dpkg/status.d (distroless), returning the installed
// packages. A paragraph without a Status field counts as installed (the
// status.d files of distroless images omit it); one whose Status is not
// "... installed" (removed, config-files only) is skipped. PURLs are set
// later, once the distribution is known ([finishSystemPackages]).
func parseDpkgStatus(data []byte, location string) ([]Package, error) {
	stanzas, err := parseStanzas(data)
	if err != nil {
		return nil, fmt.Errorf("dpkg status %s: %w", location, err)
	}
	var pkgs []Package
	for _, s := range stanzas {
		name := s["Package"]
		if name == "" {
			continue
		}
		if st, ok := s["Status"]; ok {
			f := strings.Fields(st)
			if len(f) == 0 || f[len(f)-1] != "installed" {
				continue
			}
		}
		p := Package{
			Name:      name,
			Version:   s["Version"],
			Type:      TypeDeb,
			Arch:      s["Architecture"],
			Locations: []string{location},
		}
		// "Source: openssl (3.0.13-1~deb12u1)" names the source package and,
		// when it differs from the binary's, its version.
		if src := s["Source"]; src != "" {
			if n, _, _ := strings.Cut(src, " "); n != name {
				p.Upstream = n
			}
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// parseAPKInstalled reads an Alpine apk database (lib/apk/db/installed):
// paragraphs of single-letter "K:value" lines separated by blank lines.
func parseAPKInstalled(data []byte, location string) ([]Package, error) {
	var pkgs []Package
	cur := map[byte]string{}
	flush := func() {
		if cur['P'] != "" {
			p := Package{
				Name:      cur['P'],
				Version:   cur['V'],
				Type:      TypeApk,
				Arch:      cur['A'],
				Locations: []string{location},
			}
			if l := strings.TrimSpace(cur['L']); l != "" {
				p.Licenses = []string{l}
			}
			if o := cur['o']; o != "" && o != p.Name {
				p.Upstream = o
			}
			pkgs = append(pkgs, p)
		}
		cur = map[byte]string{}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxStanzaLine)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(t) == "" {
			flush()
			continue
		}
		if len(t) < 2 || t[1] != ':' {
			return nil, fmt.Errorf("apk database %s: line %d: %q is not a \"K:value\" line", location, line, truncate(t, 60))
		}
		// Only the first value of a key counts: file entries (F:, R:, Z:)
		// repeat, package fields do not.
		if _, seen := cur[t[0]]; !seen {
			cur[t[0]] = t[2:]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("apk database %s: line %d: %w", location, line+1, err)
	}
	flush()
	return pkgs, nil
}

// finishSystemPackages sets the PURLs of deb and apk packages, which need
// the distribution (namespace and distro qualifier) from os-release.
func finishSystemPackages(pkgs []Package, osr *OS) {
	for i := range pkgs {
		p := &pkgs[i]
		if p.PURL != "" {
			continue
		}
		var ns string
		switch p.Type {
		case TypeDeb:
			ns = "debian"
		case TypeApk:
			ns = "alpine"
		default:
			continue
		}
		q := map[string]string{}
		if osr != nil && osr.ID != "" {
			// Ubuntu packages live in the "ubuntu" namespace, Debian
			// derivatives otherwise in "debian"; likewise for Alpine.
			if p.Type == TypeDeb && osr.ID != "debian" && (osr.ID == "ubuntu" || !contains(osr.IDLike, "debian")) {
				ns = osr.ID
			}
			if p.Type == TypeApk && osr.ID != "alpine" && !contains(osr.IDLike, "alpine") {
				ns = osr.ID
			}
			if osr.VersionID != "" {
				q["distro"] = osr.ID + "-" + osr.VersionID
			} else {
				q["distro"] = osr.ID
			}
		}
		if p.Arch != "" {
			q["arch"] = p.Arch
		}
		if p.Upstream != "" {
			q["upstream"] = p.Upstream
		}
		p.PURL = packageurl.NewPackageURL(string(p.Type), ns, p.Name, p.Version, packageurl.QualifiersFromMap(q), "").ToString()
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// parseOSRelease reads an os-release file (KEY=value lines, values
// optionally quoted).
func parseOSRelease(data []byte) (*OS, error) {
	o := &OS{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
			v = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`").Replace(v)
		}
		switch strings.TrimSpace(k) {
		case "ID":
			o.ID = strings.ToLower(v)
		case "VERSION_ID":
			o.VersionID = v
		case "VERSION_CODENAME":
			o.VersionCodename = v
		case "PRETTY_NAME":
			o.PrettyName = v
		case "ID_LIKE":
			o.IDLike = strings.Fields(strings.ToLower(v))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("os-release: %w", err)
	}
	if o.ID == "" {
		return nil, fmt.Errorf("os-release: no ID= line")
	}
	return o, nil
}
