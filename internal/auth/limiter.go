package auth

import (
	"sync"
	"time"
)

// limiter counts failed sign-ins per client address and per user name and
// locks a key out once it has failed max times within window, until the
// oldest failure of the window has aged out.
type limiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	fails map[string][]time.Time
}

func newLimiter(max int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{max: max, window: window, now: now, fails: map[string][]time.Time{}}
}

// blocked returns how long the client address or the user name is still
// locked out, or 0.
func (l *limiter) blocked(addr, user string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range []string{"addr:" + addr, "user:" + user} {
		f := l.recent(k, now)
		if len(f) >= l.max {
			wait = max(wait, f[0].Add(l.window).Sub(now))
		}
	}
	return wait
}

// recent drops failures older than the window and returns the rest.
func (l *limiter) recent(k string, now time.Time) []time.Time {
	f := l.fails[k]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= l.window {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(l.fails, k)
	} else {
		l.fails[k] = f
	}
	return f
}

// fail records a failed sign-in.
func (l *limiter) fail(addr, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.fails) > 100000 {
		// Bound memory under a spray of distinct names: forget everything
		// that is not currently locked out.
		for k := range l.fails {
			if len(l.recent(k, now)) < l.max {
				delete(l.fails, k)
			}
		}
	}
	for _, k := range []string{"addr:" + addr, "user:" + user} {
		f := append(l.recent(k, now), now)
		if len(f) > l.max {
			f = f[len(f)-l.max:]
		}
		l.fails[k] = f
	}
}

// succeed forgets a user name's failures (not the address's: a client
// that guesses many names must stay limited).
func (l *limiter) succeed(user string) {
	l.mu.Lock()
	delete(l.fails, "user:"+user)
	l.mu.Unlock()
}
