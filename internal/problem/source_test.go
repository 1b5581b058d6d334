package problem_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/problem"
)

// serverKinds names the kinds whose status is 5xx, as the source spells
// them; TestNoInternalTextIn5xx checks the list against the table.
var serverKinds = map[string]problem.Kind{
	"Internal":            problem.Internal,
	"NoKey":               problem.NoKey,
	"Retry":               problem.Retry,
	"InsufficientStorage": problem.InsufficientStorage,
	"ContentDamaged":      problem.ContentDamaged,
	"ArtifactUnreadable":  problem.ArtifactUnreadable,
}

// TestNoInternalTextIn5xx scans the handlers' source: a problem.Write of
// a 5xx kind may only carry a constant detail (failures with an error go
// through problem.Fail, which logs the error and sends the request ID).
func TestNoInternalTextIn5xx(t *testing.T) {
	n := 0
	for _, k := range problem.Kinds() {
		if k.Status() >= 500 {
			n++
			if !hasValue(serverKinds, k) {
				t.Errorf("kind %v (%d) missing from serverKinds", k, k.Status())
			}
		}
	}
	if n != len(serverKinds) {
		t.Fatalf("%d 5xx kinds, %d in serverKinds", n, len(serverKinds))
	}
	// The check itself catches a leak.
	if bad := leaks(t, "bad.go", `package x
func f() { problem.Write(w, problem.Internal, "reading: "+err.Error()) }`); len(bad) != 1 {
		t.Fatalf("the scan misses a computed 5xx detail: %v", bad)
	}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		for _, at := range leaks(t, path, nil) {
			t.Errorf("%s: problem.Write of a 5xx kind with a computed detail: use problem.Fail/FailAs", at)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// leaks returns the positions of problem.Write calls of a 5xx kind whose
// detail is not a constant string.
func leaks(t *testing.T, path string, src any) []token.Position {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []token.Position
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || !isSel(call.Fun, "problem", "Write") || len(call.Args) != 3 {
			return true
		}
		kind, ok := call.Args[1].(*ast.SelectorExpr)
		if !ok || !isSel(kind, "problem", kind.Sel.Name) {
			return true
		}
		if _, fivexx := serverKinds[kind.Sel.Name]; fivexx && !constant(call.Args[2]) {
			out = append(out, fset.Position(call.Pos()))
		}
		return true
	})
	return out
}

func hasValue(m map[string]problem.Kind, k problem.Kind) bool {
	for _, v := range m {
		if v == k {
			return true
		}
	}
	return false
}

func isSel(e ast.Expr, pkg, name string) bool {
	s, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := s.X.(*ast.Ident)
	return ok && id.Name == pkg && s.Sel.Name == name
}

// constant reports whether e is a string literal or a sum of them.
func constant(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return e.Kind == token.STRING
	case *ast.BinaryExpr:
		return e.Op == token.ADD && constant(e.X) && constant(e.Y)
	case *ast.ParenExpr:
		return constant(e.X)
	}
	return false
}
