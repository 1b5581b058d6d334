// Package gitcommittest makes real git repositories with commits signed
// by real ssh-keygen and gpg keys, for the tests of source verification.
package gitcommittest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo is a git repository in a temporary directory.
type Repo struct {
	t   testing.TB
	Dir string
	env []string
}

// Need skips t when a program is missing, and fails it under CI=true,
// where scripts/install-clients.sh installs them (git, gpg, ssh-keygen).
func Need(t testing.TB, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (scripts/install-clients.sh installs it)", p)
			}
			t.Skipf("%s is not installed", p)
		}
	}
}

// New initialises a repository of object format ("sha1" or "sha256").
func New(t testing.TB, format string) *Repo {
	t.Helper()
	Need(t, "git")
	home := t.TempDir()
	r := &Repo{t: t, Dir: t.TempDir(), env: append(os.Environ(),
		"HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.com",
		"GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.com", "GNUPGHOME="+filepath.Join(home, "gnupg"))}
	r.Git("init", "-q", "--object-format="+format, "-b", "main")
	return r
}

// Git runs git in the repository and returns its standard output.
func (r *Repo) Git(args ...string) []byte {
	r.t.Helper()
	return r.run("git", args...)
}

func (r *Repo) run(prog string, args ...string) []byte {
	r.t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir, cmd.Env = r.Dir, r.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// SSHKey makes an ed25519 key with ssh-keygen and returns the private
// key's path and the public key line.
func (r *Repo) SSHKey(name string) (priv, pub string) {
	r.t.Helper()
	Need(r.t, "ssh-keygen")
	priv = filepath.Join(r.t.TempDir(), name)
	r.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", priv)
	b, err := os.ReadFile(priv + ".pub")
	if err != nil {
		r.t.Fatal(err)
	}
	return priv, strings.TrimSpace(string(b))
}

// UseSSH makes the next commits signed with the SSH key priv.
func (r *Repo) UseSSH(priv string) {
	r.Git("config", "gpg.format", "ssh")
	r.Git("config", "user.signingkey", priv)
}

// GPGKey makes an ed25519 OpenPGP signing key for uid ("Name <email>")
// with gpg and returns its fingerprint and the armored public key.
func (r *Repo) GPGKey(uid string) (fpr string, armored []byte) {
	r.t.Helper()
	Need(r.t, "gpg")
	home := filepath.Join(r.t.TempDir(), "g")
	if err := os.MkdirAll(home, 0o700); err != nil {
		r.t.Fatal(err)
	}
	r.env = append(r.env, "GNUPGHOME="+home)
	r.run("gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
	for _, l := range strings.Split(string(r.run("gpg", "--batch", "--with-colons", "--list-keys", uid)), "\n") {
		if strings.HasPrefix(l, "fpr:") {
			fpr = strings.Split(l, ":")[9]
			break
		}
	}
	return fpr, r.run("gpg", "--batch", "--armor", "--export", fpr)
}

// UseGPG makes the next commits signed with the OpenPGP key fpr.
func (r *Repo) UseGPG(fpr string) {
	r.Git("config", "gpg.format", "openpgp")
	r.Git("config", "user.signingkey", fpr)
}

// Commit writes a file and commits it signed (-S), with extra git
// arguments (e.g. "--date=..."), and returns the commit ID and the raw
// commit object (git cat-file commit HEAD).
func (r *Repo) Commit(msg string, extra ...string) (id string, raw []byte) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.Dir, "f.txt"), []byte(msg+"\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.Git("add", "f.txt")
	r.Git(append([]string{"commit", "-q", "-S", "-m", msg}, extra...)...)
	return strings.TrimSpace(string(r.Git("rev-parse", "HEAD"))), r.Git("cat-file", "commit", "HEAD")
}

// Env returns extra environment for a git command (e.g. a committer
// date): it applies to every later command.
func (r *Repo) Env(kv ...string) { r.env = append(r.env, kv...) }
