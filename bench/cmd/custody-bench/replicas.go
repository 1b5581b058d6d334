package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/custody-dev/custody/bench"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Backends of the custody column (-backend).
const (
	backendEmbedded   = "embedded"
	backendPostgresS3 = "postgres-s3"
)

// Peers with -backend postgres-s3, besides the reference registry (which
// then stores in the same MinIO with its s3 driver, under its own prefix).
const (
	// peerEmbedded: custody on SQLite and files.
	peerEmbedded = "custody-embedded"
	// peerOneReplica: custody on PostgreSQL + MinIO with one replica, to
	// compare -replicas 2 with.
	peerOneReplica = "custody-1-replica"
)

// checkBackend validates -backend and -replicas.
func (o *options) checkBackend(peerSet bool) error {
	switch o.backend {
	case backendEmbedded:
		if o.replicas != 1 {
			return errors.New("-replicas needs -backend postgres-s3 (an embedded store belongs to one process)")
		}
	case backendPostgresS3:
		if o.replicas != 1 && o.replicas != 2 {
			return fmt.Errorf("-replicas %d: use 1 or 2", o.replicas)
		}
		switch o.peer {
		case peerReference, peerEmbedded, peerCustodyAuditOff:
		case peerOneReplica:
			if o.replicas != 2 {
				return errors.New("-peer custody-1-replica compares -replicas 2 with one replica")
			}
		default:
			return fmt.Errorf("-peer %q with -backend postgres-s3: use %s, %s, %s or %s", o.peer, peerReference, peerCustodyAuditOff, peerEmbedded, peerOneReplica)
		}
	default:
		return fmt.Errorf("-backend %q: use %s or %s", o.backend, backendEmbedded, backendPostgresS3)
	}
	if o.redirect && o.backend != backendPostgresS3 {
		return errors.New("-redirect needs -backend postgres-s3")
	}
	return nil
}

// services are the PostgreSQL server and S3 bucket custody runs on with
// -backend postgres-s3: those CUSTODY_TEST_POSTGRES and CUSTODY_TEST_S3
// name, or ones scripts/postgres.sh and scripts/minio.sh start (and stop
// at the end).
type services struct {
	pgBase                          string
	s3Endpoint, access, secret, bkt string
	stops                           []func()
	dbs                             []string
	// prefixes are the bucket prefixes the runs wrote under, emptied at
	// the end when the bucket outlives the harness (CUSTODY_TEST_S3).
	prefixes    []string
	ownBucket   bool                // the harness started MinIO, and stopping it deletes its data
	stores      map[string][]string // run directory -> custody's environment
	refPrefixes map[string]string   // run directory -> the reference's bucket prefix
}

// startServices finds or starts PostgreSQL and MinIO.
func startServices(ctx context.Context, root string) (*services, error) {
	sv := &services{stores: map[string][]string{}}
	pg := os.Getenv("CUSTODY_TEST_POSTGRES")
	if pg == "" {
		env, err := runScript(ctx, root, "postgres.sh")
		if err != nil {
			sv.close()
			return nil, err
		}
		pg = env["CUSTODY_TEST_POSTGRES"]
		dir := env["CUSTODY_POSTGRES_DIR"]
		sv.stops = append(sv.stops, func() { _ = exec.Command("bash", filepath.Join(root, "scripts", "postgres.sh"), "stop", dir).Run() })
	}
	s3 := os.Getenv("CUSTODY_TEST_S3")
	if s3 == "" {
		env, err := runScript(ctx, root, "minio.sh")
		if err != nil {
			sv.close()
			return nil, err
		}
		s3 = env["CUSTODY_TEST_S3"]
		dir := env["CUSTODY_MINIO_DIR"]
		sv.ownBucket = true
		sv.stops = append(sv.stops, func() { _ = exec.Command("bash", filepath.Join(root, "scripts", "minio.sh"), "stop", dir).Run() })
	}
	u, err := url.Parse(s3)
	if err != nil || u.User == nil || (u.Scheme != "http" && u.Scheme != "https") {
		sv.close()
		return nil, fmt.Errorf("CUSTODY_TEST_S3 must be http(s)://ACCESS:SECRET@HOST:PORT/BUCKET")
	}
	sv.pgBase = pg
	sv.s3Endpoint = u.Scheme + "://" + u.Host
	sv.access = u.User.Username()
	sv.secret, _ = u.User.Password()
	sv.bkt = strings.Trim(u.Path, "/")
	logf("PostgreSQL %s, S3 %s/%s", redactURL(pg), sv.s3Endpoint, sv.bkt)
	return sv, nil
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "?"
	}
	return u.Redacted()
}

