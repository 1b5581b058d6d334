package tlog

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Leaf is one stored entry.
type Leaf struct {
	Index uint64
	Entry []byte // canonical JSON
	Hash  []byte // RFC 6962 leaf hash of Entry
}

// Node is a stored node of the tree: the root hash of a perfect subtree
// (level 0: a leaf hash).
type Node struct {
	ID   compact.NodeID
	Hash []byte
}

// Query selects entries for Search. Empty fields match everything.
type Query struct {
	Repo, Digest, Actor, Action string
	Since, Until                time.Time
	// Before, when not zero, keeps the entries whose index is below it
	// (the cursor of a newest-first page).
	Before uint64
	// Newest orders the entries by index descending (newest first)
	// instead of ascending.
	Newest bool
	Limit  int
}

// ErrNotFound is returned by a Store when a leaf, node or checkpoint is
// absent.
var ErrNotFound = errors.New("tlog: not found")

// ErrAppendConflict is wrapped by the error of a Store's TlogAppend whose
// start is not the log's current size: another writer (a replica sharing
// the store) appended first, and nothing was written. A Log then reloads
// the tree from the store and appends its batch on top of it.
var ErrAppendConflict = errors.New("tlog: append conflict: another writer appended first")

// Store persists the log. It is implemented by the metadata stores
// (internal/meta/sqlite, internal/meta/postgres). Several Logs (one per
// replica) may share one Store's database: TlogAppend's start check keeps
// the entries one contiguous sequence, and each Log reloads the tree from
// the store when another appended first.
type Store interface {
	// TlogSize returns the number of stored leaves.
	TlogSize(ctx context.Context) (uint64, error)
	// TlogAppend stores leaves (numbered from start, which must be the
	// current size) and the tree nodes they complete, in one
	// transaction. Nodes may overwrite nodes of the same ID. If start is
	// not the current size (another writer appended first) it writes
	// nothing and returns an error wrapping ErrAppendConflict.
	TlogAppend(ctx context.Context, start uint64, leaves []Leaf, nodes []Node) error
	// TlogFillNodes stores the nodes that are not stored yet, keeping
	// existing ones.
	TlogFillNodes(ctx context.Context, nodes []Node) error
	// TlogLeaves returns the leaves with start <= index < end, in order.
	TlogLeaves(ctx context.Context, start, end uint64) ([]Leaf, error)
	// TlogNodes returns the hashes of the nodes ids, or ErrNotFound if one
	// is missing. A store may keep the nodes of levels 1 to 3 only as the
	// level-0 nodes they cover, and compute them from those (Derived):
	// such a node is missing when one of those is, and TlogAppend and
	// TlogFillNodes then do not store it.
	TlogNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error)
	// TlogLeafIndex returns the smallest index of a leaf with this hash.
	TlogLeafIndex(ctx context.Context, hash []byte) (uint64, error)
	// TlogSearch returns leaves matching q in index order (descending
	// when q.Newest).
	TlogSearch(ctx context.Context, q Query) ([]Leaf, error)
	// TlogPutCheckpoint stores a signed checkpoint.
	TlogPutCheckpoint(ctx context.Context, cp Checkpoint) error
	// TlogLatestCheckpoint returns the signed checkpoint of the largest
	// size, or ErrNotFound.
	TlogLatestCheckpoint(ctx context.Context) (Checkpoint, error)
}

// ErrInconsistent is returned when the tree is not an extension of the
// last checkpoint the log signed: the log refuses to sign it.
var ErrInconsistent = errors.New("tlog: tree is inconsistent with the last signed checkpoint")

var (
	hasher  = rfc6962.DefaultHasher
	factory = &compact.RangeFactory{Hash: hasher.HashChildren}
)

// Options configure Open.
type Options struct {
	Signer note.Signer
	// VerifierKey is the public key of Signer (note.NewVerifier format).
	VerifierKey string
	Log         *slog.Logger
	// BatchSize caps the entries written in one transaction (default 256).
	BatchSize int
	// Now is the clock for entry times (default time.Now).
	Now func() time.Time
}

