package auth

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/custody-dev/custody/internal/account"
)

// FuzzKeyAnswer feeds arbitrary bytes as a security key's answer to a
// started sign-in: checkKey must refuse each one (no panic, no sign-in)
// and leave the key's counter as it was.
func FuzzKeyAnswer(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"id":"AQID","rawId":"AQID","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":""}}`,
		`{"id":"AQID","rawId":"AQID","type":"public-key","response":{"clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiIiwib3JpZ2luIjoiaHR0cHM6Ly9yZWdpc3RyeS5leGFtcGxlIn0","authenticatorData":"SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MBAAAAAQ","signature":"MEUCIQ"}}`,
		`null`, `[]`, `{"response":null}`,
	} {
		f.Add([]byte(seed))
	}
	fx := newFixture(f, func(o *Options) { o.WebURL = "https://registry.example" })
	// A key record whose public key is an empty COSE map: no answer can
	// verify against it, so every input exercises the refusals.
	record, _ := json.Marshal(webauthn.Credential{ID: []byte{1, 2, 3}, PublicKey: []byte{0xa0}})
	ctx := context.Background()
	if err := fx.st.PutWebAuthnKey(ctx, account.WebAuthnKey{User: "root", ID: "AQID", Name: "k", Record: record, SignCount: 7, Created: fx.now}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		_, ku, err := fx.s.keysOf(ctx, "root")
		if err != nil {
			t.Fatal(err)
		}
		_, data, err := fx.s.rp.BeginLogin(ku)
		if err != nil {
			t.Fatal(err)
		}
		id, err := fx.s.putCeremony(ctx, "root", false, ceremony{Data: *data})
		if err != nil {
			t.Fatal(err)
		}
		if err := fx.s.checkKey(ctx, "root", WebAuthnAssertion{Ceremony: id, Credential: answer}); err == nil {
			t.Fatalf("an arbitrary answer signed in: %q", answer)
		}
		if keys, _ := fx.st.WebAuthnKeys(ctx, "root"); len(keys) != 1 || keys[0].SignCount != 7 {
			t.Fatalf("a refused answer changed the key: %+v", keys)
		}
	})
}
