// Package evidence collects and verifies, once, everything custody knows
// about one artifact digest: its signatures (each with the key that made
// it, the signing time it claims and whether the key was valid then),
// every attestation about it (verified, subject-checked, parsed where
// custody reads the predicate), and the records the server keeps on it
// (promotions, approvals, revocations).
//
// The rules that decide what counts as trusted live here and nowhere
// else: custody verify (internal/verification), the promotion gates
// (internal/promotion builds their input from a Set) and the admission
// webhook all read the same Set.
package evidence

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	pbs "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/certidentity"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/notary"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/rekor"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/timestamp"
)

// SignedAtAnnotation is the signed annotation carrying the signing time
// (RFC 3339) that custody sign and the server's sign-on-push add; a
// signature that carries it counts only if its key was valid then.
const SignedAtAnnotation = "dev.custody.signed-at"

// The predicate types of the records the server writes.
const (
	// PredicatePromotion records that a digest entered an environment
	// (also a rollback, with Rollback set).
	PredicatePromotion = "https://custody.dev/attestation/promotion/v1"
	// PredicateApproval records one approver's approval of a promotion.
	PredicateApproval = "https://custody.dev/attestation/approval/v1"
	// PredicateRejection records a promoter's rejection of a pending
	// promotion: the approvals for that environment recorded before it
	// no longer count.
	PredicateRejection = "https://custody.dev/attestation/rejection/v1"
	// PredicateRevocation makes a digest fail every later gate, verify
	// and admission.
	PredicateRevocation = "https://custody.dev/attestation/revocation/v1"
	// PredicateDrill records a restoration drill of an environment
	// (internal/drill): what was rebuilt, where, and what was missing.
	PredicateDrill = "https://custody.dev/attestation/drill/v1"
	// PredicateSource records that the server verified the signature of
	// the git commit an artifact was built from (internal/gitcommit).
	PredicateSource = "https://custody.dev/attestation/source/v1"
)

// PredicateOpenVEX is the predicate type of OpenVEX statements attached as
// attestations (waivers of findings).
const PredicateOpenVEX = "https://openvex.dev/ns/v0.2.0"

// RecordTypes lists the predicate types of the server's records.
var RecordTypes = []string{PredicatePromotion, PredicateApproval, PredicateRejection, PredicateRevocation, PredicateDrill, PredicateSource}

// SBOMTypes are the predicate types that count as an SBOM.
var SBOMTypes = []string{attest.PredicateSPDX, attest.PredicateCycloneDX}

// known are the predicate types accepted besides attest's built-in ones.
var known = append(slices.Clone(RecordTypes), PredicateOpenVEX)

// Record is the predicate of a promotion attestation.
type Record struct {
	Environment string    `json:"environment"`
	Repository  string    `json:"repository"`
	Digest      string    `json:"digest"`
	Previous    string    `json:"previousDigest,omitempty"`
	By          string    `json:"promotedBy"`
	Approvers   []string  `json:"approvers,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	At          time.Time `json:"at"`
	Rollback    bool      `json:"rollback,omitempty"`
	// Gate holds the rules' results at promotion time.
	Gate []gate.RuleResult `json:"gate,omitempty"`
}

// Approval is the predicate of an approval attestation.
type Approval struct {
	Environment string `json:"environment"`
	// Repository is the repository the approval is for (approvals
	// recorded before it was written name none, and count nowhere).
	Repository string    `json:"repository,omitempty"`
	By         string    `json:"approvedBy"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"at"`
}

// Rejection is the predicate of a rejection attestation.
type Rejection struct {
	Environment string    `json:"environment"`
	By          string    `json:"rejectedBy"`
	Reason      string    `json:"reason,omitempty"`
	At          time.Time `json:"at"`
}

// Revocation is the predicate of a revocation attestation.
type Revocation struct {
	By     string    `json:"revokedBy"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Drill is the part of a drill report's predicate (internal/drill) that
// other packages read: which environment was rebuilt as of which instant,
// when the drill ran, and whether it succeeded.
type Drill struct {
	Environment string    `json:"environment"`
	At          time.Time `json:"at,omitzero"`
	Started     time.Time `json:"started"`
	OK          bool      `json:"ok"`
}

// Source is the predicate of a source-verification attestation: the
// server parsed the git commit object CI submitted, found that its ID is
// the commit the artifact's verified provenance names, and verified its
// signature against the allowed signers (SSH) or keyring (OpenPGP).
type Source struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	// Commit is the commit's object ID; ObjectFormat "sha1" or "sha256".
	Commit       string `json:"commit"`
	ObjectFormat string `json:"objectFormat"`
	Tree         string `json:"tree"`
	Author       string `json:"author"`
	Committer    string `json:"committer"`
	// Method is "ssh" or "openpgp"; Principals the signer's allowed
	// principals (SSH) or user-ID emails (OpenPGP); KeyFingerprint the
	// key's fingerprint (SHA256:... for SSH, hex for OpenPGP).
	Method         string    `json:"method"`
	Principals     []string  `json:"principals"`
	KeyFingerprint string    `json:"keyFingerprint"`
	VerifiedAt     time.Time `json:"verifiedAt"`
	// SubmittedBy is who submitted the commit object.
	SubmittedBy string `json:"submittedBy"`
}

