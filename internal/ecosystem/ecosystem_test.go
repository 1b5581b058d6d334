package ecosystem

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// byPURL indexes parsed packages by package URL.
func byPURL(ps []Package) map[string]Package {
	m := map[string]Package{}
	for _, p := range ps {
		m[p.PURL()] = p
	}
	return m
}

func TestPURL(t *testing.T) {
	for _, tc := range []struct{ typ, name, version, want string }{
		{TypeGolang, "github.com/google/uuid", "v1.6.0", "pkg:golang/github.com/google/uuid@v1.6.0"},
		{TypeGolang, "rsc.io", "v1.0.0", "pkg:golang/rsc.io@v1.0.0"},
		{TypeNPM, "@types/node", "22.9.0", "pkg:npm/%40types/node@22.9.0"},
		{TypeNPM, "left-pad", "1.3.0", "pkg:npm/left-pad@1.3.0"},
		{TypePyPI, "Typing_Extensions", "4.12.2", "pkg:pypi/typing-extensions@4.12.2"},
		{TypeMaven, "org.example:demo", "1.0", "pkg:maven/org.example/demo@1.0"},
		{TypeCargo, "serde", "1.0.215", "pkg:cargo/serde@1.0.215"},
	} {
		if got := PURL(tc.typ, tc.name, tc.version); got != tc.want {
			t.Errorf("PURL(%s, %s, %s) = %s, want %s", tc.typ, tc.name, tc.version, got, tc.want)
		}
	}
}

