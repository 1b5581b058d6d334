package attest

import (
	"errors"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/jsondoc"
)

// A repeated member name reads differently in different parsers, so
// envelopes and statements that have one are refused.
func TestParseRefusesDuplicateKeys(t *testing.T) {
	env := `{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"AAAA"}]}`
	if _, err := ParseEnvelope([]byte(env)); err != nil {
		t.Fatalf("valid envelope refused: %v", err)
	}
	for _, doc := range []string{
		`{"payloadType":"text/plain",` + env[1:],
		strings.Replace(env, `"sig":"AAAA"`, `"sig":"AAAA","Sig":"BBBB"`, 1),
	} {
		if _, err := ParseEnvelope([]byte(doc)); !errors.Is(err, jsondoc.ErrDuplicateKey) {
			t.Errorf("ParseEnvelope(%s) = %v, want a duplicate key", doc, err)
		}
	}
	hex := strings.Repeat("ab", 32)
	st := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + hex + `"}}],"predicateType":"https://spdx.dev/Document","predicate":{}}`
	if _, err := ParseStatement([]byte(st)); err != nil {
		t.Fatalf("valid statement refused: %v", err)
	}
	for _, doc := range []string{
		`{"predicateType":"https://slsa.dev/provenance/v1",` + st[1:],
		strings.Replace(st, `{"sha256":"`+hex+`"}`, `{"sha256":"`+strings.Repeat("cd", 32)+`","sha256":"`+hex+`"}`, 1),
		strings.Replace(st, `"predicate":{}`, `"predicate":{"a":1,"a":2}`, 1),
	} {
		if _, err := ParseStatement([]byte(doc)); !errors.Is(err, jsondoc.ErrDuplicateKey) {
			t.Errorf("ParseStatement(%s) = %v, want a duplicate key", doc, err)
		}
	}
}