// Log is the audit log. Append returns once its entry is stored: a
// background writer stores the entries waiting at that moment in one
// transaction (group commit), so concurrent appenders share a commit.
// The entries of a change to the metadata database that stores the log
// are instead appended inside the change's own transaction (Within).
//
// The log checks its own storage (see Health): at Open it re-hashes the
// entries since the last signed checkpoint and a tail before it, and Run
// re-hashes the whole log incrementally. Once a check fails the log
// refuses to sign checkpoints until it is reopened.
type Log struct {
	store  Store
	signer note.Signer
	vkey   string
	log    *slog.Logger
	batch  int
	now    func() time.Time

	queue  chan item
	done   chan struct{}
	qmu    sync.RWMutex // guards closed; held (read) while queueing
	closed bool

	mu  sync.Mutex // guards rng
	rng *compact.Range

	signMu sync.Mutex // serialises checkpoint signing

	fmu   sync.Mutex // guards fault
	fault error      // why the log's storage failed a check; nil: healthy

	scrub scrubState // the background integrity pass (Scrub)
}

type item struct {
	entries [][]byte   // stored in one batch
	done    chan error // receives the outcome of the entries' batch
	flush   chan struct{}
}

// Open loads the log's state from store and starts its writer. Close stops
// it.
func Open(ctx context.Context, store Store, opts Options) (*Log, error) {
	l := &Log{
		store:  store,
		signer: opts.Signer,
		vkey:   opts.VerifierKey,
		log:    opts.Log,
		batch:  opts.BatchSize,
		now:    opts.Now,
		queue:  make(chan item, 8192),
		done:   make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.batch <= 0 {
		l.batch = 256
	}
	if l.now == nil {
		l.now = time.Now
	}
	size, err := store.TlogSize(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	rng, err := l.rangeAt(ctx, size)
	if err != nil {
		l.log.Error("AUDIT LOG STORAGE IS DAMAGED: cannot load the tree's compact range; rebuilding it from the stored leaves", "size", size, "err", err)
		if rng, err = l.rebuild(ctx, size); err != nil {
			return nil, fmt.Errorf("audit log: rebuilding tree: %w", err)
		}
	}
	l.rng = rng
	if err := l.checkTail(ctx); errors.Is(err, ErrDamaged) {
		l.setFault(err)
	} else if err != nil {
		return nil, fmt.Errorf("audit log: checking its newest entries: %w", err)
	}
	go l.writer()
	return l, nil
}

// Origin returns the log's origin line (its key name).
func (l *Log) Origin() string { return l.signer.Name() }

// VerifierKey returns the log's public key.
func (l *Log) VerifierKey() string { return l.vkey }

// rangeAt loads the compact range [0, size) from stored nodes.
func (l *Log) rangeAt(ctx context.Context, size uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := l.store.TlogNodes(ctx, ids)
	if err != nil {
		return nil, err
	}
	return factory.NewRange(0, size, hashes)
}

// rebuild recomputes the tree from the leaves and stores the interior
// nodes that are missing. Existing nodes are kept: they are what earlier
// checkpoints committed to, which proofs against those checkpoints need.
func (l *Log) rebuild(ctx context.Context, size uint64) (*compact.Range, error) {
	leaves, err := l.store.TlogLeaves(ctx, 0, size)
	if err != nil {
		return nil, err
	}
	if uint64(len(leaves)) != size {
		return nil, fmt.Errorf("%d leaves stored, want %d (indexes not contiguous)", len(leaves), size)
	}
	rng := factory.NewEmptyRange(0)
	var nodes []Node
	for _, lf := range leaves {
		if err := rng.Append(lf.Hash, collect(&nodes)); err != nil {
			return nil, err
		}
	}
	if err := l.store.TlogFillNodes(ctx, nodes); err != nil {
		return nil, err
	}
	return rng, nil
}

// collect records every node of the tree, leaves included: the node table
// keeps the tree as it was when the entries were appended, and proofs are
// built only from it, so they show what earlier checkpoints committed to
// even if entries are changed. (A store may compute levels 1 to 3 from
// the level-0 nodes, see Store.TlogNodes: the same hashes, from the same
// table.)
func collect(nodes *[]Node) compact.VisitFn {
	return func(id compact.NodeID, hash []byte) {
		*nodes = append(*nodes, Node{ID: id, Hash: hash})
	}
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("tlog: the audit log is closed")

// Append stores entries, in order and in one transaction, and returns
// once they are durable (committed with the batch of entries waiting
// alongside them), or with the error that kept them from being stored,
// which is also logged with each entry.
func (l *Log) Append(es ...Entry) error {
	if len(es) == 0 {
		return nil
	}
	return l.enqueue(l.canonical(es))
}

// canonical returns the stored form of es: their canonical JSON, with the
// current time for those without one.
func (l *Log) canonical(es []Entry) [][]byte {
	bs := make([][]byte, len(es))
	for i, e := range es {
		if e.Time == "" {
			e.Time = FormatTime(l.now())
		}
		bs[i] = e.Canonical()
	}
	return bs
}

// AppendRaw stores leaves whose bytes are given as they are, for a log
// whose entries are not audit entries (internal/rekor's transparency log
// of signing events); otherwise as Append.
func (l *Log) AppendRaw(leaves ...[]byte) error {
	if len(leaves) == 0 {
		return nil
	}
	return l.enqueue(leaves)
}

// enqueue hands bs to the writer and waits for their batch's outcome.
func (l *Log) enqueue(bs [][]byte) error {
	done := make(chan error, 1)
	l.qmu.RLock()
	if l.closed {
		l.qmu.RUnlock()
		for _, b := range bs {
			l.log.Error("AUDIT ENTRY LOST: recorded after the audit log was closed", "entry", string(b))
		}
		return ErrClosed
	}
	l.queue <- item{entries: bs, done: done}
	l.qmu.RUnlock()
	return <-done
}

// Flush waits until every entry queued before it is stored.
func (l *Log) Flush() {
	c := make(chan struct{})
	l.qmu.RLock()
	if l.closed {
		l.qmu.RUnlock()
		return
	}
	l.queue <- item{flush: c}
	l.qmu.RUnlock()
	<-c
}

// Close stores the queued entries and stops the writer. It is idempotent.
func (l *Log) Close() {
	l.qmu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.qmu.Unlock()
	<-l.done
}

// writer stores entries in batches: it takes the first waiting entry and
// every other one already waiting (up to the batch size), without
// lingering, so an entry alone costs one commit and entries arriving
// while a commit runs share the next one.
func (l *Log) writer() {
	defer close(l.done)
	var (
		batch   [][]byte
		waiters []chan error
		flushes []chan struct{}
	)
	for it := range l.queue {
		batch, waiters, flushes = batch[:0], waiters[:0], flushes[:0]
		add := func(it item) {
			if it.flush != nil {
				flushes = append(flushes, it.flush)
				return
			}
			batch = append(batch, it.entries...)
			waiters = append(waiters, it.done)
		}
		add(it)
	gather:
		for len(batch) < l.batch {
			select {
			case it, ok := <-l.queue:
				if !ok {
					break gather
				}
				add(it)
			default:
				break gather
			}
		}
		var err error
		if len(batch) > 0 {
			err = l.write(batch)
		}
		for _, c := range waiters {
			c <- err
		}
		for _, c := range flushes {
			close(c)
		}
	}
}

// maxWriteFailures is how many times write tries a batch that fails with
// an error other than ErrAppendConflict before it gives the entries up.
const maxWriteFailures = 5

// write stores one batch. When another writer (a replica sharing the
// store) appended first, it reloads the tree at the store's size and
// appends the batch on top, without pausing and as often as that happens:
// each conflict means another writer made progress. Other errors are
// retried a few times with a growing pause, then the entries are logged as
// lost and the error is returned.
func (l *Log) write(batch [][]byte) error {
	ctx := context.Background()
	var (
		err      error
		base     *compact.Range // the tree to append to; nil: l's own
		failures int
	)
	for {
		if base == nil {
			l.mu.Lock()
			base = l.rng
			l.mu.Unlock()
		}
		var rng *compact.Range
		if rng, err = l.appendBatch(ctx, base, batch); err == nil {
			l.advance(rng)
			return nil
		}
		start := base.End()
		base = nil
		if errors.Is(err, ErrAppendConflict) {
			fresh, rerr := l.load(ctx)
			switch {
			case rerr != nil:
				err = fmt.Errorf("%w; reloading the tree: %w", err, rerr)
			case fresh.End() == start:
				// The store refused the start it reports as its size:
				// retrying would loop.
				err = fmt.Errorf("%w, but the store's size is still %d", err, start)
			default:
				base = fresh
				continue
			}
		}
		failures++
		if failures == maxWriteFailures {
			break
		}
		l.log.Warn("audit log: writing batch failed; retrying", "entries", len(batch), "err", err)
		time.Sleep(time.Duration(failures) * 50 * time.Millisecond)
	}
	for _, e := range batch {
		l.log.Error("AUDIT ENTRY LOST: could not be written to the audit log", "entry", string(e), "err", err)
	}
	return fmt.Errorf("audit log: storing %d entries: %w", len(batch), err)
}

// appendBatch stores batch on top of the tree base in one transaction and
// returns the new tree. base is not changed.
func (l *Log) appendBatch(ctx context.Context, base *compact.Range, batch [][]byte) (*compact.Range, error) {
	rng, leaves, nodes, err := extend(base, batch)
	if err != nil {
		return nil, err
	}
	if err := l.store.TlogAppend(ctx, base.End(), leaves, nodes); err != nil {
		return nil, err
	}
	return rng, nil
}

// extend returns the tree base (unchanged) extended by batch, and the
// leaves and nodes to store for it.
func extend(base *compact.Range, batch [][]byte) (*compact.Range, []Leaf, []Node, error) {
	rng, err := factory.NewRange(0, base.End(), append([][]byte(nil), base.Hashes()...))
	if err != nil {
		return nil, nil, nil, err
	}
	start := rng.End()
	leaves := make([]Leaf, len(batch))
	var nodes []Node
	for i, e := range batch {
		h := LeafHash(e)
		leaves[i] = Leaf{Index: start + uint64(i), Entry: e, Hash: h}
		if err := rng.Append(h, collect(&nodes)); err != nil {
			return nil, nil, nil, err
		}
	}
	return rng, leaves, nodes, nil
}

// advance makes rng l's tree if it is larger: l's tree never moves back,
// whichever of its appenders (the writer, a Pending append, a reload)
// finishes last.
func (l *Log) advance(rng *compact.Range) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rng.End() > l.rng.End() {
		l.rng = rng
	}
}

// load reads the store's size and loads the tree of that size.
func (l *Log) load(ctx context.Context) (*compact.Range, error) {
	size, err := l.store.TlogSize(ctx)
	if err != nil {
		return nil, err
	}
	rng, err := l.rangeAt(ctx, size)
	if err != nil {
		return nil, fmt.Errorf("loading the tree of size %d: %w", size, err)
	}
	return rng, nil
}

// refresh catches up with the entries other writers (replicas sharing the
// store) appended: when the store holds more entries than l's tree, it
// loads the store's tree. It never moves l's tree back. It returns l's
// size.
func (l *Log) refresh(ctx context.Context) (uint64, error) {
	size, err := l.store.TlogSize(ctx)
	l.mu.Lock()
	cur := l.rng.End()
	l.mu.Unlock()
	if err != nil {
		return cur, err
	}
	if size <= cur {
		return cur, nil
	}
	rng, err := l.rangeAt(ctx, size)
	if err != nil {
		return cur, fmt.Errorf("loading the tree of size %d: %w", size, err)
	}
	l.advance(rng)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.End(), nil
}

// sizeAtLeast returns l's size, first catching up with other writers when
// the caller asks about a tree larger than l's.
func (l *Log) sizeAtLeast(ctx context.Context, want uint64) (uint64, error) {
	l.mu.Lock()
	cur := l.rng.End()
	l.mu.Unlock()
	if want <= cur {
		return cur, nil
	}
	return l.refresh(ctx)
}

// Size returns the number of stored entries, including those other
// writers sharing the store appended. If the store cannot be read, it
// returns the size l last knew (and logs why).
func (l *Log) Size() uint64 {
	n, err := l.refresh(context.Background())
	if err != nil {
		l.log.Warn("audit log: reading the size from the store failed; answering with the last known size", "size", n, "err", err)
	}
	return n
}

func rootOf(r *compact.Range) ([]byte, error) {
	if r.End() == 0 {
		return hasher.EmptyRoot(), nil
	}
	return r.GetRootHash(nil)
}

// tooLarge is the error for a tree size beyond the log's.
func tooLarge(size, have uint64, err error) error {
	if err != nil {
		return fmt.Errorf("tree size %d is larger than the log (%d) as far as it could read it: %w", size, have, err)
	}
	return fmt.Errorf("tree size %d is larger than the log (%d)", size, have)
}

// RootAt returns the root hash of the tree of the given size (at most the
// current size).
func (l *Log) RootAt(ctx context.Context, size uint64) ([]byte, error) {
	if have, err := l.sizeAtLeast(ctx, size); size > have {
		return nil, tooLarge(size, have, err)
	}
	rng, err := l.rangeAt(ctx, size)
	if err != nil {
		return nil, err
	}
	return rootOf(rng)
}

// InclusionProof returns the inclusion proof of leaf index in the tree of
// the given size.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if have, err := l.sizeAtLeast(ctx, size); size > have {
		return nil, tooLarge(size, have, err)
	}
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return l.fetch(ctx, n)
}

