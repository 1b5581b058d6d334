package rekor

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	pbs "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekornote "github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/tlog"
)

// Options configure Open.
type Options struct {
	// Store keeps the log (the metadata store's SigningLog).
	Store tlog.Store
	// Signer is the log key (ECDSA P-256, a key file or on a PKCS #11
	// token) that signs checkpoints.
	Signer crypto.Signer
	// URL is the log's base URL as clients reach it (signing_config.json,
	// trusted_root.json). The checkpoints' origin is its host name, which
	// is what sigstore-go expects of a Rekor v2 log.
	URL string
	// Trust decides which certificates may sign entries; nil: public keys
	// only.
	Trust func() Trust
	Log   *slog.Logger
	// Closer, when set, is closed by Close (the key's PKCS #11 session).
	Closer io.Closer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Log is the transparency log of signing events.
type Log struct {
	tl     *tlog.Log
	url    string
	origin string
	pub    crypto.PublicKey
	logID  []byte
	trust  func() Trust
	now    func() time.Time
	closer io.Closer

	fmu      sync.Mutex               // guards inflight
	inflight map[string]chan struct{} // leaf hashes being added
}

// Open opens the log on opts.Store.
func Open(ctx context.Context, opts Options) (*Log, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || u.Hostname() == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("transparency log URL %q: want an http(s) URL with a host name", opts.URL)
	}
	origin := u.Hostname()
	signer, logID, err := noteSigner(origin, opts.Signer)
	if err != nil {
		return nil, err
	}
	tl, err := tlog.Open(ctx, opts.Store, tlog.Options{Signer: signer, Log: opts.Log, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("transparency log: %w", err)
	}
	l := &Log{tl: tl, url: opts.URL, origin: origin, pub: opts.Signer.Public(), logID: logID, trust: opts.Trust, now: opts.Now, closer: opts.Closer, inflight: map[string]chan struct{}{}}
	if l.trust == nil {
		l.trust = func() Trust { return Trust{} }
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// Close stores the entries waiting, stops the log's writer and closes
// Options.Closer.
func (l *Log) Close() {
	l.tl.Close()
	if l.closer != nil {
		l.closer.Close()
		l.closer = nil
	}
}

// Run keeps checking the log's storage (tlog.Log.Run) until ctx ends.
// Checkpoints are signed as entries are added, not on a timer.
func (l *Log) Run(ctx context.Context) { l.tl.Run(ctx, 0) }

// URL returns the log's base URL, Origin its checkpoints' origin (the
// URL's host name), PublicKey its key and LogID its log ID: the SHA-256
// of the key's PKIX encoding for an ECDSA key, as Rekor v2 computes it
// (rekor-tiles' note.KeyHash); the checkpoints' key hint is its first
// four bytes.
func (l *Log) URL() string                 { return l.url }
func (l *Log) Origin() string              { return l.origin }
func (l *Log) PublicKey() crypto.PublicKey { return l.pub }
func (l *Log) LogID() []byte               { return append([]byte(nil), l.logID...) }

// Tlog returns the Merkle log underneath (proofs, tiles, integrity).
func (l *Log) Tlog() *tlog.Log { return l.tl }

// noteSigner signs checkpoints with key as a Rekor v2 log does: the key
// hash and log ID of rekor-tiles' note.KeyHash, the signature the one
// sigstore's verifier for the key checks (ECDSA: ASN.1 over SHA-256).
func noteSigner(origin string, key crypto.Signer) (note.Signer, []byte, error) {
	hint, logID, err := rekornote.KeyHash(origin, key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("transparency log key: %w", err)
	}
	if _, err := signature.LoadVerifier(key.Public(), crypto.SHA256); err != nil {
		return nil, nil, fmt.Errorf("transparency log key: %w", err)
	}
	return &signer{name: origin, hash: hint, key: key}, logID, nil
}

type signer struct {
	name string
	hash uint32
	key  crypto.Signer
}

func (s *signer) Name() string    { return s.name }
func (s *signer) KeyHash() uint32 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return s.key.Sign(rand.Reader, d[:], crypto.SHA256)
}

// Verifier returns the note verifier of the log's checkpoints, as
// sigstore-go builds it from a trusted root.
func (l *Log) Verifier() (note.Verifier, error) { return VerifierOf(l.origin, l.pub) }

// VerifierOf returns the note verifier for checkpoints of the log with
// this origin and key.
func VerifierOf(origin string, pub crypto.PublicKey) (note.Verifier, error) {
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return rekornote.NewNoteVerifier(origin, v)
}

// Add logs a checked entry (Check) once: an entry already logged is
// answered with its first index. It returns the entry with an inclusion
// proof in a checkpoint signed after it was stored.
func (l *Log) Add(ctx context.Context, req *Entry) (*pbs.TransparencyLogEntry, error) {
	// The same entry added at once by two clients is stored once: the
	// second waits for the first, then finds its entry.
	k := string(req.LeafHash)
	for {
		l.fmu.Lock()
		wait, busy := l.inflight[k]
		if !busy {
			done := make(chan struct{})
			l.inflight[k] = done
			l.fmu.Unlock()
			defer func() {
				l.fmu.Lock()
				delete(l.inflight, k)
				l.fmu.Unlock()
				close(done)
			}()
			break
		}
		l.fmu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	idx, err := l.tl.LeafIndex(ctx, req.LeafHash)
	if errors.Is(err, tlog.ErrNotFound) {
		if err := l.tl.AppendRaw(req.Body); err != nil {
			return nil, err
		}
		idx, err = l.tl.LeafIndex(ctx, req.LeafHash)
	}
	if err != nil {
		return nil, err
	}
	cp, err := l.tl.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	return l.entryAt(ctx, idx, req.Body, cp)
}

// Check builds the entry of a request (NewEntry with the log's trust).
func (l *Log) Check(req []byte) (*Entry, error) {
	hr, err := ParseRequest(req)
	if err != nil {
		return nil, err
	}
	return NewEntry(hr, l.trust(), l.now())
}

// entryAt is the TransparencyLogEntry of the leaf idx with the inclusion
// proof in checkpoint cp.
func (l *Log) entryAt(ctx context.Context, idx uint64, body []byte, cp tlog.Checkpoint) (*pbs.TransparencyLogEntry, error) {
	if idx >= cp.Size {
		return nil, fmt.Errorf("entry %d is not in the checkpoint of size %d", idx, cp.Size)
	}
	hashes, err := l.tl.InclusionProof(ctx, idx, cp.Size)
	if err != nil {
		return nil, err
	}
	return &pbs.TransparencyLogEntry{
		LogIndex:          int64(idx),
		LogId:             &protocommon.LogId{KeyId: l.LogID()},
		KindVersion:       &pbs.KindVersion{Kind: Kind, Version: Version},
		CanonicalizedBody: body,
		InclusionProof: &pbs.InclusionProof{
			LogIndex:   int64(idx),
			RootHash:   cp.Root,
			TreeSize:   int64(cp.Size),
			Hashes:     hashes,
			Checkpoint: &pbs.Checkpoint{Envelope: string(cp.Note)},
		},
	}, nil
}

// Checkpoint returns the latest signed checkpoint, signing one if the log
// has none yet.
func (l *Log) Checkpoint(ctx context.Context) (tlog.Checkpoint, error) {
	cp, err := l.tl.Latest(ctx)
	if errors.Is(err, tlog.ErrNotFound) {
		return l.tl.Checkpoint(ctx)
	}
	return cp, err
}

// PublicKeyDER returns the log key's PKIX encoding.
func (l *Log) PublicKeyDER() ([]byte, error) { return x509.MarshalPKIXPublicKey(l.pub) }

// TrustedLog describes the log for a Sigstore trusted root
// (trusted_root.json's tlogs): its base URL, log ID and key, valid from
// since.
func (l *Log) TrustedLog(since time.Time) *root.TransparencyLog {
	return &root.TransparencyLog{
		BaseURL: l.url, ID: l.LogID(), ValidityPeriodStart: since,
		HashFunc: crypto.SHA256, PublicKey: l.pub, SignatureHashFunc: crypto.SHA256,
	}
}
