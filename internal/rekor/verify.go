package rekor

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	v1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	pbs "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	rekornote "github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/rekor-tiles/v2/pkg/types/hashedrekord"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/internal/tlog"
)

// TrustedLog is a Rekor v2 log whose entries a verifier accepts: its
// checkpoints carry Origin and are signed by PublicKey.
type TrustedLog struct {
	Origin    string
	PublicKey crypto.PublicKey
}

// Trusted returns the log as a verifier trusts it.
func (l *Log) Trusted() TrustedLog { return TrustedLog{Origin: l.origin, PublicKey: l.pub} }

// IsV2 reports whether a log entry is a Rekor v2 entry (kind version
// 0.0.2: no Rekor v1 kind has it), which carries an inclusion proof in a
// signed checkpoint rather than Rekor v1's signed promise.
func IsV2(e *pbs.TransparencyLogEntry) bool { return e.GetKindVersion().GetVersion() == Version }

// EntryHash returns the leaf hash of the hashedrekord v0.0.2 entry that
// logs sig over signed by pub (signed by a certificate's key when cert is
// set), rebuilt as sigstore-go rebuilds it from a bundle: the digest of
// signed with the key's default algorithm, the verifier in its PKIX (or
// certificate) encoding.
func EntryHash(signed, sig []byte, pub crypto.PublicKey, cert *x509.Certificate) ([]byte, error) {
	details, err := signature.GetDefaultAlgorithmDetails(pub, options.WithED25519ph())
	if err != nil {
		return nil, err
	}
	hf := details.GetHashType()
	if hf == crypto.Hash(0) || !hf.Available() {
		return nil, errors.New("the key's algorithm does not sign a digest, which a hashedrekord entry logs")
	}
	h := hf.New()
	h.Write(signed)
	v := &pb.Verifier{KeyDetails: details.GetSignatureAlgorithm()}
	if cert != nil {
		v.Verifier = &pb.Verifier_X509Certificate{X509Certificate: &v1.X509Certificate{RawBytes: cert.Raw}}
	} else {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		v.Verifier = &pb.Verifier_PublicKey{PublicKey: &pb.PublicKey{RawBytes: der}}
	}
	return hashedrekord.ToEntryHash(h.Sum(nil), &pb.Signature{Content: sig, Verifier: v})
}

// VerifyEntry checks that a Rekor v2 entry proves leaf is logged: the
// entry's log ID names one of logs, its checkpoint is signed by that log's
// key with that log's origin, and its inclusion proof puts leaf at the
// entry's index in the checkpoint's tree.
func VerifyEntry(e *pbs.TransparencyLogEntry, logs []TrustedLog, leaf []byte) error {
	var found *TrustedLog
	for i, l := range logs {
		if _, id, err := rekornote.KeyHash(l.Origin, l.PublicKey); err == nil && bytes.Equal(id, e.GetLogId().GetKeyId()) {
			found = &logs[i]
			break
		}
	}
	if found == nil {
		return fmt.Errorf("logged by a transparency log that is not trusted (log ID %x)", e.GetLogId().GetKeyId())
	}
	v, err := VerifierOf(found.Origin, found.PublicKey)
	if err != nil {
		return err
	}
	ip := e.GetInclusionProof()
	cp, err := tlog.OpenCheckpointWith(v, []byte(ip.GetCheckpoint().GetEnvelope()))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if e.GetLogIndex() < 0 {
		return errors.New("negative log index")
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(e.GetLogIndex()), cp.Size, leaf, ip.GetHashes(), cp.Root); err != nil {
		return fmt.Errorf("entry %d is not included in the signed checkpoint of size %d: %w", e.GetLogIndex(), cp.Size, err)
	}
	return nil
}