// ConsistencyProof returns the consistency proof between the trees of
// sizes from and to.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	if have, err := l.sizeAtLeast(ctx, to); to > have {
		return nil, tooLarge(to, have, err)
	}
	n, err := proof.Consistency(from, to)
	if err != nil {
		return nil, err
	}
	return l.fetch(ctx, n)
}

func (l *Log) fetch(ctx context.Context, n proof.Nodes) ([][]byte, error) {
	hashes, err := l.store.TlogNodes(ctx, n.IDs)
	if err != nil {
		return nil, err
	}
	return n.Rehash(hashes, hasher.HashChildren)
}

// Hashes returns the stored hashes of the tree's nodes ids (as tiles
// serve them, C2SP tlog-tiles), or an error wrapping ErrNotFound if one
// is missing.
func (l *Log) Hashes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	return l.store.TlogNodes(ctx, ids)
}

// LeafIndex returns the index of the leaf with the given hash.
func (l *Log) LeafIndex(ctx context.Context, hash []byte) (uint64, error) {
	return l.store.TlogLeafIndex(ctx, hash)
}

// Leaves returns the stored leaves in [start, end), read from the store
// (so including those other writers appended).
func (l *Log) Leaves(ctx context.Context, start, end uint64) ([]Leaf, error) {
	return l.store.TlogLeaves(ctx, start, end)
}

