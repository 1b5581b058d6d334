package server_test

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/server"
)

// The configuration holds a gate as plain data (config imports no rule
// engine); the gate is compiled where the server builds it, and a gate
// that does not compile stops the server from starting, naming the
// project, the environment and the rule.
func TestStartRefusesAGateThatDoesNotCompile(t *testing.T) {
	data := t.TempDir()
	write := func(expr string) string {
		path := filepath.Join(t.TempDir(), "custody.yaml")
		doc := "data: " + data + "\nprojects:\n  - repositories: acme/**\n    environments:\n" +
			"      - name: dev\n      - name: prod\n        gate:\n          rules:\n" +
			"            - name: release_tag\n              expr: \"" + expr + "\"\n"
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	cfg, err := config.Load(write("artifact.digset == 'x'"), nil)
	if err != nil {
		t.Fatalf("loading a configuration does not compile gates, yet: %v", err)
	}
	if _, err := server.New(cfg, log); err == nil ||
		!strings.Contains(err.Error(), "projects[0] environment prod: gate:") ||
		!strings.Contains(err.Error(), `"release_tag"`) ||
		!strings.Contains(err.Error(), "undefined field 'digset'") {
		t.Fatalf("start with a gate that does not compile: %v", err)
	}

	// The refused start left the data directory usable: with the gate
	// fixed the same server starts.
	cfg, err = config.Load(write("artifact.digest != ''"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(cfg, log)
	if err != nil {
		t.Fatalf("start with the gate fixed: %v", err)
	}
	s.Close()
}
