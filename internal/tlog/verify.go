package tlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Source is a copy of the log that Verify checks: a running server's
// audit API, or an export directory (Export).
type Source interface {
	// Key returns the verifier key the source offers. Verify uses it only
	// when no trusted key is given (trust on first use).
	Key(ctx context.Context) ([]byte, error)
	// Checkpoint returns the latest signed checkpoint note.
	Checkpoint(ctx context.Context) ([]byte, error)
	// Entries returns every entry the source holds.
	Entries(ctx context.Context) ([]EntryJSON, error)
	// Consistency returns a consistency proof between the trees of sizes
	// from and to, or ErrNoProofs when the source cannot prove anything
	// (an export).
	Consistency(ctx context.Context, from, to uint64) ([][]byte, error)
}

// ErrNoProofs is returned by a Source that serves no proofs (an export).
var ErrNoProofs = errors.New("tlog: no proofs offline")

// VerifyOptions is what Verify trusts.
type VerifyOptions struct {
	// Key is the trusted verifier key of the log (log-key.pub).
	Key string
	// TrustSourceKey, with no Key, uses the key the source offers (trust
	// on first use), which only shows that the log is consistent with
	// itself.
	TrustSourceKey bool
	// Since, when set, is a checkpoint note saved earlier; Verify checks
	// that the current checkpoint extends it.
	Since []byte
}

// ProblemKind classifies what Verify found wrong.
type ProblemKind string

const (
	// ProblemCheckpoint: the checkpoint's signature or body is invalid
	// (nothing else is checked then).
	ProblemCheckpoint ProblemKind = "checkpoint"
	// ProblemEntry: an entry does not hash to its stored leaf hash, is not
	// canonical, or is listed twice.
	ProblemEntry ProblemKind = "entry"
	// ProblemMissing: entries the checkpoint covers are absent.
	ProblemMissing ProblemKind = "missing"
	// ProblemRoot: the entries do not hash to the checkpoint's root.
	ProblemRoot ProblemKind = "root"
	// ProblemFirstDifference names the first entry that differs from the
	// signed tree (found with consistency proofs; online only).
	ProblemFirstDifference ProblemKind = "first-difference"
	// ProblemHistory: the current checkpoint does not extend the saved
	// one (rollback, replay or fork).
	ProblemHistory ProblemKind = "history"
)

// Problem is one thing Verify found wrong.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	// Index is the entry concerned, for ProblemEntry and
	// ProblemFirstDifference.
	Index *uint64 `json:"index,omitempty"`
	// Detail says what is wrong, in a sentence.
	Detail string `json:"detail"`
}

// SinceResult is the outcome of the check against a saved checkpoint.
type SinceResult struct {
	// Size is the saved checkpoint's tree size (zero if it did not open).
	Size uint64 `json:"size"`
	// Proved is true when a consistency proof from the saved checkpoint
	// to the current one was checked (online).
	Proved bool `json:"proved"`
}

// Verification is the result of Verify. The log verified when Problems is
// empty.
type Verification struct {
	// TrustOnFirstUse is true when no trusted key was given and the
	// source's own key was used.
	TrustOnFirstUse bool `json:"trustOnFirstUse"`
	// Checkpoint is the verified checkpoint (zero if it did not verify).
	Checkpoint Checkpoint `json:"-"`
	// Uncovered counts the entries after the checkpoint's size, which it
	// does not cover yet.
	Uncovered uint64 `json:"uncovered"`
	// Since is set when a saved checkpoint was given.
	Since *SinceResult `json:"since,omitempty"`
	// Problems lists everything found wrong, in the order found.
	Problems []Problem `json:"problems"`
	// Warnings are checks that could not be made (e.g. locating the
	// first differing entry when the source's proofs fail).
	Warnings []string `json:"warnings,omitempty"`
}

// OK reports whether no problem was found.
func (v *Verification) OK() bool { return len(v.Problems) == 0 }

func (v *Verification) fail(kind ProblemKind, index *uint64, format string, args ...any) {
	v.Problems = append(v.Problems, Problem{Kind: kind, Index: index, Detail: fmt.Sprintf(format, args...)})
}

func at(i uint64) *uint64 { return &i }

