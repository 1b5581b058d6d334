package fs

import (
	"context"
	"hash"
	"io"
	"sync"
)

// bufSize is the size of the buffers content is streamed through.
const bufSize = 64 << 10

// pipelineDepth is how many buffers one copy keeps in flight: one being
// filled from the source while the hasher works through the others.
const pipelineDepth = 16

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, bufSize)
	return &b
}}

// copyFunc copies r to w until EOF, feeding every byte written to h as well,
// and returns the number of bytes copied.
type copyFunc func(ctx context.Context, w io.Writer, h hash.Hash, r io.Reader) (int64, error)

// chunk is a filled buffer handed to the hashing goroutine.
type chunk struct {
	buf *[]byte
	n   int
}

// pipelinedCopy is a copyFunc that overlaps hashing with I/O. The calling
// goroutine reads 1 MiB buffers from r and writes them to w; each buffer is
// also handed to a hashing goroutine, which returns it to a small free list
// once hashed. Reading and writing buffer k+1 therefore proceed while buffer
// k is hashed, and at most pipelineDepth buffers exist per copy.
//
// The hasher only reads a buffer while the caller writes it (both read-only
// uses); the caller refills a buffer only after taking it back from the free
// list, by which time its own synchronous write of it has long returned.
func pipelinedCopy(ctx context.Context, w io.Writer, h hash.Hash, r io.Reader) (int64, error) {
	work := make(chan chunk, pipelineDepth)
	free := make(chan *[]byte, pipelineDepth)
	for range pipelineDepth {
		free <- bufPool.Get().(*[]byte)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range work {
			h.Write((*c.buf)[:c.n]) // hash.Hash.Write never fails
			free <- c.buf
		}
	}()
	defer func() {
		close(work)
		<-done
		// Every buffer is back on the free list now.
		for range pipelineDepth {
			bufPool.Put(<-free)
		}
	}()

	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		buf := <-free
		nr, rerr := fill(r, *buf)
		if nr > 0 {
			work <- chunk{buf, nr}
			nw, werr := w.Write((*buf)[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
		} else {
			free <- buf
		}
		switch rerr {
		case nil:
		case io.EOF:
			return n, nil
		default:
			return n, rerr
		}
	}
}

// fill reads from r until buf is full or r returns an error, which may be
// io.EOF. Unlike io.ReadFull it passes the reader's errors on unchanged, so a
// body cut short (io.ErrUnexpectedEOF from net/http) is never mistaken for a
// clean end.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		nn, err := r.Read(buf[n:])
		n += nn
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