// Trust is what a Set is verified against: the keys of a trust root, each
// only inside its validity window, and the keys whose records
// (promotions, approvals, revocations) count.
type Trust struct {
	root key.TrustRoot
	keys []crypto.PublicKey
	// restricted limits the keys whose records count to recorders;
	// otherwise every key of the root records.
	restricted bool
	recorders  []string
	// revoked are keys trusted for nothing, known only to say why the
	// evidence they signed fails.
	revoked []crypto.PublicKey
	// notation verifies Notary Project signatures; nil when none are
	// trusted. notationHost, when set, is the registry host the trust
	// policy's registryScopes are matched with.
	notation     *notary.Verifier
	notationHost string
	// cas are the certificate authorities of the trust root, whose
	// certificates make keyless signatures count (certificate).
	cas []trustedCA
	// fingerprint digests everything above that the judgement of an
	// attestation depends on (see Fingerprint); kept current by NewTrust,
	// RecordsOnlyBy and ExplainRevoked.
	fingerprint [32]byte
	revokedPEM  []string
	// logs are the Rekor v2 transparency logs whose entries count
	// (WithTransparencyLogs).
	logs []rekor.TrustedLog
}

// WithTransparencyLogs trusts the entries of these Rekor v2 logs, beyond
// the trust root's TransparencyLogs, in the signatures and attestations
// that carry them. It returns t.
func (t *Trust) WithTransparencyLogs(logs ...rekor.TrustedLog) *Trust {
	t.logs = append(t.logs, logs...)
	t.refingerprint()
	return t
}

// logged decides, in one place, whether the transparency log entries
// stored with a signature (or attestation) by trust-root key id, or by the
// certificate chain's leaf for a keyless one, let it count. A Rekor v1 entry (a signed inclusion promise) is not judged
// here. A Rekor v2 entry must prove that this very signature is logged:
// the entry rebuilt from the signature, the signed bytes and the key (as
// sigstore-go rebuilds it) is included, by its inclusion proof, in a
// checkpoint signed by a trusted log's key with that log's origin. An
// entry of an untrusted log, an unreadable one, a checkpoint that does
// not verify or an entry not included in the signed checkpoint makes the
// evidence not count: a log entry is a claim of transparency that must
// hold.
func (t *Trust) logged(entries []sign.LogEntry, id string, chain []*x509.Certificate) error {
	if len(entries) == 0 {
		return nil
	}
	var (
		pub  crypto.PublicKey
		leaf *x509.Certificate
	)
	if len(chain) > 0 {
		// A keyless signature: the entry logs the certificate.
		leaf, pub = chain[0], chain[0].PublicKey
	}
	for i, k := range t.root.Keys {
		if pub == nil && k.ID == id && i < len(t.keys) {
			pub = t.keys[i]
		}
	}
	for _, le := range entries {
		var e pbs.TransparencyLogEntry
		if err := protojson.Unmarshal(le.Entry, &e); err != nil {
			return fmt.Errorf("unreadable transparency log entry: %w", err)
		}
		if !rekor.IsV2(&e) {
			continue
		}
		if pub == nil {
			return fmt.Errorf("transparency log entry %d: key %s is not in the trust root", e.GetLogIndex(), id)
		}
		hash, err := rekor.EntryHash(le.Signed, le.Signature, pub, leaf)
		if err == nil {
			err = rekor.VerifyEntry(&e, t.logs, hash)
		}
		if err != nil {
			return fmt.Errorf("transparency log entry %d: %w", e.GetLogIndex(), err)
		}
	}
	return nil
}