// Verify checks a copy of the log end to end:
//
//  1. the latest checkpoint's signature, with opts.Key;
//  2. every entry: its RFC 6962 leaf hash, canonical form, and that no
//     index the checkpoint covers is missing or listed twice;
//  3. the Merkle root of the first size entries against the checkpoint's
//     root; on a mismatch, and when the source serves consistency proofs,
//     the first entry that differs from the signed tree (binary search);
//  4. with opts.Since, that the current checkpoint extends the saved one
//     (consistency proof when the source serves one, and the recomputed
//     root of the saved size).
//
// Findings are in the result; the error is for a source that cannot be
// read.
func Verify(ctx context.Context, src Source, opts VerifyOptions) (*Verification, error) {
	v := &Verification{}
	key := opts.Key
	if key == "" && !opts.TrustSourceKey {
		return nil, errors.New("no trusted log key given")
	}
	if key == "" {
		b, err := src.Key(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the log's public key: %w", err)
		}
		key, v.TrustOnFirstUse = string(b), true
	}
	note, err := src.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint: %w", err)
	}
	cp, err := OpenCheckpoint(key, note)
	if err != nil {
		v.fail(ProblemCheckpoint, nil, "checkpoint: %v", err)
		return v, nil
	}
	v.Checkpoint = cp
	entries, err := src.Entries(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading entries: %w", err)
	}
	hashes, complete := v.checkEntries(entries, cp.Size)
	if complete {
		if root := RootFromLeafHashes(hashes); !bytes.Equal(root, cp.Root) {
			v.fail(ProblemRoot, nil, "root mismatch: the %d entries hash to root %s, the signed checkpoint says %s", cp.Size, hex.EncodeToString(root), hex.EncodeToString(cp.Root))
			v.locate(ctx, src, hashes, cp)
		}
	}
	if opts.Since != nil {
		v.checkSince(ctx, src, key, opts.Since, cp, hashes, complete)
	}
	return v, nil
}

// checkEntries checks each entry and returns the recomputed leaf hashes of
// the first size entries, and whether all of them are present. Memory is
// bounded by the entries given, not by the (possibly huge) size.
func (v *Verification) checkEntries(entries []EntryJSON, size uint64) ([][]byte, bool) {
	covered := make(map[uint64][]byte, min(size, uint64(len(entries))))
	for _, e := range entries {
		h := LeafHash([]byte(e.Entry))
		if hex.EncodeToString(h) != e.LeafHash {
			v.fail(ProblemEntry, at(e.Index), "entry %d: its content hashes to %s but the stored leaf hash is %s (entry modified after it was logged)", e.Index, hex.EncodeToString(h), e.LeafHash)
		}
		if _, err := ParseEntry([]byte(e.Entry)); err != nil {
			v.fail(ProblemEntry, at(e.Index), "entry %d: %v", e.Index, err)
		}
		if e.Index >= size {
			v.Uncovered++
			continue
		}
		if covered[e.Index] != nil {
			v.fail(ProblemEntry, at(e.Index), "entry %d: listed twice", e.Index)
		}
		covered[e.Index] = h
	}
	if n := size - uint64(len(covered)); n > 0 {
		var missing []string
		for i := uint64(0); i < size && len(missing) < 20; i++ {
			if covered[i] == nil {
				missing = append(missing, fmt.Sprint(i))
			}
		}
		if n > 20 {
			missing = append(missing, "...")
		}
		v.fail(ProblemMissing, nil, "%d of the %d entries the checkpoint covers are missing: index %s", n, size, strings.Join(missing, ", "))
		return nil, false
	}
	hashes := make([][]byte, size)
	for i, h := range covered {
		hashes[i] = h
	}
	return hashes, true
}

