package cli

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// clientVars are the CUSTODY_* variables read by client commands only:
// each must be named by the help of the command given (its path under
// custody), not by 'serve --help'.
var clientVars = map[string][]string{
	"CUSTODY_SERVER":              nil, // every client command: custody --help
	"CUSTODY_TOKEN":               {"token"},
	"CUSTODY_OTP":                 {"mfa"},
	"CUSTODY_BUILD_SOURCE_URI":    {"attest", "provenance"},
	"CUSTODY_BUILD_REF":           {"attest", "provenance"},
	"CUSTODY_BUILD_COMMIT":        {"attest", "provenance"},
	"CUSTODY_BUILD_WORKFLOW_PATH": {"attest", "provenance"},
	"CUSTODY_BUILD_BUILDER_ID":    {"attest", "provenance"},
	"CUSTODY_BUILD_INVOCATION_ID": {"attest", "provenance"},
	"CUSTODY_BUILD_STARTED_ON":    {"attest", "provenance"},
}

// TestServeHelpNamesEveryVariable keeps the documented environment complete.
//
// The rule: a variable custody reads is a Go string literal that is exactly
// a name CUSTODY_[A-Z0-9_]+ (so messages such as "set CUSTODY_X=..." are
// not counted, os.Getenv("CUSTODY_X") and switch cases are), in a non-test
// file of one of this module's packages that the custody binary is built
// from (go list -deps ./cmd/custody). The test suite's own variables
// (CUSTODY_TEST_*, CUSTODY_CLIENTS_BIN, ...) live in internal/testserver,
// the benchmark's in bench/, and neither is part of the binary, so they are
// not counted; a CUSTODY_TEST_* name is skipped wherever it appears. Every
// such variable must appear in 'custody serve --help', except the client
// commands' variables in clientVars, which the help of their command
// names.
func TestServeHelpNamesEveryVariable(t *testing.T) {
	vars := binaryVars(t)
	if len(vars) < 20 {
		t.Fatalf("found only %d variables (%v): the scan is broken", len(vars), vars)
	}
	serveHelp := help(t, "serve")
	for _, v := range vars {
		if cmd, ok := clientVars[v]; ok {
			if !strings.Contains(help(t, cmd...), v) {
				t.Errorf("%s is read by custody but 'custody %s --help' does not name it", v, strings.Join(cmd, " "))
			}
			continue
		}
		if !strings.Contains(serveHelp, v) {
			t.Errorf("%s is read by custody but 'custody serve --help' does not name it (add it to config.Env)", v)
		}
	}
	// The exceptions stay true: each is still read.
	for v := range clientVars {
		if i := sort.SearchStrings(vars, v); i == len(vars) || vars[i] != v {
			t.Errorf("clientVars lists %s, which custody no longer reads", v)
		}
	}
}

// help returns 'custody ARGS... --help'.
func help(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := run(t, append(append([]string{}, args...), "--help")...)
	if code != 0 {
		t.Fatalf("custody %s --help: %d %s", strings.Join(args, " "), code, errs)
	}
	return out
}

var varName = regexp.MustCompile(`^CUSTODY_[A-Z0-9_]+$`)

// binaryVars returns, sorted, the CUSTODY_* names written as string
// literals in the non-test files of the module's packages in the custody
// binary.
func binaryVars(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,GoFiles,CgoFiles,Module", "../../cmd/custody")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/custody-dev/custody"
	found := map[string]bool{}
	fset := token.NewFileSet()
	dec := json.NewDecoder(strings.NewReader(string(out)))
	packages := 0
	for dec.More() {
		var p struct {
			ImportPath        string
			Dir               string
			GoFiles, CgoFiles []string
			Module            *struct{ Path string }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != module {
			continue
		}
		packages++
		for _, name := range append(p.GoFiles, p.CgoFiles...) {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err == nil && varName.MatchString(s) && !strings.HasPrefix(s, "CUSTODY_TEST_") {
					found[s] = true
				}
				return true
			})
		}
	}
	if packages < 10 {
		t.Fatalf("go list named only %d of the module's packages", packages)
	}
	var vars []string
	for v := range found {
		vars = append(vars, v)
	}
	sort.Strings(vars)
	return vars
}

// TestServeHelpNamesTheWebInterface: 'custody serve --help' says the
// server also serves the web interface at /.
func TestServeHelpNamesTheWebInterface(t *testing.T) {
	if h := help(t, "serve"); !strings.Contains(h, "Endpoints: / (the web interface") || !strings.Contains(h, "docs/ui.md") {
		t.Errorf("'custody serve --help' does not name the web interface:\n%s", h)
	}
}
