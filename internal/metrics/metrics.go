// Package metrics is custody's Prometheus instrumentation: counters, gauges
// and histograms with labels, the Go runtime's and the process's families,
// and the /metrics handler, which writes them with Prometheus' own
// exposition libraries (github.com/prometheus/common/expfmt over
// client_model's types), so every format a scraper negotiates (text,
// delimited protobuf) is the field's encoder.
//
// It stands in for client_golang's prometheus package, whose package
// initialisation builds and registers a default registry with the Go and
// process collectors in every process that links it: about 0.5 ms and 1,500
// allocations in each `custody` command, `custody version` included, for a
// registry the server never uses (docs/architecture.md, "Metrics").
//
// Metric and label names are fixed by the code, so a bad one panics at
// registration, as client_golang's MustRegister does; so does a second
// collector with a family name already registered.
package metrics

import (
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// Opts name a metric family and say what it measures.
type Opts struct {
	Name string
	Help string
}

// A Collector gives the registry one or more metric families.
type Collector interface {
	// families names the families collect returns.
	families() []string
	// collect appends the current families.
	collect(out []*dto.MetricFamily) []*dto.MetricFamily
}

// Registry holds collectors and gathers their families for /metrics.
type Registry struct {
	mu    sync.Mutex
	names map[string]bool
	cs    []Collector
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

// MustRegister adds collectors; it panics on a family name already
// registered or one Prometheus does not accept.
func (r *Registry) MustRegister(cs ...Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		names := c.families()
		for i, n := range names {
			if !validName(n, true) {
				panic(fmt.Sprintf("metrics: invalid metric name %q", n))
			}
			if r.names[n] || slices.Contains(names[:i], n) {
				panic(fmt.Sprintf("metrics: %s registered twice", n))
			}
		}
		for _, n := range names {
			r.names[n] = true
		}
		r.cs = append(r.cs, c)
	}
}

// Gather returns every family, sorted by name, each family's metrics sorted
// by their label values, as client_golang's registry gathers them.
func (r *Registry) Gather() []*dto.MetricFamily {
	r.mu.Lock()
	cs := slices.Clone(r.cs)
	r.mu.Unlock()
	var out []*dto.MetricFamily
	for _, c := range cs {
		out = c.collect(out)
	}
	out = slices.DeleteFunc(out, func(mf *dto.MetricFamily) bool { return len(mf.Metric) == 0 })
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// Handler serves the registry's families in the format the request's Accept
// header negotiates (Prometheus text by default, delimited protobuf when
// asked), gzip-compressed when the client accepts gzip, as client_golang's
// promhttp handler does.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mfs := r.Gather()
		format := expfmt.NegotiateAccept(req.Header, expfmt.DefaultAcceptedFormats()...)
		h := w.Header()
		h.Set("Content-Type", string(format))
		h.Add("Vary", "Accept")
		h.Add("Vary", "Accept-Encoding")
		var out io.Writer = w
		if acceptsGzip(req.Header.Values("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			defer gz.Close()
			out = gz
		}
		enc := expfmt.NewEncoder(out, format)
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				return // the client went away; nothing to tell it
			}
		}
		if c, ok := enc.(expfmt.Closer); ok {
			_ = c.Close()
		}
	})
}

// acceptsGzip reports whether Accept-Encoding values offer gzip with a
// non-zero quality.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q, found := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
			if !found || strings.Trim(q, "0.") != "" {
				return true
			}
		}
	}
	return false
}

// validName reports whether s is a legacy Prometheus metric name (colons
// allowed) or label name (colons not allowed).
func validName(s string, metric bool) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' || metric && c == ':'
		if !ok {
			return false
		}
	}
	return !strings.HasPrefix(s, "__") || metric
}

// value is a float64 updated atomically.
type value struct{ bits atomic.Uint64 }

func (v *value) load() float64 { return math.Float64frombits(v.bits.Load()) }

func (v *value) store(f float64) { v.bits.Store(math.Float64bits(f)) }

func (v *value) add(f float64) {
	for {
		old := v.bits.Load()
		if v.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+f)) {
			return
		}
	}
}

// Counter is a value that only goes up.
type Counter struct {
	opts Opts
	v    value
}

// NewCounter returns a counter without labels.
func NewCounter(o Opts) *Counter { return &Counter{opts: o} }

// Inc adds 1.
func (c *Counter) Inc() { c.v.add(1) }

// Add adds v, which must not be negative.
func (c *Counter) Add(v float64) {
	if v < 0 {
		panic("metrics: counter decreased")
	}
	c.v.add(v)
}

func (c *Counter) families() []string { return []string{c.opts.Name} }

func (c *Counter) collect(out []*dto.MetricFamily) []*dto.MetricFamily {
	return append(out, family(c.opts, dto.MetricType_COUNTER, c.metric(nil)))
}

