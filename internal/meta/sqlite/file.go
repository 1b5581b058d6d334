package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// PrivateFile makes the SQLite database at path readable and writable by
// its owner only: it creates the file with mode 0600 when absent, and
// takes group and other permissions off it and off its -wal and -shm
// files when present (as left by an older build). SQLite creates the -wal
// and -shm files with the database file's mode, so they follow. Call it
// before opening a database: the metadata store holds password and token
// hashes. Open calls it; the vulnerability database (internal/vuln) too.
func PrivateFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return fmt.Errorf("sqlite: restrict %s to its owner: %w", p, err)
			}
		}
	}
	return nil
}
