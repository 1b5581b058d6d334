package metrics

import (
	"bytes"
	"errors"
	"strconv"
)

// userHZ is the unit of /proc's clock-tick fields on Linux (USER_HZ, 100
// on every architecture Go supports), as procfs assumes too.
const userHZ = 100

// stat is what the process collector reads from /proc/self/stat.
type stat struct {
	startTicks uint64 // field 22: start time after boot, clock ticks
	vsize      uint64 // field 23: virtual memory size, bytes
	rssPages   uint64 // field 24: resident set size, pages
}

var errFormat = errors.New("metrics: unexpected /proc format")

// parseStat parses /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may itself hold spaces and parentheses, so the fields are
// counted from the last ')'.
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, errFormat
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 22 {
		return stat{}, errFormat
	}
	var s stat
	var err error
	for _, x := range []struct {
		field int
		v     *uint64
	}{{22, &s.startTicks}, {23, &s.vsize}, {24, &s.rssPages}} {
		if *x.v, err = strconv.ParseUint(string(f[x.field-3]), 10, 64); err != nil {
			return stat{}, errFormat
		}
	}
	return s, nil
}

// parseBootTime reads the btime line of /proc/stat: the boot time in
// seconds since the Unix epoch.
func parseBootTime(b []byte) (uint64, error) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, errFormat
			}
			return n, nil
		}
	}
	return 0, errFormat
}

// parseNetDev sums the received and transmitted bytes of every interface
// in /proc/<pid>/net/dev (two header lines, then "iface: rx-bytes ... "
// with rx bytes the first and tx bytes the ninth number).
func parseNetDev(b []byte) (rx, tx uint64, err error) {
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) < 2 {
		return 0, 0, errFormat
	}
	for _, line := range lines[2:] {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		_, nums, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, 0, errFormat
		}
		f := bytes.Fields(nums)
		if len(f) < 16 {
			return 0, 0, errFormat
		}
		r, err1 := strconv.ParseUint(string(f[0]), 10, 64)
		t, err2 := strconv.ParseUint(string(f[8]), 10, 64)
		if err1 != nil || err2 != nil {
			return 0, 0, errFormat
		}
		rx += r
		tx += t
	}
	return rx, tx, nil
}
