package internal_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// module is the import path of this module's root.
const module = "github.com/custody-dev/custody/"

// internalImports reads the non-test Go files of every package under
// internal/ (every build variant, so a platform's file cannot hide an
// import) and returns, by package ("config", "gate/spec"), the packages
// under internal/ it imports.
func internalImports(t *testing.T) map[string][]string {
	t.Helper()
	graph := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(path))
		if _, ok := graph[pkg]; !ok {
			graph[pkg] = nil
		}
		for _, is := range f.Imports {
			p, err := strconv.Unquote(is.Path.Value)
			if err != nil {
				return err
			}
			if dep, ok := strings.CutPrefix(p, module+"internal/"); ok && !slices.Contains(graph[pkg], dep) {
				graph[pkg] = append(graph[pkg], dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(graph["config"]) == 0 && len(graph["registry"]) == 0 {
		t.Fatal("read no imports: the test must run in internal/")
	}
	return graph
}

// deps returns every package under internal/ that pkg imports, directly
// or not.
func deps(graph map[string][]string, pkg string) []string {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, d := range graph[p] {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(pkg)
	var out []string
	for d := range seen {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// TestLayers pins the import layering docs/architecture.md describes: a
// lower concept never imports a higher one, and the leaves stay leaves.
func TestLayers(t *testing.T) {
	graph := internalImports(t)
	for pkg := range graph {
		for _, d := range graph[pkg] {
			if _, ok := graph[d]; !ok {
				t.Errorf("%s imports internal/%s, which the test did not find", pkg, d)
			}
		}
	}

	// Leaves: plain data and small vocabularies any layer may import.
	for _, leaf := range []string{"identity", "audit", "gate/spec", "repopattern", "proxy", "veto"} {
		if _, ok := graph[leaf]; !ok {
			t.Errorf("leaf package internal/%s is gone: update this test and docs/architecture.md", leaf)
		}
		if d := deps(graph, leaf); len(d) > 0 {
			t.Errorf("internal/%s is a leaf but imports %v", leaf, d)
		}
	}

	// The config loader holds plain data: it may import only leaves.
	allowed := []string{"gate/spec", "proxy", "repopattern"}
	for _, d := range deps(graph, "config") {
		if !slices.Contains(allowed, d) {
			t.Errorf("internal/config imports internal/%s; config must stay a leaf (allowed: %v): move what it needs into a leaf, or validate where it is used", d, allowed)
		}
	}

	// No import from a lower concept to a higher one.
	forbidden := []struct{ from, to string }{
		{"verification", "promotion"},
		{"promotion", "verification"},
		{"registry", "auth"},
		{"registry", "server"},
		{"registry", "generic"},
		{"gate", "evidence"},
		{"evidence", "promotion"},
		{"evidence", "verification"},
	}
	for _, f := range forbidden {
		if slices.Contains(deps(graph, f.from), f.to) {
			t.Errorf("internal/%s imports internal/%s (directly or not): a lower concept must not import a higher one", f.from, f.to)
		}
	}

	// The top: only the CLI assembles a server, and nothing under
	// internal/ imports the CLI.
	for pkg, ds := range graph {
		if slices.Contains(ds, "server") && pkg != "cli" {
			t.Errorf("internal/%s imports internal/server: only internal/cli wires a server", pkg)
		}
		if slices.Contains(ds, "cli") {
			t.Errorf("internal/%s imports internal/cli", pkg)
		}
	}
}
