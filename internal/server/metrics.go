package server

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/custody-dev/custody/internal/metrics"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/tlog"
)

// serverMetrics are the server's Prometheus metrics and their registry.
type serverMetrics struct {
	reg       *metrics.Registry
	requests  *metrics.CounterVec
	duration  *metrics.HistogramVec
	bytesIn   *metrics.Counter
	bytesOut  *metrics.Counter
	inflight  *metrics.Gauge
	purged    *metrics.Counter
	uploadsGC *metrics.Gauge
	// connsRefused counts connections closed over the per-client cap.
	connsRefused *metrics.Counter
}

func newMetrics() *serverMetrics {
	m := &serverMetrics{
		reg: metrics.NewRegistry(),
		requests: metrics.NewCounterVec(metrics.Opts{
			Name: "custody_http_requests_total",
			Help: "HTTP requests by endpoint, method and status code.",
		}, []string{"endpoint", "method", "code"}),
		duration: metrics.NewHistogramVec(metrics.Opts{
			Name: "custody_http_request_duration_seconds",
			Help: "HTTP request latency by endpoint and method.",
		}, metrics.ExponentialBuckets(0.0005, 4, 10), []string{"endpoint", "method"}),
		bytesIn: metrics.NewCounter(metrics.Opts{
			Name: "custody_http_request_bytes_total",
			Help: "Bytes received in request bodies.",
		}),
		bytesOut: metrics.NewCounter(metrics.Opts{
			Name: "custody_http_response_bytes_total",
			Help: "Bytes sent in response bodies.",
		}),
		inflight: metrics.NewGauge(metrics.Opts{
			Name: "custody_http_requests_in_flight",
			Help: "Requests being served.",
		}),
		purged: metrics.NewCounter(metrics.Opts{
			Name: "custody_uploads_purged_total",
			Help: "Stale upload sessions purged after their TTL.",
		}),
		uploadsGC: metrics.NewGauge(metrics.Opts{
			Name: "custody_uploads_purge_last_run_timestamp_seconds",
			Help: "When stale upload sessions were last purged.",
		}),
		connsRefused: metrics.NewCounter(metrics.Opts{
			Name: "custody_http_connections_refused_total",
			Help: "Connections closed because their client address had limits.maxConnsPerClient open.",
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.bytesIn, m.bytesOut, m.inflight, m.purged, m.uploadsGC, m.connsRefused,
		metrics.GoCollector(), metrics.ProcessCollector())
	return m
}

// watchAudit exports the audit log's integrity (tlog.Log.Health) as
// custody_audit_log_integrity_ok.
func (m *serverMetrics) watchAudit(l *tlog.Log) {
	m.reg.MustRegister(metrics.NewGaugeFunc(metrics.Opts{
		Name: "custody_audit_log_integrity_ok",
		Help: "1 while the audit log's stored entries pass the integrity checks, 0 once one failed (no checkpoints are signed then).",
	}, func() float64 {
		if l.Health() != nil {
			return 0
		}
		return 1
	}))
}

// methodLabel is the method label of a request: the methods of RFC 9110
// and PATCH, else "other". The client chooses the method (any token is
// one), and each label value is a series kept for the life of the
// process, so the label takes a fixed set of values, as the endpoint
// label does.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// instrument wraps h with request metrics. The wrapper keeps io.ReaderFrom
// so downloads of generic files still reach sendfile(2).
func (m *serverMetrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inflight.Inc()
		defer m.inflight.Dec()
		rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &countingBody{ReadCloser: r.Body, c: m.bytesIn}
		}
		h.ServeHTTP(rw, r)
		ep, method := registry.Endpoint(r.URL.Path), methodLabel(r.Method)
		m.requests.WithLabelValues(ep, method, strconv.Itoa(rw.code)).Inc()
		m.duration.WithLabelValues(ep, method).Observe(time.Since(start).Seconds())
		m.bytesOut.Add(float64(rw.n))
	})
}

type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
	n           int64
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// ReadFrom passes io.Copy's fast path through to net/http, which uses
// sendfile(2) when src is a file.
func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	w.wroteHeader = true
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
	}
	n, err := rf.ReadFrom(src)
	w.n += n
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type countingBody struct {
	io.ReadCloser
	c *metrics.Counter
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.Add(float64(n))
	}
	return n, err
}