// locate finds the first entry that differs from the signed tree, by
// binary search over consistency proofs from prefixes of the recomputed
// tree to the checkpoint.
func (v *Verification) locate(ctx context.Context, src Source, hashes [][]byte, cp Checkpoint) {
	good := func(m uint64) (bool, error) {
		if m == 0 {
			return true, nil
		}
		p, err := src.Consistency(ctx, m, cp.Size)
		if err != nil {
			return false, err
		}
		return proof.VerifyConsistency(rfc6962.DefaultHasher, m, cp.Size, p, RootFromLeafHashes(hashes[:m]), cp.Root) == nil, nil
	}
	lo, hi := uint64(0), cp.Size // good(lo); !good(hi)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := good(mid)
		if err != nil {
			if !errors.Is(err, ErrNoProofs) {
				v.Warnings = append(v.Warnings, fmt.Sprintf("cannot locate the differing entry: %v", err))
			}
			return
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	v.fail(ProblemFirstDifference, at(lo), "entry %d is the first that differs from the signed tree (entries were modified, removed, inserted or reordered from here)", lo)
}

// checkSince checks that cp extends the saved checkpoint note.
func (v *Verification) checkSince(ctx context.Context, src Source, key string, note []byte, cp Checkpoint, hashes [][]byte, complete bool) {
	v.Since = &SinceResult{}
	old, err := OpenCheckpoint(key, note)
	if err != nil {
		v.fail(ProblemHistory, nil, "saved checkpoint: %v", err)
		return
	}
	v.Since.Size = old.Size
	switch {
	case old.Size > cp.Size:
		v.fail(ProblemHistory, nil, "inconsistent history: the current checkpoint (size %d) is smaller than the saved checkpoint (size %d): the log was rolled back or an old checkpoint is being replayed", cp.Size, old.Size)
		return
	case old.Size == cp.Size:
		if !bytes.Equal(old.Root, cp.Root) {
			v.fail(ProblemHistory, nil, "inconsistent history: the saved and current checkpoints both have size %d but different roots (forked log)", cp.Size)
		}
		return
	}
	p, err := src.Consistency(ctx, old.Size, cp.Size)
	switch {
	case errors.Is(err, ErrNoProofs):
	case err != nil:
		v.fail(ProblemHistory, nil, "consistency proof %d -> %d: %v", old.Size, cp.Size, err)
	default:
		v.Since.Proved = true
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, p, old.Root, cp.Root); err != nil {
			v.fail(ProblemHistory, nil, "inconsistent history: the consistency proof from the saved checkpoint (size %d) to the current one (size %d) does not verify: %v", old.Size, cp.Size, err)
		}
	}
	if complete {
		if root := RootFromLeafHashes(hashes[:old.Size]); !bytes.Equal(root, old.Root) {
			v.fail(ProblemHistory, nil, "inconsistent history: the first %d entries hash to %s, not to the saved checkpoint's root %s", old.Size, hex.EncodeToString(root), hex.EncodeToString(old.Root))
		}
	}
}

// Source returns the log's own store as a Source, so that Verify checks
// what the server holds with the same algorithm it applies to the API or
// an export.
func (l *Log) Source() Source { return storedSource{l} }

type storedSource struct{ l *Log }

func (s storedSource) Key(context.Context) ([]byte, error) { return []byte(s.l.VerifierKey()), nil }

func (s storedSource) Checkpoint(ctx context.Context) ([]byte, error) {
	cp, err := s.l.Latest(ctx)
	if err != nil {
		return nil, err
	}
	return cp.Note, nil
}

// Entries reads every stored entry, MaxEntries at a time.
func (s storedSource) Entries(ctx context.Context) ([]EntryJSON, error) {
	size := s.l.Size()
	out := make([]EntryJSON, 0, size)
	for start := uint64(0); start < size; start += MaxEntries {
		leaves, err := s.l.Leaves(ctx, start, min(start+MaxEntries, size))
		if err != nil {
			return nil, err
		}
		out = append(out, entriesResponse(size, leaves).Entries...)
	}
	return out, nil
}

func (s storedSource) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	return s.l.ConsistencyProof(ctx, from, to)
}

// Files of an export directory.
const (
	ExportCheckpointFile = "checkpoint"    // the latest signed checkpoint note
	ExportKeyFile        = "log-key.pub"   // the verifier key the server served
	ExportEntriesFile    = "entries.jsonl" // one EntryJSON a line
)

// Export is an export directory: a Source that serves no proofs.
type Export string

// WriteExport writes an export directory (created if absent).
func WriteExport(dir string, checkpoint, key []byte, entries []EntryJSON) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	for name, b := range map[string][]byte{ExportCheckpointFile: checkpoint, ExportKeyFile: key, ExportEntriesFile: buf.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Key returns the export's log-key.pub.
func (d Export) Key(context.Context) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), ExportKeyFile))
}

// Checkpoint returns the export's checkpoint.
func (d Export) Checkpoint(context.Context) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), ExportCheckpointFile))
}

// Consistency returns ErrNoProofs: an export holds none.
func (d Export) Consistency(context.Context, uint64, uint64) ([][]byte, error) {
	return nil, ErrNoProofs
}

// Entries reads the export's entries.jsonl.
func (d Export) Entries(context.Context) ([]EntryJSON, error) {
	f, err := os.Open(filepath.Join(string(d), ExportEntriesFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []EntryJSON
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var e EntryJSON
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", ExportEntriesFile, line, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}
