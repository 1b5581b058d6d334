package metrics

import (
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// goAndProcess are the go_* and process_* families /metrics exported with
// client_golang's default collectors (v1.25, Linux), which dashboards and
// alerts may name.
var goAndProcess = []string{
	"go_gc_duration_seconds", "go_gc_gogc_percent", "go_gc_gomemlimit_bytes", "go_goroutines", "go_info",
	"go_memstats_alloc_bytes", "go_memstats_alloc_bytes_total", "go_memstats_buck_hash_sys_bytes",
	"go_memstats_frees_total", "go_memstats_gc_sys_bytes", "go_memstats_heap_alloc_bytes",
	"go_memstats_heap_idle_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_heap_objects",
	"go_memstats_heap_released_bytes", "go_memstats_heap_sys_bytes", "go_memstats_last_gc_time_seconds",
	"go_memstats_mallocs_total", "go_memstats_mcache_inuse_bytes", "go_memstats_mcache_sys_bytes",
	"go_memstats_mspan_inuse_bytes", "go_memstats_mspan_sys_bytes", "go_memstats_next_gc_bytes",
	"go_memstats_other_sys_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_stack_sys_bytes",
	"go_memstats_sys_bytes", "go_sched_gomaxprocs_threads", "go_threads",
	"process_cpu_seconds_total", "process_max_fds", "process_network_receive_bytes_total",
	"process_network_transmit_bytes_total", "process_open_fds", "process_resident_memory_bytes",
	"process_start_time_seconds", "process_virtual_memory_bytes", "process_virtual_memory_max_bytes",
}

type fixture struct {
	reg   *Registry
	reqs  *CounterVec
	lat   *HistogramVec
	up    *Gauge
	bytes *Counter
}

func newFixture() fixture {
	f := fixture{
		reg:   NewRegistry(),
		reqs:  NewCounterVec(Opts{Name: "t_requests_total", Help: "Requests."}, []string{"method", "code"}),
		lat:   NewHistogramVec(Opts{Name: "t_seconds", Help: "Latency."}, ExponentialBuckets(0.5, 2, 3), []string{"method"}),
		up:    NewGauge(Opts{Name: "t_up", Help: "Up."}),
		bytes: NewCounter(Opts{Name: "t_bytes_total", Help: "Bytes."}),
	}
	f.reg.MustRegister(f.reqs, f.lat, f.up, f.bytes,
		NewGaugeFunc(Opts{Name: "t_func", Help: "Func."}, func() float64 { return 42 }),
		GoCollector(), ProcessCollector())
	return f
}

func scrape(t *testing.T, h http.Handler, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header = header
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func parseText(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("expfmt cannot parse the exposition: %v", err)
	}
	return mfs
}

// TestExposition: what /metrics writes parses with Prometheus' own text
// parser, with the values, types, label order and histogram buckets the
// instruments were given, and carries every go_* and process_* family the
// server exported with client_golang.
func TestExposition(t *testing.T) {
	f := newFixture()
	f.reqs.WithLabelValues("GET", "200").Inc()
	f.reqs.WithLabelValues("GET", "200").Add(2)
	f.reqs.WithLabelValues("PUT", "201").Inc()
	for _, v := range []float64{0.1, 0.5, 0.7, 1.5, 3, 100} {
		f.lat.WithLabelValues("GET").Observe(v)
	}
	f.up.Set(5)
	f.up.Dec()
	f.bytes.Add(1024)

	resp := scrape(t, f.reg.Handler(), http.Header{})
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q", ct)
	}
	mfs := parseText(t, resp.Body)

	reqs := mfs["t_requests_total"]
	if reqs.GetType() != dto.MetricType_COUNTER || len(reqs.Metric) != 2 {
		t.Fatalf("t_requests_total: %v", reqs)
	}
	// Labels by name (code before method); metrics by label values.
	if l := reqs.Metric[0].Label; l[0].GetName() != "code" || l[0].GetValue() != "200" || l[1].GetValue() != "GET" || reqs.Metric[0].Counter.GetValue() != 3 {
		t.Errorf("first request series: %v", reqs.Metric[0])
	}
	if reqs.Metric[1].Label[0].GetValue() != "201" || reqs.Metric[1].Counter.GetValue() != 1 {
		t.Errorf("second request series: %v", reqs.Metric[1])
	}

	h := mfs["t_seconds"].Metric[0].Histogram
	if mfs["t_seconds"].GetType() != dto.MetricType_HISTOGRAM || h.GetSampleCount() != 6 || h.GetSampleSum() != 105.8 {
		t.Fatalf("histogram: %v", mfs["t_seconds"])
	}
	want := map[float64]uint64{0.5: 2, 1: 3, 2: 4, math.Inf(1): 6} // le is inclusive
	if len(h.Bucket) != len(want) {
		t.Fatalf("buckets %v", h.Bucket)
	}
	for _, b := range h.Bucket {
		if want[b.GetUpperBound()] != b.GetCumulativeCount() {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want[b.GetUpperBound()])
		}
	}
	if v := mfs["t_up"].Metric[0].Gauge.GetValue(); v != 4 {
		t.Errorf("t_up = %v", v)
	}
	if v := mfs["t_bytes_total"].Metric[0].Counter.GetValue(); v != 1024 {
		t.Errorf("t_bytes_total = %v", v)
	}
	if v := mfs["t_func"].Metric[0].Gauge.GetValue(); v != 42 {
		t.Errorf("t_func = %v", v)
	}
	for _, n := range goAndProcess {
		if mfs[n] == nil {
			t.Errorf("no %s", n)
		}
	}
	if mfs["go_gc_duration_seconds"].GetType() != dto.MetricType_SUMMARY || len(mfs["go_gc_duration_seconds"].Metric[0].Summary.Quantile) != 5 {
		t.Errorf("go_gc_duration_seconds: %v", mfs["go_gc_duration_seconds"])
	}
	if mfs["go_info"].Metric[0].Label[0].GetValue() == "" {
		t.Error("go_info has no version")
	}
	if rss := mfs["process_resident_memory_bytes"].Metric[0].Gauge.GetValue(); rss < 1<<20 {
		t.Errorf("process_resident_memory_bytes = %v", rss)
	}
	if st := mfs["process_start_time_seconds"].Metric[0].Gauge.GetValue(); st < 1.6e9 {
		t.Errorf("process_start_time_seconds = %v", st)
	}
}

