package meta

import "context"

// Deferred flushes.
//
// A backend's write is durable when it returns: its commit waits for the
// database's log to reach stable storage (SQLite: an fsync of the WAL;
// PostgreSQL: synchronous_commit). A write made with a context from
// FlushLater skips that wait: it commits, is visible to every reader at
// once, and becomes durable with the next flushing commit to the same
// database, which flushes the log past it. Until then a crash (of the
// machine; or of the PostgreSQL server; custody's own crash loses
// nothing with SQLite) may undo it, together with every write committed
// after it: the log is flushed in order, so what survives a crash is
// always a prefix of the committed writes.
//
// A caller may use FlushLater only for a write it acknowledges after a
// flushing commit of its own to the same database, made after the write
// returned. The registry does that for the writes of a change it records
// in the audit log that come before the change's last write (which
// commits the change's entries durably, see below), or for all of them
// when the entries are stored after the change (the audit log's commit
// is then that flushing commit; see audit.Flusher and the registry's
// changeContext).
//
// The one exception is the bookkeeping of a blob upload session (the
// registry's sessionContext: CreateUpload when a session starts,
// UpdateUpload when a chunk is acknowledged), acknowledged without a
// flush: losing it in a crash loses the client's upload, never a blob,
// like losing the session's bytes, which the blob store does not make
// durable before the closing PUT either (blob.Store). The closing PUT
// verifies the content against its digest and flushes before it
// acknowledges the blob. Nothing else uses FlushLater.
//
// Audit entries in the change's transaction.
//
// The audit log (internal/tlog) is stored in the metadata database, by
// the Store itself (tlog.Store). A write made with a context carrying a
// pending append to the log the Store holds (tlog.WithPending, whose
// Pending.For accepts the Store) runs the append inside its transaction,
// after its own statements and just before COMMIT; the commit is durable
// (it waits for its flush, even under FlushLater); once it has committed,
// the write reports it (Pending.Committed). So the change and its entries
// are committed together, by one transaction with one flush, and a write
// that fails or is vetoed stores neither. A write that returns without
// committing a transaction leaves the append pending, and Pending.Seal
// tells the caller, who then stores the entries itself (Log.Append, a
// flushing commit). A backend may also commit the write without the
// entries when another transaction is appending to the log
// (tlog.ErrAppendBusy; PostgreSQL does, rather than queue concurrent
// changes on the log's head row): it then commits as under FlushLater,
// and Pending.Seal again reports the entries not committed. The
// conformance suite's RunChangeLog checks this on every backend.

type flushLaterKey struct{}

// FlushLater returns a context under which a Store's writes do not wait
// for their own flush (see "Deferred flushes" above).
func FlushLater(ctx context.Context) context.Context {
	return context.WithValue(ctx, flushLaterKey{}, true)
}

// FlushesLater reports whether ctx came from FlushLater: a backend's
// write under it commits without waiting for its flush.
func FlushesLater(ctx context.Context) bool {
	v, _ := ctx.Value(flushLaterKey{}).(bool)
	return v
}
