package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestCommandNames holds each entry of commands to its command's name.
func TestCommandNames(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands {
		if got := c.new().Name(); got != c.name {
			t.Errorf("commands lists %q for the command named %q", c.name, got)
		}
		if seen[c.name] {
			t.Errorf("%q listed twice", c.name)
		}
		seen[c.name] = true
	}
}

// TestRootForMatchesTree runs every command's help, and every command
// with an unknown flag, once in the tree rootFor builds for it and once in
// the whole tree: the output and exit code must be the same.
func TestRootForMatchesTree(t *testing.T) {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			p := append(append([]string(nil), path...), sub.Name())
			paths = append(paths, p)
			walk(sub, p)
		}
	}
	walk(NewRoot(), nil)
	if len(paths) < len(commands) {
		t.Fatalf("%d command paths", len(paths))
	}
	for _, p := range paths {
		for _, last := range []string{"--help", "--no-such-flag"} {
			args := append(append([]string(nil), p...), last)
			var wantOut, wantErr, gotOut, gotErr bytes.Buffer
			want := execute(NewRoot(), args, &wantOut, &wantErr)
			root := rootFor(args)
			if n := len(root.Commands()); n != 1 {
				t.Fatalf("%v: rootFor built %d commands, want 1", args, n)
			}
			got := execute(root, args, &gotOut, &gotErr)
			if got != want || gotOut.String() != wantOut.String() || gotErr.String() != wantErr.String() {
				t.Errorf("custody %s: exit %d, stdout %q, stderr %q in its own tree; exit %d, stdout %q, stderr %q in the whole tree",
					strings.Join(args, " "), got, gotOut.String(), gotErr.String(), want, wantOut.String(), wantErr.String())
			}
		}
	}
	for _, args := range [][]string{nil, {"--help"}, {"help", "version"}, {"no-such-command"}, {"completion", "bash"}} {
		if n := len(rootFor(args).Commands()); n != len(commands) {
			t.Errorf("rootFor(%q) built %d commands, want all %d", args, n, len(commands))
		}
	}
}