// Search returns the leaves matching q.
func (l *Log) Search(ctx context.Context, q Query) ([]Leaf, error) {
	return l.store.TlogSearch(ctx, q)
}

// Latest returns the latest signed checkpoint, or ErrNotFound. Another
// writer sharing the store may have signed it: l first catches up with
// the store, so that it can prove inclusion and consistency up to the
// checkpoint's size.
func (l *Log) Latest(ctx context.Context) (Checkpoint, error) {
	cp, err := l.store.TlogLatestCheckpoint(ctx)
	if err != nil {
		return cp, err
	}
	if _, err := l.sizeAtLeast(ctx, cp.Size); err != nil {
		l.log.Warn("audit log: catching up with the store failed", "err", err)
	}
	return cp, nil
}

// Checkpoint signs and stores a checkpoint of the stored tree (reloaded
// from the store, so including what other writers appended), unless the
// tree has not grown since the last checkpoint, which it then returns; a
// checkpoint of the same tree stored by another writer at the same moment
// also counts as done. It refuses (ErrInconsistent) to sign a tree that
// is not an extension of the last signed checkpoint, and logs that
// loudly.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	l.signMu.Lock()
	defer l.signMu.Unlock()
	if err := l.Health(); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrInconsistent, err)
	}
	// The last checkpoint is read before the tree: the stored tree only
	// grows, so it is then at least as large as any checkpoint signed by
	// another writer.
	last, err := l.store.TlogLatestCheckpoint(ctx)
	haveLast := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Checkpoint{}, err
	}
	l.mu.Lock()
	mine := l.rng
	l.mu.Unlock()
	rng, err := l.load(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit log: %w", err)
	}
	size := rng.End()
	root, err := rootOf(rng)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := l.extendsMine(ctx, mine, size, root); errors.Is(err, ErrDamaged) {
		l.setFault(err)
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrInconsistent, err)
	} else if err != nil {
		return Checkpoint{}, fmt.Errorf("audit log: %w", err)
	}
	l.advance(rng)
	if haveLast {
		if err := l.consistent(ctx, last, size, root); err != nil {
			return Checkpoint{}, l.refuse(last, size, root, err)
		}
		if last.Size == size {
			return last, nil
		}
	}
	body := CheckpointBody(l.signer.Name(), size, root)
	msg, err := note.Sign(&note.Note{Text: body}, l.signer)
	if err != nil {
		return Checkpoint{}, err
	}
	cp := Checkpoint{Origin: l.signer.Name(), Size: size, Root: root, Note: msg}
	perr := l.store.TlogPutCheckpoint(ctx, cp)
	if perr == nil {
		return cp, nil
	}
	// Another writer may have stored a checkpoint of this size first (the
	// store keeps one per size): that is done, if it is of the same tree.
	other, err := l.store.TlogLatestCheckpoint(ctx)
	if err != nil || other.Size < size {
		return Checkpoint{}, perr
	}
	if other.Origin != "" && other.Origin != l.signer.Name() {
		return Checkpoint{}, l.refuse(other, size, root, fmt.Errorf("checkpoint has origin %q, the log key %q", other.Origin, l.signer.Name()))
	}
	if other.Size == size {
		if !bytes.Equal(other.Root, root) {
			return Checkpoint{}, l.refuse(other, size, root, fmt.Errorf("root at size %d differs from the signed root", size))
		}
		return other, nil
	}
	// Another writer signed a larger tree meanwhile: it must extend the
	// one l read.
	p, err := l.ConsistencyProof(ctx, size, other.Size)
	if err == nil {
		err = proof.VerifyConsistency(hasher, size, other.Size, p, root, other.Root)
	}
	if err != nil {
		return Checkpoint{}, l.refuse(other, size, root, fmt.Errorf("checkpoint of size %d does not extend the tree of size %d: %w", other.Size, size, err))
	}
	return other, nil
}

