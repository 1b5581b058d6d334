package provenance

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/package-url/packageurl-go"
	"golang.org/x/mod/module"
)

// Lockfile limits.
const (
	// MaxLockfileBytes caps one lockfile; a larger one is an error.
	MaxLockfileBytes = 32 << 20
	// maxLockfiles caps how many lockfiles one workspace scan reads.
	maxLockfiles = 64
	// maxScanDepth is how deep below the workspace root lockfiles are sought.
	maxScanDepth = 4
)

// lockfileParsers maps a lockfile's base name to its parser.
var lockfileParsers = map[string]func([]byte) ([]ResourceDescriptor, error){
	"go.sum":            parseGoSum,
	"package-lock.json": parsePackageLock,
	"requirements.txt":  parseRequirements,
	"poetry.lock":       parsePoetryLock,
	"pom.xml":           parsePom,
	"Cargo.lock":        parseCargoLock,
}

// skipDirs are never descended into when looking for lockfiles: they hold
// dependencies' own files, not the build's.
var skipDirs = map[string]bool{
	".git": true, "node_modules": true, "vendor": true, "target": true,
	".venv": true, "venv": true, "__pycache__": true, ".tox": true, "dist": true, "build": true,
}

// Dependencies finds the lockfiles in a workspace (the root and up to
// four directory levels below it, skipping .git, node_modules, vendor,
// target, virtualenvs and build output) and returns the dependencies they
// pin, sorted by URI, without duplicates:
//
//   - go.sum: every module zip hash, pkg:golang purl, digest dirHash;
//   - package-lock.json (lockfile v1, v2, v3): pkg:npm purl, digest from
//     "integrity" (sha512/sha256/sha1);
//   - requirements.txt: pinned "name==version" lines only, pkg:pypi purl;
//     the --hash values (one per distribution file) go to annotations
//     {"hashes": [...]}, and into digest only when there is exactly one;
//   - poetry.lock: pkg:pypi purl, file hashes as for requirements.txt;
//   - pom.xml: declared dependencies whose version is literal or a
//     property of the same file, pkg:maven purl, no digest;
//   - Cargo.lock: registry packages, pkg:cargo purl, digest sha256 from
//     "checksum".
//
// Unpinned entries are left out: provenance records what was resolved.
func Dependencies(workspace string) ([]ResourceDescriptor, error) {
	root, err := os.OpenRoot(workspace)
	if err != nil {
		return nil, fmt.Errorf("opening workspace: %w", err)
	}
	defer root.Close()
	var files []string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (skipDirs[d.Name()] || strings.Count(p, "/") >= maxScanDepth) {
				return fs.SkipDir
			}
			return nil
		}
		if _, ok := lockfileParsers[d.Name()]; ok && d.Type().IsRegular() {
			if len(files) == maxLockfiles {
				return fmt.Errorf("more than %d lockfiles under %s", maxLockfiles, workspace)
			}
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("looking for lockfiles: %w", err)
	}
	seen := map[string]bool{}
	var deps []ResourceDescriptor
	for _, p := range files {
		b, err := readCapped(root, p, MaxLockfileBytes)
		if err != nil {
			return nil, err
		}
		ds, err := lockfileParsers[path.Base(p)](b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for _, d := range ds {
			k := d.URI + "\x00" + digestKey(d.Digest)
			if seen[k] {
				continue
			}
			seen[k] = true
			deps = append(deps, d)
		}
		if len(deps) > MaxDependencies {
			return nil, fmt.Errorf("the workspace lockfiles pin more than %d dependencies, more than a provenance can carry", MaxDependencies)
		}
	}
	slices.SortStableFunc(deps, func(a, b ResourceDescriptor) int { return strings.Compare(a.URI, b.URI) })
	return deps, nil
}

