package sign

import (
	"errors"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/jsondoc"
)

// A repeated member name reads differently in different parsers, so every
// signature document that has one is refused.
func TestParseRefusesDuplicateKeys(t *testing.T) {
	good, err := NewPayload("example.com/app", fuzzDigest, nil).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePayload(good); err != nil {
		t.Fatalf("valid payload refused: %v", err)
	}
	dupPayload := strings.Replace(string(good), `"docker-manifest-digest":`, `"docker-manifest-digest":"sha256:`+strings.Repeat("0", 64)+`","docker-manifest-digest":`, 1)
	if _, err := ParsePayload([]byte(dupPayload)); !errors.Is(err, jsondoc.ErrDuplicateKey) {
		t.Errorf("ParsePayload(%s) = %v, want a duplicate key", dupPayload, err)
	}

	env := `{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k","sig":"AAAA"}]}`
	if _, err := parseEnvelope([]byte(env)); err != nil {
		t.Fatalf("valid envelope refused: %v", err)
	}
	if _, err := parseEnvelope([]byte(`{"payload":"eA==",` + env[1:])); !errors.Is(err, jsondoc.ErrDuplicateKey) {
		t.Errorf("parseEnvelope with a repeated payload = %v, want a duplicate key", err)
	}

	st := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"aa"}}],"predicateType":"p","predicate":{}}`
	if _, err := parseStatement([]byte(st)); err != nil {
		t.Fatalf("valid statement refused: %v", err)
	}
	if _, err := parseStatement([]byte(`{"subject":[],` + st[1:])); !errors.Is(err, jsondoc.ErrDuplicateKey) {
		t.Errorf("parseStatement with a repeated subject = %v, want a duplicate key", err)
	}

	bundle := `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AAAA"},"signature":"AAAA"}}`
	if _, err := parseBundle([]byte(bundle)); err != nil {
		t.Fatalf("valid bundle refused: %v", err)
	}
	dupBundle := strings.Replace(bundle, `"hint":"x"`, `"hint":"y","hint":"x"`, 1)
	if _, err := parseBundle([]byte(dupBundle)); !errors.Is(err, jsondoc.ErrDuplicateKey) {
		t.Errorf("parseBundle(%s) = %v, want a duplicate key", dupBundle, err)
	}
}
