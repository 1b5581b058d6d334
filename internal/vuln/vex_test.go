package vuln

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

const appDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func loadVEX(t *testing.T, path string) *VEXDocument {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := ParseVEX(f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ids(fs []Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.ID+"@"+f.PURL)
	}
	return strings.Join(s, " ")
}

// TestApplyWaivers runs real matches against the fixture database and
// waives them with the fixture OpenVEX document.
func TestApplyWaivers(t *testing.T) {
	db, _ := openTestDB(t)
	importFixtures(t, db)
	findings, err := db.Match(context.Background(), []Package{
		{PURL: "pkg:npm/lodash@4.17.20"},
		{PURL: "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl", Subject: appDigest},
		{PURL: "pkg:deb/debian/openssl@3.0.11-1~deb12u1?arch=amd64&distro=debian-12", Subject: appDigest},
		{PURL: "pkg:deb/debian/openssl@3.0.11-1~deb12u1?arch=amd64&distro=debian-12", Subject: "sha256:2222222222222222222222222222222222222222222222222222222222222222"},
		{PURL: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 5 {
		t.Fatalf("Match = %s, want 5 findings", ids(findings))
	}
	doc := loadVEX(t, "testdata/vex/waivers.openvex.json")

	before := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	kept, waived := ApplyWaivers(findings, []*VEXDocument{doc}, before)
	// lodash: not_affected by CVE alias, product purl without version.
	// openssl in the app image: product by digest, subcomponent purl
	// without qualifiers; the binary package libssl3 does not match
	// the subcomponent pkg:deb/debian/openssl. The same package in
	// another image stays. log4j is only under investigation.
	wantWaived := "GHSA-35jh-r3h4-6jhm@pkg:npm/lodash@4.17.20 DSA-5532-1@pkg:deb/debian/openssl@3.0.11-1~deb12u1?arch=amd64&distro=debian-12"
	if got := ids(waived); got != wantWaived {
		t.Errorf("waived = %s\nwant %s", got, wantWaived)
	}
	if len(kept) != 3 {
		t.Errorf("kept = %s, want 3", ids(kept))
	}
	for _, f := range waived {
		if f.Waiver == nil || f.Waiver.Status != VEXNotAffected || f.Waiver.Author != doc.Author || f.Waiver.Document != doc.ID {
			t.Errorf("%s: waiver = %+v", f.ID, f.Waiver)
		}
		if f.ID == "GHSA-35jh-r3h4-6jhm" && !f.Waiver.Expires.Equal(time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("lodash waiver expires %v", f.Waiver.Expires)
		}
	}
	for _, f := range kept {
		if f.Waiver != nil {
			t.Errorf("kept finding %s has a waiver", f.ID)
		}
	}

	// After custody_expires the lodash waiver lapses; the openssl one has
	// no expiry.
	after := time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC)
	_, waived = ApplyWaivers(findings, []*VEXDocument{doc}, after)
	if got := ids(waived); got != "DSA-5532-1@pkg:deb/debian/openssl@3.0.11-1~deb12u1?arch=amd64&distro=debian-12" {
		t.Errorf("after expiry waived = %s", got)
	}

	// Before the document was written, nothing is waived.
	_, waived = ApplyWaivers(findings, []*VEXDocument{doc}, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	if len(waived) != 0 {
		t.Errorf("statements dated after now waived %s", ids(waived))
	}

	// A later "affected" statement overrides the earlier not_affected.
	later := mustParseVEX(t, `{
		"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://custody.example/vex/2024-002",
		"author": "Platform Security", "timestamp": "2024-04-01T00:00:00Z", "version": 1,
		"statements": [{"vulnerability": {"name": "GHSA-35jh-r3h4-6jhm"}, "products": [{"@id": "pkg:npm/lodash@4.17.20"}],
			"status": "affected", "action_statement": "Upgrade to 4.17.21."}]}`)
	_, waived = ApplyWaivers(findings, []*VEXDocument{doc, later}, before)
	if strings.Contains(ids(waived), "lodash") {
		t.Errorf("a later affected statement did not override the waiver: %s", ids(waived))
	}
	// ... and an earlier one does not.
	earlier := mustParseVEX(t, strings.Replace(vexText(later), "2024-04-01", "2024-02-01", 1))
	_, waived = ApplyWaivers(findings, []*VEXDocument{earlier, doc}, before)
	if !strings.Contains(ids(waived), "lodash") {
		t.Errorf("an earlier affected statement overrode the later waiver: %s", ids(waived))
	}

	// A version-specific product does not waive another version.
	other := mustParseVEX(t, `{
		"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "a", "timestamp": "2024-01-01T00:00:00Z",
		"custody_expires": "2030-01-01T00:00:00Z",
		"statements": [{"vulnerability": {"name": "CVE-2021-23337"}, "products": [{"@id": "pkg:npm/lodash@4.17.19"}],
			"status": "fixed"}]}`)
	if _, waived = ApplyWaivers(findings, []*VEXDocument{other}, before); len(waived) != 0 {
		t.Errorf("a statement about lodash 4.17.19 waived %s", ids(waived))
	}
	// The document-level custody_expires applies to its statements.
	other = mustParseVEX(t, strings.Replace(vexText(other), "4.17.19", "4.17.20", 1))
	if _, waived = ApplyWaivers(findings, []*VEXDocument{other}, before); len(waived) != 1 || waived[0].Waiver.Status != VEXFixed {
		t.Errorf("fixed statement: waived %s", ids(waived))
	}
	if _, waived = ApplyWaivers(findings, []*VEXDocument{other}, time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)); len(waived) != 0 {
		t.Errorf("document-level expiry ignored: waived %s", ids(waived))
	}

	// Unpinned findings are never waived.
	up := Unpinned([]Dependency{{Image: "alpine:3.19"}})
	if k, w := ApplyWaivers(up, []*VEXDocument{doc}, before); len(k) != 1 || len(w) != 0 {
		t.Errorf("unpinned finding waived")
	}
}

var vexTexts = map[*VEXDocument]string{}

func mustParseVEX(t *testing.T, s string) *VEXDocument {
	t.Helper()
	d, err := ParseVEX(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	vexTexts[d] = s
	return d
}

func vexText(d *VEXDocument) string { return vexTexts[d] }

func TestParseVEXErrors(t *testing.T) {
	base := `{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "a", "timestamp": "2024-01-01T00:00:00Z", "statements": [%s]}`
	stmt := func(s string) string { return strings.Replace(base, "%s", s, 1) }
	for name, tc := range map[string]struct{ doc, want string }{
		"repeated status": {stmt(`{"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:npm/a@1"}], "status": "affected", "action_statement": "x", "status": "fixed"}`), "duplicate key"},
		"context":         {strings.Replace(stmt(""), "openvex.dev", "example.com", 1), "@context"},
		"author":          {strings.Replace(stmt(""), `"author": "a"`, `"author": ""`, 1), "author"},
		"no timestamp":    {strings.Replace(stmt(""), `"timestamp": "2024-01-01T00:00:00Z"`, `"version": 1`, 1), "timestamp"},
		"timestamp":       {strings.Replace(stmt(""), `"timestamp": "2024-01-01T00:00:00Z"`, `"timestamp": "yesterday"`, 1), "RFC 3339"},
		"no products":     {stmt(`{"vulnerability": {"name": "CVE-1"}, "status": "fixed"}`), "products"},
		"no vuln":         {stmt(`{"vulnerability": {}, "products": [{"@id": "pkg:npm/a"}], "status": "fixed"}`), "vulnerability"},
		"status":          {stmt(`{"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:npm/a"}], "status": "ok"}`), "unknown status"},
		"justification":   {stmt(`{"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:npm/a"}], "status": "not_affected"}`), "justification"},
		"bad just":        {stmt(`{"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:npm/a"}], "status": "not_affected", "justification": "trust_me"}`), "trust_me"},
		"empty product":   {stmt(`{"vulnerability": {"name": "CVE-1"}, "products": [{}], "status": "fixed"}`), "products[0]"},
		"expires":         {stmt(`{"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:npm/a"}], "status": "fixed", "custody_expires": "soon"}`), "RFC 3339"},
		"trailing":        {stmt("") + "{}", "trailing"},
	} {
		_, err := ParseVEX(strings.NewReader(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ParseVEX = %v, want an error mentioning %q", name, err, tc.want)
		}
	}
	big := bytes.Repeat([]byte(" "), MaxVEXSize+1)
	if _, err := ParseVEX(bytes.NewReader(big)); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("oversized document: %v", err)
	}
}

func FuzzParseVEX(f *testing.F) {
	b, err := os.ReadFile("testdata/vex/waivers.openvex.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"@context":"https://openvex.dev/ns/v0.2.0","author":"a","timestamp":"2024-01-01T00:00:00Z","statements":[{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"sha256:ab","subcomponents":[{"@id":"pkg:npm/a@1?x=y"}]}],"status":"fixed","custody_expires":"2025-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{}`))
	findings := []Finding{
		{Kind: KindVulnerability, ID: "CVE-1", PURL: "pkg:npm/a@1?x=y", Subject: "sha256:ab"},
		{Kind: KindVulnerability, ID: "GHSA-35jh-r3h4-6jhm", Aliases: []string{"CVE-2021-23337"}, PURL: "pkg:npm/lodash@4.17.20"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseVEX(bytes.NewReader(data))
		if err != nil {
			return
		}
		kept, waived := ApplyWaivers(findings, []*VEXDocument{d}, time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC))
		if len(kept)+len(waived) != len(findings) {
			t.Fatalf("ApplyWaivers lost findings: %d kept + %d waived of %d", len(kept), len(waived), len(findings))
		}
		for _, w := range waived {
			if w.Waiver == nil || (w.Waiver.Status != VEXNotAffected && w.Waiver.Status != VEXFixed) {
				t.Fatalf("waived by %+v", w.Waiver)
			}
		}
	})
}