func (c *Counter) metric(labels []*dto.LabelPair) *dto.Metric {
	return &dto.Metric{Label: labels, Counter: &dto.Counter{Value: proto.Float64(c.v.load())}}
}

// Gauge is a value that goes up and down.
type Gauge struct {
	opts Opts
	v    value
}

// NewGauge returns a gauge without labels.
func NewGauge(o Opts) *Gauge { return &Gauge{opts: o} }

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.v.store(v) }

// Inc adds 1.
func (g *Gauge) Inc() { g.v.add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.v.add(-1) }

// Add adds v (which may be negative).
func (g *Gauge) Add(v float64) { g.v.add(v) }

// SetToCurrentTime sets the gauge to the current Unix time in seconds.
func (g *Gauge) SetToCurrentTime() { g.Set(float64(time.Now().UnixNano()) / 1e9) }

func (g *Gauge) families() []string { return []string{g.opts.Name} }

func (g *Gauge) collect(out []*dto.MetricFamily) []*dto.MetricFamily {
	return append(out, family(g.opts, dto.MetricType_GAUGE, g.metric(nil)))
}

func (g *Gauge) metric(labels []*dto.LabelPair) *dto.Metric {
	return &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: proto.Float64(g.v.load())}}
}

// gaugeFunc is a gauge whose value a function gives at each scrape.
type gaugeFunc struct {
	opts Opts
	f    func() float64
}

// NewGaugeFunc returns a gauge whose value is f's at each scrape.
func NewGaugeFunc(o Opts, f func() float64) Collector { return &gaugeFunc{opts: o, f: f} }

func (g *gaugeFunc) families() []string { return []string{g.opts.Name} }

func (g *gaugeFunc) collect(out []*dto.MetricFamily) []*dto.MetricFamily {
	return append(out, gaugeFamily(g.opts, g.f()))
}

// Histogram counts observations in buckets.
type Histogram struct {
	upper []float64       // bucket upper bounds, increasing
	count []atomic.Uint64 // per bucket (not cumulative), then +Inf
	sum   value
}

func newHistogram(upper []float64) *Histogram {
	return &Histogram{upper: upper, count: make([]atomic.Uint64, len(upper)+1)}
}

// Observe adds one observation.
func (h *Histogram) Observe(v float64) {
	h.count[sort.SearchFloat64s(h.upper, v)].Add(1)
	h.sum.add(v)
}

func (h *Histogram) metric(labels []*dto.LabelPair) *dto.Metric {
	// The count is the sum of the buckets read, so the +Inf bucket the
	// encoder writes (the count) is never below a finite one.
	buckets := make([]*dto.Bucket, len(h.upper))
	var cum uint64
	for i, u := range h.upper {
		cum += h.count[i].Load()
		buckets[i] = &dto.Bucket{UpperBound: proto.Float64(u), CumulativeCount: proto.Uint64(cum)}
	}
	cum += h.count[len(h.upper)].Load()
	return &dto.Metric{Label: labels, Histogram: &dto.Histogram{
		SampleCount: proto.Uint64(cum), SampleSum: proto.Float64(h.sum.load()), Bucket: buckets,
	}}
}

// ExponentialBuckets returns count bucket bounds, the first start, each
// factor times the one before.
func ExponentialBuckets(start, factor float64, count int) []float64 {
	if count < 1 || start <= 0 || factor <= 1 {
		panic("metrics: ExponentialBuckets needs count >= 1, start > 0, factor > 1")
	}
	b := make([]float64, count)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

// vec is a family whose metrics are told apart by label values.
type vec[T any] struct {
	opts   Opts
	typ    dto.MetricType
	labels []string // as declared: WithLabelValues' order
	order  []int    // indices into labels, by name: the exposition's order
	make   func() *T
	metric func(*T, []*dto.LabelPair) *dto.Metric

	mu       sync.RWMutex
	children map[string]*child[T]
}

type child[T any] struct {
	pairs []*dto.LabelPair
	m     *T
}

func newVec[T any](o Opts, typ dto.MetricType, labels []string, mk func() *T, metric func(*T, []*dto.LabelPair) *dto.Metric) vec[T] {
	for _, l := range labels {
		if !validName(l, false) {
			panic(fmt.Sprintf("metrics: invalid label name %q of %s", l, o.Name))
		}
	}
	order := make([]int, len(labels))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(i, j int) bool { return labels[order[i]] < labels[order[j]] })
	return vec[T]{opts: o, typ: typ, labels: slices.Clone(labels), order: order, make: mk, metric: metric, children: map[string]*child[T]{}}
}

