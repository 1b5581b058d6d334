package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// keyFiles are the data directory's files a store needs whatever its
// backends: the audit log's key pair, the token service's key, the first
// admin password, and the signing key ring (a directory).
var keyFiles = []string{"log-key", "log-key.pub", "token-key", "admin-password", "keys"}

// maxKeyFile caps the size of a key file read into memory.
const maxKeyFile = 1 << 20

// keyFilePairs lists (source, target) paths of the key files present in
// the source's data directory.
func (r *run) keyFilePairs() ([][2]string, error) {
	if r.from.Data == "" || r.to.Data == "" {
		return nil, nil
	}
	a, errA := filepath.Abs(r.from.Data)
	b, errB := filepath.Abs(r.to.Data)
	if errA != nil || errB != nil || a == b {
		return nil, nil
	}
	var pairs [][2]string
	for _, name := range keyFiles {
		src := filepath.Join(a, name)
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(a, p)
			if err != nil {
				return err
			}
			pairs = append(pairs, [2]string{p, filepath.Join(b, rel)})
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading key files of %s: %w", a, err)
		}
	}
	return pairs, nil
}

func readKeyFile(p string) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxKeyFile {
		return nil, fmt.Errorf("%s is %d bytes, more than a key file can be (%d)", p, st.Size(), maxKeyFile)
	}
	return os.ReadFile(p)
}

// checkKeyFiles fails before anything is copied if the target's data
// directory holds a key file that differs from the source's: the copied
// audit log would not verify with it, nor the copied tokens.
func (r *run) checkKeyFiles() error {
	pairs, err := r.keyFilePairs()
	if err != nil {
		return err
	}
	for _, p := range pairs {
		dst, err := readKeyFile(p[1])
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		src, err := readKeyFile(p[0])
		if err != nil {
			return err
		}
		if !bytes.Equal(src, dst) {
			return fmt.Errorf("%w: %s differs from %s; the migrated audit log and tokens need the source's keys (move the target's file away or use another data directory)", ErrDiverged, p[1], p[0])
		}
	}
	return nil
}

// keyFiles copies the key files the target lacks (mode 0600, written to a
// temporary file, synced and renamed).
func (r *run) keyFiles(context.Context) error {
	pairs, err := r.keyFilePairs()
	if err != nil {
		return err
	}
	for _, p := range pairs {
		if _, err := os.Stat(p[1]); err == nil {
			r.sum.KeyFiles.Skipped++
			continue
		}
		b, err := readKeyFile(p[0])
		if err != nil {
			return err
		}
		if err := writeFileSync(p[1], b); err != nil {
			return err
		}
		r.sum.KeyFiles.Copied++
	}
	return nil
}

func writeFileSync(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".migrate-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
