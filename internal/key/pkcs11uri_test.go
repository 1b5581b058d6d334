package key

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParsePKCS11URI(t *testing.T) {
	u, err := ParsePKCS11URI("pkcs11:token=custody;object=signing%20key;id=%01%02%ff;type=private;serial=42;slot-id=7;x-vendor=1" +
		"?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%2B34&x-other=2")
	if err != nil {
		t.Fatal(err)
	}
	want := &PKCS11URI{
		Token: "custody", Object: "signing key", ID: []byte{1, 2, 0xff}, Type: "private", Serial: "42", SlotID: 7,
		ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINValue: "12+34",
	}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("parsed %+v, want %+v", u, want)
	}
	// '+' means '+', not a space (RFC 7512 is not form encoding).
	if u2, err := ParsePKCS11URI("pkcs11:object=a+b"); err != nil || u2.Object != "a+b" {
		t.Fatalf("object = %q (%v), want a+b", u2.Object, err)
	}
	// The encoding round-trips, and Redacted drops the PIN only.
	back, err := ParsePKCS11URI(u.String())
	if err != nil || !reflect.DeepEqual(back, u) {
		t.Fatalf("round trip of %s: %+v %v", u.String(), back, err)
	}
	if r := u.Redacted(); strings.Contains(r, "pin-value") || !strings.Contains(r, "module-path=/usr/lib/softhsm/libsofthsm2.so") || !strings.Contains(r, "object=signing%20key") {
		t.Fatalf("redacted = %s", r)
	}
	if !IsPKCS11URI("PKCS11:token=x") || IsPKCS11URI("pkcs1") || IsPKCS11URI("/etc/key.pem") {
		t.Fatal("IsPKCS11URI")
	}
}

func TestParsePKCS11URIRefuses(t *testing.T) {
	for _, tc := range []struct{ uri, want string }{
		{"token=custody", `must start with "pkcs11:"`},
		{"pkcs11:token=a;token=b", "given twice"},
		{"pkcs11:?pin-value=1&pin-value=2", "given twice"},
		{"pkcs11:colour=blue", `unknown path attribute "colour"`},
		{"pkcs11:?colour=blue", `unknown query attribute "colour"`},
		{"pkcs11:token", "not name=value"},
		{"pkcs11:=x", "not name=value"},
		{"pkcs11:to_ken=x", "character other than"},
		{"pkcs11:object=%zz", "object"},
		{"pkcs11:slot-id=-1", "slot-id"},
		{"pkcs11:type=secret", "type"},
		{"pkcs11:object=k#frag", "fragment"},
		{"pkcs11:object=k?module-name=softhsm2", "module-path="},
		{"pkcs11:object=k?pin-value=1&pin-source=file:/p", "not both"},
		{"pkcs11:object=" + strings.Repeat("a", MaxPKCS11URIBytes), "limit"},
	} {
		_, err := ParsePKCS11URI(tc.uri)
		if !errors.Is(err, ErrPKCS11URI) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePKCS11URI(%.60q) = %v, want ErrPKCS11URI mentioning %q", tc.uri, err, tc.want)
		}
	}
}

func TestPKCS11URIPIN(t *testing.T) {
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte("5678\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"file:" + pinFile, "file://" + pinFile} {
		u, err := ParsePKCS11URI("pkcs11:object=k?pin-source=" + src)
		if err != nil {
			t.Fatal(err)
		}
		if pin, err := u.PIN(); err != nil || pin != "5678" {
			t.Fatalf("PIN from %s = %q, %v", src, pin, err)
		}
		if !strings.Contains(u.Redacted(), "pin-source=file:") {
			t.Fatalf("Redacted dropped the pin-source: %s", u.Redacted())
		}
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("1"), maxPINFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{
		"file:" + big:                        "over",
		"file:" + filepath.Join(dir, "none"): "no such file",
		"https://example.com/pin":            "only file:PATH",
		"file://host/pin":                    "host",
	} {
		u, err := ParsePKCS11URI("pkcs11:object=k?pin-source=" + src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.PIN(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("PIN from %s: %v, want an error mentioning %q", src, err, want)
		}
	}
	u, _ := ParsePKCS11URI("pkcs11:object=k")
	if pin, err := u.PIN(); pin != "" || err != nil {
		t.Fatalf("PIN without one = %q, %v", pin, err)
	}
}

// FuzzParsePKCS11URI checks the parser never panics, and that what it
// accepts encodes to a URI that parses back to the same value.
func FuzzParsePKCS11URI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=custody;object=signing-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
		"pkcs11:object=k;id=%01%02;type=private;slot-id=3?pin-source=file:/run/pin",
		"pkcs11:token=a%20b;manufacturer=SoftHSM%20project;serial=3fc5;model=SoftHSM%20v2;slot-description=d;slot-manufacturer=m",
		"pkcs11:",
		"pkcs11:;;?&&",
		"pkcs11:x-a=1?x-b=2",
		"PKCS11:object=%",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParsePKCS11URI(s)
		if err != nil {
			if !errors.Is(err, ErrPKCS11URI) {
				t.Fatalf("error %v is not ErrPKCS11URI", err)
			}
			return
		}
		enc := u.String()
		back, err := ParsePKCS11URI(enc)
		if err != nil {
			if len(enc) > MaxPKCS11URIBytes {
				return // percent-encoding grew it past the limit
			}
			t.Fatalf("%q parsed, but its encoding %q does not: %v", s, enc, err)
		}
		if !reflect.DeepEqual(u, back) {
			t.Fatalf("%q: round trip through %q gave %+v, want %+v", s, enc, back, u)
		}
	})
}
