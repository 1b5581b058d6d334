package meta

import (
	"context"
	"log/slog"
	"time"
)

// Catchup runs a catch-up in the background after being kicked: the
// metadata stores' search indexers, which copy newly appended audit log
// leaves into their search tables (docs/audit.md, "Storage"). After the
// first kick it waits delay, so that the kicks of a burst share one
// catch-up, then runs it; a failure is logged, and the next kick retries.
type Catchup struct {
	wake   chan struct{}
	cancel context.CancelFunc // stops run
	done   chan struct{}      // closed when run has returned
}

// StartCatchup starts a Catchup that runs fn, under a context that Close
// cancels, delay after a kick. It is kicked once at the start, for work
// left from before. what names the work in log messages.
func StartCatchup(delay time.Duration, what string, fn func(context.Context) error) *Catchup {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Catchup{wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go c.run(ctx, delay, what, fn)
	c.Kick()
	return c
}

// Kick asks for a catch-up. It never blocks, and does nothing on a nil
// or closed Catchup.
func (c *Catchup) Kick() {
	if c == nil {
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Close stops c and waits for a running catch-up to return. It may be
// called again.
func (c *Catchup) Close() {
	if c == nil {
		return
	}
	c.cancel()
	<-c.done
}

func (c *Catchup) run(ctx context.Context, delay time.Duration, what string, fn func(context.Context) error) {
	defer close(c.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			slog.Warn(what+": catching up failed", "err", err)
		}
	}
}
