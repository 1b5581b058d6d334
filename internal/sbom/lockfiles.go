package sbom

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	packageurl "github.com/package-url/packageurl-go"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// purlFor builds a package URL; Go and npm names carry their namespace in
// the name ("github.com/x/y", "@types/node").
func purlFor(t PackageType, name, version string) string {
	ns, n := "", name
	switch t {
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
		n = normalizePyPIName(name)
	case TypeMaven:
		if g, a, ok := strings.Cut(name, ":"); ok {
			ns, n = g, a
		}
	}
	return packageurl.NewPackageURL(string(t), ns, n, version, nil, "").ToString()
}

var pypiNameRun = regexp.MustCompile(`[-_.]+`)

// normalizePyPIName applies PEP 503 normalisation.
func normalizePyPIName(n string) string {
	return strings.ToLower(pypiNameRun.ReplaceAllString(n, "-"))
}

// sriToHex converts an npm integrity string ("sha512-<base64>") to an
// algorithm key and hex value.
func sriToHex(integrity string) (string, string, bool) {
	// Several space-separated hashes may be listed; take the strongest we know.
	best, bestVal := "", ""
	for _, f := range strings.Fields(integrity) {
		alg, b64, ok := strings.Cut(f, "-")
		if !ok {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		want := map[string]int{"sha1": 20, "sha256": 32, "sha512": 64}[alg]
		if want == 0 || len(raw) != want {
			continue
		}
		if best == "" || want > map[string]int{"sha1": 20, "sha256": 32, "sha512": 64}[best] {
			best, bestVal = alg, hex.EncodeToString(raw)
		}
	}
	return best, bestVal, best != ""
}

// npmLock is the part of package-lock.json (lockfileVersion 1, 2 or 3)
// the cataloguer reads.
type npmLock struct {
	LockfileVersion int                    `json:"lockfileVersion"`
	Packages        map[string]npmLockPkg  `json:"packages"`
	Dependencies    map[string]npmLockDep1 `json:"dependencies"`
}

type npmLockPkg struct {
	Name      string          `json:"name"`
	Version   string          `json:"version"`
	Integrity string          `json:"integrity"`
	License   json.RawMessage `json:"license"`
	Link      bool            `json:"link"`
}

type npmLockDep1 struct {
	Version      string                 `json:"version"`
	Integrity    string                 `json:"integrity"`
	Dependencies map[string]npmLockDep1 `json:"dependencies"`
}

// parseNPMLock reads package-lock.json. With lockfileVersion 2 or 3 the
// "packages" map is used (the root project, key "", and workspace links are
// skipped); version 1 files walk the nested "dependencies" tree.
func parseNPMLock(data []byte, location string) ([]Package, error) {
	var l npmLock
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("package-lock.json %s: %w", location, err)
	}
	var pkgs []Package
	add := func(name, version, integrity string, license json.RawMessage) {
		if name == "" || version == "" {
			return
		}
		p := Package{Name: name, Version: version, Type: TypeNPM, PURL: purlFor(TypeNPM, name, version), Locations: []string{location}}
		if alg, v, ok := sriToHex(integrity); ok {
			p.Hashes = map[string]string{alg: v}
		}
		if len(license) > 0 {
			var s string
			if json.Unmarshal(license, &s) == nil && s != "" {
				p.Licenses = []string{s}
			}
		}
		pkgs = append(pkgs, p)
	}
	if len(l.Packages) > 0 {
		for key, e := range l.Packages {
			if key == "" || e.Link {
				continue
			}
			i := strings.LastIndex(key, "node_modules/")
			if i < 0 {
				continue // a workspace folder, not an installed package
			}
			name := e.Name
			if name == "" {
				name = key[i+len("node_modules/"):]
			}
			add(name, e.Version, e.Integrity, e.License)
		}
		return pkgs, nil
	}
	var walk func(m map[string]npmLockDep1, depth int)
	walk = func(m map[string]npmLockDep1, depth int) {
		if depth > 64 {
			return
		}
		for name, d := range m {
			if !strings.HasPrefix(d.Version, "file:") && !strings.HasPrefix(d.Version, "link:") {
				add(name, d.Version, d.Integrity, nil)
			}
			walk(d.Dependencies, depth+1)
		}
	}
	walk(l.Dependencies, 0)
	return pkgs, nil
}

