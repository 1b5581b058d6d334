package metatest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/internal/tlog"
)

// RunTlog is the conformance suite for tlog.Store: directly, through a
// tlog.Log, and with two replicas appending to one log at once, through
// the store and through two tlog.Logs.
func RunTlog(t *testing.T, open Replicas[tlog.Store]) {
	runSuite(t, open, []subtest[tlog.Store]{
		{"Empty", testTlogEmpty},
		{"LogRoundTrip", testTlogRoundTrip},
		{"Search", testTlogSearch},
		{"AppendAtWrongStart", testTlogAppendAtWrongStart},
		{"FillNodesKeepsExisting", testTlogFillNodes},
		{"EveryNodeAsAppended", testTlogEveryNode},
		{"NodesFromLeaves", testTlogNodesFromLeaves},
		{"ConcurrentAppends", testTlogConcurrentAppends},
		{"LogReplicas", testTlogLogReplicas},
	})
}

var tlogFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// openLog opens a tlog.Log on s with a new key and the clock now.
func openLog(t *testing.T, s tlog.Store, now func() time.Time) *tlog.Log {
	t.Helper()
	signer, vkey, err := tlog.LoadOrCreateKey(t.TempDir(), "custody/metatest")
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.Open(t.Context(), s, tlog.Options{Signer: signer, VerifierKey: vkey, Now: now})
	if err != nil {
		t.Fatalf("tlog.Open: %v", err)
	}
	t.Cleanup(l.Close)
	return l
}

// leavesFor builds the leaves and nodes that extend the tree of size
// start, whose compact range is hashes, by entries.
func leavesFor(t *testing.T, start uint64, hashes [][]byte, entries [][]byte) ([]tlog.Leaf, []tlog.Node) {
	t.Helper()
	// The range appends into the slice it is given: give it a copy.
	rng, err := tlogFactory.NewRange(0, start, slices.Clone(hashes))
	if err != nil {
		t.Fatal(err)
	}
	var (
		leaves []tlog.Leaf
		nodes  []tlog.Node
	)
	for i, e := range entries {
		h := tlog.LeafHash(e)
		leaves = append(leaves, tlog.Leaf{Index: start + uint64(i), Entry: e, Hash: h})
		if err := rng.Append(h, func(id compact.NodeID, hash []byte) {
			nodes = append(nodes, tlog.Node{ID: id, Hash: hash})
		}); err != nil {
			t.Fatal(err)
		}
	}
	return leaves, nodes
}

func testTlogEmpty(t *testing.T, open Replicas[tlog.Store]) {
	s := one(t, open)
	ctx := t.Context()
	if n, err := s.TlogSize(ctx); err != nil || n != 0 {
		t.Fatalf("TlogSize of an empty log = %d, %v", n, err)
	}
	if _, err := s.TlogLatestCheckpoint(ctx); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("TlogLatestCheckpoint of an empty log: %v, want tlog.ErrNotFound", err)
	}
	if _, err := s.TlogLeafIndex(ctx, tlog.LeafHash([]byte("x"))); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("TlogLeafIndex of an absent leaf: %v, want tlog.ErrNotFound", err)
	}
	if _, err := s.TlogNodes(ctx, []compact.NodeID{compact.NewNodeID(0, 0)}); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("TlogNodes of an absent node: %v, want tlog.ErrNotFound", err)
	}
	if hs, err := s.TlogNodes(ctx, nil); err != nil || len(hs) != 0 {
		t.Fatalf("TlogNodes(nil) = %v, %v", hs, err)
	}
	if ls, err := s.TlogLeaves(ctx, 0, 10); err != nil || len(ls) != 0 {
		t.Fatalf("TlogLeaves of an empty log = %v, %v", ls, err)
	}
}

