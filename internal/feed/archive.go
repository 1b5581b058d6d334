package feed

import (
	"archive/zip"
	"fmt"
	"io"
	"math"
	"strings"
)

// EntryEscapes reports whether an archive entry's path (a tarball's or a
// zip's, '/'-separated) could lead out of the directory it is unpacked in:
// empty, absolute, with a '\\' or NUL, or with a ".." component anywhere.
// Clients unpack without the first folder (npm strips "package/") and
// follow links made by earlier entries, so "package/../x" or a chain of
// links each harmless alone can escape; packing tools never write "..",
// so every path must only lead down. Every package protocol that inspects
// archives refuses such entries through it.
func EntryEscapes(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return true
	}
	for c := range strings.SplitSeq(name, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// LinkEscapes reports whether a link entry called name, pointing at
// target, could reach outside the directory the archive is unpacked in.
// The target is held to EntryEscapes' rule whatever the link's kind (a
// symbolic link's "../x" escapes once a client unpacks one level up or
// follows a chain of links), so name and symlink only name the entry.
func LinkEscapes(name, target string, symlink bool) bool {
	_, _ = name, symlink
	return EntryEscapes(target)
}

// MaxZipDirectory caps the bytes of a zip's central directory (and what
// follows it) that OpenZip reads. archive/zip keeps every directory
// record it finds, however many the archive claims, at about five times
// its size in memory: a 1 GiB upload of bare 46-byte records would hold
// some 5 GiB. 16 MiB lists more than 100,000 entries with long names.
const MaxZipDirectory = 16 << 20

// ErrZipDirectory: a zip's central directory is larger than
// MaxZipDirectory.
var ErrZipDirectory = fmt.Errorf("the zip archive's directory is larger than %d MiB", MaxZipDirectory>>20)

// OpenZip reads the directory of the zip r, size bytes, as zip.NewReader
// does, reading at most MaxZipDirectory bytes of it (ErrZipDirectory).
// Every package protocol that lists an uploaded zip's entries opens it
// through OpenZip.
func OpenZip(r io.ReaderAt, size int64) (*zip.Reader, error) {
	b := &budgetReaderAt{r: r, left: MaxZipDirectory + 128<<10} // + the end records, read from the last 65 KiB twice
	zr, err := zip.NewReader(b, size)
	if b.over {
		return nil, ErrZipDirectory
	}
	b.left = math.MaxInt64 // the entries' contents are the caller's to limit
	return zr, err
}

// budgetReaderAt fails reads once left bytes were read.
type budgetReaderAt struct {
	r    io.ReaderAt
	left int64
	over bool
}

func (b *budgetReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if int64(len(p)) > b.left {
		b.over = true
		return 0, ErrZipDirectory
	}
	n, err := b.r.ReadAt(p, off)
	b.left -= int64(n)
	return n, err
}
