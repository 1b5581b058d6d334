// Package veto holds the sentinel error with which policy seams refuse a
// change. It is a leaf package so that packages below the registry (the
// policy engine, retention, the metadata backends that store their state)
// can refuse without importing the registry; registry.ErrDenied is this
// same value.
package veto

import "errors"

// ErrDenied refuses a request; the registry answers 403 DENIED with the
// error's text.
var ErrDenied = errors.New("denied")
