package attest

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/custody-dev/custody/internal/key"
)

func FuzzParseEnvelope(f *testing.F) {
	s := newKey(f, key.ECDSAP256)
	good, err := Sign(context.Background(), s, "", provStatement(f, []byte("seed")))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"AAAA"}]}`))
	f.Add([]byte(`{"payloadType":"x","payload":"-_-_","signatures":[{"sig":"YQ"}]}`))
	f.Add([]byte(`{"payloadType":null,"payload":"","signatures":[]}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ParseEnvelope(b)
		if err != nil {
			return
		}
		if len(env.Signatures) == 0 || len(env.Signatures) > MaxSignatures {
			t.Fatalf("accepted %d signatures", len(env.Signatures))
		}
		// What parses re-encodes to something that parses the same.
		again, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		env2, err := ParseEnvelope(again)
		if err != nil {
			t.Fatalf("re-encoded envelope does not parse: %v\n%s", err, again)
		}
		if env2.Payload != env.Payload || env2.PayloadType != env.PayloadType || len(env2.Signatures) != len(env.Signatures) {
			t.Fatal("round trip changed the envelope")
		}
	})
}

func FuzzParseStatement(f *testing.F) {
	b, err := MarshalStatement(provStatement(f, []byte("seed")))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + string(bytes.Repeat([]byte("ab"), 32)) + `"}}],"predicateType":"https://spdx.dev/Document","predicate":{}}`))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","type":"x","subject":[],"predicateType":"","predicate":null}`))
	f.Add([]byte(`{"_TYPE":"https://in-toto.io/Statement/v1","_type":"https://in-toto.io/Statement/v1"}`))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"00"}}],"predicateType":"p","predicate":{"a":[1,2,{"b":null}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatement(b)
		if err != nil {
			return
		}
		if s.GetType() != StatementType || len(s.GetSubject()) == 0 || s.GetPredicateType() == "" || s.GetPredicate() == nil {
			t.Fatalf("accepted an invalid statement: %v", s)
		}
		out, err := MarshalStatement(s)
		if err != nil {
			t.Fatalf("accepted statement does not re-encode: %v", err)
		}
		s2, err := ParseStatement(out)
		if err != nil {
			t.Fatalf("re-encoded statement does not parse: %v\n%s", err, out)
		}
		if s2.GetPredicateType() != s.GetPredicateType() || len(s2.GetSubject()) != len(s.GetSubject()) {
			t.Fatal("round trip changed the statement")
		}
	})
}

func FuzzVerify(f *testing.F) {
	ec, ed := newKey(f, key.ECDSAP256), newKey(f, key.Ed25519)
	keys := ResolverFromKeys(ec.Public(), ed.Public())
	stmt := provStatement(f, []byte("seed"))
	payload, err := MarshalStatement(stmt)
	if err != nil {
		f.Fatal(err)
	}
	// Each signer produces its own payload bytes (protojson output is not
	// byte-stable), so collect every payload a trusted key really signed.
	signed := map[string]bool{}
	e1, err := Sign(context.Background(), ec, "", stmt)
	if err != nil {
		f.Fatal(err)
	}
	cid, _ := CosignKeyID(ed.Public())
	e2, err := Sign(context.Background(), ed, cid, stmt)
	if err != nil {
		f.Fatal(err)
	}
	e3 := signRaw(f, ec, "", PayloadType, payload)
	for _, e := range [][]byte{e1, e2, e3} {
		env, err := ParseEnvelope(e)
		if err != nil {
			f.Fatal(err)
		}
		p, _ := env.DecodeB64Payload()
		signed[string(p)] = true
		f.Add(e)
	}
	f.Add(signRaw(f, ec, "", "text/plain", payload))
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"AAAA"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Verify(b, keys)
		if err != nil {
			return
		}
		// Nothing but what a trusted key signed may ever verify.
		if !signed[string(v.Payload)] {
			t.Fatalf("verified a payload no trusted key signed:\n%s", v.Payload)
		}
		if v.PredicateType != PredicateSLSAProvenanceV1 {
			t.Fatalf("predicate type %q", v.PredicateType)
		}
	})
}