// TestFormats: a Prometheus server asking for delimited protobuf gets it,
// and a client accepting gzip gets the text compressed, as client_golang's
// handler answered.
func TestFormats(t *testing.T) {
	f := newFixture()
	f.up.Set(7)
	resp := scrape(t, f.reg.Handler(), http.Header{"Accept": {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3"}})
	format := expfmt.ResponseFormat(resp.Header)
	if format.FormatType() != expfmt.TypeProtoDelim {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	dec := expfmt.NewDecoder(resp.Body, format)
	found := false
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if mf.GetName() == "t_up" && mf.Metric[0].Gauge.GetValue() == 7 {
			found = true
		}
	}
	if !found {
		t.Error("t_up missing from the protobuf exposition")
	}

	resp = scrape(t, f.reg.Handler(), http.Header{"Accept-Encoding": {"gzip"}})
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if mfs := parseText(t, zr); mfs["t_up"] == nil {
		t.Error("t_up missing from the gzipped exposition")
	}
}

func TestAcceptsGzip(t *testing.T) {
	for in, want := range map[string]bool{
		"": false, "gzip": true, "br, GZIP;q=0.5": true, "gzip;q=0": false, "gzip; q=0.000": false,
		"deflate": false, "x-gzip": false, "identity, gzip;q=1.0": true,
	} {
		if got := acceptsGzip([]string{in}); got != want {
			t.Errorf("acceptsGzip(%q) = %v", in, got)
		}
	}
}

// TestMustRegisterRefuses: a family registered twice or with a name
// Prometheus rejects panics at start-up, and the registry is unchanged.
func TestMustRegisterRefuses(t *testing.T) {
	for name, c := range map[string]Collector{
		"duplicate": NewGauge(Opts{Name: "t_up"}),
		"bad name":  NewGauge(Opts{Name: "t-up"}),
		"go twice":  GoCollector(),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture()
			before := len(f.reg.Gather())
			func() {
				defer func() {
					if recover() == nil {
						t.Error("no panic")
					}
				}()
				f.reg.MustRegister(c)
			}()
			if after := len(f.reg.Gather()); after != before {
				t.Errorf("%d families after the refusal, %d before", after, before)
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("a bad label name did not panic")
		}
	}()
	NewCounterVec(Opts{Name: "t_x"}, []string{"__reserved"})
}

// TestConcurrentUpdates: updates from many goroutines while scraping are
// all counted (run with -race).
func TestConcurrentUpdates(t *testing.T) {
	f := newFixture()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				f.reqs.WithLabelValues("GET", []string{"200", "404"}[g%2]).Inc()
				f.lat.WithLabelValues("GET").Observe(float64(i % 4))
				f.up.Inc()
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			f.reg.Gather()
		}
	})
	wg.Wait()
	mfs := map[string]*dto.MetricFamily{}
	for _, mf := range f.reg.Gather() {
		mfs[mf.GetName()] = mf
	}
	if n := mfs["t_requests_total"].Metric[0].Counter.GetValue() + mfs["t_requests_total"].Metric[1].Counter.GetValue(); n != 8000 {
		t.Errorf("%v requests counted", n)
	}
	if n := mfs["t_seconds"].Metric[0].Histogram.GetSampleCount(); n != 8000 {
		t.Errorf("%d observations", n)
	}
	if v := mfs["t_up"].Metric[0].Gauge.GetValue(); v != 8000 {
		t.Errorf("gauge %v", v)
	}
}

