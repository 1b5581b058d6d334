// Package storetest gives tests the embedded store's real backends: a
// filesystem blob store and a SQLite metadata store in a temporary
// directory.
package storetest

import (
	"path/filepath"
	"testing"

	"github.com/custody-dev/custody/internal/blob/fs"
	"github.com/custody-dev/custody/internal/meta/sqlite"
)

// Embedded returns a filesystem blob store and a SQLite metadata store in
// a new temporary directory; the metadata store is closed when t ends.
func Embedded(t testing.TB) (*fs.Store, *sqlite.Store) {
	t.Helper()
	dir := t.TempDir()
	blobs, err := fs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	md, err := sqlite.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	return blobs, md
}
