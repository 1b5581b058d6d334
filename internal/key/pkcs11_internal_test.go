//go:build cgo

package key

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/asn1"
	"testing"

	"github.com/miekg/pkcs11"
)

// pkcs11KeyForms returns CKA_EC_PARAMS / CKA_EC_POINT encodings tokens
// use: the point wrapped in a DER OCTET STRING (the standard) or bare, and
// Ed25519 parameters as an OID or the curve name.
func pkcs11KeyForms(t testing.TB) (p256Params, p256Point, edParamsOID, edParamsName, edPoint []byte) {
	ek, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256Params, _ = asn1.Marshal(oidP256)
	p256Point = ek.PublicKey().Bytes()
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edParamsOID, _ = asn1.Marshal(oidEd25519)
	edParamsName, _ = asn1.MarshalWithParams("edwards25519", "printable")
	return p256Params, p256Point, edParamsOID, edParamsName, edPub
}

func TestParsePKCS11PublicKey(t *testing.T) {
	p256Params, p256Point, edOID, edName, edPoint := pkcs11KeyForms(t)
	wrap := func(b []byte) []byte { d, _ := asn1.Marshal(b); return d }
	for _, tc := range []struct {
		name          string
		keyType       uint
		params, point []byte
		want          Algorithm
	}{
		{"P-256 wrapped", pkcs11.CKK_EC, p256Params, wrap(p256Point), ECDSAP256},
		{"P-256 bare", pkcs11.CKK_EC, p256Params, p256Point, ECDSAP256},
		{"Ed25519 OID wrapped", ckkECEdwards, edOID, wrap(edPoint), Ed25519},
		{"Ed25519 name bare", ckkECEdwards, edName, edPoint, Ed25519},
	} {
		pub, alg, err := parsePKCS11PublicKey(tc.keyType, tc.params, tc.point)
		if err != nil || alg != tc.want {
			t.Errorf("%s: %v %v", tc.name, alg, err)
			continue
		}
		if got, _ := AlgorithmOf(pub); got != tc.want {
			t.Errorf("%s: public key is %s", tc.name, got)
		}
	}
	p384, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 132, 0, 34})
	x448, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 101, 113})
	bad := p256Point[:64:64]
	bad = append(bad, 0)
	for name, tc := range map[string]struct {
		keyType       uint
		params, point []byte
	}{
		"RSA":           {pkcs11.CKK_RSA, nil, nil},
		"P-384":         {pkcs11.CKK_EC, p384, wrap(p256Point)},
		"Ed448":         {ckkECEdwards, x448, wrap(edPoint)},
		"off curve":     {pkcs11.CKK_EC, p256Params, bad},
		"short point":   {pkcs11.CKK_EC, p256Params, p256Point[:10]},
		"short Ed25519": {ckkECEdwards, edOID, edPoint[:31]},
	} {
		if _, _, err := parsePKCS11PublicKey(tc.keyType, tc.params, tc.point); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParsePKCS11PublicKey feeds the decoder of token public keys
// arbitrary attribute values: it must not panic, and what it accepts must
// be a key custody supports.
func FuzzParsePKCS11PublicKey(f *testing.F) {
	p256Params, p256Point, edOID, edName, edPoint := pkcs11KeyForms(f)
	f.Add(uint(pkcs11.CKK_EC), p256Params, p256Point)
	f.Add(uint(ckkECEdwards), edOID, edPoint)
	f.Add(uint(ckkECEdwards), edName, edPoint)
	f.Add(uint(pkcs11.CKK_EC), []byte{}, []byte{0x04})
	f.Fuzz(func(t *testing.T, keyType uint, params, point []byte) {
		pub, alg, err := parsePKCS11PublicKey(keyType, params, point)
		if err != nil {
			return
		}
		if got, err := AlgorithmOf(pub); err != nil || got != alg {
			t.Fatalf("accepted a %s key reported as %s (%v)", got, alg, err)
		}
	})
}
