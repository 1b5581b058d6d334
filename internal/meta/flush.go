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
// returned. The registry does that for the metadata of a change it
// records in the audit log (the audit log's commit is that flushing
// commit; see audit.Flusher and the registry's changeContext).
//
// The one exception is the bookkeeping of a blob upload session (the
// registry's sessionContext: CreateUpload when a session starts,
// UpdateUpload when a chunk is acknowledged), acknowledged without a
// flush: losing it in a crash loses the client's upload, never a blob,
// like losing the session's bytes, which the blob store does not make
// durable before the closing PUT either (blob.Store). The closing PUT
// verifies the content against its digest and flushes before it
// acknowledges the blob. Nothing else uses FlushLater.

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