// extendsMine checks that the stored tree (size, root) extends mine, the
// tree l appended or loaded before: entries since the last checkpoint
// that were rewritten in the store while l ran, with their leaf hashes
// and nodes, are not signed. Its error wraps ErrDamaged.
func (l *Log) extendsMine(ctx context.Context, mine *compact.Range, size uint64, root []byte) error {
	if mine.End() == 0 || mine.End() > size {
		return nil // nothing to compare (a store shorter than a checkpoint is refused below)
	}
	r, err := rootOf(mine)
	if err != nil {
		return err
	}
	if mine.End() == size {
		err = nil
		if !bytes.Equal(r, root) {
			err = errors.New("the roots differ")
		}
	} else {
		// Not ConsistencyProof: it would make the stored tree l's first.
		n, perr := proof.Consistency(mine.End(), size)
		var p [][]byte
		if perr == nil {
			p, perr = l.fetch(ctx, n)
		}
		if perr != nil {
			return fmt.Errorf("building consistency proof %d -> %d: %w", mine.End(), size, perr)
		}
		err = proof.VerifyConsistency(hasher, mine.End(), size, p, r, root)
	}
	if err != nil {
		return fmt.Errorf("%w: the stored tree of %d entries does not extend the tree of %d this log appended: %v", ErrDamaged, size, mine.End(), err)
	}
	return nil
}

