package server

import (
	"context"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/tlog"
)

// tlogAuditor is a audit.DurableAuditor that appends every event to
// the tamper-evident audit log and passes it on to next (the structured
// log line).
type tlogAuditor struct {
	log  *tlog.Log
	next audit.Auditor
	// store is the store log commits to (tlog.Open's).
	store tlog.Store
}

var _ audit.InChange = tlogAuditor{}

// Flushes implements audit.Flusher: the log's commits are durable and go
// to the database of its store.
func (a tlogAuditor) Flushes(store any) bool {
	return a.store != nil && store == any(a.store)
}

// Record implements audit.Auditor. It returns once the entry is stored
// (or logged as lost).
func (a tlogAuditor) Record(ctx context.Context, e audit.Event) {
	_ = a.RecordChange(ctx, e)
}

// ChangeContext implements audit.InChange: under the context it returns,
// the change's first write that commits to the log's store appends the
// change's entries in its transaction (tlog.Pending).
func (a tlogAuditor) ChangeContext(ctx context.Context, store any, es func() []audit.Event) (context.Context, bool) {
	if !a.Flushes(store) {
		return ctx, false
	}
	p := a.log.Within(func() []tlog.Entry {
		evs := es()
		entries := make([]tlog.Entry, len(evs))
		for i, e := range evs {
			entries[i] = auditEntry(ctx, e)
		}
		return entries
	})
	return tlog.WithPending(ctx, p), true
}

// RecordChange implements audit.DurableAuditor: it returns once the
// entries are durable in the audit log (stored in one transaction), or
// the error that kept them out. When ctx comes from ChangeContext and a
// write committed the entries with the change, it does not store them
// again; otherwise it ends that context's append, so that no later write
// makes it.
func (a tlogAuditor) RecordChange(ctx context.Context, es ...audit.Event) error {
	if a.next != nil {
		for _, e := range es {
			a.next.Record(ctx, e)
		}
	}
	if p := tlog.PendingIn(ctx); p != nil && p.Log() == a.log && p.Seal() {
		return nil
	}
	entries := make([]tlog.Entry, len(es))
	for i, e := range es {
		entries[i] = auditEntry(ctx, e)
	}
	return a.log.Append(entries...)
}

// auditEntry builds the audit log entry of an event. The actor is the identity an
// Authorizer put in the context (of ctx or the event's request), or
// "anonymous".
func auditEntry(ctx context.Context, e audit.Event) tlog.Entry {
	out := tlog.Entry{
		Action: e.Action,
		Actor:  "anonymous",
		Auth:   "none",
		Result: e.Result,
		Reason: e.Reason,
		Repo:   e.Repo,
		Digest: e.Digest.String(),
		Tag:    e.Tag,
	}
	id, ok := identity.From(ctx)
	if e.Request != nil {
		if !ok {
			id, ok = identity.From(e.Request.Context())
		}
		out.Client = e.Request.RemoteAddr
		out.RequestID = registry.RequestID(e.Request.Context())
	}
	if out.RequestID == "" {
		out.RequestID = registry.RequestID(ctx)
	}
	if ok && id.Subject != "" {
		out.Actor = id.Subject
		out.Auth = id.Method
	}
	return out
}