func digestKey(d map[string]string) string {
	keys := make([]string, 0, len(d))
	for k, v := range d {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// readCapped reads a file inside root, refusing more than limit bytes.
func readCapped(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := root.Open(filepath.FromSlash(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b, nil
}

func purl(typ, namespace, name, version string) string {
	return packageurl.NewPackageURL(typ, namespace, name, version, nil, "").ToString()
}

// parseGoSum reads go.sum: "module version h1:<base64>" lines. Lines for
// a module's go.mod only ("version/go.mod") are left out: the build did
// not use that module's code.
func parseGoSum(b []byte) ([]ResourceDescriptor, error) {
	var out []ResourceDescriptor
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want \"module version h1:hash\"", n)
		}
		mod, ver, sum := f[0], f[1], f[2]
		if strings.HasSuffix(ver, "/go.mod") {
			continue
		}
		if err := module.Check(mod, ver); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		h, ok := strings.CutPrefix(sum, "h1:")
		if !ok {
			continue // a future hash kind: not one we can name
		}
		raw, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("line %d: %s %s: bad h1 hash", n, mod, ver)
		}
		ns, name := "", mod
		if i := strings.LastIndex(mod, "/"); i >= 0 {
			ns, name = mod[:i], mod[i+1:]
		}
		out = append(out, ResourceDescriptor{
			URI:    purl(packageurl.TypeGolang, ns, name, ver),
			Digest: map[string]string{"dirHash": hex.EncodeToString(raw)},
		})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// npmEntry is one package of package-lock.json ("packages", v2 and v3).
type npmEntry struct {
	Version   string `json:"version"`
	Integrity string `json:"integrity"`
	Resolved  string `json:"resolved"`
	Link      bool   `json:"link"`
}

// npmV1Entry is one package of a v1 lockfile's nested "dependencies".
type npmV1Entry struct {
	npmEntry
	Dependencies map[string]npmV1Entry `json:"dependencies"`
}

// parsePackageLock reads package-lock.json: "packages" (v2, v3), else the
// nested "dependencies" of v1.
func parsePackageLock(b []byte) ([]ResourceDescriptor, error) {
	var lock struct {
		LockfileVersion int                   `json:"lockfileVersion"`
		Packages        map[string]npmEntry   `json:"packages"`
		Dependencies    map[string]npmV1Entry `json:"dependencies"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return nil, fmt.Errorf("not a package-lock.json: %w", err)
	}
	var out []ResourceDescriptor
	add := func(name string, e npmEntry) {
		if e.Link || e.Version == "" || name == "" {
			return
		}
		ns, n := "", name
		if strings.HasPrefix(name, "@") {
			if i := strings.Index(name, "/"); i > 0 {
				ns, n = name[:i], name[i+1:]
			}
		}
		d := ResourceDescriptor{URI: purl(packageurl.TypeNPM, ns, n, e.Version), Digest: sriDigest(e.Integrity)}
		if strings.HasPrefix(e.Resolved, "https://") {
			d.DownloadLocation = e.Resolved
		}
		out = append(out, d)
	}
	if len(lock.Packages) > 0 {
		for key, e := range lock.Packages {
			i := strings.LastIndex(key, "node_modules/")
			if i < 0 {
				continue // the root project, or a workspace member
			}
			add(key[i+len("node_modules/"):], e)
		}
		return out, nil
	}
	var walk func(map[string]npmV1Entry, int) error
	walk = func(m map[string]npmV1Entry, depth int) error {
		if depth > 64 {
			return errors.New("dependencies nested more than 64 deep")
		}
		for name, e := range m {
			add(name, e.npmEntry)
			if err := walk(e.Dependencies, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(lock.Dependencies, 0)
}

// sriDigest turns a Subresource Integrity string ("sha512-<base64>", maybe
// several separated by spaces) into a DigestSet.
func sriDigest(sri string) map[string]string {
	d := map[string]string{}
	for _, part := range strings.Fields(sri) {
		alg, b64, ok := strings.Cut(part, "-")
		if !ok {
			continue
		}
		if i := strings.IndexByte(b64, '?'); i >= 0 { // SRI options
			b64 = b64[:i]
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		want := map[string]int{"sha512": 64, "sha384": 48, "sha256": 32, "sha1": 20}[alg]
		if want == 0 || len(raw) != want {
			continue
		}
		d[alg] = hex.EncodeToString(raw)
	}
	if len(d) == 0 {
		return nil
	}
	return d
}

var (
	pep503     = regexp.MustCompile(`[-_.]+`)
	reqLine    = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*===?\s*([^\s;,\\]+)`)
	hashOption = regexp.MustCompile(`--hash[=\s]+(sha256|sha384|sha512):([0-9a-fA-F]+)`)
)

// parseRequirements reads a pip requirements file; only "name==version"
// (or "===") lines are dependencies, with their --hash options.
func parseRequirements(b []byte) ([]ResourceDescriptor, error) {
	// Join backslash continuations first.
	text := strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\\\n", " ")
	var out []ResourceDescriptor
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "-") {
			continue
		}
		m := reqLine.FindStringSubmatch(line)
		if m == nil {
			continue // unpinned, a URL or a path: nothing resolved to record
		}
		name := strings.ToLower(pep503.ReplaceAllString(m[1], "-"))
		var hashes []string
		for _, h := range hashOption.FindAllStringSubmatch(line, -1) {
			if len(h[2]) == map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[h[1]] {
				hashes = append(hashes, h[1]+":"+strings.ToLower(h[2]))
			}
		}
		out = append(out, pypiDescriptor(name, m[3], hashes))
	}
	return out, nil
}

