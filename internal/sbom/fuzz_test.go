package sbom

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	packageurl "github.com/package-url/packageurl-go"
)

// seed adds a fixture file and a few malformed inputs to a fuzz corpus.
func seed(f *testing.F, fixture string, extra ...string) {
	f.Helper()
	if fixture != "" {
		b, err := os.ReadFile(fixture)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, e := range append(extra, "", "\n\n", "\x00\xff", "{", "[[package]]\nname = \"") {
		f.Add([]byte(e))
	}
}

// checkParsed asserts the invariants every parser keeps: a package has a
// name, its type, exactly the location it was read from, and a PURL (when
// set) that parses back.
func checkParsed(t *testing.T, pkgs []Package, typ PackageType, loc string) {
	t.Helper()
	for _, p := range pkgs {
		if p.Name == "" || p.Type != typ || len(p.Locations) != 1 || p.Locations[0] != loc {
			t.Fatalf("bad package %+v", p)
		}
		if p.PURL != "" {
			if _, err := packageurl.FromString(p.PURL); err != nil {
				t.Fatalf("purl %q does not parse: %v", p.PURL, err)
			}
		}
	}
}

func FuzzDpkgStatus(f *testing.F) {
	seed(f, "testdata/rootfs/var/lib/dpkg/status", "Package: a\nVersion: 1\n continuation\n", " leading continuation\n", "Package a\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := parseDpkgStatus(b, "/var/lib/dpkg/status")
		if err != nil {
			return
		}
		checkParsed(t, pkgs, TypeDeb, "/var/lib/dpkg/status")
		finishSystemPackages(pkgs, &OS{ID: "debian", VersionID: "12"})
		checkParsed(t, pkgs, TypeDeb, "/var/lib/dpkg/status")
	})
}

func FuzzAPKInstalled(f *testing.F) {
	seed(f, "testdata/alpine/lib/apk/db/installed", "P:x\nV:1\n", "Px\n", "P:\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := parseAPKInstalled(b, "/lib/apk/db/installed")
		if err != nil {
			return
		}
		finishSystemPackages(pkgs, &OS{ID: "alpine", VersionID: "3.19.1"})
		checkParsed(t, pkgs, TypeApk, "/lib/apk/db/installed")
	})
}

func FuzzOSRelease(f *testing.F) {
	seed(f, "testdata/rootfs/etc/os-release", `ID="a\"b"`, "ID=", "ID='x")
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := parseOSRelease(b)
		if err == nil && o.ID == "" {
			t.Fatal("accepted an os-release without ID")
		}
	})
}

// FuzzLayer streams arbitrary bytes as an image layer tar.
func FuzzLayer(f *testing.F) {
	f.Add(makeTar(f, "testdata/alpine", nil, tarEntry{name: "x/.wh..wh..opq"}, tarEntry{name: "y/.wh.z"}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := newCataloger(Options{MaxEntries: 1000, MaxManifestBytes: 1 << 20, MaxBinaryBytes: 1 << 20, TempDir: t.TempDir()}, KindImage)
		l := c.newLayer()
		if err := walkTar(context.Background(), l, bytes.NewReader(b), true); err != nil {
			return
		}
		l.commit()
		inv := c.inventory(Subject{Name: "fuzz"})
		for _, p := range inv.Packages {
			if p.Name == "" || len(p.Locations) == 0 {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}

func FuzzValidate(f *testing.F) {
	f.Add(encoded(f, FormatSPDXJSON))
	f.Add(encoded(f, FormatCycloneDXJSON))
	f.Add([]byte(`{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"n","documentNamespace":"https://x/y","creationInfo":{"creators":["Tool: t"],"created":"2024-01-01T00:00:00Z"},"relationships":[{"spdxElementId":"SPDXRef-DOCUMENT","relatedSpdxElement":"SPDXRef-A","relationshipType":"DESCRIBES"}]}`))
	f.Add([]byte(`{"bomFormat":"CycloneDX","specVersion":"1.5","metadata":{"component":{"type":"container","name":"x","purl":"pkg:oci/x@sha256%3A00"}}}`))
	f.Add([]byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"a","components":[{"type":"library","name":"b"}]}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := Validate(bytes.NewReader(b), 1<<20)
		if err != nil {
			return
		}
		if doc.Format != FormatSPDXJSON && doc.Format != FormatCycloneDXJSON {
			t.Fatalf("format %q", doc.Format)
		}
		for _, s := range doc.Subjects {
			if !doc.DescribesDigest(s) {
				t.Fatalf("subject %q not described", s)
			}
		}
		// Accepting is stable: the raw bytes validate again the same way.
		again, err := Validate(bytes.NewReader(doc.Raw), 1<<20)
		if err != nil || again.Format != doc.Format || len(again.Subjects) != len(doc.Subjects) {
			t.Fatalf("re-validation differs: %v", err)
		}
	})
}

func FuzzPythonMetadata(f *testing.F) {
	seed(f, "testdata/installed/usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", "Name: a\nVersion: 1\nLicense: "+string(make([]byte, 200))+"\n", "Name\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := parsePythonMetadata(b, "/METADATA")
		if err == nil {
			checkParsed(t, pkgs, TypePyPI, "/METADATA")
		}
	})
}

func FuzzNodePackageJSON(f *testing.F) {
	seed(f, "testdata/installed/app/node_modules/@scope/pkg/package.json", `{"name":"@x","version":"1"}`, `{"name":"a","version":"1","license":["MIT"]}`)
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := parseNodePackageJSON(b, "/package.json")
		if err == nil {
			checkParsed(t, pkgs, TypeNPM, "/package.json")
		}
	})
}

func FuzzDpkgCopyright(f *testing.F) {
	seed(f, "testdata/installed/usr/share/doc/bash/copyright", "License: (MIT or ISC), Zlib and\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, l := range parseDpkgCopyright(b) {
			if l == "" || strings.ContainsAny(l, " \t") {
				t.Fatalf("bad license %q", l)
			}
		}
	})
}
