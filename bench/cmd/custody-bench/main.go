// Command custody-bench compares custody with the CNCF reference registry
// (distribution/distribution v3) on the same machine, with the same client
// (go-containerregistry), and prints throughput and server peak RSS.
//
// For every row and run it starts a fresh server process on a free
// loopback port with a fresh data directory (so no push ever finds its blob
// already there), measures, reads the server's VmHWM and stops it. Pull
// rows push their content first and restart the server before measuring,
// so the peak RSS is the pull's alone. Runs alternate custody, reference,
// custody, reference, ... and the median is reported.
//
//	go run ./bench/cmd/custody-bench                 # full comparison
//	go run ./bench/cmd/custody-bench -quick          # CI smoke
//	go run ./bench/cmd/custody-bench -rows push-64MiB,manifest-push -runs 5
//	go run ./bench/cmd/custody-bench -peer custody-audit-off -rows push,manifest-push
//	go run ./bench/cmd/custody-bench -rows audit-append
//	go run ./bench/cmd/custody-bench -backend postgres-s3 -rows push,pull,manifest,conc
//	go run ./bench/cmd/custody-bench -backend postgres-s3 -replicas 2 -peer custody-1-replica -rows manifest-pull -jobs 16
//
// With -backend postgres-s3, custody runs on PostgreSQL and MinIO (started
// with scripts/postgres.sh and scripts/minio.sh unless CUSTODY_TEST_POSTGRES
// and CUSTODY_TEST_S3 name running ones) and the reference registry on the
// same MinIO with its s3 driver; -redirect lets both answer blob GETs with
// a redirect to MinIO. The conc-* rows run -concurrency clients at once and
// report the operations' p50 and p99 latency (concurrent.go).
//
// -peer custody-audit-off replaces the reference registry by custody with
// its tamper-evident audit log switched off (audit.disableUnsafe), on the
// same backend (with -backend postgres-s3: its own database and bucket),
// so the ratio is the log's cost. The audit-append row appends entries to the
// audit log in process (SQLite, as the embedded server does) from 8
// writers and reports entries/s; its peer is a transparency-dev Tessera
// POSIX log appended to by 8 writers too (bench/tessera-append, its own
// module; the row has no peer when it cannot be built). The startup, sign
// and verify rows time whole client processes against crane version,
// cosign sign and cosign verify-attestation on the same artifact
// (verify.go; -clients names where crane and cosign are). The
// bundle-export and bundle-verify rows export 50 images x 20 layers
// (-bundle-layer each) as one evidence bundle and verify it offline with
// custody verify --bundle
// (bundle.go); no registry to compare with exists, so their reference
// column is n/a. The sign-keyless-vs-keyed row compares custody's two
// signing modes (keyless.go): its custody column is keyless signing
// (ephemeral key, certificate from the CA, time-stamp), its reference
// column key-based signing with the same time-stamp; it is not a peer
// comparison. The npm-proxy-warm and npm-proxy-cold rows (npmproxy.go)
// time npm install of a 500-package dependency tree through a proxy feed
// (custody column) against the same install straight from its upstream, a
// hosted feed on the same machine (reference column): custody's overhead
// as a pull-through proxy, warm and cold. The maven-proxy-warm and
// maven-proxy-cold rows (mavenproxy.go) do the same with mvn resolving a
// 200-artifact dependency tree (mvn validate of a project naming the
// tree's root as a build extension) from an empty local repository.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/custody-dev/custody/bench"
)

const refModule = "github.com/distribution/distribution/v3/cmd/registry@v3.1.2"

const (
	targetCustody   = "custody"
	targetReference = "reference"
)

// Peers: what the reference column runs.
const (
	peerReference       = "reference"
	peerCustodyAuditOff = "custody-audit-off"
)

