package metrics

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// goMemStats are the go_memstats_* gauges and counters, with the names and
// help texts of client_golang's Go collector (v1.25), read from
// runtime.MemStats at each scrape.
var goMemStats = []struct {
	opts    Opts
	counter bool
	v       func(*runtime.MemStats) float64
}{
	{Opts{"go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.Alloc) }},
	{Opts{"go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes."}, true, func(m *runtime.MemStats) float64 { return float64(m.TotalAlloc) }},
	{Opts{"go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.BuckHashSys) }},
	{Opts{"go_memstats_frees_total", "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects."}, true, func(m *runtime.MemStats) float64 { return float64(m.Frees) }},
	{Opts{"go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.GCSys) }},
	{Opts{"go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.HeapAlloc) }},
	{Opts{"go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.HeapIdle) }},
	{Opts{"go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes"}, false, func(m *runtime.MemStats) float64 { return float64(m.HeapInuse) }},
	{Opts{"go_memstats_heap_objects", "Number of currently allocated objects. Equals to /gc/heap/objects:objects."}, false, func(m *runtime.MemStats) float64 { return float64(m.HeapObjects) }},
	{Opts{"go_memstats_heap_released_bytes", "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.HeapReleased) }},
	{Opts{"go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.HeapSys) }},
	{Opts{"go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection."}, false, func(m *runtime.MemStats) float64 { return float64(m.LastGC) / 1e9 }},
	{Opts{"go_memstats_mallocs_total", "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects."}, true, func(m *runtime.MemStats) float64 { return float64(m.Mallocs) }},
	{Opts{"go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.MCacheInuse) }},
	{Opts{"go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.MCacheSys) }},
	{Opts{"go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.MSpanInuse) }},
	{Opts{"go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.MSpanSys) }},
	{Opts{"go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.NextGC) }},
	{Opts{"go_memstats_other_sys_bytes", "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.OtherSys) }},
	{Opts{"go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.StackInuse) }},
	{Opts{"go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes."}, false, func(m *runtime.MemStats) float64 { return float64(m.StackSys) }},
	{Opts{"go_memstats_sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:byte."}, false, func(m *runtime.MemStats) float64 { return float64(m.Sys) }},
}

var (
	goGCDuration = Opts{"go_gc_duration_seconds", "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles."}
	goGOGC       = Opts{"go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent."}
	goMemLimit   = Opts{"go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes."}
	goGoroutines = Opts{"go_goroutines", "Number of goroutines that currently exist."}
	goInfo       = Opts{"go_info", "Information about the Go environment."}
	goMaxProcs   = Opts{"go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads."}
	goThreads    = Opts{"go_threads", "Number of OS threads created."}
)

type goCollector struct{}

// GoCollector returns the go_* families client_golang's default Go
// collector exports: memory statistics, GC pauses, goroutines, threads,
// GOGC, GOMEMLIMIT, GOMAXPROCS and the Go version.
func GoCollector() Collector { return goCollector{} }

func (goCollector) families() []string {
	names := []string{goGCDuration.Name, goGOGC.Name, goMemLimit.Name, goGoroutines.Name, goInfo.Name, goMaxProcs.Name, goThreads.Name}
	for _, s := range goMemStats {
		names = append(names, s.opts.Name)
	}
	return names
}

func (goCollector) collect(out []*dto.MetricFamily) []*dto.MetricFamily {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, s := range goMemStats {
		if s.counter {
			out = append(out, counterFamily(s.opts, s.v(&ms)))
		} else {
			out = append(out, gaugeFamily(s.opts, s.v(&ms)))
		}
	}
	stats := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&stats)
	qs := make([]*dto.Quantile, len(stats.PauseQuantiles))
	for i, d := range stats.PauseQuantiles {
		qs[i] = &dto.Quantile{Quantile: proto.Float64(float64(i) / float64(len(qs)-1)), Value: proto.Float64(d.Seconds())}
	}
	out = append(out, family(goGCDuration, dto.MetricType_SUMMARY, &dto.Metric{Summary: &dto.Summary{
		SampleCount: proto.Uint64(uint64(stats.NumGC)), SampleSum: proto.Float64(stats.PauseTotal.Seconds()), Quantile: qs,
	}}))
	threads, _ := runtime.ThreadCreateProfile(nil)
	return append(out,
		gaugeFamily(goGOGC, gogc(os.Getenv("GOGC"))),
		gaugeFamily(goMemLimit, float64(debug.SetMemoryLimit(-1))), // -1 reads without changing it
		gaugeFamily(goGoroutines, float64(runtime.NumGoroutine())),
		family(goInfo, dto.MetricType_GAUGE, &dto.Metric{
			Label: []*dto.LabelPair{{Name: proto.String("version"), Value: proto.String(runtime.Version())}},
			Gauge: &dto.Gauge{Value: proto.Float64(1)},
		}),
		gaugeFamily(goMaxProcs, float64(runtime.GOMAXPROCS(0))),
		gaugeFamily(goThreads, float64(threads)),
	)
}

// gogc is the GC percentage the runtime took from the GOGC environment
// variable ("off" is -1, unset or unparsable 100). custody never calls
// debug.SetGCPercent, whose return value is the only other way to read it
// and which would change it.
func gogc(env string) float64 {
	if env == "off" {
		return -1
	}
	if n, err := strconv.ParseInt(env, 10, 32); err == nil {
		return float64(n)
	}
	return 100
}

var (
	procCPU       = Opts{"process_cpu_seconds_total", "Total user and system CPU time spent in seconds."}
	procMaxFDs    = Opts{"process_max_fds", "Maximum number of open file descriptors."}
	procNetRx     = Opts{"process_network_receive_bytes_total", "Number of bytes received by the process over the network."}
	procNetTx     = Opts{"process_network_transmit_bytes_total", "Number of bytes sent by the process over the network."}
	procOpenFDs   = Opts{"process_open_fds", "Number of open file descriptors."}
	procRSS       = Opts{"process_resident_memory_bytes", "Resident memory size in bytes."}
	procStart     = Opts{"process_start_time_seconds", "Start time of the process since unix epoch in seconds."}
	procVSize     = Opts{"process_virtual_memory_bytes", "Virtual memory size in bytes."}
	procVSizeMax  = Opts{"process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes."}
	procFamilyAll = []string{procCPU.Name, procMaxFDs.Name, procNetRx.Name, procNetTx.Name, procOpenFDs.Name, procRSS.Name, procStart.Name, procVSize.Name, procVSizeMax.Name}
)

type processCollector struct{ proc string }

// ProcessCollector returns the process_* families client_golang's process
// collector exports on Linux: CPU time, file descriptors, memory, start
// time and network bytes. A value the system does not give (no /proc) is
// left out of that scrape.
func ProcessCollector() Collector { return processCollector{proc: "/proc"} }

func (processCollector) families() []string { return procFamilyAll }

func (c processCollector) collect(out []*dto.MetricFamily) []*dto.MetricFamily {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		out = append(out, counterFamily(procCPU, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds()))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		out = append(out, gaugeFamily(procMaxFDs, float64(lim.Cur)))
	}
	if syscall.Getrlimit(syscall.RLIMIT_AS, &lim) == nil {
		out = append(out, gaugeFamily(procVSizeMax, float64(lim.Cur)))
	}
	if b, err := os.ReadFile(c.proc + "/self/net/dev"); err == nil {
		if rx, tx, err := parseNetDev(b); err == nil {
			out = append(out, counterFamily(procNetRx, float64(rx)), counterFamily(procNetTx, float64(tx)))
		}
	}
	if d, err := os.Open(c.proc + "/self/fd"); err == nil {
		names, err := d.Readdirnames(-1)
		d.Close()
		if err == nil {
			out = append(out, gaugeFamily(procOpenFDs, float64(len(names))))
		}
	}
	if b, err := os.ReadFile(c.proc + "/self/stat"); err == nil {
		if st, err := parseStat(b); err == nil {
			out = append(out,
				gaugeFamily(procRSS, float64(st.rssPages)*float64(os.Getpagesize())),
				gaugeFamily(procVSize, float64(st.vsize)))
			if b, err := os.ReadFile(c.proc + "/stat"); err == nil {
				if boot, err := parseBootTime(b); err == nil {
					out = append(out, gaugeFamily(procStart, float64(boot)+float64(st.startTicks)/userHZ))
				}
			}
		}
	}
	return out
}
