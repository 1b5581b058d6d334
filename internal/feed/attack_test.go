package feed_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/custody-dev/custody/internal/feed"
)

// bareDirectory is a zip that is nothing but n central directory records
// named "a" and the end record (which states n modulo 65536, as
// archive/zip checks): 47 bytes an entry.
func bareDirectory(n int) []byte {
	var b bytes.Buffer
	rec := make([]byte, 46)
	binary.LittleEndian.PutUint32(rec[0:], 0x02014b50)
	binary.LittleEndian.PutUint16(rec[4:], 20)
	binary.LittleEndian.PutUint16(rec[6:], 20)
	binary.LittleEndian.PutUint16(rec[28:], 1) // name length
	for range n {
		b.Write(rec)
		b.WriteByte('a')
	}
	dirSize := b.Len()
	end := make([]byte, 22)
	binary.LittleEndian.PutUint32(end[0:], 0x06054b50)
	binary.LittleEndian.PutUint16(end[8:], uint16(n))
	binary.LittleEndian.PutUint16(end[10:], uint16(n))
	binary.LittleEndian.PutUint32(end[12:], uint32(dirSize))
	b.Write(end)
	return b.Bytes()
}

// TestOpenZipDirectoryBudget: archive/zip keeps every directory record of
// a zip, whatever count it states, at about five times the record's size
// in memory, so a 1 GiB wheel (or a 500 MiB Go module zip) of bare records
// held gigabytes while its entries were checked. OpenZip reads at most
// MaxZipDirectory of a directory and refuses the rest; ordinary zips
// open as before.
func TestOpenZipDirectoryBudget(t *testing.T) {
	big := bareDirectory(1_000_000) // 47 MB: 1,000,000 entries
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	_, err := feed.OpenZip(bytes.NewReader(big), int64(len(big)))
	runtime.ReadMemStats(&m1)
	if !errors.Is(err, feed.ErrZipDirectory) {
		t.Errorf("a %d-byte directory: %v, want ErrZipDirectory", len(big), err)
	}
	// archive/zip alone allocates some 220 MB for it.
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 120<<20 {
		t.Errorf("refusing it allocated %d MB", alloc>>20)
	}
	// A directory within the budget opens, with all its entries.
	small := bareDirectory(70_000)
	zr, err := feed.OpenZip(bytes.NewReader(small), int64(len(small)))
	if err != nil || len(zr.File) != 70_000 {
		t.Fatalf("a %d-byte directory: %v", len(small), err)
	}
	// And so does an ordinary zip, whose entries stay readable.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("pkg/__init__.py")
	_, _ = w.Write(bytes.Repeat([]byte("x"), 1<<20))
	_ = zw.Close()
	zr, err = feed.OpenZip(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil || len(zr.File) != 1 {
		t.Fatalf("ordinary zip: %v", err)
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if n, err := bytes.NewBuffer(nil).ReadFrom(rc); err != nil || n != 1<<20 {
		t.Errorf("reading an entry: %d %v", n, err)
	}
}
