package meta_test

import (
	"errors"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/meta"
)

// FuzzMicros: every instant from MinTime to MaxTime survives the stored
// form exactly (to the microsecond, in order); every other is refused.
func FuzzMicros(f *testing.F) {
	for _, t := range []time.Time{meta.MinTime, meta.MaxTime, time.Unix(0, 0),
		time.Date(2262, 4, 11, 23, 47, 16, 854775807, time.UTC), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)} {
		f.Add(t.Unix(), int64(t.Nanosecond()), int64(1))
	}
	f.Fuzz(func(t *testing.T, sec, nsec, step int64) {
		in := time.Unix(sec, nsec%1e9)
		us, err := meta.Micros(in)
		inRange := !in.Truncate(time.Microsecond).Before(meta.MinTime) && !in.Truncate(time.Microsecond).After(meta.MaxTime)
		if !inRange {
			if !errors.Is(err, meta.ErrTimeRange) {
				t.Fatalf("Micros(%s) = %d, %v; want ErrTimeRange", in, us, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Micros(%s): %v", in, err)
		}
		want, _ := meta.Instant(in)
		if got := meta.FromMicros(us); !got.Equal(want) || got.Location() != time.UTC || in.Sub(got) < 0 || in.Sub(got) >= time.Microsecond {
			t.Fatalf("FromMicros(Micros(%s)) = %s, want %s", in, got, want)
		}
		// Order is kept.
		later := in.Add(time.Duration(step%int64(time.Hour)) * time.Microsecond)
		if us2, err := meta.Micros(later); err == nil && later.After(in) && us2 <= us {
			t.Fatalf("Micros(%s) = %d is not after Micros(%s) = %d", later, us2, in, us)
		}
	})
}