// refuse logs and returns the error of a tree (size, root) inconsistent
// with the signed checkpoint last.
func (l *Log) refuse(last Checkpoint, size uint64, root []byte, err error) error {
	l.log.Error("REFUSING TO SIGN AUDIT CHECKPOINT: the log is inconsistent with the last checkpoint it signed (tampering or rollback?)",
		"last_size", last.Size, "last_root", hex.EncodeToString(last.Root),
		"size", size, "root", hex.EncodeToString(root), "err", err)
	l.markFault(fmt.Errorf("%w: %v", ErrDamaged, err))
	return fmt.Errorf("%w: %v", ErrInconsistent, err)
}

// consistent checks that the tree (size, root) extends last.
func (l *Log) consistent(ctx context.Context, last Checkpoint, size uint64, root []byte) error {
	if last.Origin != "" && last.Origin != l.signer.Name() {
		return fmt.Errorf("last checkpoint has origin %q, the log key %q", last.Origin, l.signer.Name())
	}
	if size < last.Size {
		return fmt.Errorf("tree size %d is smaller than the last signed size %d", size, last.Size)
	}
	if size == last.Size {
		if !bytes.Equal(root, last.Root) {
			return fmt.Errorf("root at size %d differs from the signed root", size)
		}
		return nil
	}
	p, err := l.ConsistencyProof(ctx, last.Size, size)
	if err != nil {
		return fmt.Errorf("building consistency proof %d -> %d: %w", last.Size, size, err)
	}
	return proof.VerifyConsistency(hasher, last.Size, size, p, last.Root, root)
}

