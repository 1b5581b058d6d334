package vuln

import (
	"archive/zip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// writeSyntheticZip writes an all.zip of n npm advisories, each affecting
// package pkg-<i%1000> below 1.<i%50>.0.
func writeSyntheticZip(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "all.zip")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for i := 0; i < n; i++ {
		w, err := zw.Create(fmt.Sprintf("GHSA-bench-%06d.json", i))
		if err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(w, `{"schema_version":"1.6.0","id":"GHSA-bench-%06d","modified":"2024-01-01T00:00:00Z","aliases":["CVE-2024-%d"],
"summary":"synthetic advisory %d","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
"affected":[{"package":{"ecosystem":"npm","name":"pkg-%d"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.%d.0"}]}]}],
"references":[{"type":"WEB","url":"https://example.com/%d"}]}`, i, i, i, i%1000, i%50, i)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

func BenchmarkImportZip20k(b *testing.B) {
	zpath := writeSyntheticZip(b, 20000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		db, err := Open(filepath.Join(b.TempDir(), fmt.Sprintf("v%d.db", i)))
		if err != nil {
			b.Fatal(err)
		}
		st, err := db.Import(context.Background(), zpath)
		if err != nil || st.Added != 20000 {
			b.Fatalf("Import = %+v, %v", st, err)
		}
		db.Close()
	}
}

func BenchmarkMatch1000Packages(b *testing.B) {
	zpath := writeSyntheticZip(b, 20000)
	db, err := Open(filepath.Join(b.TempDir(), "v.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Import(context.Background(), zpath); err != nil {
		b.Fatal(err)
	}
	var pkgs []Package
	for i := 0; i < 1000; i++ {
		pkgs = append(pkgs, Package{PURL: fmt.Sprintf("pkg:npm/pkg-%d@1.25.0", i)})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := db.Match(context.Background(), pkgs)
		if err != nil || len(f) == 0 {
			b.Fatalf("Match = %d findings, %v", len(f), err)
		}
	}
}
