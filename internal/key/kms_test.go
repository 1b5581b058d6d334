package key

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseKMSURI(t *testing.T) {
	for s, want := range map[string]KMSURI{
		"awskms:///1234abcd-12ab-34cd-56ef-1234567890ab":                                        {KMSAWS, "", "1234abcd-12ab-34cd-56ef-1234567890ab"},
		"awskms://localhost:4566/alias/custody-signing":                                         {KMSAWS, "localhost:4566", "alias/custody-signing"},
		"awskms:///arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab": {KMSAWS, "", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
		"gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k":                          {KMSGCP, "", "projects/p/locations/global/keyRings/r/cryptoKeys/k"},
		"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3":           {KMSGCP, "", "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3"},
		"azurekms://custody.vault.azure.net/signing":                                            {KMSAzure, "custody.vault.azure.net", "signing"},
		"hashivault://custody-signing":                                                          {KMSHashiVault, "", "custody-signing"},
	} {
		u, err := ParseKMSURI(s)
		if err != nil {
			t.Errorf("ParseKMSURI(%q): %v", s, err)
			continue
		}
		if !reflect.DeepEqual(*u, want) || u.String() != s || !IsKMSURI(s) {
			t.Errorf("ParseKMSURI(%q) = %+v (%s), want %+v", s, *u, u, want)
		}
	}
	for _, s := range []string{
		"awskms://", "awskms:///", "awskms:///not a key", "awskms://bad host/alias/x",
		"gcpkms://projects/p", "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/",
		"azurekms://vault", "azurekms://vault/a/b", "hashivault://", "hashivault://a/b",
		"vault://k", "k", "hashivault://" + strings.Repeat("k", MaxKMSURIBytes),
	} {
		if _, err := ParseKMSURI(s); !errors.Is(err, ErrKMSURI) {
			t.Errorf("ParseKMSURI(%.40q) = %v, want ErrKMSURI", s, err)
		}
	}
	if IsKMSURI("pkcs11:token=x") || IsKMSURI("/etc/cosign.key") {
		t.Error("IsKMSURI accepted a non-KMS reference")
	}
}

func TestOpenKMSSaysWhy(t *testing.T) {
	ctx := context.Background()
	_, err := OpenKMS(ctx, "hashivault://custody-signing")
	if !errors.Is(err, ErrKMSUnavailable) || !strings.Contains(err.Error(), "pkcs11:") || !strings.Contains(err.Error(), "hashivault") {
		t.Fatalf("OpenKMS = %v, want ErrKMSUnavailable naming the provider and the PKCS #11 alternative", err)
	}
	if _, err := OpenKMS(ctx, "awskms:///not a key"); !errors.Is(err, ErrKMSURI) {
		t.Fatalf("OpenKMS of a bad URI = %v, want ErrKMSURI", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := OpenKMS(cancelled, "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("OpenKMS with a cancelled context = %v", err)
	}
}

// FuzzParseKMSURI checks the parser never panics and that what it accepts
// encodes back to the same URI.
func FuzzParseKMSURI(f *testing.F) {
	for _, s := range []string{
		"awskms://localhost:4566/alias/custody-signing",
		"awskms:///arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3",
		"azurekms://custody.vault.azure.net/signing",
		"hashivault://custody-signing",
		"hashivault://",
		"://",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseKMSURI(s)
		if err != nil {
			if !errors.Is(err, ErrKMSURI) {
				t.Fatalf("error %v is not ErrKMSURI", err)
			}
			return
		}
		if u.String() != s {
			t.Fatalf("%q parsed to %+v, which encodes as %q", s, u, u.String())
		}
	})
}
