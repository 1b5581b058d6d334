package sbom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testDigest = "sha256:4b3c2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b"

// encoded returns testdata/rootfs encoded in format f, with a subject
// digest set.
func encoded(t testing.TB, f Format) []byte {
	t.Helper()
	inv, err := FromFile(context.Background(), "testdata/rootfs", Options{Files: FilesEvidence})
	if err != nil {
		t.Fatal(err)
	}
	inv.Subject.Digest = testDigest
	var buf bytes.Buffer
	if err := inv.Encode(&buf, f, EncodeOptions{Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// edit decodes doc, applies fn to the generic tree, and re-encodes it.
func edit(t *testing.T, doc []byte, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidateAcceptsOwnOutput(t *testing.T) {
	for _, f := range []Format{FormatSPDXJSON, FormatCycloneDXJSON} {
		raw := encoded(t, f)
		doc, err := Validate(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if doc.Format != f || !bytes.Equal(doc.Raw, raw) || doc.Name != "rootfs" {
			t.Errorf("%s: doc = %s %q", f, doc.Format, doc.Name)
		}
		if len(doc.Subjects) != 1 || doc.Subjects[0] != testDigest || !doc.DescribesDigest(testDigest) {
			t.Errorf("%s: subjects = %v", f, doc.Subjects)
		}
		if doc.DescribesDigest("") || doc.DescribesDigest("sha256:abc") || doc.DescribesDigest(strings.Replace(testDigest, "4b", "5b", 1)) {
			t.Errorf("%s: describes digests it should not", f)
		}
	}
	if got := encoded(t, FormatSPDXJSON); !bytes.Contains(got, []byte(`"SPDX-2.3"`)) {
		t.Error("SPDX output lacks the version")
	}
	if got := encoded(t, FormatCycloneDXJSON); !bytes.Contains(got, []byte(`"specVersion": "1.6"`)) {
		t.Error("CycloneDX output is not 1.6")
	}
}

// TestValidateThirdParty checks documents shaped like other generators'
// (syft-like SPDX with documentDescribes, a minimal CycloneDX 1.4).
func TestValidateThirdParty(t *testing.T) {
	spdxDoc := `{
 "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
 "name": "alpine:3.19", "documentNamespace": "https://anchore.com/syft/image/alpine-3.19-1234",
 "creationInfo": {"creators": ["Organization: Anchore, Inc", "Tool: syft-1.0.0"], "created": "2024-03-01T10:00:00Z"},
 "documentDescribes": ["SPDXRef-DocumentRoot-Image-alpine"],
 "packages": [
  {"name": "alpine", "SPDXID": "SPDXRef-DocumentRoot-Image-alpine", "versionInfo": "` + testDigest + `",
   "downloadLocation": "NOASSERTION", "filesAnalyzed": false,
   "checksums": [{"algorithm": "SHA256", "checksumValue": "` + strings.Repeat("a", 64) + `"}],
   "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:oci/alpine@sha256%3A` + strings.Repeat("c", 64) + `?repository_url=index.docker.io/library/alpine"}]},
  {"name": "musl", "SPDXID": "SPDXRef-Package-apk-musl", "versionInfo": "1.2.4-r2", "downloadLocation": "NOASSERTION",
   "checksums": [{"algorithm": "SHA256", "checksumValue": "` + strings.Repeat("b", 64) + `"}]}
 ]
}`
	doc, err := Validate(strings.NewReader(spdxDoc), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{testDigest, "sha256:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("c", 64)} {
		if !doc.DescribesDigest(d) {
			t.Errorf("SPDX: does not describe %s; subjects %v", d, doc.Subjects)
		}
	}
	if doc.DescribesDigest("sha256:" + strings.Repeat("b", 64)) {
		t.Error("SPDX: a contained (not described) package's checksum counted as a subject")
	}
	cdxDoc := `{"bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1,
 "metadata": {"component": {"type": "container", "name": "app", "hashes": [{"alg": "SHA-256", "content": "` + strings.TrimPrefix(testDigest, "sha256:") + `"}]}},
 "components": [{"type": "library", "name": "left-pad", "version": "1.3.0", "purl": "pkg:npm/left-pad@1.3.0",
   "components": [{"type": "file", "name": "/x"}]}]}`
	doc, err = Validate(strings.NewReader(cdxDoc), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !doc.DescribesDigest(testDigest) || doc.SpecVersion != "1.4" || doc.Packages != 2 {
		t.Errorf("CycloneDX: doc = %+v", doc)
	}
}

func TestValidateRefuses(t *testing.T) {
	spdxDoc := encoded(t, FormatSPDXJSON)
	cdxDoc := encoded(t, FormatCycloneDXJSON)
	firstPkg := func(m map[string]any) map[string]any { return m["packages"].([]any)[1].(map[string]any) }
	firstComp := func(m map[string]any) map[string]any { return m["components"].([]any)[1].(map[string]any) }
	cases := []struct {
		name string
		doc  []byte
		want string
	}{
		{"not JSON", []byte("<bom/>"), "not a JSON object"},
		{"neither", []byte(`{"hello": 1}`), "neither SPDX"},
		{"SPDX 3", []byte(`{"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"}`), "SPDX 3"},
		{"SPDX 2.2", edit(t, spdxDoc, func(m map[string]any) { m["spdxVersion"] = "SPDX-2.2" }), `only "SPDX-2.3"`},
		{"SPDX data license", edit(t, spdxDoc, func(m map[string]any) { m["dataLicense"] = "MIT" }), "dataLicense"},
		{"SPDX ID", edit(t, spdxDoc, func(m map[string]any) { m["SPDXID"] = "SPDXRef-Other" }), "SPDXID"},
		{"SPDX no namespace", edit(t, spdxDoc, func(m map[string]any) { delete(m, "documentNamespace") }), "documentNamespace is missing"},
		{"SPDX relative namespace", edit(t, spdxDoc, func(m map[string]any) { m["documentNamespace"] = "just-a-name" }), "absolute URI"},
		{"SPDX no creationInfo", edit(t, spdxDoc, func(m map[string]any) { delete(m, "creationInfo") }), "creationInfo is missing"},
		{"SPDX bad created", edit(t, spdxDoc, func(m map[string]any) { m["creationInfo"].(map[string]any)["created"] = "yesterday" }), "RFC 3339"},
		{"SPDX no creators", edit(t, spdxDoc, func(m map[string]any) { m["creationInfo"].(map[string]any)["creators"] = []any{} }), "creators is empty"},
		{"SPDX package without name", edit(t, spdxDoc, func(m map[string]any) { firstPkg(m)["name"] = "" }), "has no name"},
		{"SPDX duplicate ID", edit(t, spdxDoc, func(m map[string]any) {
			firstPkg(m)["SPDXID"] = m["packages"].([]any)[0].(map[string]any)["SPDXID"]
		}), "used twice"},
		{"SPDX bad checksum", edit(t, spdxDoc, func(m map[string]any) {
			m["packages"].([]any)[0].(map[string]any)["checksums"] = []any{map[string]any{"algorithm": "SHA256", "checksumValue": "abc"}}
		}), "not 64 hex digits"},
		{"CycloneDX 1.3", edit(t, cdxDoc, func(m map[string]any) { m["specVersion"] = "1.3" }), "1.4 or later"},
		{"CycloneDX unknown version", edit(t, cdxDoc, func(m map[string]any) { m["specVersion"] = "9.9" }), "CycloneDX"},
		{"CycloneDX bomFormat", edit(t, cdxDoc, func(m map[string]any) { m["bomFormat"] = "SPDX" }), "bomFormat"},
		{"CycloneDX component without name", edit(t, cdxDoc, func(m map[string]any) { delete(firstComp(m), "name") }), "name is missing"},
		{"CycloneDX component bad type", edit(t, cdxDoc, func(m map[string]any) { firstComp(m)["type"] = "gadget" }), "not a CycloneDX component type"},
		{"CycloneDX bad purl", edit(t, cdxDoc, func(m map[string]any) { firstComp(m)["purl"] = "npm:left-pad" }), "purl"},
		{"CycloneDX bad hash", edit(t, cdxDoc, func(m map[string]any) {
			firstComp(m)["hashes"] = []any{map[string]any{"alg": "SHA-256", "content": "zz"}}
		}), "not 64 hex digits"},
		{"CycloneDX duplicate bom-ref", edit(t, cdxDoc, func(m map[string]any) {
			firstComp(m)["bom-ref"] = m["components"].([]any)[0].(map[string]any)["bom-ref"]
		}), "used twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Validate(bytes.NewReader(c.doc), 1<<20)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
}

func TestValidateSizeLimit(t *testing.T) {
	raw := encoded(t, FormatCycloneDXJSON)
	_, err := Validate(bytes.NewReader(raw), int64(len(raw)-1))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if _, err := Validate(bytes.NewReader(raw), 0); err == nil {
		t.Fatal("maxBytes 0 accepted")
	}
	// The limit stops reading: a reader that never ends is refused.
	_, err = Validate(endless{}, 4096)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless input: err = %v", err)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func TestFormatNames(t *testing.T) {
	if FormatSPDXJSON.PredicateType() != "https://spdx.dev/Document" || FormatCycloneDXJSON.PredicateType() != "https://cyclonedx.org/bom" {
		t.Error("predicate types")
	}
	if FormatSPDXJSON.MediaType() != "application/spdx+json" || FormatCycloneDXJSON.MediaType() != "application/vnd.cyclonedx+json" {
		t.Error("media types")
	}
	if Format("x").PredicateType() != "" || Format("x").MediaType() != "" {
		t.Error("unknown format has a predicate or media type")
	}
}

var update = flag.Bool("update", false, "rewrite the golden SBOMs in testdata/golden")

// TestEncodeGolden pins the exact output for testdata/rootfs (no Go binary,
// so nothing depends on the toolchain). Run with -update after an
// intended change and review the diff.
func TestEncodeGolden(t *testing.T) {
	for f, name := range map[Format]string{FormatSPDXJSON: "rootfs.spdx.json", FormatCycloneDXJSON: "rootfs.cdx.json"} {
		got := encoded(t, f)
		p := filepath.Join("testdata", "golden", name)
		if *update {
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (run go test -run TestEncodeGolden -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s; run with -update if the change is intended", f, p)
		}
	}
}

func TestPackagesOfBothFormats(t *testing.T) {
	inv, err := FromFile(context.Background(), "testdata/rootfs", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{FormatSPDXJSON, FormatCycloneDXJSON} {
		var buf bytes.Buffer
		if err := inv.Encode(&buf, f, EncodeOptions{Created: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		pkgs, err := Packages(buf.Bytes(), 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, p := range inv.Packages {
			if p.PURL != "" {
				want[p.PURL] = true
			}
		}
		got := map[string]bool{}
		for _, p := range pkgs {
			got[p.PURL] = true
		}
		for p := range want {
			if !got[p] {
				t.Errorf("%s: %s missing", f, p)
			}
		}
	}
	if _, err := Packages([]byte(`{"foo":1}`), 1<<20); err == nil {
		t.Fatal("unknown document accepted")
	}
	if _, err := Packages(make([]byte, 100), 10); err == nil {
		t.Fatal("oversized document accepted")
	}
}

func FuzzPackages(f *testing.F) {
	f.Add([]byte(`{"spdxVersion":"SPDX-2.3","packages":[{"name":"a","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:npm/a@1"}]}]}`))
	f.Add([]byte(`{"bomFormat":"CycloneDX","components":[{"name":"a","purl":"pkg:npm/a@1","components":[{"name":"b","purl":"pkg:npm/b@2"}]}]}`))
	// Licences: SPDX concluded/declared, CycloneDX ids, names, expressions.
	f.Add([]byte(`{"spdxVersion":"SPDX-2.3","packages":[{"name":"a","licenseConcluded":"NOASSERTION","licenseDeclared":"MIT","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:npm/a@1"}]}]}`))
	f.Add([]byte(`{"bomFormat":"CycloneDX","components":[{"name":"a","purl":"pkg:npm/a@1","licenses":[{"license":{"id":"MIT"}},{"license":{"name":"X"}},{"expression":"A OR B"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Packages(b, 1<<20)
	})
}