func testTlogRoundTrip(t *testing.T, open Replicas[tlog.Store]) {
	s := one(t, open)
	ctx := t.Context()
	l := openLog(t, s, nil)
	var entries [][]byte
	appendN := func(n int) {
		for range n {
			e := tlog.Entry{Action: "manifest.put", Actor: "alice", Auth: "basic", Repo: fmt.Sprint("team/app", len(entries)%7),
				Result: "ok", Reason: "<&> \u2028 é", Time: tlog.FormatTime(time.Now())}
			entries = append(entries, e.Canonical())
			l.Append(e)
		}
		l.Flush()
	}
	appendN(300)
	cp1, err := l.Checkpoint(ctx)
	if err != nil || cp1.Size != 300 {
		t.Fatalf("Checkpoint = %+v, %v", cp1, err)
	}
	appendN(213)
	cp2, err := l.Checkpoint(ctx)
	if err != nil || cp2.Size != 513 {
		t.Fatalf("Checkpoint = %+v, %v", cp2, err)
	}
	latest, err := s.TlogLatestCheckpoint(ctx)
	if err != nil || latest.Size != 513 || !bytes.Equal(latest.Root, cp2.Root) || !bytes.Equal(latest.Note, cp2.Note) ||
		latest.Origin != "custody/metatest" {
		t.Fatalf("TlogLatestCheckpoint = %+v, %v; want the second checkpoint with its origin", latest, err)
	}
	if n, err := s.TlogSize(ctx); err != nil || n != 513 {
		t.Fatalf("TlogSize = %d, %v", n, err)
	}
	leaves, err := s.TlogLeaves(ctx, 0, 1000)
	if err != nil || len(leaves) != 513 {
		t.Fatalf("TlogLeaves = %d leaves, %v", len(leaves), err)
	}
	hashes := make([][]byte, len(leaves))
	for i, lf := range leaves {
		if lf.Index != uint64(i) || !bytes.Equal(lf.Entry, entries[i]) || !bytes.Equal(lf.Hash, tlog.LeafHash(entries[i])) {
			t.Fatalf("leaf %d = {%d %q}, want {%d %q} byte for byte", i, lf.Index, lf.Entry, i, entries[i])
		}
		hashes[i] = lf.Hash
	}
	if part, err := s.TlogLeaves(ctx, 100, 103); err != nil || len(part) != 3 || part[0].Index != 100 {
		t.Fatalf("TlogLeaves(100, 103) = %v, %v", part, err)
	}
	if root := tlog.RootFromLeafHashes(hashes); !bytes.Equal(root, cp2.Root) {
		t.Fatal("root recomputed from the stored leaves differs from the checkpoint")
	}
	for _, i := range []uint64{0, 1, 255, 256, 299, 512} {
		p, err := l.InclusionProof(ctx, i, 513)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, 513, hashes[i], p, cp2.Root); err != nil {
			t.Fatalf("inclusion proof of %d: %v", i, err)
		}
		if idx, err := s.TlogLeafIndex(ctx, hashes[i]); err != nil || idx > i {
			t.Fatalf("TlogLeafIndex(leaf %d) = %d, %v", i, idx, err)
		}
	}
	p, err := l.ConsistencyProof(ctx, 300, 513)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 300, 513, p, cp1.Root, cp2.Root); err != nil {
		t.Fatal(err)
	}
	// A log opened again on the store (a restart, or another replica)
	// has the same tree.
	l.Close()
	l2 := openLog(t, s, nil)
	if l2.Size() != 513 {
		t.Fatalf("reopened log has size %d, want 513", l2.Size())
	}
	if root, err := l2.RootAt(ctx, 513); err != nil || !bytes.Equal(root, cp2.Root) {
		t.Fatalf("reopened log's root = %x, %v; want %x", root, err, cp2.Root)
	}
}