// runScript runs scripts/NAME start and returns the variables it exports.
func runScript(ctx context.Context, root, name string) (map[string]string, error) {
	logf("starting scripts/%s", name)
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", name), "start")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("scripts/%s start: %w", name, err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export "), "=")
		if ok {
			env[k] = strings.Trim(v, `'"`)
		}
	}
	return env, nil
}

// closeServices drops the databases the runs created and stops the
// services the harness started.
func (h *harness) closeServices() {
	if h.svc != nil {
		h.svc.close()
	}
}

func (sv *services) close() {
	if len(sv.dbs) > 0 {
		ctx := context.Background()
		if conn, err := pgx.Connect(ctx, sv.pgBase); err == nil {
			for _, db := range sv.dbs {
				_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
			}
			conn.Close(ctx)
		}
	}
	if !sv.ownBucket && len(sv.prefixes) > 0 {
		if err := sv.emptyPrefixes(); err != nil {
			logf("emptying the runs' bucket prefixes: %v", err)
		}
	}
	for _, stop := range sv.stops {
		stop()
	}
}

// emptyPrefixes deletes every object version under the runs' prefixes: a
// run of 64 MiB pulls leaves about 1 GiB behind, and a bucket shared with
// the tests keeps it.
func (sv *services) emptyPrefixes() error {
	u, err := url.Parse(sv.s3Endpoint)
	if err != nil {
		return err
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(sv.access, sv.secret, ""), Secure: u.Scheme == "https"})
	if err != nil {
		return err
	}
	ctx := context.Background()
	var errs []error
	for _, p := range sv.prefixes {
		objs := c.ListObjects(ctx, sv.bkt, minio.ListObjectsOptions{Prefix: p, Recursive: true, WithVersions: true})
		for e := range c.RemoveObjects(ctx, sv.bkt, objs, minio.RemoveObjectsOptions{}) {
			errs = append(errs, fmt.Errorf("%s: %w", e.ObjectName, e.Err))
		}
	}
	return errors.Join(errs...)
}

// storeEnv returns the environment of custody processes on the store of
// run directory dir: a fresh database and bucket prefix per run, so no
// push finds its blob already there, kept across the restart of a pull
// row.
func (h *harness) storeEnv(dir string) ([]string, error) {
	sv := h.svc
	if env, ok := sv.stores[dir]; ok {
		return env, nil
	}
	ctx := h.ctx
	conn, err := pgx.Connect(ctx, sv.pgBase)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	id := strings.ToLower(rand.Text())[:12]
	db := "bench_" + id
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return nil, fmt.Errorf("creating database %s: %w", db, err)
	}
	sv.dbs = append(sv.dbs, db)
	sv.prefixes = append(sv.prefixes, "bench-"+id+"/")
	u, err := url.Parse(sv.pgBase)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + db
	env := []string{
		"CUSTODY_METADATA=" + u.String(),
		"CUSTODY_BLOBS=s3://" + sv.bkt + "/bench-" + id,
		"CUSTODY_S3_ENDPOINT=" + sv.s3Endpoint,
		"AWS_ACCESS_KEY_ID=" + sv.access,
		"AWS_SECRET_ACCESS_KEY=" + sv.secret,
	}
	sv.stores[dir] = env
	return env, nil
}

