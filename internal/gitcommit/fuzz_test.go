package gitcommit_test

import (
	"bytes"
	"testing"

	"github.com/custody-dev/custody/internal/gitcommit"
)

const seedCommit = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n" +
	"parent 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n" +
	"author A <a@x> 1700000000 +0000\ncommitter A <a@x> 1700000000 +0000\n" +
	"gpgsig -----BEGIN SSH SIGNATURE-----\n U1NIU0lHAAAAAQ==\n -----END SSH SIGNATURE-----\n\nmsg\n"

// FuzzParse: Parse never panics, and what it accepts has a payload that
// is the object without its signature headers, so no byte outside them
// escapes the signature.
func FuzzParse(f *testing.F) {
	f.Add([]byte(seedCommit))
	f.Add([]byte("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n"))
	f.Add([]byte(" x\n\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := gitcommit.Parse(raw)
		if err != nil {
			return
		}
		if len(c.Payload) > len(raw) || (c.Signature == "" && c.SignatureSHA256 == "" && !bytes.Equal(c.Payload, raw)) {
			t.Fatalf("payload %q of %q", c.Payload, raw)
		}
		if _, err := c.ID(gitcommit.SHA256); err != nil {
			t.Fatal(err)
		}
		_, _ = (&gitcommit.Verifier{}).Verify(c, gitcommit.SHA1)
	})
}

// FuzzParseAllowedSigners: never panics; every signer it returns has a
// key and a principal.
func FuzzParseAllowedSigners(f *testing.F) {
	f.Add([]byte(`alice@example.com namespaces="git",valid-before="20300101Z" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c`))
	f.Add([]byte("# comment\n\n\"a b\" ssh-ed25519 AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := gitcommit.ParseAllowedSigners(b)
		if err != nil {
			return
		}
		for _, a := range s {
			if a.Key == nil || len(a.Principals) == 0 {
				t.Fatalf("%+v", a)
			}
		}
	})
}