// with returns the metric for label values, made on first use.
func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s has %d labels, got %d values", v.opts.Name, len(v.labels), len(values)))
	}
	// Values are exposed as valid UTF-8, and the key separates them with
	// a byte that valid UTF-8 never holds: a value that is not valid
	// UTF-8 is keyed as exposed, so that no two combinations share a key.
	for i, s := range values {
		if !utf8.ValidString(s) {
			values = slices.Clone(values)
			for j := i; j < len(values); j++ {
				values[j] = strings.ToValidUTF8(values[j], "\uFFFD")
			}
			break
		}
	}
	// The key is built in a stack buffer, and the map lookup converts it
	// without allocating: no allocation per update once the child exists.
	var buf [256]byte
	key := buf[:0]
	for i, s := range values {
		if i > 0 {
			key = append(key, 0xff) // never in UTF-8 text
		}
		key = append(key, s...)
	}
	v.mu.RLock()
	c := v.children[string(key)]
	v.mu.RUnlock()
	if c != nil {
		return c.m
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c = v.children[string(key)]; c == nil {
		pairs := make([]*dto.LabelPair, len(v.order))
		for i, j := range v.order {
			pairs[i] = &dto.LabelPair{Name: proto.String(v.labels[j]), Value: proto.String(values[j])}
		}
		c = &child[T]{pairs: pairs, m: v.make()}
		v.children[string(key)] = c
	}
	return c.m
}

func (v *vec[T]) families() []string { return []string{v.opts.Name} }

func (v *vec[T]) collect(out []*dto.MetricFamily) []*dto.MetricFamily {
	v.mu.RLock()
	ms := make([]*dto.Metric, 0, len(v.children))
	for _, c := range v.children {
		ms = append(ms, v.metric(c.m, c.pairs))
	}
	v.mu.RUnlock()
	sort.Slice(ms, func(i, j int) bool { return labelsLess(ms[i].Label, ms[j].Label) })
	return append(out, family(v.opts, v.typ, ms...))
}

func labelsLess(a, b []*dto.LabelPair) bool {
	for i := range min(len(a), len(b)) {
		if a[i].GetValue() != b[i].GetValue() {
			return a[i].GetValue() < b[i].GetValue()
		}
	}
	return len(a) < len(b)
}

// CounterVec is a counter per combination of label values.
type CounterVec struct{ vec[Counter] }

// NewCounterVec returns a counter family with the given label names.
func NewCounterVec(o Opts, labels []string) *CounterVec {
	return &CounterVec{newVec(o, dto.MetricType_COUNTER, labels,
		func() *Counter { return &Counter{} }, (*Counter).metric)}
}

// WithLabelValues returns the counter for values, in the order of the
// label names given to NewCounterVec.
func (v *CounterVec) WithLabelValues(values ...string) *Counter { return v.with(values) }

// GaugeVec is a gauge per combination of label values.
type GaugeVec struct{ vec[Gauge] }

// NewGaugeVec returns a gauge family with the given label names.
func NewGaugeVec(o Opts, labels []string) *GaugeVec {
	return &GaugeVec{newVec(o, dto.MetricType_GAUGE, labels,
		func() *Gauge { return &Gauge{} }, (*Gauge).metric)}
}

// WithLabelValues returns the gauge for values, in the order of the label
// names given to NewGaugeVec.
func (v *GaugeVec) WithLabelValues(values ...string) *Gauge { return v.with(values) }

// HistogramVec is a histogram per combination of label values.
type HistogramVec struct{ vec[Histogram] }

// NewHistogramVec returns a histogram family with the given bucket upper
// bounds (increasing) and label names.
func NewHistogramVec(o Opts, buckets []float64, labels []string) *HistogramVec {
	if !slices.IsSorted(buckets) || len(buckets) == 0 || math.IsInf(buckets[len(buckets)-1], 1) {
		panic(fmt.Sprintf("metrics: %s needs increasing finite buckets", o.Name))
	}
	upper := slices.Clone(buckets)
	return &HistogramVec{newVec(o, dto.MetricType_HISTOGRAM, labels,
		func() *Histogram { return newHistogram(upper) }, (*Histogram).metric)}
}

// WithLabelValues returns the histogram for values, in the order of the
// label names given to NewHistogramVec.
func (v *HistogramVec) WithLabelValues(values ...string) *Histogram { return v.with(values) }

func family(o Opts, typ dto.MetricType, ms ...*dto.Metric) *dto.MetricFamily {
	return &dto.MetricFamily{Name: proto.String(o.Name), Help: proto.String(o.Help), Type: typ.Enum(), Metric: ms}
}

func gaugeFamily(o Opts, v float64) *dto.MetricFamily {
	return family(o, dto.MetricType_GAUGE, &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(v)}})
}

func counterFamily(o Opts, v float64) *dto.MetricFamily {
	return family(o, dto.MetricType_COUNTER, &dto.Metric{Counter: &dto.Counter{Value: proto.Float64(v)}})
}
