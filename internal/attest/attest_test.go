package attest

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/custody-dev/custody/internal/key"
)

// provenanceJSON is a small, valid SLSA v1 predicate.
const provenanceJSON = `{
  "buildDefinition": {
    "buildType": "https://example.com/buildtypes/test/v1",
    "externalParameters": {"source": {"uri": "git+https://github.com/acme/app", "ref": "refs/heads/main"}},
    "resolvedDependencies": [{"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "0123456789abcdef0123456789abcdef01234567"}}]
  },
  "runDetails": {
    "builder": {"id": "https://github.com/actions/runner/github-hosted"},
    "metadata": {"invocationId": "https://github.com/acme/app/actions/runs/1/attempts/1", "startedOn": "2026-11-22T05:00:00Z"}
  }
}`

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func newKey(t testing.TB, alg key.Algorithm) crypto.Signer {
	t.Helper()
	s, err := key.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func provStatement(t testing.TB, artifact []byte) *Statement {
	t.Helper()
	s, err := StatementFor("app.tar.gz", digestOf(artifact), PredicateSLSAProvenanceV1, []byte(provenanceJSON))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signRaw signs an arbitrary payload with an arbitrary payload type, for
// envelopes Sign refuses to make.
func signRaw(t testing.TB, s crypto.Signer, keyID, payloadType string, payload []byte) []byte {
	t.Helper()
	es, err := dsse.NewEnvelopeSigner(&paeSigner{signer: s, keyID: keyID})
	if err != nil {
		t.Fatal(err)
	}
	env, err := es.SignPayload(context.Background(), payloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignVerifyRoundTrip(t *testing.T) {
	artifact := []byte("the artifact bytes")
	for _, alg := range []key.Algorithm{key.ECDSAP256, key.Ed25519} {
		for _, idMode := range []string{"empty", "cosign", "custody"} {
			t.Run(fmt.Sprintf("%s/%s", alg, idMode), func(t *testing.T) {
				s := newKey(t, alg)
				keyID := ""
				var err error
				switch idMode {
				case "cosign":
					keyID, err = CosignKeyID(s.Public())
				case "custody":
					keyID, err = key.ID(s.Public())
				}
				if err != nil {
					t.Fatal(err)
				}
				env, err := Sign(context.Background(), s, keyID, provStatement(t, artifact))
				if err != nil {
					t.Fatal(err)
				}
				var raw struct {
					PayloadType string
					Payload     string
					Signatures  []struct{ KeyID, Sig string }
				}
				if err := json.Unmarshal(env, &raw); err != nil {
					t.Fatal(err)
				}
				if raw.PayloadType != PayloadType || len(raw.Signatures) != 1 || raw.Signatures[0].KeyID != keyID {
					t.Fatalf("envelope shape: %+v", raw)
				}
				// The signature is over the PAE, in the encoding cosign checks.
				payload, _ := base64.StdEncoding.DecodeString(raw.Payload)
				sig, _ := base64.StdEncoding.DecodeString(raw.Signatures[0].Sig)
				if err := verifyPAE(s.Public(), dsse.PAE(PayloadType, payload), sig); err != nil {
					t.Fatalf("signature is not over the PAE: %v", err)
				}

				other := newKey(t, alg)
				v, err := Verify(env, ResolverFromKeys(other.Public(), s.Public()))
				if err != nil {
					t.Fatal(err)
				}
				wantID, _ := key.ID(s.Public())
				if v.KeyID != wantID || v.SignatureKeyID != keyID {
					t.Fatalf("verified by %s (sig keyid %q), want %s (%q)", v.KeyID, v.SignatureKeyID, wantID, keyID)
				}
				if v.PredicateType != PredicateSLSAProvenanceV1 || len(v.Subjects) != 1 || v.Subjects[0].GetName() != "app.tar.gz" {
					t.Fatalf("verified statement: %+v", v)
				}
				if err := VerifySubject(v, digestOf(artifact)); err != nil {
					t.Fatal(err)
				}
				if err := VerifySubject(v, digestOf([]byte("another artifact"))); err == nil {
					t.Fatal("VerifySubject accepted the digest of another artifact")
				}
				pred, err := PredicateJSON(v.Statement)
				if err != nil || !strings.Contains(string(pred), "github-hosted") {
					t.Fatalf("predicate did not survive: %s %v", pred, err)
				}
			})
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	ctx := context.Background()
	artifact := []byte("artifact")
	signer := newKey(t, key.ECDSAP256)
	trusted := ResolverFromKeys(signer.Public())
	good, err := Sign(ctx, signer, "", provStatement(t, artifact))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(good, trusted); err != nil {
		t.Fatalf("the unaltered envelope must verify: %v", err)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(good, &env); err != nil {
		t.Fatal(err)
	}
	payload, _ := env.DecodeB64Payload()
	remarshal := func(e dsse.Envelope) []byte {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	stmtWith := func(mod func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatal(err)
		}
		mod(m)
		b, _ := json.Marshal(m)
		return b
	}

	// Payload altered after signing: the subject digest swapped for another artifact's.
	altered := env
	altered.Payload = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(payload),
		strings.TrimPrefix(digestOf(artifact), "sha256:"), strings.TrimPrefix(digestOf([]byte("evil")), "sha256:"), 1)))
	if altered.Payload == env.Payload {
		t.Fatal("test did not alter the payload")
	}
	// Re-signed: the same payload signed by another key, keyid claiming the trusted key.
	attacker := newKey(t, key.ECDSAP256)
	tid, _ := CosignKeyID(signer.Public())
	resigned := signRaw(t, attacker, tid, PayloadType, payload)
	// payloadType changed after signing (signature no longer matches), and
	// signed honestly under another payloadType.
	pt := env
	pt.PayloadType = "application/json"
	ptSigned := signRaw(t, signer, "", "application/json", payload)

	cases := []struct {
		name string
		env  []byte
		opts []Option
		want string
	}{
		{"payload altered", remarshal(altered), nil, "no valid signature"},
		{"re-signed by another key", resigned, nil, "no valid signature"},
		{"payloadType altered", remarshal(pt), nil, "payloadType"},
		{"payloadType signed", ptSigned, nil, "payloadType"},
		{"unknown predicate type", signRaw(t, signer, "", PayloadType, stmtWith(func(m map[string]any) {
			m["predicateType"] = "https://example.com/made-up/v1"
		})), nil, "unknown predicate type"},
		{"wanted type differs", good, []Option{WantPredicateType(PredicateSPDX)}, "want \"https://spdx.dev/Document\""},
		{"statement v0.1", signRaw(t, signer, "", PayloadType, stmtWith(func(m map[string]any) {
			m["_type"] = "https://in-toto.io/Statement/v0.1"
		})), nil, "_type"},
		{"no subjects", signRaw(t, signer, "", PayloadType, stmtWith(func(m map[string]any) {
			m["subject"] = []any{}
		})), nil, "subject"},
		{"subject without sha256", signRaw(t, signer, "", PayloadType, stmtWith(func(m map[string]any) {
			m["subject"] = []any{map[string]any{"name": "x", "digest": map[string]any{"md5": "00112233445566778899aabbccddeeff"}}}
		})), nil, "no sha256 or sha512"},
		{"predicate not an object", signRaw(t, signer, "", PayloadType, stmtWith(func(m map[string]any) {
			m["predicate"] = "text"
		})), nil, "statement"},
		{"oversized provenance predicate", signRaw(t, signer, "", PayloadType, stmtWith(func(m map[string]any) {
			m["predicate"] = map[string]any{"pad": strings.Repeat("a", MaxProvenancePredicateBytes)}
		})), nil, "too large"},
		{"no signatures", []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"","signatures":[]}`), nil, "no signatures"},
		{"not JSON", []byte("garbage"), nil, "not a DSSE envelope"},
		{"oversized envelope", append(good, make([]byte, MaxEnvelopeBytes)...), nil, "too large"},
		{"untrusted key only", good, nil, "no trusted key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys := trusted
			if c.name == "untrusted key only" {
				keys = func(string) ([]crypto.PublicKey, error) { return nil, nil }
			}
			v, err := Verify(c.env, keys, c.opts...)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", v)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}

	// Unknown types pass when allowed, and the WantPredicateType match passes.
	custom := signRaw(t, signer, "", PayloadType, stmtWith(func(m map[string]any) {
		m["predicateType"] = "https://example.com/made-up/v1"
	}))
	if _, err := Verify(custom, trusted, AllowPredicateType("https://example.com/made-up/v1")); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(custom, trusted, AllowAnyPredicateTypeUnsafe()); err != nil {
		t.Fatal(err)
	}
	v01 := signRaw(t, signer, "", PayloadType, stmtWith(func(m map[string]any) {
		m["_type"] = StatementTypeV01
	}))
	if v, err := Verify(v01, trusted, AllowStatementV01()); err != nil || v.Statement.GetType() != StatementTypeV01 {
		t.Fatalf("v0.1 statement with AllowStatementV01: %v", err)
	}
	if _, err := Verify(good, trusted, WantPredicateType(PredicateSLSAProvenanceV1)); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(good, trusted, AllowPredicateType("https://example.com/made-up/v1")); err != nil {
		t.Fatalf("an allow-list addition must not drop the built-in types: %v", err)
	}
}

func TestVerifyTriesEverySignature(t *testing.T) {
	signer, stranger := newKey(t, key.Ed25519), newKey(t, key.ECDSAP256)
	good, err := Sign(context.Background(), signer, "", provStatement(t, []byte("a")))
	if err != nil {
		t.Fatal(err)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(good, &env); err != nil {
		t.Fatal(err)
	}
	payload, _ := env.DecodeB64Payload()
	var first dsse.Envelope
	if err := json.Unmarshal(signRaw(t, stranger, "", PayloadType, payload), &first); err != nil {
		t.Fatal(err)
	}
	env.Signatures = append(first.Signatures, env.Signatures...)
	b, _ := json.Marshal(env)
	v, err := Verify(b, ResolverFromKeys(signer.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := key.ID(signer.Public()); v.KeyID != id {
		t.Fatalf("verified by %s, want %s", v.KeyID, id)
	}
}

func TestResolverErrorStops(t *testing.T) {
	signer := newKey(t, key.ECDSAP256)
	good, err := Sign(context.Background(), signer, "", provStatement(t, []byte("a")))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("trust root unavailable")
	_, err = Verify(good, func(string) ([]crypto.PublicKey, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("resolver error lost: %v", err)
	}
}

func TestStatementBuilders(t *testing.T) {
	if _, err := Subject("x", "sha256:zz"); err == nil {
		t.Fatal("Subject accepted a bad digest")
	}
	if _, err := Subject("x", "md5:00112233445566778899aabbccddeeff"); err == nil {
		t.Fatal("Subject accepted md5")
	}
	if _, err := NewStatement(nil, PredicateSPDX, []byte(`{}`)); err == nil {
		t.Fatal("NewStatement accepted no subjects")
	}
	if _, err := StatementFor("x", digestOf(nil), PredicateSPDX, []byte(`[1,2]`)); err == nil {
		t.Fatal("NewStatement accepted a predicate that is not an object")
	}
	if _, err := StatementFor("x", digestOf(nil), "", []byte(`{}`)); err == nil {
		t.Fatal("NewStatement accepted an empty predicate type")
	}
	big := []byte(`{"pad":"` + strings.Repeat("a", MaxProvenancePredicateBytes) + `"}`)
	if _, err := StatementFor("x", digestOf(nil), PredicateSLSAProvenanceV1, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized provenance predicate: %v", err)
	}
	s, err := StatementFor("x", digestOf(nil), PredicateCycloneDX, []byte(`{"bomFormat":"CycloneDX","components":[{"name":"a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalStatement(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseStatement(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.GetPredicateType() != PredicateCycloneDX || back.GetPredicate().GetFields()["bomFormat"].GetStringValue() != "CycloneDX" {
		t.Fatalf("round trip lost data: %v", back)
	}
	// The wire form uses the in-toto field names.
	for _, f := range []string{`"_type"`, `"predicateType"`, `"subject"`, `"https://in-toto.io/Statement/v1"`} {
		if !strings.Contains(string(b), f) {
			t.Fatalf("statement JSON lacks %s: %s", f, b)
		}
	}
}

func TestParseStatementIgnoresUnknownFieldsAndBoundsDepth(t *testing.T) {
	base := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + strings.Repeat("ab", 32) + `"}}],"predicateType":"https://spdx.dev/Document","predicate":%s,"futureField":{"x":1}}`
	if _, err := ParseStatement([]byte(fmt.Sprintf(base, `{}`))); err != nil {
		t.Fatalf("unknown top-level field must be ignored: %v", err)
	}
	deep := strings.Repeat(`{"a":`, 500) + `1` + strings.Repeat(`}`, 500)
	if _, err := ParseStatement([]byte(fmt.Sprintf(base, deep))); err == nil {
		t.Fatal("a 500-deep predicate was accepted")
	}
}
