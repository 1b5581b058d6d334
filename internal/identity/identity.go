// Package identity is who made a request, carried in its context: the
// authorizer that establishes it (internal/auth) stores it with With, and
// whoever records or decides on the request (audit records, promotions,
// the account API) reads it with From. It imports no other custody
// package, so any layer may use it.
package identity

import "context"

// Identity is who made a request, as an authorizer established it.
type Identity struct {
	// Subject names the actor (a user or service account).
	Subject string
	// Method is how the actor authenticated (e.g. "basic", "token", "mtls").
	Method string
}

type ctxKey struct{}

// With returns ctx carrying id. Authorizers call it on the request they
// return so that audit records name the actor.
func With(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the identity carried by ctx, if any.
func From(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// Server is the actor of what the server does on its own (signing on
// push, platform provenance, promotions it records).
var Server = Identity{Subject: "custody", Method: "server"}