type options struct {
	rows      []string
	runs      int
	sizes     []int64
	manifests int
	jobs      int
	keep      bool
	quick     bool
	output    string
	md        string
	workdir   string
	refBin    string
	minBytes  int64
	// pullBytes: a pull or fetch row of one blob per run (a blob of at
	// least minBytes) pulls it again until the run moved this much.
	pullBytes int64
	// cpuProfiles: directory for the client's CPU profile of each blob
	// row's measured phase ("" for none).
	cpuProfiles string
	// bundleLayer is the layer size of the bundle rows' images.
	bundleLayer int64
	peer        string
	backend     string
	replicas    int
	// clients is where the command rows' peers (crane, cosign) are.
	clients string
	// concurrency is the concurrent rows' number of clients.
	concurrency int
	// redirect turns on custody's s3.redirect and the reference's
	// redirects with -backend postgres-s3.
	redirect bool
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "custody-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		o         options
		rows      string
		sizes     string
		minBytes  string
		pullBytes string
		bLayer    string
	)
	flag.StringVar(&rows, "rows", "", "comma-separated rows or row prefixes (push, pull, manifest, push-64MiB, ...); default all")
	flag.IntVar(&o.runs, "runs", 3, "runs per row and target (median reported)")
	flag.StringVar(&sizes, "sizes", "", "comma-separated blob sizes (e.g. 1MiB,64MiB,512MiB); default 1MiB,64MiB,512MiB")
	flag.IntVar(&o.manifests, "manifests", 1000, "manifests pushed and pulled per manifest run")
	flag.IntVar(&o.jobs, "jobs", 1, "concurrent client requests in manifest rows")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (payloads, data directories, server logs)")
	flag.BoolVar(&o.quick, "quick", false, "CI smoke: sizes 1MiB,64MiB, 200 manifests, 1 run, 4 concurrent clients (explicit flags win)")
	flag.StringVar(&o.output, "o", "table", "output: table, or json (JSON on stdout, the table on stderr)")
	flag.StringVar(&o.md, "md", "", "also write the results as a markdown table to this file")
	flag.StringVar(&o.workdir, "workdir", "", "parent of the work directory (default <repo>/.cache, on the repository's filesystem)")
	flag.StringVar(&o.refBin, "registry", "", "reference registry binary (default <repo>/.cache/bin/registry, installed if missing)")
	flag.StringVar(&minBytes, "min-bytes", "32MiB", "small blob rows repeat with distinct blobs until a run moves at least this much")
	flag.StringVar(&pullBytes, "pull-bytes", "512MiB", "pull and fetch rows of one blob per run (at least -min-bytes) pull it again until a run moves at least this much")
	flag.StringVar(&o.cpuProfiles, "cpuprofile", "", "directory to write the client's (this process's) CPU profile of each push, pull and fetch run's measured phase to, as <row>-<target>-<n>.pprof")
	flag.StringVar(&bLayer, "bundle-layer", "1075KiB", "layer size of the bundle rows' 50 images x 20 layers (1075KiB: a 1.03 GiB bundle)")
	flag.StringVar(&o.peer, "peer", peerReference, "what custody is compared with: reference (the CNCF registry; with -backend postgres-s3 on the same MinIO with its s3 driver), custody-audit-off (custody without its audit log, on the same backend), custody-embedded or custody-1-replica (with -backend postgres-s3)")
	flag.StringVar(&o.backend, "backend", backendEmbedded, "custody's backends: embedded (SQLite and files) or postgres-s3 (PostgreSQL and MinIO, started with scripts/postgres.sh and scripts/minio.sh unless CUSTODY_TEST_POSTGRES and CUSTODY_TEST_S3 name them)")
	flag.StringVar(&o.clients, "clients", "", "directory of the command rows' peers, crane and cosign (default $CUSTODY_CLIENTS_BIN, else <repo>/.cache/bin)")
	flag.IntVar(&o.replicas, "replicas", 1, "custody replicas with -backend postgres-s3 (1 or 2; the client sends requests to them in turn)")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent clients of the conc-* rows")
	flag.BoolVar(&o.redirect, "redirect", false, "with -backend postgres-s3: blob GETs answered with a redirect to MinIO (custody's s3.redirect, the reference's storage redirect); off: both stream blobs themselves")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if o.quick {
		if !set["sizes"] {
			sizes = "1MiB,64MiB"
		}
		if !set["manifests"] {
			o.manifests = 200
		}
		if !set["runs"] {
			o.runs = 1
		}
		if !set["concurrency"] {
			o.concurrency = 4
		}
	}
	if sizes == "" {
		sizes = "1MiB,64MiB,512MiB"
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := parseSize(s)
		if err != nil {
			return err
		}
		o.sizes = append(o.sizes, n)
	}
	mb, err := parseSize(minBytes)
	if err != nil {
		return err
	}
	o.minBytes = mb
	if o.pullBytes, err = parseSize(pullBytes); err != nil {
		return err
	}
	if o.bundleLayer, err = parseSize(bLayer); err != nil {
		return err
	}
	if o.quick && !set["bundle-layer"] {
		o.bundleLayer = 64 << 10
	}
	if o.runs < 1 || o.manifests < 1 || o.jobs < 1 || o.concurrency < 1 {
		return errors.New("-runs, -manifests, -jobs and -concurrency must be positive")
	}
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("-o %q: use table or json", o.output)
	}
	if o.peer != peerReference && o.peer != peerCustodyAuditOff && o.backend == backendEmbedded {
		return fmt.Errorf("-peer %q: use %s or %s", o.peer, peerReference, peerCustodyAuditOff)
	}
	if err := o.checkBackend(set["peer"]); err != nil {
		return err
	}
	all := allRows(o.sizes)
	if rows == "" {
		// The ui-* rows seed 10,000 repositories first: only on request.
		o.rows = slices.DeleteFunc(slices.Clone(all), func(r string) bool { return strings.HasPrefix(r, "ui-") })
	} else {
		for _, want := range strings.Split(rows, ",") {
			want = strings.TrimSpace(want)
			found := false
			for _, r := range all {
				if r == want || strings.HasPrefix(r, want+"-") {
					if !slices.Contains(o.rows, r) {
						o.rows = append(o.rows, r)
					}
					found = true
				}
			}
			if !found {
				return fmt.Errorf("-rows: no row %q (rows: %s)", want, strings.Join(all, ", "))
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := newHarness(ctx, o)
	if err != nil {
		return err
	}
	defer h.close()
	res, err := h.runAll()
	if err != nil {
		return err
	}
	res.Command = "go run ./bench/cmd/custody-bench " + strings.Join(os.Args[1:], " ")
	tableOut := io.Writer(os.Stdout)
	if o.output == "json" {
		tableOut = os.Stderr
	}
	printTable(tableOut, res)
	if o.output == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	if o.md != "" {
		if err := os.MkdirAll(filepath.Dir(o.md), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(o.md, []byte(markdown(res)), 0o644); err != nil {
			return err
		}
		logf("wrote %s", o.md)
	}
	return nil
}

func allRows(sizes []int64) []string {
	var rows []string
	for _, s := range sizes {
		rows = append(rows, "push-"+formatSize(s), "pull-"+formatSize(s), "fetch-"+formatSize(s))
	}
	rows = append(rows, "manifest-push", "manifest-pull")
	rows = append(rows, concRows...)
	rows = append(append(rows, "audit-append"), cmdRows...)
	rows = append(rows, keylessRow)
	rows = append(rows, bundleRows...)
	rows = append(rows, npmProxyRows...)
	rows = append(rows, mavenProxyRows...)
	return append(rows, uiRows()...)
}

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: use e.g. 1MiB, 64MiB, 4096", s)
	}
	return n * mult, nil
}

func formatSize(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// ---------------------------------------------------------------------------
// Results

// Results is what a harness run measured.
type Results struct {
	Machine Machine `json:"machine"`
	Command string  `json:"command"`
	// Revision is the custody commit measured, "+dirty" when cmd/,
	// internal/ or go.mod had uncommitted changes.
	Revision string `json:"custody_revision"`
	Config   Config `json:"config"`
	Rows     []Row  `json:"rows"`
	Elapsed  string `json:"elapsed"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	NumCPU     int    `json:"nproc"`
	CPU        string `json:"cpu"`
	MemTotal   string `json:"mem_total"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	Filesystem string `json:"filesystem"`
	Reference  string `json:"reference"`
	// LoadStart and LoadEnd are /proc/loadavg when the runs began and
	// ended: other work on the machine skews absolute numbers (both
	// targets alike, thanks to alternation).
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

// Config records the settings of the run.
type Config struct {
	Runs      int      `json:"runs"`
	Sizes     []string `json:"sizes"`
	Manifests int      `json:"manifests"`
	Jobs      int      `json:"jobs"`
	Clients   int      `json:"clients"`
	MinBytes  int64    `json:"min_bytes"`
	PullBytes int64    `json:"pull_bytes"`
	// Backend is custody's backends when not embedded (the custody
	// column), e.g. "postgres-s3, 2 replica(s)".
	Backend string `json:"backend,omitempty"`
}

// Row is one benchmark row.
type Row struct {
	Name      string  `json:"row"`
	Unit      string  `json:"unit"` // "MB/s" (10^6 bytes) or "ops/s"
	Ops       int     `json:"ops_per_run"`
	Bytes     int64   `json:"bytes_per_run,omitempty"`
	Custody   Target  `json:"custody"`
	Reference Target  `json:"reference"`
	Ratio     float64 `json:"ratio"` // custody median / reference median
	// Peer names what the reference column ran when it is not the
	// reference registry (the command and audit-append rows).
	Peer string `json:"peer,omitempty"`
}

// Target holds one target's samples for a row.
type Target struct {
	Median     float64   `json:"median"`
	Samples    []float64 `json:"samples"`
	Seconds    []float64 `json:"seconds"`
	PeakRSSMiB float64   `json:"peak_rss_mib"` // max VmHWM over runs
	RSSMiB     []float64 `json:"rss_mib"`
	// CPU is the server's user+system CPU seconds during the measured
	// phase (median, and per run). Unlike throughput it hardly depends on
	// what else the machine is doing.
	CPU        float64   `json:"cpu_seconds"`
	CPUSamples []float64 `json:"cpu_seconds_samples"`
	// ClientCPU is the client's (the harness process's) CPU seconds in the
	// measured phase: what serving a row costs the other side.
	ClientCPU        float64   `json:"client_cpu_seconds"`
	ClientCPUSamples []float64 `json:"client_cpu_seconds_samples"`
	// P90 is the median over runs of each run's 90th percentile (ui-*
	// rows, ms); P90Samples per run.
	P90        float64   `json:"p90,omitempty"`
	P90Samples []float64 `json:"p90_samples,omitempty"`
	// P50 and P99 are the medians over runs of each run's operation
	// latency percentiles (conc-* rows, ms).
	P50        float64   `json:"p50_ms,omitempty"`
	P99        float64   `json:"p99_ms,omitempty"`
	P50Samples []float64 `json:"p50_ms_samples,omitempty"`
	P99Samples []float64 `json:"p99_ms_samples,omitempty"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printTable(w io.Writer, res *Results) {
	fmt.Fprintf(w, "\n%d CPUs, %s; runs=%d, median; reference = %s; load average %s -> %s\n",
		res.Machine.NumCPU, res.Machine.CPU, res.Config.Runs, res.Machine.Reference, res.Machine.LoadStart, res.Machine.LoadEnd)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\tunit\tcustody\treference\tcustody/ref\tcustody RSS MiB\treference RSS MiB\tcustody CPU s\treference CPU s\tclient CPU s (c|r)\t")
	for _, r := range res.Rows {
		if r.Custody.P90 > 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%.2f\t%s\t%.2f|%s\t\n", r.Name, r.Unit,
			num(r.Custody.Median), peer(r, num(r.Reference.Median)), peer(r, fmt.Sprintf("%.2fx", r.Ratio)), r.Custody.PeakRSSMiB,
			peer(r, fmt.Sprintf("%.0f", r.Reference.PeakRSSMiB)), r.Custody.CPU, peer(r, fmt.Sprintf("%.2f", r.Reference.CPU)),
			r.Custody.ClientCPU, peer(r, fmt.Sprintf("%.2f", r.Reference.ClientCPU)))
	}
	tw.Flush()
	if p := peers(res); p != "" {
		fmt.Fprintf(w, "reference column of the other rows: %s\n", p)
	}
	if hasLatency(res) {
		fmt.Fprintf(w, "\nconcurrent rows: operation latency, ms (median over runs of each run's percentile)\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "row\tclients\tcustody p50\tcustody p99\treference p50\treference p99\t")
		for _, r := range res.Rows {
			if r.Custody.P99 > 0 {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", r.Name, res.Config.Clients, num(r.Custody.P50), num(r.Custody.P99),
					peer(r, num(r.Reference.P50)), peer(r, num(r.Reference.P99)))
			}
		}
		tw.Flush()
	}
	if hasUI(res) {
		fmt.Fprintf(w, "\nweb pages (server-side render, ms over loopback; target: median under %d ms)\n", uiTarget)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "row\tmedian ms\tp90 ms\ttarget ms\tcustody RSS MiB\tcustody CPU s\t")
		for _, r := range res.Rows {
			if r.Custody.P90 > 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\t%.2f\t\n", r.Name, num(r.Custody.Median), num(r.Custody.P90), uiTarget, r.Custody.PeakRSSMiB, r.Custody.CPU)
			}
		}
		tw.Flush()
	}
}

// peers lists the rows whose reference column is not the reference
// registry, with what it ran.
func peers(res *Results) string {
	var out []string
	for _, r := range res.Rows {
		if r.Peer != "" && len(r.Reference.Samples) > 0 {
			out = append(out, r.Name+": "+r.Peer)
		}
	}
	return strings.Join(out, "; ")
}

// hasLatency reports whether res holds conc-* rows, with latencies.
func hasLatency(res *Results) bool {
	return slices.ContainsFunc(res.Rows, func(r Row) bool { return r.Custody.P99 > 0 })
}

// hasUI reports whether res holds ui-* rows (they get their own table: a
// target, not a peer, and a 90th percentile).
func hasUI(res *Results) bool {
	return slices.ContainsFunc(res.Rows, func(r Row) bool { return r.Custody.P90 > 0 })
}

// peer returns s, or "n/a" for a row no peer was measured on (the
// evidence bundle rows: no other registry writes bundles).
func peer(r Row, s string) string {
	if len(r.Reference.Samples) == 0 {
		return "n/a"
	}
	return s
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func markdown(res *Results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "custody %s vs %s.\n\n", res.Revision, res.Machine.Reference)
	fmt.Fprintf(&b, "Machine: %d CPUs, %s, %s RAM, Linux %s, %s, data on %s. Reference: %s.\n\n",
		res.Machine.NumCPU, res.Machine.CPU, res.Machine.MemTotal, res.Machine.Kernel, res.Machine.Go, res.Machine.Filesystem, res.Machine.Reference)
	fmt.Fprintf(&b, "Command: `%s` (runs=%d, median; %d manifests, %d client jobs; took %s; load average %s at start, %s at end).\n\n",
		res.Command, res.Config.Runs, res.Config.Manifests, res.Config.Jobs, res.Elapsed, res.Machine.LoadStart, res.Machine.LoadEnd)
	if slices.ContainsFunc(res.Rows, func(r Row) bool { return r.Custody.P90 == 0 }) {
		b.WriteString("| row | unit | custody | reference | custody/reference | custody peak RSS MiB | reference peak RSS MiB | custody server CPU s | reference server CPU s | client CPU s, custody | client CPU s, reference |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	}
	for _, r := range res.Rows {
		if r.Custody.P90 > 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.0f | %s | %.2f | %s | %.2f | %s |\n", r.Name, r.Unit,
			num(r.Custody.Median), peer(r, num(r.Reference.Median)), peer(r, fmt.Sprintf("%.2fx", r.Ratio)), r.Custody.PeakRSSMiB,
			peer(r, fmt.Sprintf("%.0f", r.Reference.PeakRSSMiB)), r.Custody.CPU, peer(r, fmt.Sprintf("%.2f", r.Reference.CPU)),
			r.Custody.ClientCPU, peer(r, fmt.Sprintf("%.2f", r.Reference.ClientCPU)))
	}
	if hasLatency(res) {
		fmt.Fprintf(&b, "\nConcurrent rows, %d clients: operation latency in ms (median over runs of each run's percentile).\n\n", res.Config.Clients)
		b.WriteString("| row | custody p50 | custody p99 | reference p50 | reference p99 |\n|---|---:|---:|---:|---:|\n")
		for _, r := range res.Rows {
			if r.Custody.P99 > 0 {
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.Name, num(r.Custody.P50), num(r.Custody.P99), peer(r, num(r.Reference.P50)), peer(r, num(r.Reference.P99)))
			}
		}
	}
	if p := peers(res); p != "" {
		fmt.Fprintf(&b, "\nThe reference column of these rows is another peer: %s.\n", p)
	}
	if hasUI(res) {
		fmt.Fprintf(&b, "\nWeb pages: server-side render time in ms (up to %d requests per run over loopback, at least %d, none started after %s; median of the runs' medians and of their 90th percentiles); no other registry has these pages, so the target column is the goal, not a peer.\n\n", uiRequests, uiMinRequests, uiRunBudget)
		b.WriteString("| row | median ms | p90 ms | target ms | custody peak RSS MiB | custody server CPU s |\n|---|---:|---:|---:|---:|---:|\n")
		for _, r := range res.Rows {
			if r.Custody.P90 > 0 {
				fmt.Fprintf(&b, "| %s | %s | %s | %d | %.0f | %.2f |\n", r.Name, num(r.Custody.Median), num(r.Custody.P90), uiTarget, r.Custody.PeakRSSMiB, r.Custody.CPU)
			}
		}
	}
	if slices.ContainsFunc(res.Rows, func(r Row) bool { return slices.Contains(npmProxyRows, r.Name) }) {
		fmt.Fprintf(&b, "\nThe npm-proxy-* rows compare an npm install of a %d-package dependency tree (empty npm cache) through a custody proxy feed (custody column) with the same install straight from its upstream, a custody hosted feed on the same machine (reference column): npm-proxy-warm with every tarball stored in the proxy, npm-proxy-cold from an empty proxy.\n", npmTreePackages)
	}
	if slices.ContainsFunc(res.Rows, func(r Row) bool { return slices.Contains(mavenProxyRows, r.Name) }) {
		fmt.Fprintf(&b, "\nThe maven-proxy-* rows compare mvn resolving a %d-artifact dependency tree (pom and jar each; empty local repository) through a custody proxy feed (custody column) with the same resolution straight from its upstream, a custody hosted feed on the same machine (reference column): maven-proxy-warm with every file stored in the proxy, maven-proxy-cold from an empty proxy.\n", mavenTreeArtifacts)
	}
	if slices.ContainsFunc(res.Rows, func(r Row) bool { return r.Name == keylessRow }) {
		fmt.Fprintf(&b, "\n%s compares custody's two signing modes, not custody with a peer: the custody column is keyless signing (ephemeral key, workload certificate, time-stamp), the reference column key-based signing with the same time-stamp.\n", keylessRow)
	}
	b.WriteString("\nAll samples, throughput (custody | reference):\n\n")
	for _, r := range res.Rows {
		fmt.Fprintf(&b, "- %s: %s | %s\n", r.Name, samples(r.Custody.Samples), samples(r.Reference.Samples))
	}
	return b.String()
}

func samples(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = num(x)
	}
	return strings.Join(s, ", ")
}

// ---------------------------------------------------------------------------
// Harness

type harness struct {
	ctx        context.Context
	o          options
	root       string
	custodyBin string
	refBin     string
	work       string
	payloads   map[string][]*bench.FileLayer // by size and count
	seq        int
	revision   string
	started    time.Time
	svc        *services   // PostgreSQL and MinIO for -backend postgres-s3
	ui         *uiSeed     // the ui-* rows' data, seeded by the first of them
	cmdFix     *cmdFixture // the command rows' server and signed image
	cmdFixErr  error       // why the fixture could not be made
	// tessera is the audit-append row's peer (bench/tessera-append),
	// tesseraErr why it could not be built.
	tessera    string
	tesseraErr error
}

func newHarness(ctx context.Context, o options) (*harness, error) {
	h := &harness{ctx: ctx, o: o, payloads: map[string][]*bench.FileLayer{}, started: time.Now()}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	h.root = root
	binDir := filepath.Join(root, ".cache", "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	h.custodyBin = filepath.Join(binDir, "custody")
	h.revision = revision(root)
	logf("building custody %s -> %s", h.revision, h.custodyBin)
	if err := goCmd(ctx, root, nil, "build", "-o", h.custodyBin, "./cmd/custody"); err != nil {
		return nil, err
	}
	h.refBin = o.refBin
	// The ui-* rows have a target, not a peer, and another -peer than the
	// reference is custody itself: no reference registry needed then.
	onlyUI := !slices.ContainsFunc(o.rows, func(r string) bool {
		return !strings.HasPrefix(r, "ui-") && !slices.Contains(npmProxyRows, r) && !slices.Contains(mavenProxyRows, r)
	})
	if h.refBin == "" && !onlyUI && o.peer == peerReference {
		h.refBin = filepath.Join(binDir, "registry")
		if _, err := os.Stat(h.refBin); err != nil {
			logf("installing %s -> %s", refModule, binDir)
			if err := goCmd(ctx, root, []string{"GOBIN=" + binDir}, "install", refModule); err != nil {
				return nil, err
			}
		}
	}
	parent := o.workdir
	if parent == "" {
		parent = filepath.Join(root, ".cache")
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	h.work, err = os.MkdirTemp(parent, "bench-")
	if err != nil {
		return nil, err
	}
	if fs := fsType(h.work); fs == "tmpfs" || fs == "ramfs" {
		logf("WARNING: %s is on %s; disk numbers will not be representative", h.work, fs)
	}
	logf("work directory %s (%s)", h.work, fsType(h.work))
	if o.backend == backendPostgresS3 {
		if h.svc, err = startServices(ctx, root); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// discard removes a run's directory: at once if it holds much data (the
// blob rows'), else when the harness closes. Deleting the thousands of
// files of a manifest row slows the next run's file creation: for about
// half a minute ext4 skips the freed inodes when it allocates, with a
// lookup each (recently_deleted, find_get_block_common in a kernel
// profile), which made one run's rate up to twice another's.
func (h *harness) discard(dir string) {
	if h.o.keep {
		return
	}
	var size int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return nil
	})
	if size > discardNowBytes {
		_ = os.RemoveAll(dir)
	}
}

// discardNowBytes is the size above which discard removes a run's
// directory at once, to keep the disk from filling up.
const discardNowBytes = 256 << 20

func (h *harness) close() {
	h.closeFixture()
	h.closeServices()
	if h.o.keep {
		logf("kept %s", h.work)
		return
	}
	_ = os.RemoveAll(h.work)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run custody-bench inside the custody module")
	}
	return filepath.Dir(mod), nil
}

func goCmd(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// payload returns the distinct random blobs of size n one run pushes.
func (h *harness) payload(n int64) ([]*bench.FileLayer, error) {
	count := 1
	if n < h.o.minBytes {
		count = int((h.o.minBytes + n - 1) / n)
	}
	return h.payloadCount(n, count)
}

// payloadCount returns count distinct random blobs of size n.
func (h *harness) payloadCount(n int64, count int) ([]*bench.FileLayer, error) {
	key := fmt.Sprintf("%d-%d", n, count)
	if ls, ok := h.payloads[key]; ok {
		return ls, nil
	}
	dir := filepath.Join(h.work, "payload")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf("generating %d random blob(s) of %s", count, formatSize(n))
	var ls []*bench.FileLayer
	for i := range count {
		p := filepath.Join(dir, fmt.Sprintf("%s-%d-%03d.bin", formatSize(n), count, i))
		if err := bench.WriteRandomFile(p, n); err != nil {
			return nil, err
		}
		l, err := bench.NewFileLayer(p)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	h.payloads[key] = ls
	return ls, nil
}

func (h *harness) runAll() (*Results, error) {
	res := &Results{
		Machine: machine(h.work),
		Config: Config{
			Runs: h.o.runs, Manifests: h.o.manifests, Jobs: h.o.jobs, Clients: h.o.concurrency, MinBytes: h.o.minBytes,
			PullBytes: h.o.pullBytes,
		},
	}
	res.Machine.Reference = refVersion(h.refBin)
	if h.o.peer == peerCustodyAuditOff {
		res.Machine.Reference = "custody with audit.disableUnsafe (audit log off)"
	}
	if h.o.backend == backendPostgresS3 {
		switch h.o.peer {
		case peerEmbedded:
			res.Machine.Reference = "custody embedded (SQLite + files)"
		case peerOneReplica:
			res.Machine.Reference = "custody on PostgreSQL + MinIO, 1 replica"
		case peerCustodyAuditOff:
			res.Machine.Reference += " on PostgreSQL + MinIO"
		default:
			res.Machine.Reference += " (s3 driver, same MinIO)"
		}
		if h.o.redirect {
			res.Machine.Reference += ", blob redirects on"
		}
		res.Config.Backend = fmt.Sprintf("%s, %d replica(s)", h.o.backend, h.o.replicas)
	}
	res.Revision = h.revision
	res.Machine.LoadStart = loadAvg()
	for _, s := range h.o.sizes {
		res.Config.Sizes = append(res.Config.Sizes, formatSize(s))
	}
	for _, name := range h.o.rows {
		row := Row{Name: name}
		if slices.Contains(cmdRows, name) {
			// Processes alternate inside each run (measureCmdRow).
			if err := h.cmdRow(&row); errors.Is(err, errNoPeer) {
				logf("%s: skipped: %v", name, err)
				continue
			} else if err != nil {
				return nil, err
			}
			res.Rows = append(res.Rows, row)
			continue
		}
		for run := range h.o.runs {
			targets := []string{targetCustody, targetReference}
			if slices.Contains(bundleRows, name) {
				targets = targets[:1] // no peer writes evidence bundles
			}
			if name == "audit-append" {
				if _, err := h.tesseraBin(); err != nil {
					logf("audit-append: no peer: %v", err)
					targets = targets[:1]
				}
			}
			for _, target := range targets {
				if err := h.ctx.Err(); err != nil {
					return nil, err
				}
				s, err := h.measure(name, target)
				if err != nil {
					return nil, fmt.Errorf("%s on %s (run %d): %w", name, target, run+1, err)
				}
				row.Unit, row.Ops, row.Bytes = s.unit, s.ops, s.bytes
				t := &row.Custody
				if target == targetReference {
					t = &row.Reference
				}
				t.Samples = append(t.Samples, s.value)
				t.Seconds = append(t.Seconds, s.seconds)
				t.RSSMiB = append(t.RSSMiB, s.rssMiB)
				t.PeakRSSMiB = max(t.PeakRSSMiB, s.rssMiB)
				t.CPUSamples = append(t.CPUSamples, s.cpu)
				t.ClientCPUSamples = append(t.ClientCPUSamples, s.clientCPU)
				if s.p90 > 0 {
					t.P90Samples = append(t.P90Samples, s.p90)
				}
				if s.p99 > 0 {
					t.P50Samples = append(t.P50Samples, s.p50)
					t.P99Samples = append(t.P99Samples, s.p99)
					logf("%-14s run %d %-9s latency p50 %.1f ms, p99 %.1f ms", name, run+1, target, s.p50, s.p99)
				}
				logf("%-14s run %d %-9s %10s %s in %.3fs, server CPU %.2fs, client CPU %.2fs, peak RSS %.0f MiB", name, run+1, target, num(s.value), s.unit, s.seconds, s.cpu, s.clientCPU, s.rssMiB)
			}
		}
		if name == "audit-append" {
			row.Peer = fmt.Sprintf("Tessera v1.0.4 POSIX log, 8 writers, %d entries per run", tesseraEntries)
		}
		row.Custody.Median = median(row.Custody.Samples)
		row.Reference.Median = median(row.Reference.Samples)
		row.Custody.CPU = median(row.Custody.CPUSamples)
		row.Reference.CPU = median(row.Reference.CPUSamples)
		row.Custody.ClientCPU = median(row.Custody.ClientCPUSamples)
		row.Reference.ClientCPU = median(row.Reference.ClientCPUSamples)
		if len(row.Custody.P90Samples) > 0 {
			row.Custody.P90 = median(row.Custody.P90Samples)
		}
		for _, t := range []*Target{&row.Custody, &row.Reference} {
			if len(t.P99Samples) > 0 {
				t.P50, t.P99 = median(t.P50Samples), median(t.P99Samples)
			}
		}
		if len(row.Reference.Samples) == 0 {
			row.Reference.Median = 0 // no peer: printed n/a
		} else {
			row.Ratio = row.Custody.Median / row.Reference.Median
		}
		res.Rows = append(res.Rows, row)
	}
	res.Machine.LoadEnd = loadAvg()
	res.Elapsed = time.Since(h.started).Round(time.Second).String()
	logf("done in %s", res.Elapsed)
	return res, nil
}

type sample struct {
	unit    string
	value   float64
	ops     int
	bytes   int64
	seconds float64
	rssMiB  float64
	cpu     float64
	p90     float64 // ui-* rows: the run's 90th percentile (ms)
	// p50, p99: conc-* rows, the run's operation latency percentiles (ms)
	p50, p99 float64
	// clientCPU is the harness process's CPU seconds (the client's work:
	// ggcr, hashing, the loopback TCP stack's share) in the measured phase.
	clientCPU float64
}

// clientProfile starts a CPU profile of this process (the client) for a
// measured phase when -cpuprofile names a directory, and returns what
// stops it.
func (h *harness) clientProfile(row, target string) (stop func() error, err error) {
	if h.o.cpuProfiles == "" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(h.o.cpuProfiles, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(h.o.cpuProfiles, fmt.Sprintf("%s-%s-%03d.pprof", row, target, h.seq)))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// measure runs one row once against a fresh server of target.
func (h *harness) measure(row, target string) (sample, error) {
	if row == keylessRow {
		h.seq++
		return measureSigning(h.ctx, filepath.Join(h.work, fmt.Sprintf("%03d-%s-%s", h.seq, row, target)), h.o.keep, target == targetCustody)
	}
	if slices.Contains(bundleRows, row) {
		return h.measureBundle(row, target)
	}
	if slices.Contains(npmProxyRows, row) {
		return h.measureNPMProxy(row, target)
	}
	if slices.Contains(mavenProxyRows, row) {
		return h.measureMavenProxy(row, target)
	}
	if strings.HasPrefix(row, "ui-") {
		return h.measureUI(row, target)
	}
	if row == "audit-append" {
		h.seq++
		if target == targetReference {
			return h.measureTessera(filepath.Join(h.work, fmt.Sprintf("%03d-%s-tessera", h.seq, row)))
		}
		return measureAuditAppend(h.ctx, filepath.Join(h.work, fmt.Sprintf("%03d-%s", h.seq, row)), h.o.keep)
	}
	h.seq++
	dir := filepath.Join(h.work, fmt.Sprintf("%03d-%s-%s", h.seq, row, target))
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return sample{}, err
	}
	defer h.discard(dir)
	srv, err := h.start(target, dir, data)
	if err != nil {
		return sample{}, err
	}
	defer func() {
		if srv != nil {
			srv.stop()
		}
	}()
	cl, err := h.newClient(srv)
	if err != nil {
		return sample{}, err
	}
	// restart stops the server, starts a new one on the same data (so the
	// measured phase gets its own VmHWM) and gives it a new client.
	restart := func() error {
		srv.stop()
		if srv, err = h.start(target, dir, data); err != nil {
			srv = nil
			return err
		}
		cl, err = h.newClient(srv)
		return err
	}

	var s sample
	var start time.Time
	kind, size, _ := strings.Cut(row, "-")
	switch kind {
	case "conc":
		if err := h.measureConcurrent(row, srv, cl, &s); err != nil {
			return s, err
		}
	case "push", "pull", "fetch":
		n, err := parseSize(size)
		if err != nil {
			return s, err
		}
		layers, err := h.payload(n)
		if err != nil {
			return s, err
		}
		const repo = "bench/blob"
		if kind != "push" {
			if err := cl.Warm(repo); err != nil {
				return s, err
			}
			for _, l := range layers {
				if err := cl.PushLayer(repo, l); err != nil {
					return s, fmt.Errorf("setup push: %w", err)
				}
			}
			if err := restart(); err != nil {
				return s, err
			}
		}
		if err := cl.Warm(repo); err != nil {
			return s, err
		}
		// A single blob's pull takes well under a second: pull it again
		// until the run moved pullBytes, so the sample is not one short
		// transfer.
		rounds := 1
		if kind != "push" && len(layers) == 1 && n < h.o.pullBytes {
			rounds = int((h.o.pullBytes + n - 1) / n)
		}
		stopProfile, err := h.clientProfile(row, target)
		if err != nil {
			return s, err
		}
		cpu0, ccpu0 := srv.cpuSeconds(), clientCPU()
		start = time.Now()
		for i := range rounds * len(layers) {
			l := layers[i%len(layers)]
			if kind == "push" {
				err = cl.PushLayer(repo, l)
			} else {
				d, _ := l.Digest()
				var got int64
				if kind == "fetch" {
					got, err = cl.FetchBlob(repo, d)
				} else {
					got, err = cl.PullBlob(repo, d)
				}
				if err == nil && got != n {
					err = fmt.Errorf("pulled %d bytes, want %d", got, n)
				}
			}
			if err != nil {
				return s, err
			}
		}
		s.seconds = time.Since(start).Seconds()
		s.cpu = math.Round((srv.cpuSeconds()-cpu0)*100) / 100
		s.clientCPU = clientCPU() - ccpu0
		if err := stopProfile(); err != nil {
			return s, err
		}
		s.ops = rounds * len(layers)
		s.bytes = n * int64(s.ops)
		s.unit = "MB/s"
		s.value = float64(s.bytes) / 1e6 / s.seconds
	case "manifest":
		const repo = "bench/manifests"
		nonce := fmt.Sprintf("%d-%d", time.Now().UnixNano(), h.seq)
		ms := make([]bench.RawManifest, h.o.manifests)
		for i := range ms {
			ms[i] = bench.RawManifest(bench.ArtifactManifest(nonce, i))
		}
		if err := cl.Warm(repo); err != nil {
			return s, err
		}
		put := func(i int) error { return cl.PutManifest(repo, fmt.Sprintf("m%d", i), ms[i]) }
		if size == "pull" {
			if err := parallel(len(ms), h.o.jobs, put); err != nil {
				return s, fmt.Errorf("setup push: %w", err)
			}
			if err := restart(); err != nil {
				return s, err
			}
			if err := cl.Warm(repo); err != nil {
				return s, err
			}
		}
		op := put
		if size == "pull" {
			op = func(i int) error { return cl.GetManifest(repo, ms[i].Digest()) }
		}
		cpu0, ccpu0 := srv.cpuSeconds(), clientCPU()
		start = time.Now()
		if err := parallel(len(ms), h.o.jobs, op); err != nil {
			return s, err
		}
		s.seconds = time.Since(start).Seconds()
		s.cpu = math.Round((srv.cpuSeconds()-cpu0)*100) / 100
		s.clientCPU = clientCPU() - ccpu0
		s.ops = len(ms)
		s.unit = "ops/s"
		s.value = float64(s.ops) / s.seconds
	default:
		return s, fmt.Errorf("unknown row %q", row)
	}
	rss, err := srv.peakRSS()
	if err != nil {
		return s, err
	}
	s.rssMiB = float64(rss) / (1 << 20)
	return s, nil
}

// parallel calls fn(0..n-1) from jobs goroutines and returns the first error.
func parallel(n, jobs int, fn func(int) error) error {
	if jobs <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// ---------------------------------------------------------------------------
// Server processes

type server struct {
	cmd  *exec.Cmd
	addr string
	log  *os.File
	done chan struct{}
	once sync.Once
	// replicas are further custody processes on the same store; the
	// client sends requests to addr and theirs in turn.
	replicas []*server
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM, waits up to 10s, then SIGKILLs.
func (s *server) stop() {
	s.once.Do(func() {
		for _, p := range s.replicas {
			p.stop()
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		s.log.Close()
	})
}

func (h *harness) start(target, dir, data string) (*server, error) {
	var lastErr error
	for attempt := range 3 {
		var s *server
		var err error
		pgS3 := h.o.backend == backendPostgresS3
		if target == targetCustody && pgS3 {
			s, err = h.startReplicated(dir, data, h.o.replicas)
		} else if pgS3 && h.o.peer == peerOneReplica {
			s, err = h.startReplicated(dir, data, 1)
		} else if pgS3 && h.o.peer == peerCustodyAuditOff {
			s, err = h.startReplicated(dir, data, 1, "CUSTODY_AUDIT_DISABLE_UNSAFE=true")
		} else if target == targetCustody || (pgS3 && h.o.peer == peerEmbedded) {
			s, err = h.startCustody(dir, data)
		} else if h.o.peer == peerCustodyAuditOff {
			s, err = h.startCustody(dir, data, "CUSTODY_AUDIT_DISABLE_UNSAFE=true")
		} else {
			s, err = h.startReference(dir, data, attempt)
		}
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func (h *harness) spawn(dir, logName string, name string, args []string, env []string) (*server, error) {
	logFile, err := os.OpenFile(filepath.Join(dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	s := &server{cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	return s, nil
}

func (h *harness) startCustody(dir, data string, env ...string) (*server, error) {
	ready := filepath.Join(dir, "ready")
	_ = os.Remove(ready)
	s, err := h.spawn(dir, "custody.log", h.custodyBin,
		// The reference registry runs without authentication; so does custody
		// here, so the rows compare storage and protocol work alone.
		custodyArgs(data, env),
		append([]string{"CUSTODY_READY_FILE=" + ready}, env...))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			s.addr = strings.TrimSpace(string(b))
			break
		}
		if err := h.waitTick(s, deadline, dir, "custody.log"); err != nil {
			return nil, err
		}
	}
	return s, h.waitHTTP(s, "/healthz", deadline, dir, "custody.log")
}

// custodyArgs returns the arguments of custody serve on data;
// CUSTODY_BENCH_CONFIG in env (read by the harness only) names a
// configuration file.
func custodyArgs(data string, env []string) []string {
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--log-level", "error", "--auth=none"}
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "CUSTODY_BENCH_CONFIG="); ok {
			args = append(args, "--config", v)
		}
	}
	return args
}

func (h *harness) startReference(dir, data string, attempt int) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	storage := fmt.Sprintf("  filesystem:\n    rootdirectory: %s\n", data)
	if h.o.backend == backendPostgresS3 {
		if storage, err = h.referenceS3Config(dir); err != nil {
			return nil, err
		}
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
%s  delete:
    enabled: true
http:
  addr: %s
`, storage, addr)
	cfgPath := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	// distribution v3 exports OpenTelemetry traces to https://localhost:4318
	// by default; its documented switch turns the export off.
	s, err := h.spawn(dir, "registry.log", h.refBin, []string{"serve", cfgPath}, []string{"OTEL_TRACES_EXPORTER=none"})
	if err != nil {
		return nil, err
	}
	s.addr = addr
	return s, h.waitHTTP(s, "/v2/", time.Now().Add(30*time.Second), dir, "registry.log")
}

func (h *harness) waitTick(s *server, deadline time.Time, dir, logName string) error {
	select {
	case <-s.done:
		b, _ := os.ReadFile(filepath.Join(dir, logName))
		return fmt.Errorf("server exited before it was ready:\n%s", b)
	case <-h.ctx.Done():
		s.stop()
		return h.ctx.Err()
	case <-time.After(10 * time.Millisecond):
	}
	if time.Now().After(deadline) {
		s.stop()
		b, _ := os.ReadFile(filepath.Join(dir, logName))
		return fmt.Errorf("server not ready after 30s:\n%s", b)
	}
	return nil
}

func (h *harness) waitHTTP(s *server, path string, deadline time.Time, dir, logName string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get("http://" + s.addr + path)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := h.waitTick(s, deadline, dir, logName); err != nil {
			return err
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cpuSeconds returns the user+system CPU time a process has used, from
// /proc/<pid>/stat (in clock ticks of 1/100 s), or NaN.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	// The command name (field 2) may contain spaces; fields after it
	// start at state (field 3). utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return math.NaN()
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return math.NaN()
	}
	return float64(ut+st) / 100
}

// clientCPU returns this process's user+system CPU seconds so far.
func clientCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// peakRSS reads a process's VmHWM (peak resident set size) in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}

// ---------------------------------------------------------------------------
// Machine description

func machine(dir string) Machine {
	m := Machine{NumCPU: runtime.NumCPU(), Go: runtime.Version(), Filesystem: fsType(dir)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
					m.MemTotal = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func revision(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", "cmd", "internal", "go.mod", "go.sum").Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += "+dirty"
	}
	return rev
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func refVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return "distribution " + strings.TrimSuffix(f[2], "+unknown")
	}
	return "distribution " + strings.TrimSpace(string(out))
}

// fsType names the filesystem holding dir, from /proc/self/mountinfo (the
// longest mount point that is a prefix of dir).
func fsType(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "unknown"
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "unknown"
	}
	best, typ, src := "", "unknown", ""
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 2 {
			continue
		}
		mp := f[4]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, typ, src = mp, g[0], g[1]
		}
	}
	if src != "" {
		return typ + " (" + src + ")"
	}
	return typ
}
