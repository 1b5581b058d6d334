package ecosystem

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// maxLine caps one line (or one backslash-continued logical line) of a
// line-oriented lockfile.
const maxLine = 1 << 20

// ParseGoSum reads go.sum: "module version hash" lines. It returns one
// Package per module zip hash, in file order, without duplicates; lines
// for a module's go.mod only ("version/go.mod") are left out (the build
// did not use that module's code), and so are lines whose hash is not
// "h1:" (a hash kind this code cannot name; the go command ignores them
// too). A line with other than three fields, an invalid module path or
// version, or an h1 hash that is not base64 of 32 bytes is an error.
func ParseGoSum(b []byte) ([]Package, error) {
	var out []Package
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want \"module version h1:hash\"", n)
		}
		mod, ver, sum := f[0], f[1], f[2]
		if strings.HasSuffix(ver, "/go.mod") {
			continue
		}
		if err := module.Check(mod, ver); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		h, ok := strings.CutPrefix(sum, "h1:")
		if !ok {
			continue
		}
		if raw, err := base64.StdEncoding.DecodeString(h); err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("line %d: %s %s: bad h1 hash", n, mod, ver)
		}
		if seen[mod+"@"+ver] {
			continue
		}
		seen[mod+"@"+ver] = true
		out = append(out, Package{Type: TypeGolang, Name: mod, Version: ver, GoH1: sum})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// ParseGoMod reads go.mod and returns its requirements after replace
// directives; the main module itself is not a dependency and is left out,
// and so are requirements replaced by a local directory (no version) or
// whose path the go command would refuse.
func ParseGoMod(b []byte) ([]Package, error) {
	f, err := modfile.ParseLax("go.mod", b, nil)
	if err != nil {
		return nil, err
	}
	repl := map[string]module.Version{}
	for _, r := range f.Replace {
		if r.New.Version == "" {
			continue // a local directory replacement has no version
		}
		repl[r.Old.Path+"@"+r.Old.Version] = r.New
		if r.Old.Version == "" {
			repl[r.Old.Path] = r.New
		}
	}
	var out []Package
	for _, r := range f.Require {
		m := r.Mod
		if nm, ok := repl[m.Path+"@"+m.Version]; ok {
			m = nm
		} else if nm, ok := repl[m.Path]; ok {
			m = nm
		}
		if module.CheckPath(m.Path) != nil || m.Version == "" {
			continue // ParseLax lets through paths the go command would refuse
		}
		out = append(out, Package{Type: TypeGolang, Name: m.Path, Version: m.Version})
	}
	return out, nil
}
