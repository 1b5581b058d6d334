package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/custody-dev/custody/internal/tlog"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// leafBatch is how many audit log leaves are copied per transaction.
const leafBatch = 512

var factory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// auditLog copies the audit log's leaves and the tree nodes recorded with
// them verbatim, then its latest signed checkpoint, so that the target's
// log has the same root hashes and verifies with the same key. Leaves the
// target already holds (an interrupted run) must be the source's.
func (r *run) auditLog(ctx context.Context) error {
	// The checkpoint first: a source still growing then has at least as
	// many leaves as the checkpoint covers.
	cp, err := r.from.Meta.TlogLatestCheckpoint(ctx)
	haveCP := err == nil
	if err != nil && !errors.Is(err, tlog.ErrNotFound) {
		return fmt.Errorf("source checkpoint: %w", err)
	}
	size, err := r.from.Meta.TlogSize(ctx)
	if err != nil {
		return fmt.Errorf("source log size: %w", err)
	}
	have, err := r.to.Meta.TlogSize(ctx)
	if err != nil {
		return fmt.Errorf("target log size: %w", err)
	}
	if have > size {
		return fmt.Errorf("%w: the target's audit log has %d entries, the source's %d", ErrDiverged, have, size)
	}
	r.opts.Progress.Phase("audit log", int64(size), false)
	rng := factory.NewEmptyRange(0)
	for start := uint64(0); start < size; start += leafBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(start+leafBatch, size)
		leaves, err := r.from.Meta.TlogLeaves(ctx, start, end)
		if err != nil {
			return fmt.Errorf("source leaves %d..%d: %w", start, end, err)
		}
		if uint64(len(leaves)) != end-start {
			return fmt.Errorf("source audit log: %d leaves stored in %d..%d, want %d (indexes not contiguous)", len(leaves), start, end, end-start)
		}
		var existing []tlog.Leaf
		if start < have {
			if existing, err = r.to.Meta.TlogLeaves(ctx, start, min(end, have)); err != nil {
				return fmt.Errorf("target leaves %d..%d: %w", start, min(end, have), err)
			}
		}
		var (
			fresh []tlog.Leaf
			nodes []tlog.Node
		)
		for i, lf := range leaves {
			idx := start + uint64(i)
			if lf.Index != idx || !bytes.Equal(tlog.LeafHash(lf.Entry), lf.Hash) {
				return fmt.Errorf("source audit log is damaged at entry %d (index or leaf hash wrong); run `custody audit verify` on the source", idx)
			}
			if idx < have {
				if i >= len(existing) || !bytes.Equal(existing[i].Hash, lf.Hash) || !bytes.Equal(existing[i].Entry, lf.Entry) {
					return fmt.Errorf("%w: audit log entry %d differs", ErrDiverged, idx)
				}
				if err := rng.Append(lf.Hash, nil); err != nil {
					return err
				}
				r.sum.AuditLeaves.Skipped++
				continue
			}
			if err := rng.Append(lf.Hash, func(id compact.NodeID, hash []byte) {
				nodes = append(nodes, tlog.Node{ID: id, Hash: hash})
			}); err != nil {
				return err
			}
			fresh = append(fresh, lf)
		}
		if len(fresh) > 0 {
			if err := r.sourceNodes(ctx, nodes); err != nil {
				return err
			}
			if err := r.to.Meta.TlogAppend(ctx, fresh[0].Index, fresh, nodes); err != nil {
				return fmt.Errorf("writing audit log entries %d..%d: %w", fresh[0].Index, end, err)
			}
			r.sum.AuditLeaves.Copied += int64(len(fresh))
		}
		r.opts.Progress.Add(int64(len(leaves)))
	}
	if !haveCP {
		return nil
	}
	if cur, err := r.to.Meta.TlogLatestCheckpoint(ctx); err == nil && cur.Size == cp.Size && bytes.Equal(cur.Note, cp.Note) {
		return nil
	} else if err != nil && !errors.Is(err, tlog.ErrNotFound) {
		return fmt.Errorf("target checkpoint: %w", err)
	}
	if err := r.to.Meta.TlogPutCheckpoint(ctx, cp); err != nil {
		return fmt.Errorf("writing checkpoint of size %d: %w", cp.Size, err)
	}
	r.sum.Checkpoint = true
	return nil
}

// sourceNodes replaces the recomputed hashes of nodes by the ones the
// source stored (the tree as it was when the entries were appended, which
// earlier checkpoints committed to) and fails if they differ: the source's
// leaves would then not be what its checkpoints signed.
func (r *run) sourceNodes(ctx context.Context, nodes []tlog.Node) error {
	ids := make([]compact.NodeID, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	hashes, err := r.from.Meta.TlogNodes(ctx, ids)
	if errors.Is(err, tlog.ErrNotFound) {
		// Nodes missing from the source (a rebuilt tree keeps only what
		// it could recompute): the recomputed ones are the tree.
		r.warn("source audit log lacks some tree nodes; copied recomputed ones")
		return nil
	}
	if err != nil {
		return fmt.Errorf("source tree nodes: %w", err)
	}
	for i := range nodes {
		if !bytes.Equal(hashes[i], nodes[i].Hash) {
			return fmt.Errorf("source audit log is damaged: tree node (level %d, index %d) does not match its leaves; run `custody audit verify` on the source", nodes[i].ID.Level, nodes[i].ID.Index)
		}
	}
	return nil
}
