package evidence

import (
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/rekor"
	"github.com/custody-dev/custody/internal/sign"
)

// Fingerprint digests everything the judgement of an attestation depends
// on: the trust root's keys with their IDs, algorithms, statuses and
// validity windows, its time-stamp authorities' certificate chains and
// windows, its certificate authorities, the trusted transparency logs,
// the recording keys and the revoked keys. Two Trusts with the
// same fingerprint judge every attestation alike; a rotation, a
// revocation or a changed window changes it. (Notation signatures are
// not attestations and are not covered.)
func (t *Trust) Fingerprint() [32]byte { return t.fingerprint }

// refingerprint recomputes t's fingerprint; every method that changes
// what t trusts calls it.
func (t *Trust) refingerprint() {
	b, err := json.Marshal(struct {
		Keys       any      `json:"keys"`
		TSAs       any      `json:"tsas"`
		CAs        any      `json:"cas"`
		Logs       any      `json:"logs"`
		Restricted bool     `json:"restricted"`
		Recorders  []string `json:"recorders"`
		Revoked    []string `json:"revoked"`
	}{t.root.Keys, t.root.TimestampAuthorities, t.root.CertificateAuthorities, logFingerprints(t.logs), t.restricted, t.recorders, t.revokedPEM})
	if err != nil {
		// Cannot happen for these types; a fingerprint no other Trust
		// has keeps the cache from ever serving this one's verdicts.
		b = fmt.Appendf(nil, "%p", t)
	}
	t.fingerprint = sha256.Sum256(b)
}

// Verdicts remembers what CollectAttestations made of each stored
// attestation, so that an attestation read and judged once is not read
// and judged again: keyed by the content it is stored as (immutable,
// content-addressed: sign.StoredAttestation.Key), the digest it is about,
// and the fingerprint of the Trust that judged it, so a verdict is only
// ever reused under the same trust (a revoked or rotated key is a new
// fingerprint, and the attestation is judged afresh). It holds at most
// its size, forgetting the least recently used. Safe for concurrent use;
// a nil *Verdicts remembers nothing.
type Verdicts struct {
	mu   sync.Mutex
	size int
	lru  *list.List // of *verdict, most recently used first
	byK  map[verdictKey]*list.Element
}

type verdictKey struct {
	trust   [32]byte
	subject string
	content string
}

type verdict struct {
	key    verdictKey
	none   bool // the content holds no attestation (sign.StoredAttestation.NotAttestation)
	normal [32]byte
	a      Attestation // Container not set: where it was found varies
}

// NewVerdicts remembers at most size verdicts.
func NewVerdicts(size int) *Verdicts {
	return &Verdicts{size: max(size, 1), lru: list.New(), byK: map[verdictKey]*list.Element{}}
}

// Len returns how many verdicts v holds.
func (v *Verdicts) Len() int {
	if v == nil {
		return 0
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lru.Len()
}

func (v *Verdicts) get(k verdictKey) (verdict, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.byK[k]
	if !ok {
		return verdict{}, false
	}
	v.lru.MoveToFront(e)
	return *e.Value.(*verdict), true
}

func (v *Verdicts) put(vd verdict) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.byK[vd.key]; ok {
		e.Value = &vd
		v.lru.MoveToFront(e)
		return
	}
	v.byK[vd.key] = v.lru.PushFront(&vd)
	for v.lru.Len() > v.size {
		last := v.lru.Back()
		delete(v.byK, last.Value.(*verdict).key)
		v.lru.Remove(last)
	}
}

// CollectAttestations is the package's CollectAttestations, reading and
// judging only the attestations v holds no verdict on under trust: which
// attestations d has is listed every time (new ones appear), the known
// ones are neither fetched nor verified again. The Attestations it
// returns share their parsed parts with v's verdicts: read them, do not
// change them.
func (v *Verdicts) CollectAttestations(ctx context.Context, d name.Digest, trust *Trust, o sign.Options) *Set {
	if v == nil {
		return CollectAttestations(ctx, d, trust, o)
	}
	s := &Set{Digest: d.DigestStr(), Signatures: []Signature{}, Attestations: []Attestation{}}
	key := func(content string) verdictKey {
		return verdictKey{trust: trust.Fingerprint(), subject: s.Digest, content: content}
	}
	// The verdicts found while listing are kept here: the cache may drop
	// them before they are used.
	var mu sync.Mutex
	known := map[string]verdict{}
	envs, err := sign.ListAttestations(ctx, d, o, func(content string) bool {
		vd, ok := v.get(key(content))
		if ok {
			mu.Lock()
			known[content] = vd
			mu.Unlock()
		}
		return ok
	})
	var resolver attest.KeyResolver
	s.judge(envs, err, func(env sign.StoredAttestation) (Attestation, [32]byte, bool) {
		if env.NotAttestation {
			v.put(verdict{key: key(env.Key), none: true})
			return Attestation{}, [32]byte{}, false
		}
		if env.Envelope == nil {
			vd, ok := known[env.Key]
			return vd.a, vd.normal, ok && !vd.none
		}
		if resolver == nil {
			resolver = attest.ResolverFromKeys(trust.keys...)
		}
		a := trust.stored(env, resolver, s.Digest)
		if env.Key != "" {
			v.put(verdict{key: key(env.Key), normal: env.Normal, a: a})
		}
		return a, env.Normal, true
	})
	return s
}

// logFingerprints names the trusted transparency logs for a Trust's
// fingerprint: each origin with its key's PKIX encoding.
func logFingerprints(logs []rekor.TrustedLog) []string {
	out := make([]string, 0, len(logs))
	for _, l := range logs {
		der, err := x509.MarshalPKIXPublicKey(l.PublicKey)
		if err != nil {
			der = fmt.Appendf(nil, "%p", l.PublicKey)
		}
		out = append(out, l.Origin+" "+base64.StdEncoding.EncodeToString(der))
	}
	return out
}