func pypiDescriptor(name, version string, hashes []string) ResourceDescriptor {
	d := ResourceDescriptor{URI: purl(packageurl.TypePyPi, "", name, version)}
	if len(hashes) == 1 {
		alg, h, _ := strings.Cut(hashes[0], ":")
		d.Digest = map[string]string{alg: h}
	}
	if len(hashes) > 0 {
		d.Annotations, _ = json.Marshal(map[string][]string{"hashes": hashes})
	}
	return d
}

// tomlTables walks the "[[package]]" tables of a lockfile written by
// poetry or cargo (a flat subset of TOML: one key = value per line, the
// files array of poetry spread over lines), calling fn with each table's
// string keys and every "sha256:<hex>" or checksum it mentions.
func tomlTables(b []byte, fn func(keys map[string]string, hashes []string)) error {
	var (
		keys   map[string]string
		hashes []string
		in     bool
	)
	flush := func() {
		if in {
			fn(keys, hashes)
		}
		keys, hashes, in = map[string]string{}, nil, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") && !strings.HasPrefix(line, "[[package.") && !strings.HasPrefix(line, "[package.") {
			flush()
			in = line == "[[package]]"
			continue
		}
		if !in {
			continue
		}
		for _, m := range tomlHash.FindAllStringSubmatch(line, -1) {
			hashes = append(hashes, "sha256:"+strings.ToLower(m[1]))
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			keys[k] = v[1 : len(v)-1]
		}
	}
	flush()
	return sc.Err()
}

var tomlHash = regexp.MustCompile(`hash\s*=\s*"sha256:([0-9a-fA-F]{64})"`)

// parsePoetryLock reads poetry.lock [[package]] tables.
func parsePoetryLock(b []byte) ([]ResourceDescriptor, error) {
	var out []ResourceDescriptor
	err := tomlTables(b, func(k map[string]string, hashes []string) {
		if k["name"] == "" || k["version"] == "" {
			return
		}
		name := strings.ToLower(pep503.ReplaceAllString(k["name"], "-"))
		out = append(out, pypiDescriptor(name, k["version"], hashes))
	})
	return out, err
}

// parseCargoLock reads Cargo.lock [[package]] tables; packages without a
// source are the workspace's own crates.
func parseCargoLock(b []byte) ([]ResourceDescriptor, error) {
	var out []ResourceDescriptor
	err := tomlTables(b, func(k map[string]string, _ []string) {
		if k["name"] == "" || k["version"] == "" || k["source"] == "" {
			return
		}
		d := ResourceDescriptor{URI: purl(packageurl.TypeCargo, "", k["name"], k["version"])}
		if c := strings.ToLower(k["checksum"]); len(c) == 64 && isHex(c) {
			d.Digest = map[string]string{"sha256": c}
		}
		out = append(out, d)
	})
	return out, err
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// pomProject is the part of a Maven POM that names dependencies.
type pomProject struct {
	Version string `xml:"version"`
	Parent  struct {
		Version string `xml:"version"`
	} `xml:"parent"`
	Properties struct {
		Entries []struct {
			XMLName xml.Name
			Value   string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"properties"`
	Dependencies []pomDependency `xml:"dependencies>dependency"`
}

type pomDependency struct {
	GroupID    string `xml:"groupId"`
	ArtifactID string `xml:"artifactId"`
	Version    string `xml:"version"`
}

var pomProperty = regexp.MustCompile(`\$\{([^}]+)\}`)

// parsePom reads a pom.xml's declared dependencies. A version that is a
// ${property} is resolved from the same file's properties (and
// project.version); one that cannot be resolved, or a range, is left out.
func parsePom(b []byte) ([]ResourceDescriptor, error) {
	var p pomProject
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("not a pom.xml: %w", err)
	}
	props := map[string]string{}
	for _, e := range p.Properties.Entries {
		props[e.XMLName.Local] = strings.TrimSpace(e.Value)
	}
	pv := strings.TrimSpace(p.Version)
	if pv == "" {
		pv = strings.TrimSpace(p.Parent.Version)
	}
	props["project.version"], props["pom.version"] = pv, pv
	resolve := func(s string) string {
		s = strings.TrimSpace(s)
		for i := 0; i < 4 && strings.Contains(s, "${"); i++ {
			s = pomProperty.ReplaceAllStringFunc(s, func(m string) string {
				if v, ok := props[m[2:len(m)-1]]; ok {
					return v
				}
				return m
			})
		}
		return s
	}
	var out []ResourceDescriptor
	for _, d := range p.Dependencies {
		g, a, v := resolve(d.GroupID), resolve(d.ArtifactID), resolve(d.Version)
		if g == "" || a == "" || v == "" || strings.ContainsAny(v, "${[(,") {
			continue
		}
		out = append(out, ResourceDescriptor{URI: purl(packageurl.TypeMaven, g, a, v)})
	}
	return out, nil
}
