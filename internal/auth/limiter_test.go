package auth

import (
	"fmt"
	"testing"
	"time"
)

// TestLimiterEdges covers the window's edges: how long a lockout lasts as
// failures age (the oldest counted failure decides), the exact end of the
// window (a failure aged exactly window no longer counts), failures while
// locked extending the lockout (only the last max are kept), and an
// address and a name counted apart.
func TestLimiterEdges(t *testing.T) {
	t0 := time.Unix(10000, 0)
	now := t0
	l := newLimiter(3, 5, time.Minute, func() time.Time { return now })
	for _, d := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
		now = t0.Add(d)
		l.fail("a", "alice")
	}
	cases := []struct {
		at   time.Duration
		want time.Duration
	}{
		{20 * time.Second, 40 * time.Second},
		{59*time.Second + 999*time.Millisecond, time.Millisecond},
		{time.Minute, 0}, // the first failure aged exactly a window: two remain
		{70 * time.Second, 0},
	}
	for _, c := range cases {
		now = t0.Add(c.at)
		if got := l.nameBlocked("alice"); got != c.want {
			t.Errorf("at +%v: locked for %v, want %v", c.at, got, c.want)
		}
		if got := l.addrBlocked("a"); got != 0 {
			t.Errorf("at +%v: address throttled after 3 of 5 failures: %v", c.at, got)
		}
	}
	// By +75s only the +20s failure still counts; two more lock again,
	// until that oldest one ages out.
	now = t0.Add(75 * time.Second)
	l.fail("b", "alice")
	l.fail("b", "alice")
	if got := l.nameBlocked("alice"); got != 5*time.Second {
		t.Errorf("relocked for %v, want 5s (the +20s failure ages out at +80s)", got)
	}
	// A failure while locked pushes the end out: only the last 3 count.
	now = t0.Add(78 * time.Second)
	l.fail("b", "alice")
	if got, n := l.nameBlocked("alice"), len(l.names.fails["alice"]); got != 57*time.Second || n != 3 {
		t.Errorf("after a failure while locked: %v (%d kept), want 57s (3 kept)", got, n)
	}
}

// TestLimiterMemoryBound covers the prune of a counter past 100000 keys:
// every key that is not locked out is forgotten, locked ones are kept.
func TestLimiterMemoryBound(t *testing.T) {
	now := time.Unix(10000, 0)
	l := newLimiter(2, 1<<30, time.Minute, func() time.Time { return now })
	l.fail("x", "locked")
	l.fail("x", "locked")
	for i := range 100000 {
		l.names.fail(fmt.Sprint("n", i), now, time.Minute)
	}
	l.fail("x", "one-more")
	if n := len(l.names.fails); n != 2 {
		t.Errorf("%d names kept after the prune, want 2 (the locked one and the newest)", n)
	}
	if l.nameBlocked("locked") == 0 {
		t.Error("the prune forgot a locked-out name")
	}
}
