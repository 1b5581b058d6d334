package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestArchitectureDocIsComplete keeps docs/architecture.md's package table
// and its list of commands in step with the tree: every package under
// internal/ (a directory with non-test Go files, testdata aside) has a row
// and every row names a package; the internal/cli row names every
// top-level command of NewRoot (cobra's own help and completion aside)
// and no other.
func TestArchitectureDocIsComplete(t *testing.T) {
	b, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)

	rows := map[string]string{} // package -> its concept cell
	for _, m := range regexp.MustCompile("(?m)^\\| `(internal/[^`]+)` \\| (.*) \\|$").FindAllStringSubmatch(doc, -1) {
		rows[m[1]] = m[2]
	}
	pkgs := map[string]bool{}
	err = filepath.WalkDir("../../internal", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			rel, err := filepath.Rel("../..", filepath.Dir(path))
			if err != nil {
				return err
			}
			pkgs[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 20 {
		t.Fatalf("found only %d packages under internal/", len(pkgs))
	}
	for p := range pkgs {
		if _, ok := rows[p]; !ok {
			t.Errorf("docs/architecture.md has no row for package %s", p)
		}
	}
	for p := range rows {
		if !pkgs[p] {
			t.Errorf("docs/architecture.md has a row for %s, which is not a package", p)
		}
	}

	cliRow, ok := rows["internal/cli"]
	if !ok {
		t.Fatal("no internal/cli row")
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z0-9-]+)[^`]*`").FindAllStringSubmatch(cliRow, -1) {
		documented[m[1]] = true
	}
	var missing []string
	commands := map[string]bool{}
	for _, c := range NewRoot().Commands() {
		name := c.Name()
		if name == "help" || name == "completion" {
			continue
		}
		commands[name] = true
		if !documented[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/architecture.md's internal/cli row misses commands %v", missing)
	}
	for name := range documented {
		if !commands[name] {
			t.Errorf("docs/architecture.md's internal/cli row names %q, which is not a command", name)
		}
	}
}
