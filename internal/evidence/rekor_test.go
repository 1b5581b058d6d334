package evidence_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	pbs "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/rekor"
	"github.com/custody-dev/custody/internal/sign"
)

// openRekor opens a transparency log (internal/rekor) on its own
// database, its checkpoints' origin "log.test".
func openRekor(t *testing.T) *rekor.Log {
	t.Helper()
	md, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	l, err := rekor.Open(t.Context(), rekor.Options{Store: md.SigningLog(), Signer: k, URL: "https://log.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// logWith logs what sign.Sign signs in l, as cosign v3 does with a
// signing config, and passes the entry through change (nil: as logged).
func logWith(l *rekor.Log, change func(*pbs.TransparencyLogEntry)) func(context.Context, []byte, []byte, crypto.PublicKey) ([]byte, error) {
	return func(ctx context.Context, signed, sig []byte, pub crypto.PublicKey) ([]byte, error) {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		d := sha256.Sum256(signed)
		e, err := rekor.NewEntry(&pb.HashedRekordRequestV002{Digest: d[:], Signature: &pb.Signature{Content: sig, Verifier: &pb.Verifier{
			Verifier: &pb.Verifier_PublicKey{PublicKey: &pb.PublicKey{RawBytes: der}}, KeyDetails: v1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
		}}}, rekor.Trust{}, windowStart)
		if err != nil {
			return nil, err
		}
		tle, err := l.Add(ctx, e)
		if err != nil {
			return nil, err
		}
		if change != nil {
			change(tle)
		}
		return protojson.Marshal(tle)
	}
}

// TestSignatureRekorEntry pins the rule for transparency log entries: a
// signature whose bundle carries a Rekor v2 entry counts only when the
// entry, rebuilt from the signature, is included in a checkpoint signed
// by a trusted log.
func TestSignatureRekorEntry(t *testing.T) {
	host := evidencetest.Registry(t)
	k := evidencetest.NewKey(t, windowStart, windowEnd)
	log, other := openRekor(t), openRekor(t)
	// The log is trusted through the trust root, as the server's ring
	// records it.
	root := evidencetest.Root(k)
	logPEM, err := key.MarshalPublicKey(log.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	root.TransparencyLogs = []key.TrustedLog{{BaseURL: log.URL(), Origin: log.Origin(), PublicKey: string(logPEM), ValidFor: key.Validity{Start: windowStart}}}
	trust, err := evidence.NewTrust(root)
	if err != nil {
		t.Fatal(err)
	}
	// A genuine entry of another signature, to splice into a bundle.
	var stranger *pbs.TransparencyLogEntry
	{
		d := evidencetest.Push(t, host, "apps/rekor")
		if _, err := sign.Sign(context.Background(), d, k, sign.Options{Storage: sign.StorageReferrer,
			TransparencyLog: logWith(log, func(e *pbs.TransparencyLogEntry) { stranger = e })}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		log  *rekor.Log
		edit func(*pbs.TransparencyLogEntry)
		want string // "" when the signature counts
	}{
		{"included in a trusted log's checkpoint", log, nil, ""},
		{"logged by an untrusted log", other, nil, "not trusted"},
		{"inclusion proof altered", log, func(e *pbs.TransparencyLogEntry) {
			e.InclusionProof.Hashes = append(e.InclusionProof.Hashes, make([]byte, 32))
		}, "not included in the signed checkpoint"},
		{"index moved", log, func(e *pbs.TransparencyLogEntry) { e.LogIndex++ }, "not included in the signed checkpoint"},
		{"another signature's entry", log, func(e *pbs.TransparencyLogEntry) {
			e.LogIndex, e.InclusionProof = stranger.LogIndex, stranger.InclusionProof
		}, "not included in the signed checkpoint"},
		{"checkpoint signed by another key", log, func(e *pbs.TransparencyLogEntry) {
			cp, err := other.Checkpoint(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			e.InclusionProof.Checkpoint.Envelope = string(cp.Note)
		}, "checkpoint"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := evidencetest.Push(t, host, "apps/rekor")
			if _, err := sign.Sign(context.Background(), d, k, sign.Options{TransparencyLog: logWith(c.log, c.edit)}); err != nil {
				t.Fatal(err)
			}
			set := evidence.Collect(context.Background(), d, trust, sign.Options{})
			if set.SignatureErr != nil || len(set.Signatures) != 2 { // tag and referrer
				t.Fatalf("signatures: %v %+v", set.SignatureErr, set.Signatures)
			}
			for _, s := range set.Signatures {
				if s.Source == sign.SourceTag {
					if !s.Trusted() || len(s.LogEntries) != 0 {
						t.Fatalf("the tag signature (no log entry) is judged: %v", s.Err)
					}
					continue
				}
				if len(s.LogEntries) != 1 {
					t.Fatalf("%d log entries read from the bundle", len(s.LogEntries))
				}
				if c.want == "" && !s.Trusted() {
					t.Fatalf("refused: %v", s.Err)
				}
				if c.want != "" && (s.Trusted() || !strings.Contains(s.Err.Error(), c.want)) {
					t.Fatalf("err %v, want %q", s.Err, c.want)
				}
			}
		})
	}
	// Without any trusted log, a Rekor v2 entry cannot be checked: it
	// does not count.
	d := evidencetest.Push(t, host, "apps/rekor")
	if _, err := sign.Sign(context.Background(), d, k, sign.Options{Storage: sign.StorageReferrer, TransparencyLog: logWith(log, nil)}); err != nil {
		t.Fatal(err)
	}
	bare, _ := evidence.NewTrust(evidencetest.Root(k))
	set := evidence.Collect(context.Background(), d, bare, sign.Options{})
	if len(set.Signatures) != 1 || set.Signatures[0].Trusted() || !strings.Contains(set.Signatures[0].Err.Error(), "not trusted") {
		t.Fatalf("signatures without a trusted log: %+v", set.Signatures)
	}
	// ... and counts once the log is trusted (WithTransparencyLogs).
	set = evidence.Collect(context.Background(), d, bare.WithTransparencyLogs(log.Trusted()), sign.Options{})
	if len(set.Signatures) != 1 || !set.Signatures[0].Trusted() {
		t.Fatalf("signatures with the log trusted: %+v", set.Signatures)
	}
}
