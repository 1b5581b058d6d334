// Package veto holds the sentinel errors with which policy and
// authorization seams refuse a request. It is a leaf package so that packages below the registry (the
// policy engine, retention, the metadata backends that store their state)
// can refuse without importing the registry; registry.ErrDenied,
// registry.ErrUnauthenticated and registry.ErrTooManyRequests are these
// same values.
package veto

import "errors"

// ErrDenied refuses a request; the registry answers 403 DENIED with the
// error's text.
var ErrDenied = errors.New("denied")

// ErrUnauthenticated refuses a request that carries no acceptable
// credentials: 401.
var ErrUnauthenticated = errors.New("authentication required")

// ErrTooManyRequests refuses a rate-limited client (for example after
// repeated failed sign-ins): 429.
var ErrTooManyRequests = errors.New("too many requests")

// ErrMFARequired refuses a caller who signed in without the second factor
// its account or its roles require (403, problem kind mfa-required). It
// wraps ErrDenied.
var ErrMFARequired = &kindError{"second factor required", ErrDenied}

// ErrStepUpRequired refuses a dangerous action of a caller whose latest
// second factor is not recent enough (403, problem kind
// step-up-required). It wraps ErrDenied.
var ErrStepUpRequired = &kindError{"recent second factor required", ErrDenied}

type kindError struct {
	msg  string
	wrap error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.wrap }
