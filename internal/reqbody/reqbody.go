// Package reqbody tells a request body the client failed to deliver from a
// failure of custody's own.
//
// Reading a request body fails for reasons that are all the client's (or
// its network's): malformed chunked encoding, an invalid chunk length, a
// body cut short, a body over a limit, a connection reset. Handlers stream
// bodies into stores whose errors wrap them, so without help such a read
// error looks like a storage failure: a 500 and an ERROR log for bad input.
// Wrap marks every error the body returns; Failed recognises it after any
// amount of wrapping, so /v2/ and /generic/ answer 4xx and log it as the
// client's problem.
package reqbody

import (
	"errors"
	"io"
	"net/http"
	"sync"
)

// Error is a failure reading a request body.
type Error struct{ Err error }

func (e *Error) Error() string { return "reading the request body: " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status that answers the failure: 413 for a body over
// a limit (http.MaxBytesReader), 400 otherwise.
func (e *Error) Status() int {
	var tooLarge *http.MaxBytesError
	if errors.As(e.Err, &tooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// body remembers the first error reading the wrapped body.
type body struct {
	rc  io.ReadCloser
	mu  sync.Mutex
	err *Error
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	e := &Error{Err: err}
	b.mu.Lock()
	if b.err == nil {
		b.err = e
	}
	b.mu.Unlock()
	return n, e
}

func (b *body) Close() error { return b.rc.Close() }

func (b *body) failed() *Error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Wrap makes r's body mark its read errors. Wrapping twice is harmless.
func Wrap(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	if _, ok := r.Body.(*body); ok {
		return
	}
	r.Body = &body{rc: r.Body}
}

// Failed returns the body read error behind err: one err wraps, or else
// one r's wrapped body recorded (for stores that flatten the errors of the
// reader they were given). It returns nil when err is not the client's.
func Failed(r *http.Request, err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if b, ok := r.Body.(*body); ok {
		return b.failed()
	}
	return nil
}
