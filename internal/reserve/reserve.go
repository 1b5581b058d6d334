// Package reserve keeps free space on the file system of the data
// directory, so a full disk can be recovered through the API: below the
// reserve, requests that add data are refused early with a clear error,
// while deletes, garbage collection and the audit log go on.
//
// Refusing early leaves the reserve free unless something else fills the
// file system (another program, or uploads that were under way when the
// reserve was crossed). For that case the Guard keeps a ballast file,
// <dir>/reserve.ballast: when less than the ballast's size is left, it
// deletes the ballast, giving the metadata store room to record deletes;
// once free space is back above the reserve plus the ballast, it puts the
// ballast back.
package reserve

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/dustin/go-humanize"
)

// BallastName is the ballast file's name in the directory.
const BallastName = "reserve.ballast"

// maxBallast caps the ballast's size.
const maxBallast = 64 << 20

// ErrLow is wrapped by Check's error when free space is below the reserve.
var ErrLow = errors.New("insufficient storage")

// Guard watches the free space of Dir's file system.
type Guard struct {
	// Dir is the directory whose file system is watched.
	Dir string
	// Reserve is the free space, in bytes, kept for deletes and
	// maintenance; 0 disables refusals and the ballast.
	Reserve int64
	// Statfs returns the bytes available to the process on path's file
	// system; nil uses statfs(2). Tests replace it.
	Statfs func(path string) (int64, error)

	mu sync.Mutex // serialises ballast changes
}

// Statfs returns the bytes available to unprivileged users on path's file
// system.
func Statfs(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

func (g *Guard) statfs() (int64, error) {
	if g.Statfs != nil {
		return g.Statfs(g.Dir)
	}
	return Statfs(g.Dir)
}

// ballastSize is the ballast file's size: a quarter of the reserve, at
// most 64 MiB.
func (g *Guard) ballastSize() int64 { return min(g.Reserve/4, maxBallast) }

// Free returns the free space of the file system, after deleting the
// ballast if less than its size is left or putting it back if there is
// room again.
func (g *Guard) Free() (int64, error) {
	free, err := g.statfs()
	if err != nil || g.Reserve <= 0 {
		return free, err
	}
	b := g.ballastSize()
	if b <= 0 || (free >= b && free <= g.Reserve+b) {
		return free, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	path := filepath.Join(g.Dir, BallastName)
	_, statErr := os.Stat(path)
	switch {
	case free < b && statErr == nil:
		if err := os.Remove(path); err != nil {
			return free, fmt.Errorf("releasing the disk reserve's ballast: %w", err)
		}
		return g.statfs()
	case free > g.Reserve+b && errors.Is(statErr, os.ErrNotExist):
		if err := allocate(path, b); err != nil {
			return free, fmt.Errorf("allocating the disk reserve's ballast: %w", err)
		}
		return g.statfs()
	}
	return free, nil
}

// allocate creates path with size bytes really allocated (not sparse).
func allocate(path string, size int64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err = syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		// No fallocate on this file system: write zeros.
		err = nil
		buf := make([]byte, 1<<20)
		for left := size; left > 0 && err == nil; left -= int64(len(buf)) {
			_, err = f.Write(buf[:min(left, int64(len(buf)))])
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// LowError is Check's error: free space is below the reserve.
type LowError struct {
	Free, Reserve int64
}

func (e *LowError) Error() string {
	return fmt.Sprintf("insufficient storage: %s free on the registry's disk, below its reserve of %s; "+
		"uploads are refused until space is freed (delete content and run garbage collection, or grow the volume)",
		humanize.IBytes(uint64(max(e.Free, 0))), humanize.IBytes(uint64(e.Reserve)))
}

func (e *LowError) Unwrap() error { return ErrLow }

// Check returns a *LowError when free space is below the reserve, nil
// when it is not (or the reserve is disabled), and statfs errors as they
// are.
func (g *Guard) Check() error {
	if g.Reserve <= 0 {
		return nil
	}
	free, err := g.Free()
	if err != nil {
		return err
	}
	if free < g.Reserve {
		return &LowError{Free: free, Reserve: g.Reserve}
	}
	return nil
}
