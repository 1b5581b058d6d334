package provenance

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/package-url/packageurl-go"
)

func seedFile(f *testing.F, rel string) {
	f.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(rel)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func FuzzParse(f *testing.F) {
	for _, env := range []string{"github.env", "gitlab.env"} {
		m := map[string]string{}
		b, err := os.ReadFile(filepath.Join("testdata", env))
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				m[k] = v
			}
		}
		p, err := FromEnv(func(k string) string { return m[k] }, "", time.Unix(1795000000, 0))
		if err != nil {
			f.Fatal(err)
		}
		out, _ := json.Marshal(p)
		f.Add(out)
	}
	f.Add([]byte(`{"buildDefinition":{"buildType":"t","externalParameters":{"source":1,"workflow":{"path":2}},"internalParameters":{"a":[1]}},"runDetails":{"builder":{"id":"b"}}}`))
	f.Add([]byte(`{"buildDefinition":{"buildType":"t","externalParameters":null},"runDetails":{"builder":{"id":"b"},"metadata":{"startedOn":"2026-01-01T00:00:00Z"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if p.BuildDefinition.BuildType == "" || p.RunDetails.Builder.ID == "" {
			t.Fatal("accepted a predicate without buildType or builder")
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("accepted predicate does not re-encode: %v", err)
		}
		p2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded predicate does not parse: %v\n%s", err, out)
		}
		if p2.SourceURI() != p.SourceURI() || p2.RunDetails.Builder.ID != p.RunDetails.Builder.ID {
			t.Fatal("round trip changed the predicate")
		}
		_ = Check(p, Expect{SourceURIPrefix: "https://github.com/acme"})
	})
}

// checkDeps asserts what every lockfile parser promises of its output.
func checkDeps(t *testing.T, deps []ResourceDescriptor) {
	t.Helper()
	for _, d := range deps {
		if !strings.HasPrefix(d.URI, "pkg:") {
			t.Fatalf("dependency URI %q is not a purl", d.URI)
		}
		if _, err := packageurl.FromString(d.URI); err != nil {
			t.Fatalf("dependency URI %q does not parse back: %v", d.URI, err)
		}
		for alg, v := range d.Digest {
			if _, err := hex.DecodeString(v); err != nil || v != strings.ToLower(v) || v == "" {
				t.Fatalf("digest %s=%q is not lowercase hex", alg, v)
			}
		}
		if len(d.Annotations) > 0 && !json.Valid(d.Annotations) {
			t.Fatalf("annotations are not JSON: %s", d.Annotations)
		}
	}
}

func FuzzGoSum(f *testing.F) {
	seedFile(f, "github-workspace/go.sum")
	f.Add([]byte("a v1 h1:\nb v2/go.mod h1:x\nc v3 h2:abc\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		deps, err := parseGoSum(b)
		if err == nil {
			checkDeps(t, deps)
		}
	})
}

func FuzzPackageLock(f *testing.F) {
	seedFile(f, "github-workspace/web/package-lock.json")
	seedFile(f, "gitlab-workspace/package-lock.json")
	f.Add([]byte(`{"packages":{"node_modules/@x":{"version":"1","integrity":"sha512-AA== sha1-zz"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		deps, err := parsePackageLock(b)
		if err == nil {
			checkDeps(t, deps)
		}
	})
}

func FuzzRequirements(f *testing.F) {
	seedFile(f, "github-workspace/tools/requirements.txt")
	f.Add([]byte("a[b]===1.0 --hash=sha256:AB\\\n --hash md5:00\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		deps, err := parseRequirements(b)
		if err == nil {
			checkDeps(t, deps)
		}
	})
}

func FuzzLockTOML(f *testing.F) {
	seedFile(f, "github-workspace/tools/poetry.lock")
	seedFile(f, "github-workspace/native/Cargo.lock")
	f.Add([]byte("[[package]]\nname = \"\"\"\nversion = \"1\"\nsource = \"x\"\nchecksum = \"zz\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if deps, err := parsePoetryLock(b); err == nil {
			checkDeps(t, deps)
		}
		if deps, err := parseCargoLock(b); err == nil {
			checkDeps(t, deps)
		}
	})
}

func FuzzPom(f *testing.F) {
	seedFile(f, "github-workspace/server/pom.xml")
	f.Add([]byte(`<project><properties><a>${b}</a><b>${a}</b></properties><dependencies><dependency><groupId>g</groupId><artifactId>a</artifactId><version>${a}</version></dependency></dependencies></project>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		deps, err := parsePom(b)
		if err == nil {
			checkDeps(t, deps)
		}
	})
}
