package attest

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/custody-dev/custody/internal/key"
)

// KeyResolver returns the public keys that may have made a signature with
// the given DSSE keyid. The keyid is an unauthenticated hint and may be
// empty (cosign writes ""): a resolver should then return every key it
// trusts. Returning no key for a keyid means "no trusted key for it"; an
// error stops verification.
type KeyResolver func(keyID string) ([]crypto.PublicKey, error)

// MaxCandidateKeys caps the keys a resolver may return for one signature,
// which bounds the work one envelope can cause.
const MaxCandidateKeys = 64

// ResolverFromKeys returns a resolver over a fixed set of trusted keys. A
// keyid naming one of them, as custody's key.ID (hex SHA-256 of the PKIX
// key) or as CosignKeyID, selects that key; an empty or unknown keyid
// yields all keys (the keyid is only a hint, the signature decides).
func ResolverFromKeys(keys ...crypto.PublicKey) KeyResolver {
	byID := map[string]crypto.PublicKey{}
	for _, k := range keys {
		if id, err := key.ID(k); err == nil {
			byID[id] = k
		}
		if id, err := CosignKeyID(k); err == nil {
			byID[id] = k
		}
	}
	all := append([]crypto.PublicKey(nil), keys...)
	return func(keyID string) ([]crypto.PublicKey, error) {
		if k, ok := byID[keyID]; ok {
			return []crypto.PublicKey{k}, nil
		}
		return all, nil
	}
}

// Verified is an attestation whose signature checked out.
type Verified struct {
	// Statement is the verified, parsed statement.
	Statement *Statement
	// PredicateType is Statement.PredicateType.
	PredicateType string
	// Subjects are the artifacts the statement is about.
	Subjects []*ResourceDescriptor
	// KeyID is custody's ID (key.ID) of the key whose signature verified.
	KeyID string
	// PublicKey is that key.
	PublicKey crypto.PublicKey
	// SignatureKeyID is the keyid the verified signature carried (may be "").
	SignatureKeyID string
	// Payload is the exact signed payload (the statement JSON).
	Payload []byte
}

// Option adjusts Verify.
type Option func(*verifyConfig)

type verifyConfig struct {
	allowed   map[string]bool
	want      string
	anyUnsafe bool
	v01       bool
}

// AllowStatementV01 makes Verify also accept statements whose _type is the
// legacy https://in-toto.io/Statement/v0.1, which cosign v2's `attest` and
// `attest-blob` write. The v0.1 and v1 statement layers carry the same
// fields; Verified.Statement.Type tells which one was signed.
func AllowStatementV01() Option {
	return func(c *verifyConfig) { c.v01 = true }
}

// AllowPredicateType lets Verify accept predicate types besides the
// built-in ones (the Predicate* constants).
func AllowPredicateType(types ...string) Option {
	return func(c *verifyConfig) {
		for _, t := range types {
			c.allowed[t] = true
		}
	}
}

// WantPredicateType makes Verify refuse any statement whose predicate type
// is not t (as `cosign verify-attestation --type` does). t is allowed even
// if it is not a built-in type.
func WantPredicateType(t string) Option {
	return func(c *verifyConfig) { c.want = t }
}

// AllowAnyPredicateTypeUnsafe makes Verify accept any predicate type.
// Unsafe: a caller that then acts on the predicate must check its type
// itself, or a signed statement of one kind can be passed off as another.
func AllowAnyPredicateTypeUnsafe() Option {
	return func(c *verifyConfig) { c.anyUnsafe = true }
}

