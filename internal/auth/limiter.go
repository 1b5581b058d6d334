package auth

import (
	"sync"
	"time"
)

// limiter counts failed sign-ins per account name and per client address,
// separately:
//
//   - A name that failed nameMax times within the window is locked out,
//     even with the right password, until the oldest of those failures
//     has aged out. That bounds guessing one account's password wherever
//     the guesses come from, and failures for one name never lock out
//     another.
//   - An address that failed addrMax times (much more: everyone behind one
//     NAT or proxy shares it) is throttled: its further failures are
//     answered 429 and audited as such, so a spray of guesses across many
//     names (or unknown ones) is slowed and shows; a correct password of
//     an account that is not itself locked still signs in from it.
//
// The counts live in this replica's memory, not the shared store: an
// attempt counts before the password is checked and is forgotten when it
// proves right, and clients that send a password with every request
// would make a shared count two database writes per request. Behind a
// balancer over N replicas the bounds are N times the configured ones
// (docs/security.md).
type limiter struct {
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	names counter
	addrs counter
}

// counter keeps the failures of the current window per key.
type counter struct {
	max   int
	fails map[string][]time.Time
}

func newLimiter(nameMax, addrMax int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{
		window: window, now: now,
		names: counter{max: nameMax, fails: map[string][]time.Time{}},
		addrs: counter{max: addrMax, fails: map[string][]time.Time{}},
	}
}

// nameBlocked returns how long the account name is still locked out, or 0.
func (l *limiter) nameBlocked(name string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.names.blocked(name, l.now(), l.window)
}

// addrBlocked returns how long the address is still throttled, or 0.
func (l *limiter) addrBlocked(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs.blocked(addr, l.now(), l.window)
}

// fail records a failed sign-in from addr; for a password it counts
// against the name too (name is "" for API and OIDC tokens: they are not
// guessable, and the name given with them, such as "token", is shared).
func (l *limiter) fail(addr, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.addrs.fail(addr, now, l.window)
	if name != "" {
		l.names.fail(name, now, l.window)
	}
}

// attempt is nameBlocked and a failure of name in one step: it returns
// how long name is still locked out, or counts this attempt against name
// at once (until succeed forgets it), so concurrent guesses cannot all
// pass the check before any of them counts. The address is for fail to
// count, when the attempt did fail.
func (l *limiter) attempt(name string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if wait := l.names.blocked(name, now, l.window); wait > 0 {
		return wait
	}
	l.names.fail(name, now, l.window)
	return 0
}

// succeed forgets a name's failures (not the address's: a client that
// guesses many names must stay throttled).
func (l *limiter) succeed(name string) {
	l.mu.Lock()
	delete(l.names.fails, name)
	l.mu.Unlock()
}

func (c *counter) blocked(k string, now time.Time, window time.Duration) time.Duration {
	f := c.recent(k, now, window)
	if len(f) < c.max {
		return 0
	}
	return f[0].Add(window).Sub(now)
}

// recent drops failures older than the window and returns the rest.
func (c *counter) recent(k string, now time.Time, window time.Duration) []time.Time {
	f := c.fails[k]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= window {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(c.fails, k)
	} else {
		c.fails[k] = f
	}
	return f
}

func (c *counter) fail(k string, now time.Time, window time.Duration) {
	if len(c.fails) > 100000 {
		// Bound memory under a spray of distinct names: forget everything
		// that is not currently locked out.
		for k := range c.fails {
			if len(c.recent(k, now, window)) < c.max {
				delete(c.fails, k)
			}
		}
	}
	f := append(c.recent(k, now, window), now)
	if len(f) > c.max {
		f = f[len(f)-c.max:]
	}
	c.fails[k] = f
}