func TestGOGC(t *testing.T) {
	for in, want := range map[string]float64{"": 100, "off": -1, "50": 50, "junk": 100} {
		if got := gogc(in); got != want {
			t.Errorf("gogc(%q) = %v", in, got)
		}
	}
}

// TestProcessCollectorWithoutProc: with no /proc, the values that need it
// are left out and the rest still served.
func TestProcessCollectorWithoutProc(t *testing.T) {
	got := map[string]bool{}
	for _, mf := range (processCollector{proc: t.TempDir()}).collect(nil) {
		got[mf.GetName()] = true
	}
	if !got["process_cpu_seconds_total"] || !got["process_max_fds"] || got["process_start_time_seconds"] || got["process_open_fds"] {
		t.Errorf("families: %v", got)
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses.
	line := "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 500 0 0 0 7 3 0 0 20 0 9 0 5600 2000000000 3000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	s, err := parseStat([]byte(line))
	if err != nil || s != (stat{startTicks: 5600, vsize: 2000000000, rssPages: 3000}) {
		t.Fatalf("parseStat = %+v, %v", s, err)
	}
	if _, err := parseStat([]byte("1234 (a) S 1 2")); err == nil {
		t.Error("a short line parsed")
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc")
	}
	if s, err := parseStat(b); err != nil || s.rssPages == 0 {
		t.Errorf("own stat: %+v, %v", s, err)
	}
}

func TestParseNetDev(t *testing.T) {
	in := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0: 2500      20    0    0    0     0          0         0      700       5    0    0    0     0       0          0
`
	rx, tx, err := parseNetDev([]byte(in))
	if err != nil || rx != 3500 || tx != 1700 {
		t.Fatalf("parseNetDev = %d, %d, %v", rx, tx, err)
	}
	if _, _, err := parseNetDev([]byte("h\nh\n  eth0: 1 2 3\n")); err == nil {
		t.Error("a short line parsed")
	}
}

func TestParseBootTime(t *testing.T) {
	if n, err := parseBootTime([]byte("cpu  1 2 3\nbtime 1796000000\nprocesses 5\n")); err != nil || n != 1796000000 {
		t.Fatalf("parseBootTime = %d, %v", n, err)
	}
	if _, err := parseBootTime([]byte("cpu 1\n")); err == nil {
		t.Error("no btime parsed")
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (a) b (c) S 1 1234 1234 0 -1 4194560 500 0 0 0 7 3 0 0 20 0 9 0 5600 2000000000 3000 18446744073709551615 1 1 0"))
	f.Add([]byte("1 ()) S"))
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseStat(b)
		if err != nil && s != (stat{}) {
			t.Errorf("error with values %+v", s)
		}
	})
}

func FuzzParseNetDev(f *testing.F) {
	f.Add([]byte("a\nb\n  lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"))
	if b, err := os.ReadFile("/proc/self/net/dev"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rx, tx, err := parseNetDev(b)
		if err != nil && (rx != 0 || tx != 0) {
			t.Errorf("error with values %d, %d", rx, tx)
		}
	})
}

func FuzzParseBootTime(f *testing.F) {
	f.Add([]byte("cpu 1\nbtime 1796000000\n"))
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseBootTime(b)
		if err != nil && n != 0 {
			t.Errorf("error with value %d", n)
		}
	})
}

// TestUpdateDoesNotAllocate: a request's metric updates cost no allocation
// once its label values have been seen.
func TestUpdateDoesNotAllocate(t *testing.T) {
	f := newFixture()
	f.reqs.WithLabelValues("GET", "200").Inc()
	f.lat.WithLabelValues("GET").Observe(1)
	if n := testing.AllocsPerRun(100, func() {
		f.reqs.WithLabelValues("GET", "200").Inc()
		f.lat.WithLabelValues("GET").Observe(0.3)
	}); n != 0 {
		t.Errorf("%v allocations per update", n)
	}
}

// TestLabelValuesKeepTheirSeries: two combinations of label values are
// two series, even when the values hold bytes that are not UTF-8 (the
// byte that separates values in the children's key included): an update
// never lands on, or shows under, another combination's labels.
func TestLabelValuesKeepTheirSeries(t *testing.T) {
	v := NewCounterVec(Opts{Name: "t_total", Help: "T."}, []string{"a", "b"})
	v.WithLabelValues("x\xff", "y").Inc()
	v.WithLabelValues("x", "\xffy").Add(2)
	mf := v.collect(nil)[0]
	if len(mf.Metric) != 2 {
		t.Fatalf("%d series for two combinations of label values: %v", len(mf.Metric), mf.Metric)
	}
	got := map[string]float64{}
	for _, m := range mf.Metric {
		got[m.Label[0].GetValue()+"|"+m.Label[1].GetValue()] = m.Counter.GetValue()
	}
	want := map[string]float64{"x\uFFFD|y": 1, "x|\uFFFDy": 2}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("series %q = %v, want %v (all: %v)", k, got[k], n, got)
		}
	}
}
