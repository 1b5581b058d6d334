package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
)

// ErrDamaged is wrapped by the error Health returns once the log's
// storage failed an integrity check: a stored entry no longer matches its
// leaf hash, the entries no longer hash to a signed checkpoint or to the
// stored tree, or the log is shorter than a checkpoint it signed. The log
// then refuses to sign checkpoints (its Checkpoint errors wrap
// ErrInconsistent too) until it is reopened and the checks pass.
var ErrDamaged = errors.New("tlog: the audit log's storage failed an integrity check")

// TailCheck is how many entries before the last signed checkpoint (or,
// without one, before the end) Open re-hashes, besides those after it.
const TailCheck = 1024

// scrubStep is how many entries one Scrub call (and one read of the tail
// check) re-hashes.
const scrubStep = 4096

// Health returns nil while every integrity check of the log's storage has
// passed, or the error (wrapping ErrDamaged) of the first that failed.
func (l *Log) Health() error {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	return l.fault
}

// setFault records the first failed integrity check and logs it loudly.
func (l *Log) setFault(err error) {
	if l.markFault(err) {
		l.log.Error("AUDIT LOG INTEGRITY CHECK FAILED: its storage was changed outside custody (tampering, rollback or damage); no new checkpoint will be signed",
			"err", err)
	}
}

// markFault records err as the log's fault unless one is recorded; it
// reports whether it did.
func (l *Log) markFault(err error) bool {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	if l.fault != nil {
		return false
	}
	l.fault = err
	return true
}

// rehash checks that leaves are the entries start..end-1 and that each
// entry hashes to its stored leaf hash, and appends the re-computed hashes
// to rng. Its errors wrap ErrDamaged.
func rehash(leaves []Leaf, start, end uint64, rng *compact.Range) error {
	if uint64(len(leaves)) != end-start {
		return fmt.Errorf("%w: %d entries stored at indexes [%d, %d), want %d", ErrDamaged, len(leaves), start, end, end-start)
	}
	for i, lf := range leaves {
		if lf.Index != start+uint64(i) {
			return fmt.Errorf("%w: entry %d is missing", ErrDamaged, start+uint64(i))
		}
		h := LeafHash(lf.Entry)
		if !bytes.Equal(h, lf.Hash) {
			return fmt.Errorf("%w: entry %d does not match its stored leaf hash (edited?)", ErrDamaged, lf.Index)
		}
		if err := rng.Append(h, nil); err != nil {
			return err
		}
	}
	return nil
}

// checkTail is Open's integrity check. It re-hashes the entries since the
// last signed checkpoint and the TailCheck entries before it, appends
// them to the tree of the entries before them (from the stored nodes) and
// checks the result against the checkpoint's root and the stored tree's.
// Errors wrapping ErrDamaged are findings; others are read failures.
func (l *Log) checkTail(ctx context.Context) error {
	// The checkpoint is read before the size: the stored tree only grows,
	// so it is then at least as large as any checkpoint (also one another
	// writer sharing the store signs meanwhile).
	cp, err := l.store.TlogLatestCheckpoint(ctx)
	haveCP := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	size, err := l.store.TlogSize(ctx)
	if err != nil {
		return err
	}
	if haveCP && cp.Size > size {
		return fmt.Errorf("%w: it holds %d entries, fewer than its last signed checkpoint (%d): rolled back", ErrDamaged, size, cp.Size)
	}
	end := size
	if haveCP {
		end = cp.Size
	}
	start := end - min(end, TailCheck)
	rng, err := l.rangeAt(ctx, start)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: the tree of its first %d entries is not stored: %v", ErrDamaged, start, err)
	}
	if err != nil {
		return err
	}
	atCheckpoint := func() error {
		if !haveCP || rng.End() != cp.Size {
			return nil
		}
		root, err := rootOf(rng)
		if err != nil {
			return err
		}
		if !bytes.Equal(root, cp.Root) {
			return fmt.Errorf("%w: its first %d entries do not hash to the root of the last signed checkpoint", ErrDamaged, cp.Size)
		}
		return nil
	}
	if err := atCheckpoint(); err != nil {
		return err
	}
	for from := start; from < size; {
		to := min(from+scrubStep, size)
		if haveCP && from < cp.Size {
			to = min(to, cp.Size)
		}
		leaves, err := l.store.TlogLeaves(ctx, from, to)
		if err != nil {
			return err
		}
		if err := rehash(leaves, from, to, rng); err != nil {
			return err
		}
		if err := atCheckpoint(); err != nil {
			return err
		}
		from = to
	}
	stored, err := l.rangeAt(ctx, size)
	if err != nil {
		return fmt.Errorf("%w: the tree of its %d entries is not stored: %v", ErrDamaged, size, err)
	}
	a, err := rootOf(rng)
	if err != nil {
		return err
	}
	b, err := rootOf(stored)
	if err != nil {
		return err
	}
	if !bytes.Equal(a, b) {
		return fmt.Errorf("%w: its %d entries do not hash to the stored tree's root", ErrDamaged, size)
	}
	return nil
}

// scrubState is the progress of the background integrity pass.
type scrubState struct {
	mu     sync.Mutex
	rng    *compact.Range // entries re-hashed in this pass; nil: none under way
	target uint64         // the pass ends at this size
	root   []byte         // the root the entries must hash to at target
	what   string         // where root comes from
}

// Scrub advances the background integrity pass by up to 4096 entries and
// reports whether it completed a pass. A pass re-hashes every entry from
// the first up to the last signed checkpoint (or, before one is signed,
// the stored tree), checks each against its stored leaf hash, and checks
// the root of the re-hashed entries against the checkpoint's. A failed
// check is recorded (see Health), logged and returned, wrapping
// ErrDamaged; other errors are read failures, and the next call retries.
func (l *Log) Scrub(ctx context.Context) (bool, error) {
	s := &l.scrub
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rng == nil {
		cp, err := l.store.TlogLatestCheckpoint(ctx)
		switch {
		case err == nil:
			s.target, s.root, s.what = cp.Size, cp.Root, "the last signed checkpoint"
		case errors.Is(err, ErrNotFound):
			rng, err := l.load(ctx)
			if err != nil {
				return false, err
			}
			root, err := rootOf(rng)
			if err != nil {
				return false, err
			}
			s.target, s.root, s.what = rng.End(), root, "the stored tree"
		default:
			return false, err
		}
		s.rng = factory.NewEmptyRange(0)
	}
	from := s.rng.End()
	to := min(from+scrubStep, s.target)
	leaves, err := l.store.TlogLeaves(ctx, from, to)
	if err != nil {
		return false, err
	}
	if err := rehash(leaves, from, to, s.rng); err != nil {
		s.rng = nil
		l.setFault(err)
		return true, err
	}
	if s.rng.End() < s.target {
		return false, nil
	}
	root, err := rootOf(s.rng)
	s.rng = nil
	if err != nil {
		return true, err
	}
	if !bytes.Equal(root, s.root) {
		err := fmt.Errorf("%w: its first %d entries do not hash to the root of %s", ErrDamaged, s.target, s.what)
		l.setFault(err)
		return true, err
	}
	return true, nil
}
