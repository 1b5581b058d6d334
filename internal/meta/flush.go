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
// commit; see audit.Flusher and the registry's changeContext); nothing
// else uses it.

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
