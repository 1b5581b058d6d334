package meta_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/meta"
)

// TestCatchup: a Catchup runs once for its start, once for a burst of
// kicks, and Close cancels a running catch-up and waits for it; kicks
// after Close do nothing, and Close may be called again.
func TestCatchup(t *testing.T) {
	var runs atomic.Int32
	ran := make(chan struct{}, 10)
	block := make(chan struct{})
	c := meta.StartCatchup(time.Millisecond, "test", func(ctx context.Context) error {
		n := runs.Add(1)
		ran <- struct{}{}
		if n == 3 {
			close(block)
			<-ctx.Done() // the third run lasts until Close
		}
		return nil
	})
	<-ran // the start's run
	for range 5 {
		c.Kick()
	}
	<-ran // one run for the burst, or two if it began between kicks
	for runs.Load() < 3 {
		c.Kick()
		<-ran
	}
	<-block
	c.Close()
	c.Close()
	c.Kick()
	if n := runs.Load(); n != 3 {
		t.Fatalf("%d runs, want 3", n)
	}
	var nilCatchup *meta.Catchup
	nilCatchup.Kick()
	nilCatchup.Close()
}