// TestNormalizePyPIName pins PEP 503: the three former copies (sbom,
// vuln, provenance) lowered before or after collapsing the runs; both
// orders give these answers.
func TestNormalizePyPIName(t *testing.T) {
	for in, want := range map[string]string{
		"Django":              "django",
		"Typing_Extensions":   "typing-extensions",
		"zope.interface":      "zope-interface",
		"a-_.-b":              "a-b",
		"charset_normalizer":  "charset-normalizer",
		"ALREADY-normalised":  "already-normalised",
		"x__Y..z--":           "x-y-z-",
		"Backports.Zoneinfo_": "backports-zoneinfo-",
	} {
		if got := NormalizePyPIName(in); got != want {
			t.Errorf("NormalizePyPIName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIsVersionConstraint pins the one character set for "a constraint,
// not a version". The server's former copy lacked "," and "!" (so
// "1.0,2.0" and "!=1.0" in an SBOM went unflagged); vuln's lacked "=" and
// "!" at this step (it handled them per ecosystem afterwards).
func TestIsVersionConstraint(t *testing.T) {
	for v, want := range map[string]bool{
		"":           true,
		"  ":         true,
		"1.2.3":      false,
		"v1.2.3":     false,
		"1:2.36-9":   false, // a Debian epoch is a version
		"1.0-r0":     false,
		"2.0.0+meta": false,
		"^1.2":       true,
		"~1.2":       true,
		"~=4.2":      true,
		">=2":        true,
		"<3":         true,
		"==1.2.3":    true, // an operator, even an exact one
		"=1.2.3":     true,
		"!=1.0":      true,
		"1.0,2.0":    true,
		"1.x || 2.x": true,
		"1.2.*":      true,
		"1.0 - 2.0":  true,
	} {
		if got := IsVersionConstraint(v); got != want {
			t.Errorf("IsVersionConstraint(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestParseGoSum(t *testing.T) {
	ps, err := ParseGoSum(fixture(t, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Type: TypeGolang, Name: "github.com/google/uuid", Version: "v1.6.0", GoH1: "h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0="},
		{Type: TypeGolang, Name: "github.com/opencontainers/go-digest", Version: "v1.0.0", GoH1: "h1:apOUWs51W5PlhuyGyz9FCeeBIOUDA/6nW8Oi/yOhh5U="},
		{Type: TypeGolang, Name: "github.com/spf13/cobra", Version: "v1.10.2", GoH1: "h1:DMTTonx5m65Ic0GOoRY2c16WCbHxOOw6xxezuLaBpcU="},
	}
	if d := cmp.Diff(want, ps); d != "" {
		t.Errorf("go.sum (-want +got):\n%s", d)
	}
}

// TestParseGoSumDecisions pins where the provenance and SBOM copies
// disagreed: a line with a hash kind other than h1 is skipped, as the go
// command does (the SBOM copy refused the whole file), and an h1 hash that
// is not base64 of 32 bytes is an error (the SBOM copy accepted it).
// Repeated lines are reported once.
func TestParseGoSumDecisions(t *testing.T) {
	h1 := "h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0="
	ps, err := ParseGoSum([]byte("a.b/c v1.0.0 h2:whatever\na.b/d v1.0.0 " + h1 + "\na.b/d v1.0.0 " + h1 + "\n"))
	if err != nil || len(ps) != 1 || ps[0].Name != "a.b/d" {
		t.Errorf("future hash kind: %+v, %v; want only a.b/d", ps, err)
	}
	for _, bad := range []string{"a.b/c v1.0.0 h1:x\n", "a.b/c v1.0.0 h1:AAAA\n", "a b\n", "a.b/c notaversion " + h1 + "\n"} {
		if ps, err := ParseGoSum([]byte(bad)); err == nil {
			t.Errorf("ParseGoSum(%q) = %+v, want an error", bad, ps)
		}
	}
}

func TestParseGoMod(t *testing.T) {
	ps, err := ParseGoMod([]byte("module x\nrequire (\n\ta.b/c v1.0.0\n\ta.b/local v1.0.0\n\tnot/a/path/ v1.0.0\n)\nreplace a.b/local => ../local\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{Type: TypeGolang, Name: "a.b/c", Version: "v1.0.0"}, {Type: TypeGolang, Name: "a.b/local", Version: "v1.0.0"}}
	if d := cmp.Diff(want, ps); d != "" {
		t.Errorf("go.mod (-want +got):\n%s", d)
	}
}

func TestParsePackageLock(t *testing.T) {
	ps, err := ParsePackageLock(fixture(t, "rootfs/package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := byPURL(ps)
	lp := m["pkg:npm/left-pad@1.3.0"]
	if lp.License != "WTFPL" || len(lp.Hashes["sha512"]) != 128 || !strings.HasPrefix(lp.Resolved, "https://registry.npmjs.org/") {
		t.Errorf("left-pad %+v", lp)
	}
	if _, ok := m["pkg:npm/%40types/node@20.11.5"]; !ok {
		t.Errorf("scoped package missing: %v", slices.Collect(func(yield func(string) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		}))
	}
	if _, ok := m["pkg:npm/inner@0.1.0"]; !ok {
		t.Error("nested node_modules package missing")
	}
	for k := range m {
		if strings.Contains(k, "webapp") {
			t.Errorf("root project reported as a dependency: %s", k)
		}
	}

	v1, err := ParsePackageLock(fixture(t, "package-lock-gitlab.json"))
	if err != nil {
		t.Fatal(err)
	}
	m = byPURL(v1)
	if len(m) != 3 || len(m["pkg:npm/%40types/node@22.9.0"].Hashes["sha1"]) != 40 || m["pkg:npm/undici-types@6.19.8"].Hashes["sha512"] == "" ||
		m["pkg:npm/lodash@4.17.21"].Resolved == "" {
		t.Errorf("lockfile v1: %+v", v1)
	}
}

// TestParsePackageLockDecisions pins where the provenance and SBOM copies
// disagreed: an entry's "name" (the real package of an alias) wins over
// its node_modules key (provenance used the key); a v1 "file:" or "link:"
// version is not a dependency (provenance recorded it); nesting deeper
// than 64 is an error (the SBOM copy silently stopped reading).
func TestParsePackageLockDecisions(t *testing.T) {
	ps, err := ParsePackageLock([]byte(`{"lockfileVersion":3,"packages":{"":{"name":"root","version":"1"},"node_modules/alias":{"name":"real","version":"2.0.0"},"node_modules/ws":{"link":true,"version":"1"}}}`))
	if err != nil || len(ps) != 1 || ps[0].PURL() != "pkg:npm/real@2.0.0" {
		t.Errorf("alias: %+v, %v", ps, err)
	}
	ps, err = ParsePackageLock([]byte(`{"lockfileVersion":1,"dependencies":{"a":{"version":"file:../a"},"b":{"version":"link:../b"},"c":{"version":"1.0.0"}}}`))
	if err != nil || len(ps) != 1 || ps[0].Name != "c" {
		t.Errorf("file:/link: versions: %+v, %v", ps, err)
	}
	deep := strings.Repeat(`{"x":{"version":"1","dependencies":`, 70) + "{}" + strings.Repeat("}}", 70)
	if ps, err := ParsePackageLock([]byte(`{"lockfileVersion":1,"dependencies":` + deep + `}`)); err == nil {
		t.Errorf("70-deep nesting accepted: %d packages", len(ps))
	}
}

func TestParseRequirements(t *testing.T) {
	ps, err := ParseRequirements(fixture(t, "requirements.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Type: TypePyPI, Name: "requests", Version: "2.32.3", FileHashes: []string{
			"sha256:c84a09757ebaad3dbdc07d455da0b62427fff0f874c83fd5d961f5d4503523a1",
			"sha256:0e3cc730d9c08262b256b2ba943e34c5460dbf5747cc864f0cf8065ad068605c"}},
		{Type: TypePyPI, Name: "PyYAML", Version: "6.0.2",
			Hashes:     map[string]string{"sha256": "9831daaaa0a94144fc3378fde30109ecfc1639ae1d738f35bedbb6ac80210f85"},
			FileHashes: []string{"sha256:9831daaaa0a94144fc3378fde30109ecfc1639ae1d738f35bedbb6ac80210f85"}},
		{Type: TypePyPI, Name: "charset_normalizer", Version: "3.4.0"},
	}
	if d := cmp.Diff(want, ps, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("requirements (-want +got):\n%s", d)
	}
	if got := ps[1].PURL(); got != "pkg:pypi/pyyaml@6.0.2" {
		t.Errorf("purl %s", got)
	}
}

// TestParseRequirementsDecisions pins where the copies disagreed: a
// wildcard pin ("==1.*") and a compound specifier ("==1.0,<2") are ranges,
// not pins (provenance recorded "1.*" and "1.0"); --hash values are read
// (the SBOM copy ignored them) when they are sha256/384/512 of the right
// length.
func TestParseRequirementsDecisions(t *testing.T) {
	in := "a==1.*\nb==1.0,<2\nc===1.0+local\nd[x] == 2.0 --hash=sha384:" + strings.Repeat("AB", 48) + " --hash=md5:00 --hash=sha256:00\n"
	ps, err := ParseRequirements([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Type: TypePyPI, Name: "c", Version: "1.0+local"},
		{Type: TypePyPI, Name: "d", Version: "2.0", Hashes: map[string]string{"sha384": strings.Repeat("ab", 48)}, FileHashes: []string{"sha384:" + strings.Repeat("ab", 48)}},
	}
	if d := cmp.Diff(want, ps, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestParsePoetryLock(t *testing.T) {
	ps, err := ParsePoetryLock(fixture(t, "poetry.lock"))
	if err != nil {
		t.Fatal(err)
	}
	m := byPURL(ps)
	if len(m) != 2 || len(m["pkg:pypi/certifi@2024.8.30"].FileHashes) != 2 || m["pkg:pypi/certifi@2024.8.30"].Hashes != nil {
		t.Errorf("poetry.lock: %+v", ps)
	}
	te := m["pkg:pypi/typing-extensions@4.12.2"]
	if te.Name != "Typing_Extensions" || te.Hashes["sha256"] != "2d6c9a90dd38f6852515274cde41a8cd8e7e1a7a053835334ec7e29f61b918dd" {
		t.Errorf("typing-extensions %+v", te)
	}
	// A multi-line string and a [package.dependencies] table are TOML
	// like any other.
	ps, err = ParsePoetryLock(fixture(t, "rootfs/poetry.lock"))
	if err != nil || len(ps) != 2 || ps[1].Name != "idna" || ps[1].Version != "3.6" {
		t.Errorf("rootfs poetry.lock: %+v, %v", ps, err)
	}
}

// TestParseTOMLLockDecisions pins the move from two hand-written TOML
// subsets to a TOML parser: a file that is not TOML is an error (the
// provenance copy read what it could), and a trailing comment or an
// inline table is read as TOML says (the hand parsers differed).
func TestParseTOMLLockDecisions(t *testing.T) {
	for _, bad := range []string{"[[package]]\nname = \"\"\"\n", "[[package]]\nname = \"a\nversion = \"1\"\n", "[[package]]\nname = 1\n"} {
		if ps, err := ParsePoetryLock([]byte(bad)); err == nil {
			t.Errorf("ParsePoetryLock(%q) = %+v, want an error", bad, ps)
		}
		if ps, err := ParseCargoLock([]byte(bad)); err == nil {
			t.Errorf("ParseCargoLock(%q) = %+v, want an error", bad, ps)
		}
	}
	ps, err := ParsePoetryLock([]byte("[[package]]\nname = \"a\" # c\nversion = \"1\"\nsource = {type = \"git\", url = \"https://x\"}\n"))
	if err != nil || len(ps) != 1 || ps[0].Name != "a" || ps[0].Version != "1" {
		t.Errorf("comment and inline table: %+v, %v", ps, err)
	}
}

func TestParseCargoLock(t *testing.T) {
	ps, err := ParseCargoLock(fixture(t, "Cargo.lock"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Type: TypeCargo, Name: "acme-native", Version: "0.1.0"},
		{Type: TypeCargo, Name: "serde", Version: "1.0.215", Source: "registry+https://github.com/rust-lang/crates.io-index",
			Hashes: map[string]string{"sha256": "8b917c4b6163bc82ef4aff025c6f5f4d54205232c4595f39b7b43008256a6cb7"}},
		{Type: TypeCargo, Name: "serde_derive", Version: "1.0.215", Source: "registry+https://github.com/rust-lang/crates.io-index",
			Hashes: map[string]string{"sha256": "f84ba28fa88c8cce1c643e86230df2b68ce7cebe198f2c765757efd8a37a8ddd"}},
	}
	if d := cmp.Diff(want, ps); d != "" {
		t.Errorf("Cargo.lock (-want +got):\n%s", d)
	}
	ps, err = ParseCargoLock([]byte("[[package]]\nname = \"a\"\nversion = \"1\"\nchecksum = \"zz\"\n"))
	if err != nil || len(ps) != 1 || ps[0].Hashes != nil {
		t.Errorf("bad checksum: %+v, %v", ps, err)
	}
}

func TestParsePom(t *testing.T) {
	ps, err := ParsePom(fixture(t, "pom.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) == 0 {
		t.Fatal("no dependencies")
	}
	for _, p := range ps {
		if p.Type != TypeMaven || !strings.Contains(p.Name, ":") || IsVersionConstraint(p.Version) || strings.Contains(p.Version, "${") {
			t.Errorf("dependency %+v", p)
		}
	}
	ps, err = ParsePom([]byte(`<project><version>2.0</version><properties><v>${project.version}</v></properties><dependencies>` +
		`<dependency><groupId>g</groupId><artifactId>a</artifactId><version>${v}</version></dependency>` +
		`<dependency><groupId>g</groupId><artifactId>r</artifactId><version>[1.0,2.0)</version></dependency>` +
		`<dependency><groupId>g</groupId><artifactId>u</artifactId><version>${missing}</version></dependency>` +
		`</dependencies></project>`))
	if err != nil || len(ps) != 1 || ps[0].PURL() != "pkg:maven/g/a@2.0" {
		t.Errorf("properties: %+v, %v", ps, err)
	}
}

func TestParsePomProperties(t *testing.T) {
	ps, err := ParsePomProperties(fixture(t, "rootfs/pom.properties"))
	if err != nil || len(ps) != 1 || ps[0].Type != TypeMaven || !strings.HasPrefix(ps[0].PURL(), "pkg:maven/org.example/demo@") {
		t.Errorf("pom.properties: %+v, %v", ps, err)
	}
	if ps, err := ParsePomProperties([]byte("groupId=g\n")); err != nil || ps != nil {
		t.Errorf("incomplete: %+v, %v", ps, err)
	}
	if !IsPomProperties("app/META-INF/maven/g/a/pom.properties") || IsPomProperties("app/pom.properties") {
		t.Error("IsPomProperties")
	}
}