// Verify checks a DSSE envelope (JSON, at most MaxEnvelopeBytes) and
// returns the statement it carries. It refuses, in this order: an
// oversized or malformed envelope; a payloadType other than
// application/vnd.in-toto+json; an envelope with no signature that
// verifies with a key from keys (ECDSA P-256 or Ed25519, as Sign makes and
// cosign makes); a statement that is not in-toto Statement v1 (v0.1 too
// with AllowStatementV01), has no subject, or has an oversized predicate; a predicate type that is not one
// of the Predicate* constants or allowed by an option.
//
// Verify does not check which artifact the statement is about: call
// VerifySubject with the digest you expect.
func Verify(envelope []byte, keys KeyResolver, opts ...Option) (*Verified, error) {
	cfg := verifyConfig{allowed: map[string]bool{}}
	for _, o := range opts {
		o(&cfg)
	}
	if keys == nil {
		return nil, errors.New("attest.Verify: no key resolver")
	}
	env, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("DSSE payloadType is %q, want %q: not an in-toto attestation", env.PayloadType, PayloadType)
	}
	var (
		payload []byte
		who     *dsse.AcceptedKey
		reasons []string
	)
	for i, sig := range env.Signatures {
		cands, err := keys(sig.KeyID)
		if err != nil {
			return nil, fmt.Errorf("resolving keyid %q: %w", sig.KeyID, err)
		}
		if len(cands) > MaxCandidateKeys {
			return nil, fmt.Errorf("key resolver returned %d keys for keyid %q, the limit is %d", len(cands), sig.KeyID, MaxCandidateKeys)
		}
		if len(cands) == 0 {
			reasons = append(reasons, fmt.Sprintf("signature %d (keyid %q): no trusted key", i, sig.KeyID))
			continue
		}
		vs := make([]dsse.Verifier, 0, len(cands))
		for _, pub := range cands {
			if _, err := key.AlgorithmOf(pub); err != nil {
				return nil, fmt.Errorf("trusted key for keyid %q: %w", sig.KeyID, err)
			}
			vs = append(vs, &paeVerifier{pub: pub, keyID: sig.KeyID})
		}
		ev, err := dsse.NewEnvelopeVerifier(vs...)
		if err != nil {
			return nil, err
		}
		one := &dsse.Envelope{PayloadType: env.PayloadType, Payload: env.Payload, Signatures: []dsse.Signature{sig}}
		accepted, body, err := ev.VerifyAndDecode(context.Background(), one)
		if err != nil || len(accepted) == 0 {
			reasons = append(reasons, fmt.Sprintf("signature %d (keyid %q): does not verify with any of %d trusted keys", i, sig.KeyID, len(cands)))
			continue
		}
		payload, who = body, &accepted[0]
		break
	}
	if who == nil {
		return nil, fmt.Errorf("%w: %s", ErrUntrusted, strings.Join(reasons, "; "))
	}
	stmt, err := parseStatement(payload, cfg.v01)
	if err != nil {
		return nil, fmt.Errorf("signed payload: %w", err)
	}
	pt := stmt.GetPredicateType()
	switch {
	case cfg.want != "" && pt != cfg.want:
		return nil, fmt.Errorf("predicate type is %q, want %q", pt, cfg.want)
	case cfg.want != "", cfg.anyUnsafe, cfg.allowed[pt], knownPredicate(pt):
	default:
		return nil, fmt.Errorf("unknown predicate type %q: allow it with attest.AllowPredicateType if you expect it", pt)
	}
	id, err := key.ID(who.Public)
	if err != nil {
		return nil, err
	}
	return &Verified{
		Statement:      stmt,
		PredicateType:  pt,
		Subjects:       stmt.GetSubject(),
		KeyID:          id,
		PublicKey:      who.Public,
		SignatureKeyID: who.Sig.KeyID,
		Payload:        payload,
	}, nil
}

// paeVerifier is a dsse.Verifier over one public key. Its KeyID is the
// keyid of the signature under test, so the dsse package's keyid
// pre-filter never hides a key the resolver chose.
type paeVerifier struct {
	pub   crypto.PublicKey
	keyID string
}

func (v *paeVerifier) Verify(_ context.Context, pae, sig []byte) error {
	return verifyPAE(v.pub, pae, sig)
}

func (v *paeVerifier) KeyID() (string, error) { return v.keyID, nil }

func (v *paeVerifier) Public() crypto.PublicKey { return v.pub }