// WithNotation makes Notary Project (Notation) signatures count when v
// verifies them under its trust policy and trust store and the policy
// enforces authenticity. The trust policy's registryScopes are matched
// with host/repository, host being the registry the artifact is read
// from unless scopeHost names another (the server reads itself under an
// internal name, and gives the name clients use). It returns t.
func (t *Trust) WithNotation(v *notary.Verifier, scopeHost string) *Trust {
	t.notation, t.notationHost = v, scopeHost
	return t
}

// Notation reports whether Notation signatures are verified.
func (t *Trust) Notation() bool { return t.notation != nil }

// The sources of a signature's SignedAt.
const (
	// TimeFromTimestamp: an RFC 3161 time-stamp by an authority of the
	// trust root vouches for the time.
	TimeFromTimestamp = "timestamp"
	// TimeFromClaim: only the signer's own SignedAtAnnotation says when.
	TimeFromClaim = "claim"
)

// signingTime decides, in one place, at what time a signature (or an
// attestation) by a trust-root key is judged, given the RFC 3161
// time-stamps stored with it and the time its signer claims (zero for
// none). It returns the time (zero: any key of the root), where it comes
// from, and why the evidence does not count (nil when it may):
//
//   - a time-stamp that verifies against a time-stamp authority of the
//     trust root, inside that authority's window, gives the time; the
//     claim is ignored;
//   - time-stamps of which none verifies make the evidence not count (a
//     time-stamp from an untrusted authority is refused, not skipped);
//   - without a time-stamp, a claim made at or after the trust root's
//     first authority came into service does not count: custody
//     time-stamps what it signs once the ring has an authority, so a
//     bare claim from then on is the signer's word against the clock;
//   - without a time-stamp, an older claim (or any claim when the root has
//     no authority) gives the time, as before trusted time existed;
//   - with neither, any key of the root is accepted (cosign's signatures
//     without a time-stamp: rotation is not compromise).
func (t *Trust) signingTime(stamps []sign.Timestamp, claimed time.Time) (time.Time, string, error) {
	if len(stamps) > 0 {
		var errs []error
		for _, ts := range stamps {
			at, err := timestamp.Verify(ts.Response, ts.Over, t.root.TimestampAuthorities)
			if err == nil {
				return at, TimeFromTimestamp, nil
			}
			errs = append(errs, err)
		}
		return time.Time{}, "", errors.Join(errs...)
	}
	if claimed.IsZero() {
		return time.Time{}, "", nil
	}
	if first, ok := t.firstTSA(); ok && !claimed.Before(first) {
		return claimed, TimeFromClaim, fmt.Errorf("claims to be signed at %s but carries no time-stamp from a trusted authority (required since %s)",
			claimed.UTC().Format(time.RFC3339), first.UTC().Format(time.RFC3339))
	}
	return claimed, TimeFromClaim, nil
}

// firstTSA returns when the trust root's first time-stamp authority came
// into service.
func (t *Trust) firstTSA() (time.Time, bool) {
	var first time.Time
	for _, ta := range t.root.TimestampAuthorities {
		if first.IsZero() || ta.ValidFor.Start.Before(first) {
			first = ta.ValidFor.Start
		}
	}
	return first, !first.IsZero()
}