// startReplicated starts n custody processes on the run's PostgreSQL
// database and bucket prefix. Each has its own data directory holding the
// same key files (copied from the first). With -redirect, they answer
// blob GETs with a redirect to MinIO (s3.redirect in a configuration file).
func (h *harness) startReplicated(dir, data string, n int, extra ...string) (*server, error) {
	env, err := h.storeEnv(dir)
	if err != nil {
		return nil, err
	}
	env = append(slices.Clone(env), extra...)
	if h.o.redirect {
		cfg := filepath.Join(dir, "custody.yml")
		if err := os.WriteFile(cfg, []byte("s3:\n  redirect: true\n"), 0o644); err != nil {
			return nil, err
		}
		env = append(slices.Clone(env), "CUSTODY_BENCH_CONFIG="+cfg)
	}
	first, err := h.startCustody(dir, data, env...)
	if err != nil {
		return nil, err
	}
	for i := 2; i <= n; i++ {
		rdir := filepath.Join(dir, fmt.Sprintf("replica-%d", i))
		rdata := filepath.Join(rdir, "data")
		if err := os.MkdirAll(rdata, 0o755); err != nil {
			first.stop()
			return nil, err
		}
		for _, f := range []string{"log-key", "log-key.pub", "token-key"} {
			b, err := os.ReadFile(filepath.Join(data, f))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err == nil {
				err = os.WriteFile(filepath.Join(rdata, f), b, 0o600)
			}
			if err != nil {
				first.stop()
				return nil, err
			}
		}
		s, err := h.startCustody(rdir, rdata, env...)
		if err != nil {
			first.stop()
			return nil, err
		}
		first.replicas = append(first.replicas, s)
	}
	return first, nil
}

// referenceS3Config returns the reference registry's storage section on
// the run's bucket under a prefix of its own (kept across the restart of a
// pull row), with redirects as -redirect says.
func (h *harness) referenceS3Config(dir string) (string, error) {
	sv := h.svc
	prefix, ok := sv.refPrefixes[dir]
	if !ok {
		prefix = "/bench-ref-" + strings.ToLower(rand.Text())[:12]
		if sv.refPrefixes == nil {
			sv.refPrefixes = map[string]string{}
		}
		sv.refPrefixes[dir] = prefix
		sv.prefixes = append(sv.prefixes, strings.TrimPrefix(prefix, "/")+"/")
	}
	u, err := url.Parse(sv.s3Endpoint)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`  s3:
    accesskey: %q
    secretkey: %q
    region: us-east-1
    regionendpoint: %q
    forcepathstyle: true
    secure: %t
    bucket: %q
    rootdirectory: %q
  redirect:
    disable: %t
`, sv.access, sv.secret, sv.s3Endpoint, u.Scheme == "https", sv.bkt, prefix, !h.o.redirect), nil
}

// cpuSeconds is the CPU time of the server and its replicas.
func (s *server) cpuSeconds() float64 {
	t := cpuSeconds(s.pid())
	for _, r := range s.replicas {
		t += cpuSeconds(r.pid())
	}
	return t
}

// peakRSS is the sum of the peak RSS of the server and its replicas.
func (s *server) peakRSS() (int64, error) {
	n, err := peakRSS(s.pid())
	for _, r := range s.replicas {
		m, rerr := peakRSS(r.pid())
		n += m
		err = errors.Join(err, rerr)
	}
	return n, err
}

// newClient returns a client of srv; with replicas, its requests go to
// each in turn.
func (h *harness) newClient(srv *server) (*bench.Client, error) {
	if len(srv.replicas) == 0 {
		return bench.NewClient(h.ctx, srv.addr, nil)
	}
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	rr := &roundRobin{base: t, hosts: []string{srv.addr}}
	for _, r := range srv.replicas {
		rr.hosts = append(rr.hosts, r.addr)
	}
	return bench.NewClient(h.ctx, srv.addr, rr)
}

// roundRobin sends each request to the next replica in turn, as a load
// balancer in front of them would.
type roundRobin struct {
	base  http.RoundTripper
	hosts []string
	next  atomic.Uint64
}

func (rr *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	h := rr.hosts[(rr.next.Add(1)-1)%uint64(len(rr.hosts))]
	r := req.Clone(req.Context())
	r.URL.Host, r.Host = h, h
	return rr.base.RoundTrip(r)
}
