package meta

import (
	"errors"
	"fmt"
	"time"
)

// Stored instants.
//
// Every metadata backend keeps every instant (retention dates, token
// expiry and revocation, creation and update times, upload sessions) as a
// signed 64-bit count of microseconds since 1970-01-01T00:00:00Z UTC. That
// count cannot overflow for any instant custody accepts: those from
// MinTime to MaxTime, the years RFC 3339 can write (the form every API
// response and audit entry uses). Instant is the one rule deciding what
// may be stored; callers that take a time from a request or compute one
// from configuration call it and refuse the request when it fails, and
// the backends call it (through Micros) before writing, so an out-of-range
// time is refused, never wrapped around.

var (
	// MinTime is the earliest instant a store keeps (the zero time.Time).
	MinTime = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	// MaxTime is the latest instant a store keeps: the last microsecond of
	// year 9999.
	MaxTime = time.Date(9999, time.December, 31, 23, 59, 59, 999999000, time.UTC)

	// ErrTimeRange: an instant lies outside [MinTime, MaxTime].
	ErrTimeRange = errors.New("time out of range")
)

// Instant returns t as a store keeps it and gives it back: in UTC,
// truncated to the microsecond. It returns an error wrapping ErrTimeRange
// when that is before MinTime or after MaxTime.
func Instant(t time.Time) (time.Time, error) {
	i := t.UTC().Truncate(time.Microsecond)
	if i.Before(MinTime) || i.After(MaxTime) {
		return time.Time{}, fmt.Errorf("%w: %s is outside %s to %s", ErrTimeRange,
			t.UTC().Format(time.RFC3339Nano), MinTime.Format(time.RFC3339), MaxTime.Format(time.RFC3339Nano))
	}
	return i, nil
}

// Micros returns the stored form of t: microseconds since the Unix epoch,
// or an error wrapping ErrTimeRange (see Instant).
func Micros(t time.Time) (int64, error) {
	i, err := Instant(t)
	if err != nil {
		return 0, err
	}
	return i.UnixMicro(), nil
}

// FromMicros returns the instant a stored count of microseconds since the
// Unix epoch stands for, in UTC.
func FromMicros(us int64) time.Time {
	return time.UnixMicro(us).UTC()
}
