package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/testserver"
)

// TestLoginRemembersServer: after 'custody login' to a server that is not
// the default address, client commands talk to it without --server;
// CUSTODY_SERVER overrides the remembered server, --server overrides both,
// and 'custody logout' forgets it.
func TestLoginRemembersServer(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Auth: true})
	home := t.TempDir()
	// Nothing listens on port 1: a command sent there fails naming it.
	const dead = "http://127.0.0.1:1"

	out := mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", srv.Host(), "-u", "admin", "--password-stdin")
	if !strings.Contains(out, srv.URL+" is now the default server") {
		t.Fatalf("login: %s", out)
	}
	cfgPath := filepath.Join(home, ".config", "custody", "config.json")
	st, err := os.Stat(cfgPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("custody config after login: %v %v", err, st)
	}
	if b, _ := os.ReadFile(cfgPath); !strings.Contains(string(b), `"server": "`+srv.URL+`"`) {
		t.Fatalf("custody config: %s", b)
	}

	// No --server: the remembered server, for every kind of client command.
	if out := mustCustody(t, home, "", nil, "whoami"); !strings.HasPrefix(out, "admin ") {
		t.Fatalf("whoami without --server: %s", out)
	}
	if out := mustCustody(t, home, "", nil, "audit", "checkpoint", "--sign"); !strings.Contains(out, "\n") {
		t.Fatalf("audit checkpoint without --server: %q", out)
	}
	mustCustody(t, home, "", nil, "builds", "--revision", "4f2c9e1")

	// CUSTODY_SERVER overrides the remembered server ...
	if out, err := custodyCmd(t, home, "", []string{"CUSTODY_SERVER=" + dead}, "whoami"); err == nil || !strings.Contains(out, "127.0.0.1:1") {
		t.Fatalf("whoami with CUSTODY_SERVER: %v %s", err, out)
	}
	// ... and --server overrides both.
	if out := mustCustody(t, home, "", []string{"CUSTODY_SERVER=" + dead}, "whoami", "--server", srv.URL); !strings.HasPrefix(out, "admin ") {
		t.Fatalf("whoami with --server and CUSTODY_SERVER: %s", out)
	}
	if out, err := custodyCmd(t, home, "", nil, "whoami", "--server", dead); err == nil || !strings.Contains(out, "127.0.0.1:1") {
		t.Fatalf("whoami with --server over the remembered server: %v %s", err, out)
	}
	if out, err := custodyCmd(t, home, "", []string{"CUSTODY_SERVER=127.0.0.1:5000"}, "whoami"); err == nil || !strings.Contains(out, "CUSTODY_SERVER") {
		t.Fatalf("CUSTODY_SERVER without a scheme: %v %s", err, out)
	}

	// Logging out of another server keeps the remembered one; logging out
	// of it (no argument: the server commands use) forgets it.
	if out := mustCustody(t, home, "", nil, "logout", "127.0.0.1:1"); strings.Contains(out, "no longer the default") {
		t.Fatalf("logout of another server: %s", out)
	}
	if b, _ := os.ReadFile(cfgPath); !strings.Contains(string(b), srv.URL) {
		t.Fatalf("logout of another server forgot the remembered one: %s", b)
	}
	if out := mustCustody(t, home, "", nil, "logout"); !strings.Contains(out, "Removed the credentials of "+srv.Host()+"; it is no longer the default server") {
		t.Fatalf("logout: %s", out)
	}
	if b, _ := os.ReadFile(cfgPath); strings.Contains(string(b), srv.URL) {
		t.Fatalf("logout kept the server: %s", b)
	}
	// Without credentials and with the remembered server forgotten,
	// --server still reaches it, and the server asks to sign in.
	if out, err := custodyCmd(t, home, "", nil, "whoami", "--server", srv.URL); err == nil || !strings.Contains(out, "custody login "+srv.URL) {
		t.Fatalf("whoami after logout: %v %s", err, out)
	}
}

// TestTokenExpiryLimit: 'token create --expires' suggests only lifetimes
// the server accepts, and a too long one is refused naming the maximum,
// with no token created.
func TestTokenExpiryLimit(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Auth: true})
	home := t.TempDir()
	mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", srv.Host(), "-u", "admin", "--password-stdin")
	if help := mustCustody(t, home, "", nil, "token", "create", "--help"); strings.Contains(help, "730d") || strings.Contains(help, "2y") || !strings.Contains(help, "366d") {
		t.Fatalf("token create --help:\n%s", help)
	}
	out, err := custodyCmd(t, home, "", nil, "token", "create", "--name", "long", "--repo", "**", "--expires", "soon")
	if err == nil || strings.Contains(out, "730d") || strings.Contains(out, "2y") || !strings.Contains(out, "at most a year") {
		t.Fatalf("--expires soon: %v %s", err, out)
	}
	out, err = custodyCmd(t, home, "", nil, "token", "create", "--name", "long", "--repo", "**", "--expires", "2y")
	if err == nil || !strings.Contains(out, "at most 8784h") {
		t.Fatalf("--expires 2y: %v %s", err, out)
	}
	mustCustody(t, home, "", nil, "token", "create", "--name", "year", "--repo", "**", "--expires", "366d")
	if list := mustCustody(t, home, "", nil, "token", "list"); strings.Contains(list, "long") || !strings.Contains(list, "year") {
		t.Fatalf("tokens after the refusal: %s", list)
	}
}
