package provenance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkDependencies scans a workspace whose go.sum and
// package-lock.json pin 3000 modules and 3000 npm packages.
func BenchmarkDependencies(b *testing.B) {
	ws := b.TempDir()
	var gosum, npm strings.Builder
	npm.WriteString(`{"lockfileVersion":3,"packages":{"":{"name":"x"}`)
	for i := range 3000 {
		fmt.Fprintf(&gosum, "example.com/mod%d v1.%d.0 h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n", i, i)
		fmt.Fprintf(&gosum, "example.com/mod%d v1.%d.0/go.mod h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n", i, i)
		fmt.Fprintf(&npm, `,"node_modules/pkg-%d":{"version":"1.0.%d","resolved":"https://registry.npmjs.org/pkg-%d/-/pkg-%d-1.0.%d.tgz","integrity":"sha512-%s"}`,
			i, i, i, i, i, strings.Repeat("A", 86)+"==")
	}
	npm.WriteString("}}")
	for name, content := range map[string]string{"go.sum": gosum.String(), "web/package-lock.json": npm.String()} {
		p := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		deps, err := Dependencies(ws)
		if err != nil {
			b.Fatal(err)
		}
		if len(deps) != 6000 {
			b.Fatalf("%d dependencies, want 6000", len(deps))
		}
	}
}
