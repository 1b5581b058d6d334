package sbom

import (
	"reflect"
	"testing"
)

// TestPackagesLicences: the packages of an SBOM carry the licences it
// declares (SPDX concluded/declared without the NOASSERTION and NONE
// placeholders; CycloneDX ids, names and expressions, nested components
// too); packages without a purl stay out.
func TestPackagesLicences(t *testing.T) {
	spdx := `{"spdxVersion":"SPDX-2.3","packages":[
	 {"name":"a","versionInfo":"1","licenseConcluded":"MIT","licenseDeclared":"MIT","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:generic/a@1"}]},
	 {"name":"b","versionInfo":"2","licenseConcluded":"NOASSERTION","licenseDeclared":"Apache-2.0","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:generic/b@2"}]},
	 {"name":"c","versionInfo":"3","licenseConcluded":"NONE","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:generic/c@3"}]},
	 {"name":"d","versionInfo":"4","licenseConcluded":"GPL-2.0-only","licenseDeclared":"GPL-2.0-or-later","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:generic/d@4"}]},
	 {"name":"no-purl","licenseConcluded":"MIT"}]}`
	got, err := Packages([]byte(spdx), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []PackageRef{
		{Name: "a", Version: "1", PURL: "pkg:generic/a@1", Licenses: []string{"MIT"}},
		{Name: "b", Version: "2", PURL: "pkg:generic/b@2", Licenses: []string{"Apache-2.0"}},
		{Name: "c", Version: "3", PURL: "pkg:generic/c@3"},
		{Name: "d", Version: "4", PURL: "pkg:generic/d@4", Licenses: []string{"GPL-2.0-or-later", "GPL-2.0-only"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("SPDX packages:\n got %+v\nwant %+v", got, want)
	}

	cdx := `{"bomFormat":"CycloneDX","components":[
	 {"name":"x","version":"1","purl":"pkg:npm/x@1","licenses":[{"license":{"id":"MIT"}},{"license":{"name":"Custom"}}],
	  "components":[{"name":"y","version":"2","purl":"pkg:npm/y@2","licenses":[{"expression":"MIT OR Apache-2.0"}]}]},
	 {"name":"z","version":"3","purl":"pkg:npm/z@3"}]}`
	got, err = Packages([]byte(cdx), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want = []PackageRef{
		{Name: "x", Version: "1", PURL: "pkg:npm/x@1", Licenses: []string{"MIT", "Custom"}},
		{Name: "z", Version: "3", PURL: "pkg:npm/z@3"},
		{Name: "y", Version: "2", PURL: "pkg:npm/y@2", Licenses: []string{"MIT OR Apache-2.0"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CycloneDX packages:\n got %+v\nwant %+v", got, want)
	}
}
