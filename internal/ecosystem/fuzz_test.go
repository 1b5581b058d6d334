package ecosystem

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	packageurl "github.com/package-url/packageurl-go"
)

// seed adds fixtures and inline inputs (the seeds of the former
// provenance and SBOM fuzzers, merged) to a fuzz corpus.
func seed(f *testing.F, fixtures []string, extra ...string) {
	f.Helper()
	for _, name := range fixtures {
		b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(name)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, e := range append(extra, "", "\n\n", "\x00\xff", "{", "[[package]]\nname = \"") {
		f.Add([]byte(e))
	}
}

// checkPackages asserts what every parser promises of its output: the
// type asked for, a name and a version, a package URL that parses back,
// lowercase hex hashes, well-formed file hashes.
func checkPackages(t *testing.T, ps []Package, typ string) {
	t.Helper()
	for _, p := range ps {
		if p.Type != typ || p.Name == "" || p.Version == "" {
			t.Fatalf("bad package %+v", p)
		}
		if _, err := packageurl.FromString(p.PURL()); err != nil {
			t.Fatalf("purl %q does not parse back: %v", p.PURL(), err)
		}
		for alg, v := range p.Hashes {
			if _, err := hex.DecodeString(v); err != nil || v == "" || v != strings.ToLower(v) {
				t.Fatalf("hash %s=%q is not lowercase hex", alg, v)
			}
		}
		for _, h := range p.FileHashes {
			if g, ok := FileHash(h); !ok || g != h {
				t.Fatalf("file hash %q", h)
			}
		}
	}
}

func fuzzParser(f *testing.F, parse func([]byte) ([]Package, error), typ string) {
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := parse(b)
		if err == nil {
			checkPackages(t, ps, typ)
		}
	})
}

func FuzzGoSum(f *testing.F) {
	seed(f, []string{"go.sum", "rootfs/go.sum"}, "a v1 h1:\nb v2/go.mod h1:x\nc v3 h2:abc\n", "a.b/c v1.0.0 h1:x\na.b/c v1.0.0 h1:x\n", "a b\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParseGoSum(b)
		if err != nil {
			return
		}
		checkPackages(t, ps, TypeGolang)
		seen := map[string]bool{}
		for _, p := range ps {
			if !strings.HasPrefix(p.GoH1, "h1:") || seen[p.Name+"@"+p.Version] {
				t.Fatalf("package %+v (repeated: %v)", p, seen[p.Name+"@"+p.Version])
			}
			seen[p.Name+"@"+p.Version] = true
		}
	})
}

func FuzzGoMod(f *testing.F) {
	seed(f, []string{"rootfs/go.mod"}, "module x\nrequire a.b/c v1.0.0\nreplace a.b/c => d.e/f v2.0.0\n", "module x\nreplace a.b/c v1.0.0 => ../c\nrequire a.b/c v1.0.0\n")
	fuzzParser(f, ParseGoMod, TypeGolang)
}

func FuzzPackageLock(f *testing.F) {
	seed(f, []string{"rootfs/package-lock.json", "package-lock-v3.json", "package-lock-gitlab.json"},
		`{"packages":{"node_modules/@x":{"version":"1","integrity":"sha512-AA== sha1-zz"}}}`,
		`{"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0","integrity":"sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA=","dependencies":{"b":{"version":"2.0.0"}}}}}`,
		`{"packages":{"node_modules/@s/x":{"version":"1","license":{"type":"MIT"}}}}`)
	fuzzParser(f, ParsePackageLock, TypeNPM)
}

func FuzzRequirements(f *testing.F) {
	seed(f, []string{"requirements.txt", "rootfs/requirements.txt"},
		"a[b]===1.0 --hash=sha256:AB\\\n --hash md5:00\n", "a==1 \\\n --hash=sha256:00\n", "x[y,z]===1.0+local", "a==1.*", "\\\n\\\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParseRequirements(b)
		if err != nil {
			return
		}
		checkPackages(t, ps, TypePyPI)
		for _, p := range ps {
			if strings.Contains(p.Version, "*") {
				t.Fatalf("wildcard reported as a pin: %+v", p)
			}
		}
	})
}

func FuzzPoetryLock(f *testing.F) {
	seed(f, []string{"poetry.lock", "rootfs/poetry.lock"}, "[[package]]\nname = \"a\"\nversion = \"1\" # c\n", "[[package]]\nname = \"\"\"\n")
	fuzzParser(f, ParsePoetryLock, TypePyPI)
}

func FuzzCargoLock(f *testing.F) {
	seed(f, []string{"Cargo.lock", "rootfs/Cargo.lock"}, "[[package]]\nname = \"a\"\nversion = \"1\"\nsource = \"x\"\nchecksum = \"zz\"\n")
	fuzzParser(f, ParseCargoLock, TypeCargo)
}

func FuzzPom(f *testing.F) {
	seed(f, []string{"pom.xml"}, `<project><properties><a>${b}</a><b>${a}</b></properties><dependencies><dependency><groupId>g</groupId><artifactId>a</artifactId><version>${a}</version></dependency></dependencies></project>`)
	fuzzParser(f, ParsePom, TypeMaven)
}

func FuzzPomProperties(f *testing.F) {
	seed(f, []string{"rootfs/pom.properties"}, "groupId:g\nartifactId:a\nversion:1\n")
	fuzzParser(f, ParsePomProperties, TypeMaven)
}

func FuzzParseSRI(f *testing.F) {
	for _, s := range []string{"sha512-AA== sha1-zz", "sha384-" + strings.Repeat("A", 64) + "?x", "sha256-" + strings.Repeat("A", 43) + "= sha512-?", "", "-", "sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := ParseSRI(s)
		for alg, v := range d {
			r := sriRank(alg)
			if r < 0 || len(v) != 2*sriAlgorithms[r].size || v != strings.ToLower(v) {
				t.Fatalf("ParseSRI(%q): %s=%q", s, alg, v)
			}
		}
		if alg, _, ok := Strongest(d); ok != (len(d) > 0) || (ok && d[alg] == "") {
			t.Fatalf("Strongest(%v) = %s %v", d, alg, ok)
		}
	})
}