// NewTrust trusts the keys of root; the records (promotions, approvals,
// revocations) of any of them count.
func NewTrust(root key.TrustRoot) (*Trust, error) {
	t := &Trust{root: root}
	for _, k := range root.Keys {
		pub, err := key.ParsePublicKey([]byte(k.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("trust root key %s: %w", k.ID, err)
		}
		t.keys = append(t.keys, pub)
	}
	for i, ca := range root.CertificateAuthorities {
		c, err := parseCA(ca)
		if err != nil {
			return nil, fmt.Errorf("trust root certificate authority %d: %w", i, err)
		}
		t.cas = append(t.cas, c)
	}
	for _, l := range root.TransparencyLogs {
		pub, err := key.ParsePublicKey([]byte(l.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("trust root transparency log %s: %w", l.Origin, err)
		}
		t.logs = append(t.logs, rekor.TrustedLog{Origin: l.Origin, PublicKey: pub})
	}
	t.refingerprint()
	return t, nil
}

// RecordsOnlyBy makes only the records signed by the keys ids count (the
// server's own ring, active and retired keys alike, so a key rotation does
// not forget a revocation); with no ids, no record counts. It returns t.
func (t *Trust) RecordsOnlyBy(ids ...string) *Trust {
	t.restricted, t.recorders = true, slices.Clone(ids)
	t.refingerprint()
	return t
}

// ExplainRevoked names keys that were revoked (key.RevokedKeys of a
// trust-root history): they stay trusted for nothing, and evidence they
// signed fails saying so, instead of as signed by an unknown key. It
// returns t.
func (t *Trust) ExplainRevoked(keys []key.TrustedKey) (*Trust, error) {
	for _, k := range keys {
		pub, err := key.ParsePublicKey([]byte(k.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("revoked key %s: %w", k.ID, err)
		}
		t.revoked = append(t.revoked, pub)
		t.revokedPEM = append(t.revokedPEM, k.PublicKey)
	}
	t.refingerprint()
	return t, nil
}

// revokedSigner returns the ID of the revoked key that verify accepts,
// or "".
func (t *Trust) revokedSigner(verify func([]crypto.PublicKey) (string, error)) string {
	if len(t.revoked) == 0 {
		return ""
	}
	id, err := verify(t.revoked)
	if err != nil {
		return ""
	}
	return id
}

// errRevoked is why evidence signed by a revoked key fails.
func errRevoked(id string) error {
	return errors.New("signed by key " + id + ", which is revoked: it is trusted for nothing")
}

// Keys returns the number of trusted keys.
func (t *Trust) Keys() int { return len(t.keys) }

// records reports whether records signed by key id count.
func (t *Trust) records(id string) bool {
	return !t.restricted || slices.Contains(t.recorders, id)
}

// validAt checks that the trust root allowed key id to sign at t. A zero
// t (no signing time claimed) accepts any key of the root: an active one
// or a retired one (rotated, not compromised); revoked keys are never in
// a trust root.
func (t *Trust) validAt(id string, at time.Time) error {
	if at.IsZero() {
		if slices.ContainsFunc(t.root.Keys, func(k key.TrustedKey) bool { return k.ID == id }) {
			return nil
		}
		return errors.New("key " + id + " is not in the trust root")
	}
	_, err := t.root.KeyAt(id, at)
	return err
}

// status returns the trust root's status of key id (active or retired),
// or "" when the root does not hold it.
func (t *Trust) status(id string) key.Status {
	for _, k := range t.root.Keys {
		if k.ID == id {
			return k.Status
		}
	}
	return ""
}

// Signature is one signature on the digest that verified with a key of
// the trust root.
type Signature struct {
	sign.Verified
	// SignedAt is the signing time the signature claims (zero when it
	// claims none).
	SignedAt time.Time
	// Err says why the signature does not count (an unreadable signing
	// time, a key not valid at the signing time); nil when it counts.
	Err error
	// KeyStatus is the trust root's status of the key (active, or
	// retired: rotated out, still verifying what it signed while valid).
	KeyStatus key.Status
	// Claimed is the signing time the signer claims (zero for none) and
	// TimeSource where SignedAt comes from: TimeFromTimestamp,
	// TimeFromClaim, or "" when the signature has no known time.
	Claimed    time.Time
	TimeSource string
	// Identity is the signer's identity of a keyless signature (one made
	// with a certificate of a trusted CA; KeyID is then its ephemeral
	// key's); nil for a key-based signature.
	Identity *certidentity.Identity
}

// Trusted reports whether the signature counts.
func (s Signature) Trusted() bool { return s.Err == nil }

// NotationSignature is one Notary Project signature found on the digest,
// with its verdict.
type NotationSignature struct {
	notary.Result
}

// Trusted reports whether the Notation signature counts: notation-go
// verified it under the trust policy, and the policy's level enforces
// authenticity (strict or permissive). Under audit a signature by an
// untrusted certificate still "verifies", and under skip nothing is
// checked: neither counts.
func (n NotationSignature) Trusted() bool { return n.Err == nil }

// notationSignature judges one verified (or refused) Notation signature.
func notationSignature(r notary.Result) NotationSignature {
	n := NotationSignature{Result: r}
	if n.Err == nil && !r.AuthenticityEnforced {
		n.Err = fmt.Errorf("trust policy %q verifies at level %q, which does not enforce authenticity", r.Policy, r.Level)
	}
	return n
}

// Attestation is one attestation found on the digest, with its verdict.
type Attestation struct {
	// Verified is the verified statement; nil when its signature did not
	// verify with a trusted key.
	Verified *attest.Verified
	// PredicateType and KeyID are set when the signature verified;
	// KeyStatus is then the trust root's status of that key.
	PredicateType string
	KeyID         string
	KeyStatus     key.Status
	// SignedAt is the time a trusted RFC 3161 time-stamp gives the
	// attestation's signature (zero without one; attestations carry no
	// claimed time).
	SignedAt time.Time
	// Container is the digest of the .att image or bundle referrer
	// manifest the attestation was found in.
	Container string
	// Predicate is the predicate JSON of a trusted attestation.
	Predicate []byte
	// Provenance is the parsed predicate of a trusted SLSA v1 provenance.
	Provenance *provenance.Predicate
	// Record, Approval, Rejection, Revocation, Drill and Source are the parsed
	// predicate of a trusted server record, whichever its type is.
	Record     *Record
	Approval   *Approval
	Rejection  *Rejection
	Revocation *Revocation
	Drill      *Drill
	Source     *Source
	// Identity is the signer's identity of a keyless attestation (made
	// with a certificate of a trusted CA); nil for a key-based one.
	Identity *certidentity.Identity
	// Counts is true for a server record signed by a recording key.
	Counts bool
	// ByServer is true for a trusted attestation signed by one of the
	// server's own keys (the recording keys of a Trust restricted by
	// RecordsOnlyBy): the server wrote it, not a client. For SLSA
	// provenance this is the platform mode, written from the verified
	// OIDC claims of the job with a key no tenant holds.
	ByServer bool
	// ClaimedType is the predicate type an attestation that did not
	// verify claims, read without trusting it (for reports only; "" when
	// unreadable). Never decide on it.
	ClaimedType string
	// Err says why the attestation is not trusted; nil when it is.
	// errors.Is(Err, attest.ErrUntrusted) when no trusted key signed it.
	Err error
}

// Trusted reports whether the attestation verified and is about the
// digest.
func (a Attestation) Trusted() bool { return a.Err == nil }

// IsRecord reports whether the attestation is one of the server's records.
func (a Attestation) IsRecord() bool { return slices.Contains(RecordTypes, a.PredicateType) }

// Set is the verified evidence about one digest.
type Set struct {
	Digest string
	// Signatures are the signatures that verified with a key of the
	// trust root, in the order found; check Trusted on each.
	Signatures []Signature
	// SignatureErr is sign.Verify's error: it wraps sign.ErrNoSignature
	// or sign.ErrNotVerified when there is no verifying signature, or
	// says why the signatures could not be read.
	SignatureErr error
	// Rejected are the signatures found that no trusted key verifies
	// for the digest, each with where it was found and why.
	Rejected []sign.Rejected
	// Notation are the Notary Project signatures found (only when the
	// Trust verifies them: WithNotation), trusted or not; check Trusted
	// on each. NotationErr says why they could not be read.
	Notation    []NotationSignature
	NotationErr error
	// Attestations are all the attestations found, trusted or not.
	Attestations []Attestation
	// AttestationErr says why the attestations could not be read.
	AttestationErr error
	// Promotions, Approvals, Rejections and Revocations are the server records that
	// count (trusted and signed by a recording key); Promotions oldest
	// first.
	Promotions  []Record
	Approvals   []Approval
	Rejections  []Rejection
	Revocations []Revocation
	// Drills are the drill reports that count, in the order found.
	Drills []Drill
	// Sources are the source verifications that count, in the order
	// found (SourcesOf keeps those about one repository).
	Sources []Source
}

// Collect reads the signatures and attestations of d from the registry
// and verifies each against trust. Read failures are recorded in the Set
// (SignatureErr, AttestationErr), not returned: what could be read is
// still reported.
func Collect(ctx context.Context, d name.Digest, trust *Trust, o sign.Options) *Set {
	dgst := d.DigestStr()
	s := &Set{Digest: dgst, Signatures: []Signature{}, Attestations: []Attestation{}}
	var (
		sigs     []sign.Verified
		rejected []sign.Rejected
		err      error
	)
	// Keyless signatures are read with their certificates when a CA is
	// trusted (certificate judges them).
	o.Certificates = len(trust.cas) > 0
	// The signatures, the attestations and the Notation signatures are
	// read concurrently: each is a few registry round trips, and a
	// deployment waits for all of them.
	var (
		wg     sync.WaitGroup
		envs   []sign.StoredAttestation
		attErr error
	)
	wg.Go(func() {
		if len(trust.keys) == 0 && len(trust.cas) == 0 && trust.notation != nil {
			// Only Notation signatures are trusted: no key could verify a
			// cosign signature.
			err = fmt.Errorf("no trust-root key to verify cosign signatures with: %w", sign.ErrNotVerified)
		} else {
			sigs, rejected, err = sign.VerifyAll(ctx, d, sign.PublicKeys(trust.keys), o)
		}
	})
	wg.Go(func() { envs, attErr = sign.StoredAttestations(ctx, d, o) })
	if trust.notation != nil {
		wg.Go(func() { s.Notation, s.NotationErr = collectNotation(ctx, d, trust.notation, trust.notationHost, o) })
	}
	wg.Wait()
	s.SignatureErr, s.Rejected = err, rejected
	for i, r := range s.Rejected {
		if id := trust.revokedSigner(func(keys []crypto.PublicKey) (string, error) {
			v, err := r.VerifyWith(dgst, keys)
			return v.KeyID, err
		}); id != "" {
			s.Rejected[i].Err = errRevoked(id)
		}
	}
	for _, v := range sigs {
		sg := trust.signature(v)
		if errors.Is(sg.Err, errUntrustedCA) {
			// Like a signature by an unknown key: anyone who may push
			// could add one; it counts for nothing.
			s.Rejected = append(s.Rejected, sign.Rejected{Source: v.Source, Container: v.Container, Err: sg.Err})
			continue
		}
		s.Signatures = append(s.Signatures, sg)
	}
	if len(s.Signatures) == 0 && len(sigs) > 0 {
		s.SignatureErr = fmt.Errorf("%s: %w: %w", d, sign.ErrNotVerified, errUntrustedCA)
	}
	s.judgeAttestations(envs, attErr, trust)
	return s
}

// CollectAttestations is the attestation half of Collect: d's stored
// attestations, each judged as Collect judges it (and so its records,
// approvals, rejections, revocations, drills and source verifications),
// without reading or verifying d's signatures. Whoever needs only what
// attestations say (what an environment ran: its promotion records)
// reads this much.
func CollectAttestations(ctx context.Context, d name.Digest, trust *Trust, o sign.Options) *Set {
	s := &Set{Digest: d.DigestStr(), Signatures: []Signature{}, Attestations: []Attestation{}}
	envs, err := sign.StoredAttestations(ctx, d, o)
	s.judgeAttestations(envs, err, trust)
	return s
}

// stored judges one stored attestation of dgst: its envelope (attestation)
// and the transparency log entries stored with it (logged). Collect and
// Verdicts both judge through it.
func (t *Trust) stored(env sign.StoredAttestation, resolver attest.KeyResolver, dgst string) Attestation {
	a := t.attestation(env.Envelope, resolver, dgst, env.Timestamps, env.Chain)
	if a.Err == nil {
		if err := t.logged(env.LogEntries, a.KeyID, env.Chain); err != nil {
			a = Attestation{PredicateType: a.PredicateType, KeyID: a.KeyID, KeyStatus: a.KeyStatus, ClaimedType: a.PredicateType, Identity: a.Identity, Err: err}
		}
	}
	return a
}

// judgeAttestations judges each stored attestation of s's digest and
// files those that count by kind.
func (s *Set) judgeAttestations(envs []sign.StoredAttestation, err error, trust *Trust) {
	resolver := attest.ResolverFromKeys(trust.keys...)
	s.judge(envs, err, func(env sign.StoredAttestation) (Attestation, [32]byte, bool) {
		return trust.stored(env, resolver, s.Digest), env.Normal, true
	})
}

// judge files the stored attestations of s's digest by kind, with what
// judged makes of each (the Attestation, the hash of its envelope
// without key IDs, and false to leave it out): one envelope stored twice
// is filed once.
func (s *Set) judge(envs []sign.StoredAttestation, err error, judged func(sign.StoredAttestation) (Attestation, [32]byte, bool)) {
	s.AttestationErr = err
	seen := map[[32]byte]bool{}
	for _, env := range envs {
		a, normal, ok := judged(env)
		if !ok || normal != ([32]byte{}) && seen[normal] {
			continue
		}
		seen[normal] = true
		a.Container = env.Container
		if a.Counts {
			switch {
			case a.Record != nil:
				s.Promotions = append(s.Promotions, *a.Record)
			case a.Approval != nil:
				s.Approvals = append(s.Approvals, *a.Approval)
			case a.Rejection != nil:
				s.Rejections = append(s.Rejections, *a.Rejection)
			case a.Revocation != nil:
				s.Revocations = append(s.Revocations, *a.Revocation)
			case a.Drill != nil:
				s.Drills = append(s.Drills, *a.Drill)
			case a.Source != nil:
				s.Sources = append(s.Sources, *a.Source)
			}
		}
		s.Attestations = append(s.Attestations, a)
	}
	sort.SliceStable(s.Promotions, func(i, j int) bool { return s.Promotions[i].At.Before(s.Promotions[j].At) })
}

// collectNotation reads the Notation signatures of d and judges each.
func collectNotation(ctx context.Context, d name.Digest, v *notary.Verifier, host string, o sign.Options) ([]NotationSignature, error) {
	stored, err := notary.Read(ctx, d, o.Remote...)
	if len(stored) == 0 {
		return []NotationSignature{}, err
	}
	subject, herr := remote.Head(d, append(slices.Clone(o.Remote), remote.WithContext(ctx))...)
	if herr != nil {
		return []NotationSignature{}, fmt.Errorf("looking up %s: %w", d, herr)
	}
	ref := d.String()
	if host != "" {
		ref = host + "/" + d.RepositoryStr() + "@" + d.DigestStr()
	}
	out := make([]NotationSignature, 0, len(stored))
	for _, st := range stored {
		out = append(out, notationSignature(v.Verify(ctx, ref, *subject, st)))
	}
	return out, err
}

// TrustedNotation returns the Notation signatures that count.
func (s *Set) TrustedNotation() []NotationSignature {
	var out []NotationSignature
	for _, n := range s.Notation {
		if n.Trusted() {
			out = append(out, n)
		}
	}
	return out
}

// signature judges one signature that verified with a trusted key.
func (t *Trust) signature(v sign.Verified) Signature {
	if len(v.Chain) > 0 {
		s := Signature{Verified: v}
		s.Identity, s.SignedAt, s.Err = t.certificate(v.Chain, v.Timestamps)
		if !s.SignedAt.IsZero() {
			s.TimeSource = TimeFromTimestamp
		}
		if s.Err == nil {
			s.Err = t.logged(v.LogEntries, v.KeyID, v.Chain)
		}
		return s
	}
	s := Signature{Verified: v, KeyStatus: t.status(v.KeyID)}
	if ts := v.Annotations[SignedAtAnnotation]; ts != "" {
		at, err := time.Parse(time.RFC3339, ts)
		if err != nil && len(v.Timestamps) == 0 {
			s.Err = errors.New("unreadable signing time " + ts)
			return s
		}
		s.Claimed = at
	}
	s.SignedAt, s.TimeSource, s.Err = t.signingTime(v.Timestamps, s.Claimed)
	if s.Err != nil {
		return s
	}
	if s.Err = t.validAt(v.KeyID, s.SignedAt); s.Err != nil {
		return s
	}
	s.Err = t.logged(v.LogEntries, v.KeyID, nil)
	return s
}

// attestation verifies one DSSE envelope as an attestation about dgst.
func (t *Trust) attestation(env []byte, resolver attest.KeyResolver, dgst string, stamps []sign.Timestamp, chain []*x509.Certificate) Attestation {
	var a Attestation
	v, err := attest.Verify(env, resolver, attest.AllowStatementV01(), attest.AllowPredicateType(known...))
	if errors.Is(err, attest.ErrUntrusted) && len(chain) > 0 && len(t.cas) > 0 {
		return t.keylessAttestation(env, dgst, stamps, chain)
	}
	if err != nil {
		a.Err, a.ClaimedType = err, claimedType(env)
		if errors.Is(err, attest.ErrUntrusted) {
			if id := t.revokedSigner(func(keys []crypto.PublicKey) (string, error) {
				v, err := attest.Verify(env, attest.ResolverFromKeys(keys...), attest.AllowStatementV01(), attest.AllowPredicateType(known...))
				if err != nil {
					return "", err
				}
				return v.KeyID, nil
			}); id != "" {
				a.KeyID, a.Err = id, errRevoked(id)
			}
		}
		return a
	}
	a.PredicateType, a.KeyID, a.KeyStatus = v.PredicateType, v.KeyID, t.status(v.KeyID)
	if a.Err = attest.VerifySubject(v, dgst); a.Err != nil {
		return a
	}
	if a.SignedAt, _, a.Err = t.signingTime(stamps, time.Time{}); a.Err != nil {
		return a
	}
	if a.Err = t.validAt(v.KeyID, a.SignedAt); a.Err != nil {
		return a
	}
	b, err := attest.PredicateJSON(v.Statement)
	if err != nil {
		a.Err = err
		return a
	}
	switch v.PredicateType {
	case attest.PredicateSLSAProvenanceV1:
		a.Provenance, a.Err = provenance.Parse(b)
	case PredicatePromotion:
		a.Record = new(Record)
		a.Err = parseRecord(b, a.Record)
	case PredicateApproval:
		a.Approval = new(Approval)
		a.Err = parseRecord(b, a.Approval)
	case PredicateRejection:
		a.Rejection = new(Rejection)
		a.Err = parseRecord(b, a.Rejection)
	case PredicateRevocation:
		a.Revocation = new(Revocation)
		a.Err = parseRecord(b, a.Revocation)
	case PredicateDrill:
		a.Drill = new(Drill)
		a.Err = parseRecord(b, a.Drill)
	case PredicateSource:
		a.Source = new(Source)
		a.Err = parseRecord(b, a.Source)
	}
	if a.Err != nil {
		a.Record, a.Approval, a.Rejection, a.Revocation, a.Drill, a.Source = nil, nil, nil, nil, nil, nil
		return a
	}
	a.Verified, a.Predicate = v, b
	a.Counts = a.IsRecord() && t.records(v.KeyID)
	a.ByServer = t.restricted && t.records(v.KeyID)
	return a
}

// claimedType reads the predicate type an envelope's statement claims,
// without verifying anything ("" when it cannot be read).
func claimedType(env []byte) string {
	e, err := attest.ParseEnvelope(env)
	if err != nil {
		return ""
	}
	payload, err := e.DecodeB64Payload()
	if err != nil {
		return ""
	}
	var st struct {
		PredicateType string `json:"predicateType"`
	}
	if json.Unmarshal(payload, &st) != nil {
		return ""
	}
	return st.PredicateType
}

func parseRecord(b []byte, into any) error {
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("unreadable record: %w", err)
	}
	return nil
}

// TrustedSignatures returns the signatures that count.
func (s *Set) TrustedSignatures() []Signature {
	var out []Signature
	for _, sg := range s.Signatures {
		if sg.Trusted() {
			out = append(out, sg)
		}
	}
	return out
}

// Predicates returns the predicates of the trusted attestations of the
// given types, in the order found.
func (s *Set) Predicates(types ...string) [][]byte {
	var out [][]byte
	for _, a := range s.Attestations {
		if a.Trusted() && slices.Contains(types, a.PredicateType) {
			out = append(out, a.Predicate)
		}
	}
	return out
}

// Has reports whether a trusted attestation of one of types is present.
func (s *Set) Has(types ...string) bool {
	return slices.ContainsFunc(s.Attestations, func(a Attestation) bool {
		return a.Trusted() && slices.Contains(types, a.PredicateType)
	})
}

// PromotionsOf returns the promotion and rollback records of s that are
// about repo, oldest first: a record proves something only of the
// repository and digest its predicate names, so one copied from another
// repository holding the same digest (cosign copy, or a referrer pushed
// by hand) proves nothing here, not even that the digest went through an
// earlier environment.
func (s *Set) PromotionsOf(repo string) []Record {
	var out []Record
	for _, r := range s.Promotions {
		if r.Repository == repo && r.Digest == s.Digest {
			out = append(out, r)
		}
	}
	return out
}

// ApprovalsOf returns the approvals of s that are for repo: like a
// promotion record, an approval copied from another repository holding
// the same digest counts for nothing here.
func (s *Set) ApprovalsOf(repo string) []Approval {
	var out []Approval
	for _, a := range s.Approvals {
		if a.Repository == repo {
			out = append(out, a)
		}
	}
	return out
}

// SourcesOf returns the source verifications of s that are about repo
// and the digest: like a promotion record, one copied from another
// repository holding the same digest proves nothing here.
func (s *Set) SourcesOf(repo string) []Source {
	var out []Source
	for _, v := range s.Sources {
		if v.Repository == repo && v.Digest == s.Digest {
			out = append(out, v)
		}
	}
	return out
}

// Revoked returns the last revocation found that counts, or nil.
func (s *Set) Revoked() *Revocation {
	if len(s.Revocations) == 0 {
		return nil
	}
	r := s.Revocations[len(s.Revocations)-1]
	return &r
}
