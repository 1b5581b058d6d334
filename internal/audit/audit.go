// Package audit is the vocabulary of audit records: an Event (a state
// change or a refusal) and the Auditor that records it. The registry,
// the generic-file endpoint, auth and the server's features produce
// events; the server's tamper-evident log (internal/tlog) stores them.
// It imports no other custody package, so any layer may use it.
package audit

import (
	"context"
	"net/http"

	"github.com/opencontainers/go-digest"
)

// Event is one audit record: a state change or a refusal.
type Event struct {
	Action  string // e.g. "blob.upload", "manifest.put", "tag.move", "manifest.delete"
	Repo    string
	Digest  digest.Digest
	Tag     string
	Result  string // "ok", "denied", "invalid", "error"
	Reason  string
	Request *http.Request
}

// Auditor records events. Record is called after the state change (or
// refusal) it describes; it may block until the event is stored, so it
// must not wait on anything else.
type Auditor interface {
	Record(ctx context.Context, e Event)
}

// DurableAuditor is an Auditor that stores events durably and can tell
// when it could not. The registry records every change it acknowledges
// (blob uploads, mounts and deletions, manifest puts and deletions, tag
// sets and deletions) with RecordChange before it answers: RecordChange
// returns once the events (of one request, stored together) are durable,
// and when it returns an error the request fails with 500 (the change
// itself stays made, and is retried safely), so no acknowledged change
// lacks its audit record.
type DurableAuditor interface {
	Auditor
	RecordChange(ctx context.Context, es ...Event) error
}

// Flusher is a DurableAuditor whose RecordChange stores the events with a
// durable commit to a database that other components also write to (the
// metadata store, which the audit log shares). Such a commit flushes the
// writes committed to that database before it, so a change's own writes
// need not wait for a flush of their own when RecordChange follows them
// before the change is acknowledged (internal/meta, "Deferred flushes").
type Flusher interface {
	DurableAuditor
	// Flushes reports whether RecordChange commits to the database of
	// store (compared by identity).
	Flushes(store any) bool
}

// Flushes reports whether a is a Flusher whose RecordChange commits to
// the database of store.
func Flushes(a Auditor, store any) bool {
	f, ok := a.(Flusher)
	return ok && f.Flushes(store)
}

// InChange is a Flusher that can also store a change's events inside the
// change's own write transaction of the metadata store, which then
// commits durably: the change and its events are stored by one commit,
// and neither without the other.
type InChange interface {
	Flusher
	// ChangeContext returns a context for the writes of a change to store
	// under which the first of them that commits also stores the events
	// es returns (called inside its transaction, so they may describe
	// what it did), and true. RecordChange with the returned context,
	// called once the change's writes are made, then records the events
	// without storing them again if they were, and stores them otherwise
	// (no write committed them: it failed, or changed nothing and made
	// no transaction). It returns ctx and false if it cannot store events
	// in store's transactions.
	ChangeContext(ctx context.Context, store any, es func() []Event) (context.Context, bool)
}

// ChangeContext returns the context of a change's writes to store under
// which they also store the change's events, if a can do that (see
// InChange), and whether it can.
func ChangeContext(ctx context.Context, a Auditor, store any, es func() []Event) (context.Context, bool) {
	if c, ok := a.(InChange); ok {
		return c.ChangeContext(ctx, store, es)
	}
	return ctx, false
}

// RecordChange records the events of a change with a: durably if a is a
// DurableAuditor, else with Record.
func RecordChange(ctx context.Context, a Auditor, es ...Event) error {
	if d, ok := a.(DurableAuditor); ok {
		return d.RecordChange(ctx, es...)
	}
	for _, e := range es {
		a.Record(ctx, e)
	}
	return nil
}

// Func adapts a function to the Auditor interface.
type Func func(ctx context.Context, e Event)

// Record implements Auditor.
func (f Func) Record(ctx context.Context, e Event) { f(ctx, e) }
