package fs

import "os"

// writebackChunk is how many bytes a writebackWriter lets accumulate before
// asking the kernel to start writing them to disk.
const writebackChunk = 8 << 20

// writebackWriter writes sequentially to a file and, every writebackChunk
// bytes, starts asynchronous writeback of the range just written (on Linux,
// sync_file_range with SYNC_FILE_RANGE_WRITE). The disk then works while the
// rest of the content is still arriving and being hashed, and the fsync that
// makes the content durable has little left to do. It is an optimisation
// only: durability still comes from that fsync.
type writebackWriter struct {
	f       *os.File
	off     int64 // offset of the next byte written
	flushed int64 // bytes before this offset have been submitted
}

func newWritebackWriter(f *os.File, off int64) *writebackWriter {
	return &writebackWriter{f: f, off: off, flushed: off}
}

func (w *writebackWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.flushed >= writebackChunk {
		startWriteback(w.f, w.flushed, w.off-w.flushed)
		w.flushed = w.off
	}
	return n, err
}
