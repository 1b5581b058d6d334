package reserve_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/reserve"
)

// TestGuard: Check refuses below the reserve with a message naming both
// numbers, the ballast is created when there is room, released when less
// than its size is left, and put back once space returns.
func TestGuard(t *testing.T) {
	dir := t.TempDir()
	const mib = 1 << 20
	free := int64(100 * mib)
	g := &reserve.Guard{Dir: dir, Reserve: 16 * mib, Statfs: func(string) (int64, error) { return free, nil }}
	ballast := filepath.Join(dir, reserve.BallastName)
	exists := func() bool { _, err := os.Stat(ballast); return err == nil }

	if err := g.Check(); err != nil || !exists() {
		t.Fatalf("plenty of space: Check = %v, ballast %v", err, exists())
	}
	if fi, _ := os.Stat(ballast); fi.Size() != 4*mib {
		t.Fatalf("ballast size %d, want a quarter of the reserve", fi.Size())
	}
	free = 10 * mib
	err := g.Check()
	var low *reserve.LowError
	if !errors.As(err, &low) || !errors.Is(err, reserve.ErrLow) || !strings.Contains(err.Error(), "10 MiB free") || !strings.Contains(err.Error(), "16 MiB") {
		t.Fatalf("below the reserve: Check = %v", err)
	}
	if !exists() {
		t.Fatal("the ballast went while more than its size was free")
	}
	free = 1 * mib
	if _, err := g.Free(); err != nil || exists() {
		t.Fatalf("nearly full: Free = %v, ballast still there: %v", err, exists())
	}
	free = 18 * mib // above the reserve, not above reserve + ballast
	if err := g.Check(); err != nil || exists() {
		t.Fatalf("just above the reserve: Check = %v, ballast %v", err, exists())
	}
	free = 30 * mib
	if _, err := g.Free(); err != nil || !exists() {
		t.Fatalf("room again: Free = %v, ballast back: %v", err, exists())
	}
	off := &reserve.Guard{Dir: dir, Statfs: func(string) (int64, error) { return 0, nil }}
	if err := off.Check(); err != nil {
		t.Fatalf("reserve 0 (disabled): Check = %v", err)
	}
}
