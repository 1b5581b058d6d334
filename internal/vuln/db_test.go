package vuln

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openTestDB(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vuln.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func importFixtures(t *testing.T, db *DB) Stats {
	t.Helper()
	st, err := db.Import(context.Background(), "testdata/osv")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestImportDirectory(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	if rev, err := db.Revision(ctx); err != nil || rev != 0 {
		t.Fatalf("empty database: Revision = %d, %v; want 0", rev, err)
	}
	if at, err := db.UpdatedAt(ctx); err != nil || !at.IsZero() {
		t.Fatalf("empty database: UpdatedAt = %v, %v; want zero", at, err)
	}
	before := time.Now()
	st := importFixtures(t, db)
	files, _ := filepath.Glob("testdata/osv/*.json")
	if st.Read != len(files) || st.Added != len(files) || st.Invalid != 0 || st.Revision != 1 {
		t.Fatalf("Import = %+v, want %d added at revision 1", st, len(files))
	}
	if n, err := db.Count(ctx); err != nil || n != len(files) {
		t.Fatalf("Count = %d, %v; want %d", n, err, len(files))
	}
	at, err := db.UpdatedAt(ctx)
	if err != nil || at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Fatalf("UpdatedAt = %v, %v; want about now", at, err)
	}
	// Importing the same records again changes nothing.
	st = importFixtures(t, db)
	if st.Unchanged != len(files) || st.Added+st.Updated != 0 || st.Revision != 1 {
		t.Fatalf("second Import = %+v, want all unchanged at revision 1", st)
	}
	if at2, _ := db.UpdatedAt(ctx); !at2.Equal(at) {
		t.Fatalf("UpdatedAt moved from %v to %v on an import that changed nothing", at, at2)
	}
}

func TestMatch(t *testing.T) {
	db, _ := openTestDB(t)
	importFixtures(t, db)
	pkgs := []Package{
		{PURL: "pkg:npm/lodash@4.17.20", Subject: "sha256:aaaa"},
		{PURL: "pkg:npm/lodash@4.17.21"},              // fixed
		{PURL: "pkg:npm/%40types/lodash-es@4.17.7"},   // SEMVER range, scoped name
		{PURL: "pkg:npm/axios@1.7.9"},                 // CVSS v4 only: database_specific severity
		{PURL: "pkg:npm/axios@0.21.1"},                // last_affected range: no fix
		{PURL: "pkg:npm/axios@0.30.0"},                // above last_affected
		{PURL: "pkg:pypi/Django@4.2.6"},               // name normalised
		{PURL: "pkg:pypi/django@5.0b1"},               // pre-release in range
		{PURL: "pkg:pypi/django@5.0"},                 // final after the rc fix
		{PURL: "pkg:pypi/django@4.0.5"},               // between ranges
		{PURL: "pkg:golang/golang.org/x/net@v0.16.0"}, // v-prefixed Go version
		{PURL: "pkg:golang/stdlib@1.21.1"},            // second introduced of the range
		{PURL: "pkg:golang/stdlib@1.20.10"},           // fixed
		{PURL: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"},
		{PURL: "pkg:maven/org.apache.logging.log4j/log4j-core@2.0-beta8"}, // before introduced
		{PURL: "pkg:maven/org.apache.logging.log4j/log4j-core@2.12.2"},    // fixed in a branch
		{PURL: "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl"},
		{PURL: "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"}, // fixed
		{PURL: "pkg:deb/debian/libssl1.1@1.1.1n-0+deb10u4?arch=amd64&distro=buster&upstream=openssl"},
		{PURL: "pkg:deb/debian/openssl@3.0.9-1?distro=debian-11"}, // no Debian 11 advisory
		{PURL: "pkg:deb/ubuntu/libc6@2.35-0ubuntu3.1?arch=amd64&distro=ubuntu-22.04&upstream=glibc"},
		{PURL: "pkg:apk/alpine/libcrypto3@3.1.4-r0?arch=x86_64&distro=alpine-3.19.1&upstream=openssl"},
		{PURL: "pkg:apk/alpine/openssl@3.1.4-r1?arch=x86_64&distro=alpine-3.19.0"}, // fixed
		{PURL: "pkg:apk/alpine/openssl@3.1.4-r0?arch=x86_64&distro=alpine-3.17.0"}, // no 3.17 entry
		{PURL: "pkg:cargo/regex@1.0.0"},                                            // unsupported: skipped
		{PURL: "not a purl"},                                                       // skipped
	}
	got, err := db.Match(context.Background(), pkgs)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		fixed    string
		severity Severity
		score    float64
	}
	wants := map[string]want{
		"GHSA-35jh-r3h4-6jhm pkg:npm/lodash@4.17.20":                                                                {"4.17.21", SeverityHigh, 7.2},
		"GHSA-35jh-r3h4-6jhm pkg:npm/%40types/lodash-es@4.17.7":                                                     {"4.17.8", SeverityHigh, 7.2},
		"GHSA-9q4f-prvw-c9x7 pkg:npm/axios@1.7.9":                                                                   {"1.8.2", SeverityMedium, 0},
		"GHSA-9q4f-prvw-c9x7 pkg:npm/axios@0.21.1":                                                                  {"", SeverityMedium, 0},
		"GHSA-qw42-8pfq-9r6p pkg:pypi/Django@4.2.6":                                                                 {"4.2.7", SeverityHigh, 7.5},
		"GHSA-qw42-8pfq-9r6p pkg:pypi/django@5.0b1":                                                                 {"5.0rc1", SeverityHigh, 7.5},
		"GO-2023-2102 pkg:golang/golang.org/x/net@v0.16.0":                                                          {"0.17.0", SeverityUnknown, 0},
		"GO-2023-2102 pkg:golang/stdlib@1.21.1":                                                                     {"1.21.3", SeverityUnknown, 0},
		"GHSA-jfh8-c2jp-5v3q pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1":                                  {"2.15.0", SeverityCritical, 10},
		"DSA-5532-1 pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl":           {"3.0.11-1~deb12u2", SeverityUnknown, 0},
		"DLA-3449-1 pkg:deb/debian/libssl1.1@1.1.1n-0+deb10u4?arch=amd64&distro=buster&upstream=openssl":            {"1.1.1n-0+deb10u5", SeverityUnknown, 0},
		"UBUNTU-CVE-2023-4911 pkg:deb/ubuntu/libc6@2.35-0ubuntu3.1?arch=amd64&distro=ubuntu-22.04&upstream=glibc":   {"2.35-0ubuntu3.4", SeverityHigh, 0},
		"ALPINE-CVE-2023-5678 pkg:apk/alpine/libcrypto3@3.1.4-r0?arch=x86_64&distro=alpine-3.19.1&upstream=openssl": {"3.1.4-r1", SeverityMedium, 5.3},
	}
	seen := map[string]bool{}
	for _, f := range got {
		key := f.ID + " " + f.PURL
		seen[key] = true
		w, ok := wants[key]
		if !ok {
			t.Errorf("unexpected finding %s (installed %s, fixed %q)", key, f.Version, f.Fixed)
			continue
		}
		if f.Kind != KindVulnerability || f.Fixed != w.fixed || f.Severity != w.severity || f.Score != w.score {
			t.Errorf("%s: kind %s fixed %q severity %s score %.1f; want fixed %q severity %s score %.1f",
				key, f.Kind, f.Fixed, f.Severity, f.Score, w.fixed, w.severity, w.score)
		}
	}
	for key := range wants {
		if !seen[key] {
			t.Errorf("missing finding %s", key)
		}
	}
	// Findings are sorted by severity, highest first.
	for i := 1; i < len(got); i++ {
		if got[i-1].Severity.Rank() < got[i].Severity.Rank() {
			t.Errorf("findings not sorted by severity: %s (%s) before %s (%s)", got[i-1].ID, got[i-1].Severity, got[i].ID, got[i].Severity)
		}
	}
	for _, f := range got {
		switch f.ID {
		case "GHSA-35jh-r3h4-6jhm":
			if f.PURL == "pkg:npm/lodash@4.17.20" && (f.Subject != "sha256:aaaa" || f.Version != "4.17.20" || f.Summary != "Command Injection in lodash") {
				t.Errorf("lodash finding lost its fields: %+v", f)
			}
			if strings.Join(f.Aliases, ",") != "CVE-2021-23337" {
				t.Errorf("lodash aliases = %v", f.Aliases)
			}
		case "DSA-5532-1":
			if strings.Join(f.Aliases, ",") != "CVE-2023-5363" || f.Ecosystem != "Debian:12" {
				t.Errorf("DSA finding: aliases %v ecosystem %q; want the upstream CVE and Debian:12", f.Aliases, f.Ecosystem)
			}
		case "GHSA-9q4f-prvw-c9x7":
			if !strings.HasPrefix(f.Vector, "CVSS:4.0/") {
				t.Errorf("axios finding should keep its CVSS v4 vector, got %q", f.Vector)
			}
		case "GO-2023-2102":
			if strings.Join(f.Aliases, ",") != "CVE-2023-39325,GHSA-4374-p667-p6c8" {
				t.Errorf("Go aliases = %v", f.Aliases)
			}
		}
	}
}

func TestMatchVersionsList(t *testing.T) {
	db, _ := openTestDB(t)
	dir := t.TempDir()
	// A record that lists versions only, including one no ordering parses.
	writeJSON(t, filepath.Join(dir, "a.json"), map[string]any{
		"id": "PYSEC-2099-1", "modified": "2099-01-01T00:00:00Z",
		"affected": []any{map[string]any{
			"package":  map[string]any{"ecosystem": "PyPI", "name": "weird_pkg"},
			"versions": []string{"1.0", "2.0-custom+build!!"},
		}},
	})
	if _, err := db.Import(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	got, err := db.Match(context.Background(), []Package{
		{PURL: "pkg:pypi/weird-pkg", Version: "1.0.0"},              // equal under PEP 440
		{PURL: "pkg:pypi/weird.pkg", Version: "2.0-custom+build!!"}, // verbatim
		{PURL: "pkg:pypi/weird-pkg", Version: "1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Version != "1.0.0" && got[1].Version != "1.0.0" {
		t.Fatalf("Match = %+v, want the two listed versions", got)
	}
}

// TestMatchGoModuleCase: OSV keeps a module path's case, purls of type
// golang lose it.
func TestMatchGoModuleCase(t *testing.T) {
	db, _ := openTestDB(t)
	dir := t.TempDir()
	writeJSON(t, filepath.Join(dir, "GO-2099-0001.json"), map[string]any{
		"id": "GO-2099-0001", "modified": "2099-01-01T00:00:00Z",
		"affected": []any{map[string]any{
			"package": map[string]any{"ecosystem": "Go", "name": "github.com/BurntSushi/toml"},
			"ranges":  []any{map[string]any{"type": "SEMVER", "events": []any{map[string]string{"introduced": "0"}, map[string]string{"fixed": "1.4.0"}}}},
		}},
	})
	// Imported through a zip without the .zip name: recognised by content.
	zpath := filepath.Join(t.TempDir(), "go-export.bin")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("GO-2099-0001.json")
	b, _ := os.ReadFile(filepath.Join(dir, "GO-2099-0001.json"))
	w.Write(b)
	zw.Close()
	os.WriteFile(zpath, buf.Bytes(), 0o644)
	if st, err := db.Import(context.Background(), zpath); err != nil || st.Added != 1 {
		t.Fatalf("Import = %+v, %v", st, err)
	}
	got, err := db.Match(context.Background(), []Package{{PURL: "pkg:golang/github.com/BurntSushi/toml@v1.3.2"}, {PURL: "pkg:golang/github.com/burntsushi/toml@v1.4.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Version != "v1.3.2" || got[0].Fixed != "1.4.0" {
		t.Fatalf("Match = %+v, want v1.3.2 fixed in 1.4.0", got)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func advisoryJSON(id, modified, fixed string) []byte {
	b, _ := json.Marshal(map[string]any{
		"schema_version": "1.6.0",
		"id":             id,
		"modified":       modified,
		"aliases":        []string{"CVE-2024-" + strings.TrimPrefix(id, "GHSA-test-")},
		"summary":        "test advisory " + id,
		"affected": []any{map[string]any{
			"package": map[string]any{"ecosystem": "npm", "name": "left-pad"},
			"ranges":  []any{map[string]any{"type": "SEMVER", "events": []any{map[string]string{"introduced": "0"}, map[string]string{"fixed": fixed}}}},
		}},
	})
	return b
}

// TestImportZip builds an osv.dev-style all.zip: one record per entry,
// plus entries Import must skip or refuse.
func TestImportZip(t *testing.T) {
	db, _ := openTestDB(t)
	zpath := filepath.Join(t.TempDir(), "all.zip")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		id := "GHSA-test-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		add(id+".json", advisoryJSON(id, "2024-01-01T00:00:00Z", "1.0.1"))
	}
	add("README.txt", []byte("not an advisory"))
	add("broken.json", []byte(`{"id": "X-1", "modified": `))
	add("nomodified.json", []byte(`{"id": "X-2"}`))
	// Highly compressible and larger than MaxAdvisorySize: refused
	// without being held in memory.
	big := append([]byte(`{"id": "X-3", "modified": "2024-01-01T00:00:00Z", "summary": "`), bytes.Repeat([]byte("a"), MaxAdvisorySize)...)
	add("big.json", append(big, `"}`...))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(zpath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := db.Import(context.Background(), zpath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Added != 50 || st.Invalid != 3 || st.Read != 53 || len(st.Errors) != 3 {
		t.Fatalf("Import(zip) = %+v, want 50 added, 3 invalid", st)
	}
	for _, e := range st.Errors {
		if !strings.Contains(e, "broken.json") && !strings.Contains(e, "nomodified.json") && !strings.Contains(e, "big.json") {
			t.Errorf("error %q does not name its entry", e)
		}
	}
	got, err := db.Match(context.Background(), []Package{{PURL: "pkg:npm/left-pad@1.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 {
		t.Fatalf("Match found %d advisories, want 50", len(got))
	}

	// A file that is not a zip is refused with a clear error.
	bad := filepath.Join(t.TempDir(), "bad.zip")
	os.WriteFile(bad, []byte("PK nope"), 0o644)
	if _, err := db.Import(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "zip") {
		t.Fatalf("Import(not a zip) = %v, want a zip error", err)
	}
}

func TestImportSingleFileErrors(t *testing.T) {
	db, _ := openTestDB(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "x.json")
	os.WriteFile(p, []byte(`{"id": "GHSA-x", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "npm", "name": "a"}, "ranges": [{"type": "BOGUS", "events": [{"introduced": "0"}]}]}]}`), 0o644)
	_, err := db.Import(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "GHSA-x") || !strings.Contains(err.Error(), "BOGUS") {
		t.Fatalf("Import(invalid record) = %v, want an error naming the advisory and the range type", err)
	}
	if rev, _ := db.Revision(context.Background()); rev != 0 {
		t.Fatalf("a failed import bumped the revision to %d", rev)
	}
	if _, err := db.Import(context.Background(), filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("Import(missing file) succeeded")
	}
}

func TestReimportNewerModified(t *testing.T) {
	ctx := context.Background()
	db, path := openTestDB(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "GHSA-test-1.json")
	write := func(modified, fixed string) {
		if err := os.WriteFile(p, advisoryJSON("GHSA-test-1", modified, fixed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	match := func(d *DB) []Finding {
		t.Helper()
		f, err := d.Match(ctx, []Package{{PURL: "pkg:npm/left-pad@1.2.0"}})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	write("2024-01-01T00:00:00Z", "1.1.0")
	if st, err := db.Import(ctx, p); err != nil || st.Added != 1 || st.Revision != 1 {
		t.Fatalf("first import = %+v, %v", st, err)
	}
	if f := match(db); len(f) != 0 {
		t.Fatalf("1.2.0 is past the fix 1.1.0 but matched: %+v", f)
	}

	// An older "modified" does not replace the record.
	write("2023-06-01T00:00:00Z", "2.0.0")
	if st, err := db.Import(ctx, p); err != nil || st.Unchanged != 1 || st.Revision != 1 {
		t.Fatalf("import of an older record = %+v, %v; want unchanged at revision 1", st, err)
	}
	if f := match(db); len(f) != 0 {
		t.Fatalf("an older record replaced the stored one: %+v", f)
	}

	// A newer one does, and bumps the revision, visible to a second
	// handle on the same file (as another process would see it).
	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	write("2024-02-01T00:00:00Z", "2.0.0")
	if st, err := db.Import(ctx, p); err != nil || st.Updated != 1 || st.Revision != 2 {
		t.Fatalf("import of a newer record = %+v, %v; want updated at revision 2", st, err)
	}
	if rev, err := other.Revision(ctx); err != nil || rev != 2 {
		t.Fatalf("second handle: Revision = %d, %v; want 2", rev, err)
	}
	f := match(other)
	if len(f) != 1 || f[0].Fixed != "2.0.0" {
		t.Fatalf("after the update Match = %+v, want one finding fixed in 2.0.0", f)
	}

	// Withdrawing the advisory removes it from matches.
	b, _ := json.Marshal(map[string]any{"id": "GHSA-test-1", "modified": "2024-03-01T00:00:00Z", "withdrawn": "2024-03-01T00:00:00Z",
		"affected": []any{map[string]any{"package": map[string]any{"ecosystem": "npm", "name": "left-pad"},
			"ranges": []any{map[string]any{"type": "SEMVER", "events": []any{map[string]string{"introduced": "0"}}}}}}})
	os.WriteFile(p, b, 0o644)
	if st, err := db.Import(ctx, p); err != nil || st.Updated != 1 || st.Revision != 3 {
		t.Fatalf("import of the withdrawal = %+v, %v", st, err)
	}
	if f := match(db); len(f) != 0 {
		t.Fatalf("a withdrawn advisory still matches: %+v", f)
	}
}

func TestImportCancelled(t *testing.T) {
	db, _ := openTestDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Import(ctx, "testdata/osv"); err == nil {
		t.Fatal("Import with a cancelled context succeeded")
	}
	if n, _ := db.Count(context.Background()); n != 0 {
		t.Fatalf("a cancelled import stored %d advisories", n)
	}
}

func TestPackageEcosystem(t *testing.T) {
	for purl, want := range map[string][2]string{
		"pkg:golang/github.com/foo/bar@v1.0.0":                          {"Go", "github.com/foo/bar"},
		"pkg:golang/github.com/BurntSushi/toml@v1.3.2":                  {"Go", "github.com/burntsushi/toml"},
		"pkg:golang/stdlib@1.22.0":                                      {"Go", "stdlib"},
		"pkg:npm/%40scope/name@1.0.0":                                   {"npm", "@scope/name"},
		"pkg:pypi/Zope.Interface@5.0":                                   {"PyPI", "zope-interface"},
		"pkg:maven/org.example/lib@1.0":                                 {"Maven", "org.example:lib"},
		"pkg:deb/debian/libc6@2.36-9?distro=debian-12.5&upstream=glibc": {"Debian:12", "glibc"},
		"pkg:deb/debian/bash@5.2?distro=bookworm":                       {"Debian:12", "bash"},
		"pkg:deb/ubuntu/bash@5.1?distro=ubuntu-22.04":                   {"Ubuntu:22.04", "bash"},
		"pkg:apk/alpine/musl@1.2.4-r2?distro=alpine-3.19.1":             {"Alpine:v3.19", "musl"},
		"pkg:apk/alpine/musl@1.2.4-r2?distro=v3.20":                     {"Alpine:v3.20", "musl"},
	} {
		eco, name, err := PackageEcosystem(purl)
		if err != nil || eco != want[0] || name != want[1] {
			t.Errorf("PackageEcosystem(%q) = %q, %q, %v; want %q, %q", purl, eco, name, err, want[0], want[1])
		}
	}
	for _, purl := range []string{
		"pkg:deb/debian/bash@5.2", "pkg:deb/debian/bash@5.2?distro=sid", "pkg:apk/alpine/musl@1.2",
		"pkg:apk/wolfi/glibc@2.39-r1?distro=wolfi", "pkg:cargo/regex@1.0.0", "pkg:maven/lib@1.0", "nonsense",
	} {
		if eco, _, err := PackageEcosystem(purl); err == nil {
			t.Errorf("PackageEcosystem(%q) = %q, want an error", purl, eco)
		}
	}
}

func TestInRange(t *testing.T) {
	ev := func(kv ...string) []osvEvent {
		var out []osvEvent
		for i := 0; i < len(kv); i += 2 {
			switch kv[i] {
			case "i":
				out = append(out, osvEvent{Introduced: kv[i+1]})
			case "f":
				out = append(out, osvEvent{Fixed: kv[i+1]})
			case "l":
				out = append(out, osvEvent{LastAffected: kv[i+1]})
			case "x":
				out = append(out, osvEvent{Limit: kv[i+1]})
			}
		}
		return out
	}
	for _, tc := range []struct {
		events  []osvEvent
		version string
		hit     bool
		fixed   string
	}{
		{ev("i", "0", "f", "1.0.0"), "0.9.0", true, "1.0.0"},
		{ev("i", "0", "f", "1.0.0"), "1.0.0", false, ""},
		{ev("f", "2.0.0", "i", "1.5.0", "f", "1.2.0", "i", "0"), "1.3.0", false, ""}, // unsorted input
		{ev("f", "2.0.0", "i", "1.5.0", "f", "1.2.0", "i", "0"), "1.6.0", true, "2.0.0"},
		{ev("f", "2.0.0", "i", "1.5.0", "f", "1.2.0", "i", "0"), "1.1.0", true, "1.2.0"},
		{ev("i", "1.0.0", "l", "1.4.0"), "1.4.0", true, ""},
		{ev("i", "1.0.0", "l", "1.4.0"), "1.4.1", false, ""},
		{ev("i", "1.0.0"), "99.0.0", true, ""},
		{ev("i", "1.0.0"), "0.9.0", false, ""},
		{ev("i", "1.0.0", "f", "1.0.0"), "1.0.0", false, ""}, // empty range
		{ev("i", "0", "x", "2.0.0"), "2.1.0", false, ""},
		{ev("i", "0", "x", "2.0.0"), "1.1.0", true, ""},
	} {
		hit, fixed, err := inRange(compareSemver, tc.version, tc.events)
		if err != nil || hit != tc.hit || fixed != tc.fixed {
			t.Errorf("inRange(%v, %s) = %v, %q, %v; want %v, %q", tc.events, tc.version, hit, fixed, err, tc.hit, tc.fixed)
		}
	}
	if _, _, err := inRange(compareSemver, "1.0.0", ev("i", "0", "f", "not-a-version")); err == nil {
		t.Error("inRange accepted an event version that does not parse")
	}
}

func FuzzParseAdvisory(f *testing.F) {
	files, _ := filepath.Glob("testdata/osv/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id":"X","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1"}]}]}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := parseAdvisory(bytes.NewReader(data))
		if err != nil {
			return
		}
		if a.ID == "" || a.Modified.IsZero() {
			t.Fatalf("accepted a record without id or modified: %+v", a)
		}
		// Whatever parses can be evaluated without panicking.
		for _, af := range a.Affected {
			for _, v := range []string{"0", "1.0.0", "1:2.3-4", "1.2.3-r0", "2.0rc1"} {
				af.affects(af.Package.Ecosystem, v)
			}
			a.severity(&af)
		}
		// And survives the round trip through the store's encoding.
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseAdvisoryBytes(b); err != nil {
			t.Fatalf("stored form does not parse again: %v", err)
		}
	})
}

// TestMatchDuringImport: readers keep working, on a consistent snapshot,
// while an import holds the writer.
func TestMatchDuringImport(t *testing.T) {
	db, _ := openTestDB(t)
	importFixtures(t, db)
	zpath := writeSyntheticZip(t, 3000)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := db.Import(ctx, zpath)
		done <- err
	}()
	pkgs := []Package{{PURL: "pkg:npm/lodash@4.17.20"}, {PURL: "pkg:npm/pkg-7@1.0.0"}}
	matches := 0
	for {
		got, err := db.Match(ctx, pkgs)
		if err != nil {
			t.Fatalf("Match during import: %v", err)
		}
		// pkg-7 has 3 advisories in the zip (i = 7, 1007, 2007); a snapshot
		// sees all of them or none.
		n := 0
		for _, f := range got {
			if strings.HasPrefix(f.ID, "GHSA-bench-") {
				n++
			}
		}
		if n != 0 && n != 3 {
			t.Fatalf("Match saw %d of the import's 3 advisories for pkg-7: not a snapshot", n)
		}
		matches++
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.Match(ctx, pkgs)
			if err != nil || len(got) != 4 {
				t.Fatalf("after import Match = %d findings, %v; want 4", len(got), err)
			}
			t.Logf("%d matches ran during the import", matches)
			return
		default:
		}
	}
}

// TestImportWhileLocked: a second writer (another process holding the
// file's write lock) makes Import fail with an explanation, not hang.
func TestImportWhileLocked(t *testing.T) {
	old := busyTimeout
	busyTimeout = 200 * time.Millisecond
	defer func() { busyTimeout = old }()
	db, path := openTestDB(t)
	other, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	_, err = db.Import(context.Background(), "testdata/osv")
	if err == nil || !strings.Contains(err.Error(), "another import") {
		t.Fatalf("Import while another writer holds the lock = %v, want an explanation", err)
	}
	conn.ExecContext(context.Background(), "ROLLBACK")
	if _, err := db.Import(context.Background(), "testdata/osv"); err != nil {
		t.Fatalf("Import after the lock was released: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing", "vuln.db")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open in a missing directory = %v", err)
	}
	notDB := filepath.Join(dir, "not.db")
	os.WriteFile(notDB, bytes.Repeat([]byte("not a database "), 100), 0o644)
	if db, err := Open(notDB); err == nil {
		db.Close()
		t.Error("Open accepted a file that is not SQLite")
	}
}

func TestImportLimits(t *testing.T) {
	old := maxAdvisories
	maxAdvisories = 5
	defer func() { maxAdvisories = old }()
	db, _ := openTestDB(t)
	// The fixture directory holds more than 5 records: refused as a whole.
	_, err := db.Import(context.Background(), "testdata/osv")
	if err == nil || !strings.Contains(err.Error(), "more than 5 advisories") {
		t.Fatalf("Import of too many records = %v", err)
	}
	if n, _ := db.Count(context.Background()); n != 0 {
		t.Fatalf("a refused import stored %d advisories", n)
	}
	zpath := writeSyntheticZip(t, 6)
	if _, err := db.Import(context.Background(), zpath); err == nil || !strings.Contains(err.Error(), "more than 5") {
		t.Fatalf("Import of a zip with too many entries = %v", err)
	}

	// A directory: invalid and oversized files are skipped and named.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "ok.json"), advisoryJSON("GHSA-test-ok", "2024-01-01T00:00:00Z", "1.0.0"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte("[]"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	big := make([]byte, MaxAdvisorySize+10)
	os.WriteFile(filepath.Join(dir, "big.json"), big, 0o644)
	st, err := db.Import(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Added != 1 || st.Invalid != 2 || len(st.Errors) != 2 ||
		!strings.Contains(strings.Join(st.Errors, "\n"), "bad.json") || !strings.Contains(strings.Join(st.Errors, "\n"), "larger than") {
		t.Fatalf("Import(dir) = %+v", st)
	}
}
