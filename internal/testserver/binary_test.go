package testserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRemoveStaleBinaries: a binary left by a process that has ended is
// removed; one of a live process (this one's parent, or this one) stays.
func TestRemoveStaleBinaries(t *testing.T) {
	// A process that has surely ended: start one and wait for it.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	dead := cmd.Process.Pid
	mk := func(pid int) string {
		d, err := os.MkdirTemp("", fmt.Sprintf("custody-bin-%d-", pid))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "custody"), []byte("x"), 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	stale, live, own := mk(dead), mk(os.Getppid()), mk(os.Getpid())
	removeStaleBinaries()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("binary of ended process %d kept: %v", dead, err)
	}
	for _, d := range []string{live, own} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("binary of a live process removed: %v", err)
		}
	}
}
