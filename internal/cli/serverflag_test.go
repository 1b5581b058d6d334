package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestServerFlagHelp: every client command's --server says where its
// default comes from; only gc and scrub (online or offline) and verify
// (the registry of REF) mean something else by it.
func TestServerFlagHelp(t *testing.T) {
	own := map[string]bool{"custody gc": true, "custody scrub": true, "custody verify": true}
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if f := c.Flags().Lookup("server"); f != nil && !own[c.CommandPath()] {
			n++
			if f.Usage != serverUsage || f.DefValue != "" {
				t.Errorf("%s --server: default %q, help %q", c.CommandPath(), f.DefValue, f.Usage)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRoot())
	if n < 20 {
		t.Fatalf("only %d commands with --server", n)
	}
	for _, want := range []string{"CUSTODY_SERVER", "custody login", defaultServer} {
		if !strings.Contains(serverUsage, want) {
			t.Errorf("--server help %q does not mention %s", serverUsage, want)
		}
	}
}

// TestResolveServer: --server > CUSTODY_SERVER > the remembered server >
// the default; the remembered server lives in a 0600 file.
func TestResolveServer(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv(envServer, "")
	got := func(flag string) string {
		t.Helper()
		s, err := resolveServer(flag)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := got(""); s != defaultServer {
		t.Fatalf("nothing set: %s", s)
	}
	path, err := rememberServer("http://10.0.0.7:5001")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "custody", "config.json") {
		t.Fatalf("config at %s", path)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", err, st)
	}
	if s := got(""); s != "http://10.0.0.7:5001" {
		t.Fatalf("remembered: %s", s)
	}
	t.Setenv(envServer, "https://reg.example.org/")
	if s := got(""); s != "https://reg.example.org" {
		t.Fatalf("CUSTODY_SERVER: %s", s)
	}
	if s := got("http://127.0.0.1:9"); s != "http://127.0.0.1:9" {
		t.Fatalf("--server: %s", s)
	}
	for env, flag := range map[string]string{"127.0.0.1:5000": "", "ftp://x": "", "": "reg.example.org"} {
		t.Setenv(envServer, env)
		if _, err := resolveServer(flag); err == nil {
			t.Errorf("CUSTODY_SERVER=%q --server=%q accepted", env, flag)
		}
	}
	t.Setenv(envServer, "")
	// logout of another host keeps it; of its host forgets it.
	if forgot, err := forgetServer("10.0.0.7:5002"); err != nil || forgot {
		t.Fatalf("forget another: %v %v", forgot, err)
	}
	if forgot, err := forgetServer("10.0.0.7:5001"); err != nil || !forgot {
		t.Fatalf("forget: %v %v", forgot, err)
	}
	if s := got(""); s != defaultServer {
		t.Fatalf("after forgetting: %s", s)
	}
	// A damaged file is an error naming it, not a silent default.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveServer(""); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("damaged config: %v", err)
	}
}
