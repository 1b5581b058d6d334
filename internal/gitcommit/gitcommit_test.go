package gitcommit_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/gitcommit"
	"github.com/custody-dev/custody/internal/gitcommit/gitcommittest"
)

func signers(t *testing.T, lines ...string) *gitcommit.Verifier {
	t.Helper()
	s, err := gitcommit.ParseAllowedSigners([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return &gitcommit.Verifier{Signers: s}
}

func parse(t *testing.T, raw []byte) *gitcommit.Commit {
	t.Helper()
	c, err := gitcommit.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSSHSignedCommit signs real commits with ssh-keygen keys through git
// (both object formats) and verifies what git cat-file prints.
func TestSSHSignedCommit(t *testing.T) {
	for _, format := range []string{gitcommit.SHA1, gitcommit.SHA256} {
		t.Run(format, func(t *testing.T) {
			r := gitcommittest.New(t, format)
			priv, pub := r.SSHKey("alice")
			r.UseSSH(priv)
			r.Commit("first")
			id, raw := r.Commit("second: a parent and a\n\nlonger message")
			c := parse(t, raw)
			if got, _ := c.ID(format); got != id {
				t.Fatalf("ID = %s, git says %s", got, id)
			}
			if gitcommit.FormatOf(id) != format || len(c.Parents) != 1 || c.Tree == "" || !strings.Contains(c.SignatureFor(format), "\n") {
				t.Fatalf("parsed %+v", c)
			}
			if bytes.Contains(c.Payload, []byte("gpgsig")) || !bytes.Contains(c.Payload, []byte("longer message")) {
				t.Fatalf("payload %q", c.Payload)
			}
			list := `alice@example.com namespaces="git,file" ` + pub
			v := signers(t, "# team", "", list)
			// git itself accepts the same commit with the same list.
			file := filepath.Join(t.TempDir(), "allowed_signers")
			if err := os.WriteFile(file, []byte(list+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			r.Git("-c", "gpg.ssh.allowedSignersFile="+file, "verify-commit", "HEAD")
			s, err := v.Verify(c, format)
			if err != nil {
				t.Fatal(err)
			}
			if s.Method != gitcommit.MethodSSH || s.Principals[0] != "alice@example.com" || !strings.HasPrefix(s.Fingerprint, "SHA256:") {
				t.Fatalf("signer %+v", s)
			}
		})
	}
}

func TestSSHRefusals(t *testing.T) {
	r := gitcommittest.New(t, gitcommit.SHA1)
	priv, pub := r.SSHKey("alice")
	_, other := r.SSHKey("mallory")
	r.UseSSH(priv)
	_, raw := r.Commit("signed")
	c := parse(t, raw)
	cases := map[string]struct {
		v    *gitcommit.Verifier
		raw  []byte
		want string
	}{
		"wrong signer":    {v: signers(t, "mallory@example.com "+other), want: "not in the allowed signers"},
		"no signers":      {v: &gitcommit.Verifier{}, want: "not in the allowed signers"},
		"namespace":       {v: signers(t, `alice@example.com namespaces="file" `+pub), want: "does not allow namespace"},
		"expired":         {v: signers(t, `alice@example.com valid-before="20200101" `+pub), want: "valid before"},
		"not yet valid":   {v: signers(t, `alice@example.com valid-after="29990101Z" `+pub), want: "valid after"},
		"altered message": {v: signers(t, "alice@example.com "+pub), raw: bytes.Replace(raw, []byte("signed"), []byte("signeD"), 1), want: "does not match the commit"},
		"altered tree":    {v: signers(t, "alice@example.com "+pub), raw: bytes.Replace(raw, []byte("tree "+c.Tree[:4]), []byte("tree 0000"), 1), want: "does not match the commit"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cc := c
			if tc.raw != nil {
				cc = parse(t, tc.raw)
			}
			_, err := tc.v.Verify(cc, gitcommit.SHA1)
			if !errors.Is(err, gitcommit.ErrNotAllowed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// The valid window is read at the committer time, as git does.
	ok := signers(t, `alice@example.com valid-after="20200101",valid-before="29990101" `+pub)
	if _, err := ok.Verify(c, gitcommit.SHA1); err != nil {
		t.Fatal(err)
	}
	r.Git("commit", "-q", "--allow-empty", "-m", "unsigned", "--no-gpg-sign")
	if _, err := ok.Verify(parse(t, r.Git("cat-file", "commit", "HEAD")), gitcommit.SHA1); !errors.Is(err, gitcommit.ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
}

// TestOpenPGPSignedCommit signs with a real gpg key through git.
func TestOpenPGPSignedCommit(t *testing.T) {
	gitcommittest.Need(t, "gpg")
	r := gitcommittest.New(t, gitcommit.SHA1)
	fpr, armored := r.GPGKey("Alice <alice@example.com>")
	r.UseGPG(fpr)
	id, raw := r.Commit("pgp signed")
	c := parse(t, raw)
	if got, _ := c.ID(gitcommit.SHA1); got != id {
		t.Fatalf("ID %s, git %s", got, id)
	}
	ring, err := gitcommit.ReadKeyring(armored)
	if err != nil {
		t.Fatal(err)
	}
	v := &gitcommit.Verifier{Keyring: ring}
	s, err := v.Verify(c, gitcommit.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Method != gitcommit.MethodOpenPGP || s.Fingerprint != fpr || len(s.Principals) != 1 || s.Principals[0] != "alice@example.com" {
		t.Fatalf("signer %+v, want %s", s, fpr)
	}
	if _, err := v.Verify(parse(t, bytes.Replace(raw, []byte("pgp signed"), []byte("pgp signeD"), 1)), gitcommit.SHA1); !errors.Is(err, gitcommit.ErrNotAllowed) {
		t.Fatalf("altered: %v", err)
	}
	_, otherKey := r.GPGKey("Mallory <mallory@example.com>")
	other, err := gitcommit.ReadKeyring(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&gitcommit.Verifier{Keyring: other}).Verify(c, gitcommit.SHA1); !errors.Is(err, gitcommit.ErrNotAllowed) {
		t.Fatalf("wrong keyring: %v", err)
	}
	if _, err := (&gitcommit.Verifier{}).Verify(c, gitcommit.SHA1); !errors.Is(err, gitcommit.ErrNotAllowed) {
		t.Fatalf("no keyring: %v", err)
	}
}

func TestParseRefusals(t *testing.T) {
	const tree = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
	const who = "author A <a@x> 1700000000 +0000\ncommitter A <a@x> 1700000000 +0000\n"
	for name, raw := range map[string]string{
		"no tree":              who + "\nmsg\n",
		"bad tree":             "tree xyz\n" + who + "\nmsg\n",
		"no author":            tree + "committer A <a@x> 1 +0000\n\nm\n",
		"bad committer":        tree + "author A <a@x> 1700000000 +0000\ncommitter nobody\n\nm\n",
		"second tree":          tree + who + tree + "\nm\n",
		"leading continuation": " x\n" + tree + who + "\nm\n",
		"no end of header":     tree + "author A <a@x> 1700000000 +0000",
		"two signatures":       tree + who + "gpgsig a\ngpgsig b\n\nm\n",
	} {
		if _, err := gitcommit.Parse([]byte(raw)); !errors.Is(err, gitcommit.ErrInvalid) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	c, err := gitcommit.Parse([]byte(tree + who + "gpgsig -----BEGIN X-----\n line\n -----END X-----\nencoding UTF-8\n\nm\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Signature != "-----BEGIN X-----\nline\n-----END X-----" || string(c.Payload) != tree+who+"encoding UTF-8\n\nm\n" {
		t.Fatalf("signature %q payload %q", c.Signature, c.Payload)
	}
	if !c.CommitterTime.Equal(time.Unix(1700000000, 0)) {
		t.Fatal(c.CommitterTime)
	}
}

func TestParseAllowedSignersRefusals(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	for name, line := range map[string]string{
		"no key":         "alice@example.com",
		"bad key":        "alice@example.com ssh-ed25519 AAAA",
		"unknown option": `alice@example.com frobnicate ` + key,
		"bad time":       `alice@example.com valid-before="2020" ` + key,
		"cert authority": `*@example.com cert-authority ` + key,
		"empty ns":       `alice@example.com namespaces="" ` + key,
		"unterminated":   `"alice@example.com ` + key,
	} {
		if _, err := gitcommit.ParseAllowedSigners([]byte(line)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := gitcommit.ParseAllowedSigners([]byte(`a@x,b@x valid-after="202001021504Z",valid-before="20300101000000" ` + key + " comment"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 1 || len(s[0].Principals) != 2 || !s[0].ValidAfter.Equal(time.Date(2020, 1, 2, 15, 4, 0, 0, time.UTC)) || s[0].ValidBefore.Year() != 2030 {
		t.Fatalf("%+v", s)
	}
	if s, err := gitcommit.ParseAllowedSigners([]byte(`"a@x, b@x" ` + key)); err != nil || len(s[0].Principals) != 2 || s[0].Principals[1] != "b@x" {
		t.Fatalf("quoted principals: %v %+v", err, s)
	}
}
