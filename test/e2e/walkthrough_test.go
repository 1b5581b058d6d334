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

// walkthrough is one document's walkthrough: the ```sh blocks between two
// headings, run in order in one bash shell.
type walkthrough struct {
	doc, from, to string
	// addrs names the shell variables that get a free loopback address
	// (R is the first server's).
	addrs []string
}

// run runs the walkthrough's blocks exactly as written in an empty
// directory, with custody and crane on the PATH by those names, a private
// HOME, and nothing of the caller's custody environment; it fails the
// test if the script fails and returns its combined output.
func (w walkthrough) run(t *testing.T) string {
	t.Helper()
	crane := client(t, "crane")
	for _, tool := range []string{"bash", "curl", "jq", "tar", "oathtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	doc, err := os.ReadFile(filepath.Join("../..", w.doc))
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)
	start, end := strings.Index(section, "\n"+w.from+"\n"), strings.Index(section, "\n"+w.to+"\n")
	if start < 0 || end < start {
		t.Fatalf("%s has no %q section before %q", w.doc, w.from, w.to)
	}
	var script strings.Builder
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section[start:end], -1) {
		script.WriteString(m[1])
	}
	if script.Len() == 0 {
		t.Fatalf("no walkthrough found in %s", w.doc)
	}

	bin := t.TempDir()
	for name, p := range map[string]string{"custody": testserver.Binary(t), "crane": crane} {
		if err := os.Symlink(p, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	var env []string
	for _, v := range w.addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, v+"="+l.Addr().String())
		l.Close()
	}

	work, home := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// A walkthrough leaves its servers running in the background: stop
	// them however the script ends.
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", "trap 'kill $(jobs -p) 2>/dev/null' EXIT\n"+script.String())
	// On a timeout, interrupt bash so that its EXIT trap stops the servers.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"), "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"CUSTODY_SERVER=", "CUSTODY_TOKEN=", "CUSTODY_KEY_PASSWORD=", "CUSTODY_CONFIG=")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var logs strings.Builder
		_ = filepath.WalkDir(work, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Name() == "serve.log" {
				b, _ := os.ReadFile(p)
				logs.WriteString("--- " + p + ":\n" + string(b))
			}
			return nil
		})
		t.Fatalf("the walkthrough of %s failed: %v\n%s\n%s", w.doc, err, out, logs.String())
	}
	return string(out)
}
