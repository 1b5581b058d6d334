package server

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/custody-dev/custody/internal/identity"
)

// internalHost names the server itself for its in-process registry client.
const internalHost = "custody.internal"

// handlerTransport serves HTTP requests with a handler in process: the
// server's own registry client (signing, provenance) talks to its
// internal registry without a network hop or credentials (asServer: the
// request acts as identity.Server), and the web interface calls the API
// with the browser's own credential (asServer false: the handler
// authenticates the request like any other).
type handlerTransport struct {
	h        http.Handler
	asServer bool
}

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	rw := &pipeWriter{header: http.Header{}, body: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			rw.writeHeader(http.StatusOK)
			_ = pw.Close()
		}()
		ctx := req.Context()
		if t.asServer {
			ctx = identity.With(ctx, identity.Server)
		}
		sreq := req.WithContext(ctx) // a shallow copy: req stays the caller's
		if sreq.Body == nil {
			sreq.Body = http.NoBody // as a server's requests always have one
		}
		t.h.ServeHTTP(rw, sreq)
	}()
	select {
	case <-rw.ready:
	case <-req.Context().Done():
		_ = pr.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	length := int64(-1)
	if n, err := strconv.ParseInt(rw.sent.Get("Content-Length"), 10, 64); err == nil {
		length = n
	}
	var body io.ReadCloser = pr
	if req.Method == http.MethodHead {
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		body = http.NoBody
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", rw.status, http.StatusText(rw.status)), StatusCode: rw.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rw.sent, Body: body, ContentLength: length, Request: req,
	}, nil
}

// pipeWriter is the http.ResponseWriter of handlerTransport.
type pipeWriter struct {
	header http.Header
	sent   http.Header
	status int
	body   *io.PipeWriter
	once   sync.Once
	ready  chan struct{}
}

func (p *pipeWriter) Header() http.Header { return p.header }

func (p *pipeWriter) writeHeader(code int) {
	p.once.Do(func() {
		p.status, p.sent = code, p.header.Clone()
		close(p.ready)
	})
}

func (p *pipeWriter) WriteHeader(code int) { p.writeHeader(code) }

func (p *pipeWriter) Write(b []byte) (int, error) {
	p.writeHeader(http.StatusOK)
	return p.body.Write(b)
}