func testTlogSearch(t *testing.T, open Replicas[tlog.Store]) {
	s := one(t, open)
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := openLog(t, s, nil)
	for i := range 20 {
		l.Append(tlog.Entry{Action: "manifest.put", Actor: fmt.Sprint("user", i%2), Auth: "basic",
			Repo: fmt.Sprint("repo", i%4), Digest: fmt.Sprint("sha256:", i%5), Result: "ok",
			Time: tlog.FormatTime(t0.Add(time.Duration(i) * time.Minute))})
	}
	l.Flush()
	search := func(q tlog.Query) []uint64 {
		t.Helper()
		ls, err := s.TlogSearch(ctx, q)
		if err != nil {
			t.Fatalf("TlogSearch(%+v): %v", q, err)
		}
		var idx []uint64
		for _, lf := range ls {
			idx = append(idx, lf.Index)
		}
		return idx
	}
	check := func(q tlog.Query, want ...uint64) {
		t.Helper()
		if got := search(q); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("TlogSearch(%+v) = %v, want %v", q, got, want)
		}
	}
	check(tlog.Query{Repo: "repo1"}, 1, 5, 9, 13, 17)
	check(tlog.Query{Repo: "repo1", Actor: "user1"}, 1, 5, 9, 13, 17)
	check(tlog.Query{Repo: "repo1", Actor: "user0"})
	check(tlog.Query{Digest: "sha256:3"}, 3, 8, 13, 18)
	check(tlog.Query{Since: t0.Add(15 * time.Minute)}, 15, 16, 17, 18, 19)
	check(tlog.Query{Since: t0.Add(2 * time.Minute), Until: t0.Add(5 * time.Minute)}, 2, 3, 4)
	check(tlog.Query{Actor: "user0", Limit: 3}, 0, 2, 4)
	check(tlog.Query{Repo: "nothing"})
	if got := search(tlog.Query{}); len(got) != 20 {
		t.Fatalf("TlogSearch of everything = %d leaves, want 20", len(got))
	}
	// Action, and newest-first pages with an index cursor.
	l.Append(tlog.Entry{Action: "tag.set", Actor: "user1", Auth: "basic", Repo: "repo1", Result: "ok", Time: tlog.FormatTime(t0.Add(time.Hour))})
	l.Flush()
	check(tlog.Query{Action: "tag.set"}, 20)
	check(tlog.Query{Action: "manifest.put", Repo: "repo1", Newest: true}, 17, 13, 9, 5, 1)
	check(tlog.Query{Repo: "repo1", Newest: true, Limit: 2}, 20, 17)
	check(tlog.Query{Repo: "repo1", Newest: true, Limit: 2, Before: 17}, 13, 9)
	check(tlog.Query{Repo: "repo1", Before: 9}, 1, 5)
	check(tlog.Query{Action: "nothing"})
}

func testTlogAppendAtWrongStart(t *testing.T, open Replicas[tlog.Store]) {
	s := one(t, open)
	ctx := t.Context()
	leaves, nodes := leavesFor(t, 0, nil, [][]byte{[]byte(`{"n":0}`), []byte(`{"n":1}`)})
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	hashes, err := s.TlogNodes(ctx, compact.RangeNodes(0, 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	// Appends built on a stale or a wrong size must fail and write nothing.
	for _, start := range []uint64{0, 1, 3} {
		var base [][]byte
		if start > 0 {
			base = hashes[:1] // any range of that size will do: nothing may be stored
			if start == 3 {
				base = append([][]byte{hashes[0]}, tlog.LeafHash([]byte("x")))
			}
		}
		ls, ns := leavesFor(t, start, base, [][]byte{[]byte(`{"n":"stale"}`), []byte(`{"n":"stale2"}`)})
		if err := s.TlogAppend(ctx, start, ls, ns); err == nil {
			t.Fatalf("TlogAppend at %d on a log of 2 entries succeeded", start)
		}
	}
	if n, err := s.TlogSize(ctx); err != nil || n != 2 {
		t.Fatalf("TlogSize after refused appends = %d, %v; want 2", n, err)
	}
	all, err := s.TlogLeaves(ctx, 0, 100)
	if err != nil || len(all) != 2 || string(all[0].Entry) != `{"n":0}` || string(all[1].Entry) != `{"n":1}` {
		t.Fatalf("TlogLeaves after refused appends = %v, %v; want the two first entries unchanged", all, err)
	}
	if _, err := s.TlogLeafIndex(ctx, tlog.LeafHash([]byte(`{"n":"stale"}`))); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("a refused append left a leaf behind: %v", err)
	}
	if _, err := s.TlogNodes(ctx, []compact.NodeID{compact.NewNodeID(0, 2)}); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("a refused append left node 0/2 behind: %v", err)
	}
	again, err := s.TlogNodes(ctx, compact.RangeNodes(0, 2, nil))
	if err != nil || !bytes.Equal(again[0], hashes[0]) {
		t.Fatalf("a refused append changed stored nodes: %x, %v", again, err)
	}
	// The right start still works.
	ls, ns := leavesFor(t, 2, hashes, [][]byte{[]byte(`{"n":2}`)})
	if err := s.TlogAppend(ctx, 2, ls, ns); err != nil {
		t.Fatalf("TlogAppend at the current size: %v", err)
	}
	if n, err := s.TlogSize(ctx); err != nil || n != 3 {
		t.Fatalf("TlogSize = %d, %v; want 3", n, err)
	}
}

