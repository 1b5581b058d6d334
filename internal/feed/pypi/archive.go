package pypi

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/custody-dev/custody/internal/feed"
)

// Limits on what an archive's listing may hold: its entries are read
// (not unpacked, not stored) to refuse paths that leave their directory.
const (
	maxEntries  = 100000
	maxUnpacked = 4 << 30
)

// checkArchive reads the entries of an uploaded file (a wheel or a zip
// sdist: zip; a .tar.gz sdist: gzip'd tar) from f, size bytes, and
// refuses one that is not such an archive or whose entries leave the
// directory it is unpacked in (feed.EntryEscapes and feed.LinkEscapes).
func checkArchive(f *os.File, size int64, filename string) error {
	if strings.HasSuffix(filename, ".tar.gz") {
		return checkTarGz(io.NewSectionReader(f, 0, size))
	}
	zr, err := feed.OpenZip(f, size)
	if errors.Is(err, feed.ErrZipDirectory) {
		return err
	} else if err != nil {
		return errors.New("the file is not a zip archive")
	}
	if len(zr.File) == 0 {
		return errors.New("the archive is empty")
	}
	if len(zr.File) > maxEntries {
		return fmt.Errorf("the archive has more than %d entries", maxEntries)
	}
	for _, e := range zr.File {
		if feed.EntryEscapes(e.Name) {
			return fmt.Errorf("the archive's entry %q leaves its directory", e.Name)
		}
		if e.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("the archive's entry %q is a symbolic link", e.Name)
		}
	}
	return nil
}

func checkTarGz(r io.Reader) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return errors.New("the sdist is not gzip-compressed")
	}
	tr := tar.NewReader(io.LimitReader(zr, maxUnpacked))
	for n := 0; ; n++ {
		if n >= maxEntries {
			return fmt.Errorf("the archive has more than %d entries", maxEntries)
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return errors.New("the archive is empty")
			}
			return nil
		}
		if err != nil {
			return errors.New("the sdist is not a readable tar archive (or unpacks to more than 4 GiB)")
		}
		if feed.EntryEscapes(h.Name) {
			return fmt.Errorf("the archive's entry %q leaves its directory", h.Name)
		}
		if (h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink) && feed.LinkEscapes(h.Name, h.Linkname, h.Typeflag == tar.TypeSymlink) {
			return fmt.Errorf("the archive's link %q points outside its directory", h.Name)
		}
	}
}