// requirementLine matches a pinned requirement: name, optional extras,
// "==" or "===", version.
var requirementLine = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*===?\s*([A-Za-z0-9][A-Za-z0-9.+!_*-]*)\s*$`)

// parseRequirements reads a pip requirements file. Only exact pins
// (name==version, name===version) name a version and are reported; options
// (-r, -e, --hash), comments, URLs and ranges are skipped. Environment
// markers (after ";") are ignored, continuation lines are joined.
func parseRequirements(data []byte, location string) ([]Package, error) {
	var pkgs []Package
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxStanzaLine)
	var logical strings.Builder
	handle := func(l string) {
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "-") {
			return
		}
		if i := strings.Index(l, ";"); i >= 0 {
			l = l[:i]
		}
		// Per-requirement options such as --hash follow the specifier.
		if i := strings.Index(l, " --"); i >= 0 {
			l = l[:i]
		}
		m := requirementLine.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			return
		}
		name, version := m[1], m[2]
		if strings.Contains(version, "*") {
			return // a wildcard is a range, not a pin
		}
		pkgs = append(pkgs, Package{Name: name, Version: version, Type: TypePyPI, PURL: purlFor(TypePyPI, name, version), Locations: []string{location}})
	}
	for sc.Scan() {
		t := strings.TrimRight(sc.Text(), "\r")
		if strings.HasSuffix(t, "\\") {
			logical.WriteString(strings.TrimSuffix(t, "\\"))
			logical.WriteByte(' ')
			if logical.Len() > maxStanzaLine {
				return nil, fmt.Errorf("requirements %s: continued line longer than %d bytes", location, maxStanzaLine)
			}
			continue
		}
		logical.WriteString(t)
		handle(logical.String())
		logical.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("requirements %s: %w", location, err)
	}
	if logical.Len() > 0 {
		handle(logical.String())
	}
	return pkgs, nil
}

// tomlPackageTables reads the [[package]] array of tables of a TOML lock
// file (poetry.lock, Cargo.lock): for each table, its top-level key = "string"
// pairs. Lock files are machine-written with one key per line, so this reads
// only that subset of TOML; multi-line values and sub-tables
// ([package.dependencies]) are skipped.
func tomlPackageTables(data []byte, what string) ([]map[string]string, error) {
	var out []map[string]string
	var cur map[string]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxStanzaLine)
	line := 0
	inMulti := false
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if inMulti {
			if strings.Contains(t, `"""`) || strings.HasPrefix(t, "]") {
				inMulti = false
			}
			continue
		}
		if t == "" || t[0] == '#' {
			continue
		}
		if t[0] == '[' {
			if cur != nil {
				out = append(out, cur)
				cur = nil
			}
			if t == "[[package]]" {
				cur = map[string]string{}
			}
			continue
		}
		if cur == nil {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return nil, fmt.Errorf("%s: line %d: %q is not a key = value line", what, line, truncate(t, 60))
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case strings.HasPrefix(v, `"""`):
			inMulti = !strings.Contains(v[3:], `"""`)
		case strings.HasPrefix(v, "[") && !strings.HasSuffix(v, "]"):
			inMulti = true
		case strings.HasPrefix(v, `"`):
			s, err := strconv.Unquote(v)
			if err != nil {
				// A trailing comment or an escape Go does not know: keep
				// what is between the first pair of quotes.
				end := strings.Index(v[1:], `"`)
				if end < 0 {
					return nil, fmt.Errorf("%s: line %d: unterminated string", what, line)
				}
				s = v[1 : 1+end]
			}
			cur[k] = s
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: line %d: %w", what, line+1, err)
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out, nil
}

// parsePoetryLock reads poetry.lock.
func parsePoetryLock(data []byte, location string) ([]Package, error) {
	tables, err := tomlPackageTables(data, "poetry.lock "+location)
	if err != nil {
		return nil, err
	}
	var pkgs []Package
	for _, t := range tables {
		if t["name"] == "" || t["version"] == "" {
			continue
		}
		pkgs = append(pkgs, Package{Name: t["name"], Version: t["version"], Type: TypePyPI, PURL: purlFor(TypePyPI, t["name"], t["version"]), Locations: []string{location}})
	}
	return pkgs, nil
}

// parseCargoLock reads Cargo.lock; every [[package]] is reported,
// including the workspace's own crates (which have no source).
func parseCargoLock(data []byte, location string) ([]Package, error) {
	tables, err := tomlPackageTables(data, "Cargo.lock "+location)
	if err != nil {
		return nil, err
	}
	var pkgs []Package
	for _, t := range tables {
		if t["name"] == "" || t["version"] == "" {
			continue
		}
		p := Package{Name: t["name"], Version: t["version"], Type: TypeCargo, PURL: purlFor(TypeCargo, t["name"], t["version"]), Locations: []string{location}}
		if c := t["checksum"]; len(c) == 64 {
			if _, err := hex.DecodeString(c); err == nil {
				p.Hashes = map[string]string{HashSHA256: strings.ToLower(c)}
			}
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// goSum maps "module@version" to its h1 checksum.
type goSum map[string]string

// parseGoSum reads go.sum. Lines for a module's go.mod only ("/go.mod"
// versions) are kept apart: they do not mean the module's code is used.
func parseGoSum(data []byte, location string) (goSum, []Package, error) {
	sums := goSum{}
	var pkgs []Package
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxStanzaLine)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || !strings.HasPrefix(f[2], "h1:") {
			return nil, nil, fmt.Errorf("go.sum %s: line %d: want \"module version h1:hash\"", location, line)
		}
		if strings.HasSuffix(f[1], "/go.mod") {
			continue
		}
		if err := module.Check(f[0], f[1]); err != nil {
			return nil, nil, fmt.Errorf("go.sum %s: line %d: %w", location, line, err)
		}
		if _, dup := sums[f[0]+"@"+f[1]]; dup {
			continue
		}
		sums[f[0]+"@"+f[1]] = f[2]
		pkgs = append(pkgs, Package{Name: f[0], Version: f[1], Type: TypeGolang, PURL: purlFor(TypeGolang, f[0], f[1]), Hashes: map[string]string{HashGoH1: f[2]}, Locations: []string{location}})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("go.sum %s: %w", location, err)
	}
	return sums, pkgs, nil
}

// parseGoMod reads go.mod and reports its requirements (after replace
// directives); the main module itself is not a dependency and is left out.
func parseGoMod(data []byte, location string) ([]Package, error) {
	f, err := modfile.ParseLax(location, data, nil)
	if err != nil {
		return nil, fmt.Errorf("go.mod %s: %w", location, err)
	}
	repl := map[string]module.Version{}
	for _, r := range f.Replace {
		if r.New.Version == "" {
			continue // a local directory replacement has no version
		}
		repl[r.Old.Path+"@"+r.Old.Version] = r.New
		if r.Old.Version == "" {
			repl[r.Old.Path] = r.New
		}
	}
	var pkgs []Package
	for _, r := range f.Require {
		m := r.Mod
		if nm, ok := repl[m.Path+"@"+m.Version]; ok {
			m = nm
		} else if nm, ok := repl[m.Path]; ok {
			m = nm
		}
		if module.CheckPath(m.Path) != nil || m.Version == "" {
			continue // ParseLax lets through paths the go command would refuse
		}
		pkgs = append(pkgs, Package{Name: m.Path, Version: m.Version, Type: TypeGolang, PURL: purlFor(TypeGolang, m.Path, m.Version), Locations: []string{location}})
	}
	return pkgs, nil
}

// parsePomProperties reads META-INF/maven/<group>/<artifact>/pom.properties.
func parsePomProperties(data []byte, location string) ([]Package, error) {
	props := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' || t[0] == '!' {
			continue
		}
		i := strings.IndexAny(t, "=:")
		if i < 0 {
			continue
		}
		props[strings.TrimSpace(t[:i])] = strings.TrimSpace(t[i+1:])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("pom.properties %s: %w", location, err)
	}
	g, a, v := props["groupId"], props["artifactId"], props["version"]
	if g == "" || a == "" || v == "" {
		return nil, nil
	}
	name := g + ":" + a
	return []Package{{Name: name, Version: v, Type: TypeMaven, PURL: purlFor(TypeMaven, name, v), Locations: []string{location}}}, nil
}

// isPomProperties reports whether p is a Maven pom.properties path.
func isPomProperties(p string) bool {
	return path.Base(p) == "pom.properties" && strings.Contains(p, "META-INF/maven/")
}