func testTlogFillNodes(t *testing.T, open Replicas[tlog.Store]) {
	s := one(t, open)
	ctx := t.Context()
	leaves, nodes := leavesFor(t, 0, nil, [][]byte{[]byte(`{"n":0}`), []byte(`{"n":1}`)})
	if err := s.TlogAppend(ctx, 0, leaves, nodes); err != nil {
		t.Fatal(err)
	}
	root := compact.NewNodeID(1, 0)
	before, err := s.TlogNodes(ctx, []compact.NodeID{root})
	if err != nil {
		t.Fatal(err)
	}
	// Level 20: a store may compute low nodes from the leaves instead of
	// storing them (see tlog.Store).
	extra := compact.NewNodeID(20, 7)
	if err := s.TlogFillNodes(ctx, []tlog.Node{{ID: root, Hash: []byte("other")}, {ID: extra, Hash: []byte("new")}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.TlogNodes(ctx, []compact.NodeID{extra, root})
	if err != nil {
		t.Fatal(err)
	}
	if string(got[0]) != "new" || !bytes.Equal(got[1], before[0]) {
		t.Fatalf("TlogNodes after TlogFillNodes = %q; want the new node stored and the existing one kept", got)
	}
}

// testTlogEveryNode appends 100 leaves in uneven batches and reads back
// every node the appends completed, of every level (a store may compute
// levels 1 to 3 from the level-0 nodes, tlog.Derived), as the
// appends computed them; nodes over leaves not appended yet are missing.
func testTlogEveryNode(t *testing.T, open Replicas[tlog.Store]) {
	s := one(t, open)
	ctx := t.Context()
	var (
		hashes [][]byte
		all    []tlog.Node
		size   uint64
	)
	for _, n := range []int{1, 6, 9, 16, 17, 51} {
		var entries [][]byte
		for i := range n {
			entries = append(entries, fmt.Appendf(nil, `{"n":%d}`, size+uint64(i)))
		}
		leaves, nodes := leavesFor(t, size, hashes, entries)
		if err := s.TlogAppend(ctx, size, leaves, nodes); err != nil {
			t.Fatal(err)
		}
		all = append(all, nodes...)
		size += uint64(n)
		var err error
		if hashes, err = s.TlogNodes(ctx, compact.RangeNodes(0, size, nil)); err != nil {
			t.Fatalf("the compact range of size %d: %v", size, err)
		}
	}
	ids := make([]compact.NodeID, len(all))
	for i, n := range all {
		ids[i] = n.ID
	}
	got, err := s.TlogNodes(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range all {
		if !bytes.Equal(got[i], n.Hash) {
			t.Fatalf("node %d/%d differs from the one the append computed", n.ID.Level, n.ID.Index)
		}
	}
	for _, id := range []compact.NodeID{
		compact.NewNodeID(0, 100), compact.NewNodeID(2, 25), compact.NewNodeID(3, 12), compact.NewNodeID(4, 6),
		// Beyond any index an int64 holds: not aliases of stored nodes.
		compact.NewNodeID(0, 1<<62), compact.NewNodeID(3, 1<<61), compact.NewNodeID(3, 1<<63),
		compact.NewNodeID(4, 1<<60), compact.NewNodeID(5, 1<<63|1), compact.NewNodeID(63, 0),
	} {
		if _, err := s.TlogNodes(ctx, []compact.NodeID{compact.NewNodeID(0, 0), id}); !errors.Is(err, tlog.ErrNotFound) {
			t.Fatalf("node %d/%d of a log of 100 leaves: %v, want tlog.ErrNotFound", id.Level, id.Index, err)
		}
	}
}

// testTlogNodesFromLeaves grows a log in batches that start and end on
// either side of 16-leaf boundaries (sizes 1, 15, 16, 17 among them) and,
// at every size, reads every node of levels 0 to 7 in one call, shuffled
// and with repeats: each must be the root of its leaves as a compact
// range of the leaf hashes computes it, and a node over a leaf not
// appended yet, or whose leaves lie beyond the largest index (node
// indexes near the integer limits), must be missing.
func testTlogNodesFromLeaves(t *testing.T, open Replicas[tlog.Store]) {
	s := one(t, open)
	ctx := t.Context()
	rnd := rand.New(rand.NewPCG(1, 2))
	var (
		hashes       [][]byte // leaf hashes
		compactRange [][]byte
		size         uint64
	)
	// node returns the hash of id as a compact range over its leaves
	// computes it.
	node := func(id compact.NodeID) []byte {
		begin, end := id.Index<<id.Level, (id.Index+1)<<id.Level
		r := tlogFactory.NewEmptyRange(begin)
		var out []byte
		for _, h := range hashes[begin:end] {
			if err := r.Append(h, func(got compact.NodeID, h []byte) {
				if got == id {
					out = h
				}
			}); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	missing := func(id compact.NodeID) {
		t.Helper()
		if hs, err := s.TlogNodes(ctx, []compact.NodeID{id}); !errors.Is(err, tlog.ErrNotFound) {
			t.Fatalf("node %d/%d of a log of %d leaves = %x, %v; want tlog.ErrNotFound", id.Level, id.Index, size, hs, err)
		}
	}
	batches := []int{1, 14, 1, 1, 6, 9, 8, 16, 17, 3}
	for range 8 {
		batches = append(batches, 1+rnd.IntN(20))
	}
	for _, n := range batches {
		var entries [][]byte
		for i := range n {
			entries = append(entries, fmt.Appendf(nil, `{"n":%d}`, size+uint64(i)))
		}
		leaves, nodes := leavesFor(t, size, compactRange, entries)
		if err := s.TlogAppend(ctx, size, leaves, nodes); err != nil {
			t.Fatal(err)
		}
		for _, l := range leaves {
			hashes = append(hashes, l.Hash)
		}
		size += uint64(n)
		var ids []compact.NodeID
		for level := range uint(8) {
			for i := uint64(0); (i+1)<<level <= size; i++ {
				ids = append(ids, compact.NewNodeID(level, i))
			}
			missing(compact.NewNodeID(level, size>>level))
		}
		ids = append(ids, ids[:len(ids)/3]...)
		rnd.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		got, err := s.TlogNodes(ctx, ids)
		if err != nil {
			t.Fatalf("the nodes of a log of %d leaves: %v", size, err)
		}
		for i, id := range ids {
			if want := node(id); want == nil || !bytes.Equal(got[i], want) {
				t.Fatalf("node %d/%d of a log of %d leaves = %x, want %x", id.Level, id.Index, size, got[i], want)
			}
		}
		if compactRange, err = s.TlogNodes(ctx, compact.RangeNodes(0, size, nil)); err != nil {
			t.Fatalf("the compact range of size %d: %v", size, err)
		}
	}
	for level := range uint(64) {
		// Indexes whose first leaf is beyond 2^63-1.
		for _, i := range []uint64{1 << (63 - level), 1<<(63-level) + 1, 1 << (64 - level), ^uint64(0) >> level, ^uint64(0)} {
			if i >= 1<<(63-level) {
				missing(compact.NewNodeID(level, i))
			}
		}
	}
	// Levels beyond 63 (and beyond 32 bits).
	for _, level := range []uint{64, 1 << 32, 1<<32 + 4, ^uint(0)} {
		for _, i := range []uint64{0, 1, 1 << 60} {
			missing(compact.NewNodeID(level, i))
		}
	}
}

// testTlogConcurrentAppends has two replicas append batches to one log at
// once, each building on the size and tree it reads from the store and
// starting over when another replica appended first (as tlog.Log must do
// when several replicas share a log). The result must be one contiguous
// sequence holding every entry once, whose tree a tlog.Log can prove.
func testTlogConcurrentAppends(t *testing.T, open Replicas[tlog.Store]) {
	ss := open(t, 2)
	ctx := t.Context()
	const (
		batches = 15
		batch   = 3
	)
	conflicts := make([]int, len(ss))
	errs := make([]error, len(ss))
	concurrently(len(ss), func(r int) {
		s := ss[r]
		for b := 0; b < batches; {
			size, err := s.TlogSize(ctx)
			if err != nil {
				errs[r] = err
				return
			}
			hashes, err := s.TlogNodes(ctx, compact.RangeNodes(0, size, nil))
			if err != nil {
				errs[r] = fmt.Errorf("nodes of the tree of size %d: %w", size, err)
				return
			}
			var entries [][]byte
			for i := range batch {
				entries = append(entries, fmt.Appendf(nil, `{"replica":%d,"batch":%d,"n":%d}`, r, b, i))
			}
			rng, err := tlogFactory.NewRange(0, size, hashes)
			if err != nil {
				errs[r] = err
				return
			}
			var (
				leaves []tlog.Leaf
				nodes  []tlog.Node
			)
			for i, e := range entries {
				h := tlog.LeafHash(e)
				leaves = append(leaves, tlog.Leaf{Index: size + uint64(i), Entry: e, Hash: h})
				if err := rng.Append(h, func(id compact.NodeID, hash []byte) {
					nodes = append(nodes, tlog.Node{ID: id, Hash: hash})
				}); err != nil {
					errs[r] = err
					return
				}
			}
			if err := s.TlogAppend(ctx, size, leaves, nodes); err != nil {
				now, serr := s.TlogSize(ctx)
				if serr != nil || now == size {
					errs[r] = fmt.Errorf("TlogAppend at %d failed without a concurrent append: %w", size, err)
					return
				}
				conflicts[r]++
				continue
			}
			b++
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	const total = 2 * batches * batch
	s := ss[0]
	if n, err := s.TlogSize(ctx); err != nil || n != total {
		t.Fatalf("TlogSize = %d, %v; want %d", n, err, total)
	}
	leaves, err := s.TlogLeaves(ctx, 0, total+10)
	if err != nil || len(leaves) != total {
		t.Fatalf("TlogLeaves = %d leaves, %v; want %d", len(leaves), err, total)
	}
	seen := map[string]bool{}
	hashes := make([][]byte, total)
	for i, lf := range leaves {
		if lf.Index != uint64(i) {
			t.Fatalf("leaf %d has index %d: the sequence has a gap", i, lf.Index)
		}
		if seen[string(lf.Entry)] {
			t.Fatalf("entry %s stored twice", lf.Entry)
		}
		seen[string(lf.Entry)] = true
		hashes[i] = lf.Hash
	}
	// Every replica's view of the tree is the one the leaves make.
	want := tlog.RootFromLeafHashes(hashes)
	for r, s := range ss {
		l := openLog(t, s, nil)
		cp, err := l.Checkpoint(ctx)
		if err != nil || cp.Size != total || !bytes.Equal(cp.Root, want) {
			t.Fatalf("replica %d: checkpoint = {%d %x}, %v; want {%d %x}", r, cp.Size, cp.Root, err, total, want)
		}
		p, err := l.InclusionProof(ctx, total/2, total)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, total/2, total, hashes[total/2], p, want); err != nil {
			t.Fatalf("replica %d: inclusion proof: %v", r, err)
		}
		l.Close()
	}
	t.Logf("%d entries appended by 2 replicas; %v appends started over after a conflict", total, conflicts)
}

// testTlogLogReplicas runs two tlog.Logs, one per store, on one database,
// as two registry replicas do: both append at once (through their
// batching writers, so appends conflict and are rebuilt on the other's),
// and sign checkpoints at once. Every entry must be stored exactly once at
// contiguous indexes, each Log must see and prove the entries the other
// appended, and every checkpoint either signed must verify with the
// shared key and be consistent with the final tree.
func testTlogLogReplicas(t *testing.T, open Replicas[tlog.Store]) {
	ss := open(t, 2)
	ctx := t.Context()
	dir := t.TempDir()
	signer, vkey, err := tlog.LoadOrCreateKey(dir, "custody/metatest")
	if err != nil {
		t.Fatal(err)
	}
	logs := make([]*tlog.Log, len(ss))
	for r, s := range ss {
		// Small batches make many batches, so the replicas' appends
		// interleave and conflict.
		l, err := tlog.Open(ctx, s, tlog.Options{Signer: signer, VerifierKey: vkey, BatchSize: 4})
		if err != nil {
			t.Fatalf("tlog.Open on store %d: %v", r, err)
		}
		t.Cleanup(l.Close)
		logs[r] = l
	}
	t0 := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	want := map[string]bool{}
	entry := func(r, w, i int) tlog.Entry {
		return tlog.Entry{Action: "manifest.put", Actor: fmt.Sprint("replica", r), Auth: "basic", Repo: fmt.Sprint("team/w", w),
			Result: "ok", Reason: fmt.Sprint("n", i), Time: tlog.FormatTime(t0.Add(time.Duration(i) * time.Millisecond))}
	}
	const (
		writers = 2  // goroutines appending per replica
		each    = 60 // entries per goroutine
	)
	for r := range logs {
		for w := range writers {
			for i := range each {
				want[string(entry(r, w, i).Canonical())] = true
			}
		}
	}
	total := uint64(len(want))

	// Append through both replicas at once while both sign checkpoints.
	var (
		mu     sync.Mutex
		signed []tlog.Checkpoint
		errs   []error
	)
	stop := make(chan struct{})
	signing := make(chan struct{}, len(logs))
	for r, l := range logs {
		go func() {
			defer func() { signing <- struct{}{} }()
			for {
				cp, err := l.Checkpoint(ctx)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("replica %d: Checkpoint while both append: %w", r, err))
				} else if cp.Size > 0 {
					signed = append(signed, cp)
				}
				mu.Unlock()
				select {
				case <-stop:
					return
				case <-time.After(3 * time.Millisecond):
				}
			}
		}()
	}
	concurrently(len(logs)*writers, func(k int) {
		r, w := k/writers, k%writers
		for i := range each {
			logs[r].Append(entry(r, w, i))
		}
		logs[r].Flush()
	})
	close(stop)
	for range logs {
		<-signing
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	// Stored: every entry exactly once, at contiguous indexes.
	s := ss[0]
	if n, err := s.TlogSize(ctx); err != nil || n != total {
		t.Fatalf("TlogSize = %d, %v; want %d (entries lost or duplicated)", n, err, total)
	}
	leaves, err := s.TlogLeaves(ctx, 0, total+10)
	if err != nil || uint64(len(leaves)) != total {
		t.Fatalf("TlogLeaves = %d leaves, %v; want %d", len(leaves), err, total)
	}
	seen := map[string]bool{}
	hashes := make([][]byte, total)
	for i, lf := range leaves {
		if lf.Index != uint64(i) {
			t.Fatalf("leaf %d has index %d: the sequence has a gap", i, lf.Index)
		}
		if !want[string(lf.Entry)] {
			t.Fatalf("leaf %d holds an entry nobody appended: %s", i, lf.Entry)
		}
		if seen[string(lf.Entry)] {
			t.Fatalf("entry %s stored twice", lf.Entry)
		}
		seen[string(lf.Entry)] = true
		hashes[i] = lf.Hash
	}
	root := tlog.RootFromLeafHashes(hashes)

	// Both replicas see the whole log, prove every entry in it, and sign
	// (or find signed) the same final checkpoint.
	var finals []tlog.Checkpoint
	for r, l := range logs {
		if n := l.Size(); n != total {
			t.Fatalf("replica %d: Size = %d, want %d", r, n, total)
		}
		if got, err := l.RootAt(ctx, total); err != nil || !bytes.Equal(got, root) {
			t.Fatalf("replica %d: RootAt(%d) = %x, %v; want %x", r, total, got, err, root)
		}
		for i := range total {
			p, err := l.InclusionProof(ctx, i, total)
			if err != nil {
				t.Fatalf("replica %d: InclusionProof(%d, %d): %v", r, i, total, err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, total, hashes[i], p, root); err != nil {
				t.Fatalf("replica %d: inclusion proof of %d: %v", r, i, err)
			}
		}
		cp, err := l.Checkpoint(ctx)
		if err != nil || cp.Size != total || !bytes.Equal(cp.Root, root) {
			t.Fatalf("replica %d: final Checkpoint = {%d %x}, %v; want {%d %x}", r, cp.Size, cp.Root, err, total, root)
		}
		finals = append(finals, cp)
	}
	for r, cp := range append(finals, signed...) {
		got, err := tlog.OpenCheckpoint(vkey, cp.Note)
		if err != nil || got.Size != cp.Size || !bytes.Equal(got.Root, cp.Root) {
			t.Fatalf("checkpoint %d {%d %x}: OpenCheckpoint = {%d %x}, %v", r, cp.Size, cp.Root, got.Size, got.Root, err)
		}
		if cp.Size == total {
			if !bytes.Equal(cp.Root, root) {
				t.Fatalf("checkpoint %d of size %d has root %x, want %x", r, total, cp.Root, root)
			}
			continue
		}
		for _, l := range logs {
			p, err := l.ConsistencyProof(ctx, cp.Size, total)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, total, p, cp.Root, root); err != nil {
				t.Fatalf("checkpoint %d of size %d is not consistent with the final tree: %v", r, cp.Size, err)
			}
		}
	}

	// A replica that has not appended since proves what the other just
	// appended, without being asked its size first, and both sign the same
	// checkpoint at once without error.
	for round := range 5 {
		size := total + uint64(round+1)
		a, b := logs[round%2], logs[1-round%2]
		e := entry(2, 0, round)
		a.Append(e)
		a.Flush()
		h := tlog.LeafHash(e.Canonical())
		p, err := b.InclusionProof(ctx, size-1, size)
		if err != nil {
			t.Fatalf("round %d: InclusionProof of the other replica's new entry: %v", round, err)
		}
		r, err := b.RootAt(ctx, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, size-1, size, h, p, r); err != nil {
			t.Fatalf("round %d: inclusion proof of the other replica's new entry: %v", round, err)
		}
		var cps [2]tlog.Checkpoint
		var cerrs [2]error
		concurrently(2, func(i int) { cps[i], cerrs[i] = logs[i].Checkpoint(ctx) })
		for i := range cps {
			if cerrs[i] != nil || cps[i].Size != size || !bytes.Equal(cps[i].Root, r) {
				t.Fatalf("round %d: replica %d: Checkpoint = {%d %x}, %v; want {%d %x}", round, i, cps[i].Size, cps[i].Root, cerrs[i], size, r)
			}
		}
		if latest, err := b.Latest(ctx); err != nil || latest.Size != size {
			t.Fatalf("round %d: Latest = %d, %v; want %d", round, latest.Size, err, size)
		}
	}
	t.Logf("%d entries appended and %d checkpoints signed by 2 replicas", total, len(signed))
}