// ScrubInterval is how often Run advances the background integrity pass
// (Scrub) by one step, and ScrubPause how long it rests after a pass.
const (
	ScrubInterval = time.Second
	ScrubPause    = 10 * time.Minute
)

// Run signs a checkpoint every interval when the tree has grown (never,
// if interval is not positive), and walks the whole log with Scrub, until
// ctx is cancelled. Several writers sharing the store may each run it.
func (l *Log) Run(ctx context.Context, interval time.Duration) {
	var sign <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		sign = t.C
	}
	scrub := time.NewTicker(ScrubInterval)
	defer scrub.Stop()
	var rest time.Time // no pass before then
	for {
		select {
		case <-ctx.Done():
			return
		case <-scrub.C:
			if time.Now().Before(rest) {
				continue
			}
			done, err := l.Scrub(ctx)
			if err != nil && !errors.Is(err, ErrDamaged) {
				l.log.Warn("audit log: integrity pass: reading the log failed", "err", err)
			}
			if done {
				rest = time.Now().Add(ScrubPause)
			}
		case <-sign:
			size, err := l.store.TlogSize(ctx)
			if err != nil {
				l.log.Warn("audit log: reading the size failed", "err", err)
				continue
			}
			if size == 0 {
				continue
			}
			if last, err := l.store.TlogLatestCheckpoint(ctx); err == nil && last.Size == size {
				continue
			}
			if _, err := l.Checkpoint(ctx); err != nil && !errors.Is(err, ErrInconsistent) {
				l.log.Warn("audit log: signing checkpoint failed", "err", err)
			}
		}
	}
}

// DerivedLevels bounds the levels a Store may keep only as the level-0
// nodes they cover (see Store.TlogNodes): a node of level 1 to
// DerivedLevels-1 covers at most 2^(DerivedLevels-1) leaves, and
// SubtreeHash computes it from their level-0 nodes. Level 0 is always
// stored: the leaf hashes as appended, apart from the leaves table, are
// what proofs against earlier checkpoints are built from. Storing levels
// 1 to 3 was about one more node row per appended entry.
const DerivedLevels = 4

// Derived reports whether a Store may compute node id from the level-0
// nodes it covers instead of storing it (DerivedLevels).
func Derived(id compact.NodeID) bool { return id.Level > 0 && id.Level < DerivedLevels }

// NodeInRange reports whether every leaf of node id has an index below
// 2^63, the limit of a store's (signed 64-bit) indexes. A Store answers
// ErrNotFound for a node beyond: arithmetic on its leaf indexes or its
// level would wrap round to another node.
func NodeInRange(id compact.NodeID) bool {
	return id.Level <= 63 && id.Index < 1<<(63-id.Level)
}

// SubtreeHash returns the hash of the node whose leaves, in order, have
// the hashes hashes: a power of two of them. It reuses hashes' storage.
func SubtreeHash(hashes [][]byte) ([]byte, error) {
	n := len(hashes)
	if n == 0 || n&(n-1) != 0 {
		return nil, fmt.Errorf("tlog: %d leaf hashes do not make a node", n)
	}
	for ; n > 1; n /= 2 {
		for i := range n / 2 {
			hashes[i] = hasher.HashChildren(hashes[2*i], hashes[2*i+1])
		}
	}
	return hashes[0], nil
}
