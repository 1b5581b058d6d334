package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/testserver"
)

// TestPromotionDocWalkthrough runs the shell blocks of docs/promotion.md's
// walkthrough exactly as written, in one bash shell in an empty
// directory: server key, configuration, a default (authentication on)
// server, people, CI, refusals, promotions, verify, rollback, revocation.
// A step that fails (or a 'refused' step that succeeds) fails the test.
func TestPromotionDocWalkthrough(t *testing.T) {
	crane := client(t, "crane")
	for _, tool := range []string{"bash", "curl", "jq", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	doc, err := os.ReadFile("../../docs/promotion.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)
	start, end := strings.Index(section, "\n## Walkthrough\n"), strings.Index(section, "\n## API\n")
	if start < 0 || end < start {
		t.Fatal("docs/promotion.md has no '## Walkthrough' section before '## API'")
	}
	var script strings.Builder
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section[start:end], -1) {
		script.WriteString(m[1])
	}
	if !strings.Contains(script.String(), "custody promote") {
		t.Fatalf("no walkthrough found:\n%s", script.String())
	}

	// custody and crane on the PATH, by those names.
	bin := t.TempDir()
	for name, p := range map[string]string{"custody": testserver.Binary(t), "crane": crane} {
		if err := os.Symlink(p, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	work, home := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// The walkthrough leaves its server running in the background: stop it
	// however the script ends.
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", "trap 'kill $(jobs -p) 2>/dev/null' EXIT\n"+script.String())
	// On a timeout, interrupt bash so that its EXIT trap stops the server.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "R="+addr,
		"HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"), "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"CUSTODY_SERVER=", "CUSTODY_TOKEN=", "CUSTODY_KEY_PASSWORD=", "CUSTODY_CONFIG=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(work, "serve.log"))
		t.Fatalf("the walkthrough of docs/promotion.md failed: %v\n%s\n--- serve.log:\n%s", err, out, log)
	}
	for _, want := range []string{"FAIL promoted_to_previous", "only by promotion", "approval recorded: 1 of 2", "rolled prod of apps/web back", "revoked by admin",
		"prod of project apps/**", "INDEX"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walkthrough output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
