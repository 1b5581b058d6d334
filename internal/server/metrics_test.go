package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsParse: the server's /metrics parses with Prometheus' own text
// parser, and holds the request metrics, the Go runtime's and the
// process's families.
func TestMetricsParse(t *testing.T) {
	hs := newInProcess(t)
	get(t, hs.URL+"/v2/")
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for name, typ := range map[string]dto.MetricType{
		"custody_http_requests_total":           dto.MetricType_COUNTER,
		"custody_http_request_duration_seconds": dto.MetricType_HISTOGRAM,
		"custody_http_requests_in_flight":       dto.MetricType_GAUGE,
		"custody_audit_log_integrity_ok":        dto.MetricType_GAUGE,
		"custody_disk_free_bytes":               dto.MetricType_GAUGE,
		"custody_gc_runs_total":                 dto.MetricType_COUNTER,
		"go_gc_duration_seconds":                dto.MetricType_SUMMARY,
		"go_goroutines":                         dto.MetricType_GAUGE,
		"go_memstats_alloc_bytes_total":         dto.MetricType_COUNTER,
		"process_cpu_seconds_total":             dto.MetricType_COUNTER,
		"process_resident_memory_bytes":         dto.MetricType_GAUGE,
		"process_open_fds":                      dto.MetricType_GAUGE,
	} {
		mf := mfs[name]
		switch {
		case mf == nil && name == "custody_gc_runs_total":
			// A counter vector shows once a run is counted.
		case mf == nil:
			t.Errorf("/metrics lacks %s", name)
		case mf.GetType() != typ:
			t.Errorf("%s is a %v, want %v", name, mf.GetType(), typ)
		}
	}
	h := mfs["custody_http_request_duration_seconds"].GetMetric()
	if len(h) == 0 || len(h[0].GetHistogram().GetBucket()) != 11 { // 10 bounds and +Inf
		t.Fatalf("request duration histogram: %v", h)
	}
	for _, m := range mfs["custody_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if strings.Contains(l.GetValue(), "/") {
				t.Errorf("label %s=%q carries a path", l.GetName(), l.GetValue())
			}
		}
	}
}

// TestMetricsMethodLabelBounded: the method label takes a fixed set of
// values. A client sending requests with made-up methods (any token is
// one) must not add a time series per method: each would stay in memory
// and in every scrape for the life of the process.
func TestMetricsMethodLabelBounded(t *testing.T) {
	hs := newInProcess(t)
	for i := range 20 {
		req, err := http.NewRequest(fmt.Sprintf("MADEUP%d", i), hs.URL+"/v2/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get(t, hs.URL+"/v2/")
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"custody_http_requests_total", "custody_http_request_duration_seconds"} {
		methods := map[string]bool{}
		for _, m := range mfs[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" {
					methods[l.GetValue()] = true
				}
			}
		}
		if !methods["GET"] || !methods["other"] {
			t.Errorf("%s: methods %v, want GET and other", name, methods)
		}
		for m := range methods {
			if strings.HasPrefix(m, "MADEUP") {
				t.Errorf("%s has a series for the made-up method %s", name, m)
			}
		}
	}
}
