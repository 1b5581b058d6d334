package feed_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/feed/feedtest"
)

// TestOpenZipDirectoryBudget: archive/zip keeps every directory record of
// a zip, whatever count it states, at about five times the record's size
// in memory, so a 1 GiB wheel (or a 500 MiB Go module zip) of bare records
// held gigabytes while its entries were checked. OpenZip reads at most
// MaxZipDirectory of a directory and refuses the rest; ordinary zips
// open as before.
func TestOpenZipDirectoryBudget(t *testing.T) {
	big := feedtest.BareZipDirectory(1_000_000) // 47 MB: 1,000,000 entries
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
	small := feedtest.BareZipDirectory(70_000)
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
