// Package replica runs two `custody serve` processes on one PostgreSQL
// database and one S3 bucket prefix, with a client that sends its requests
// to both in turn, and checks what replicas promise: a replica may die
// mid-push and the push completes through the other, everything
// acknowledged is served by every replica, concurrent tag moves through
// both replicas all reach the tag's history, and the audit log stays one
// verifiable sequence. scripts/postgres.sh and scripts/minio.sh start the
// services (CUSTODY_TEST_POSTGRES, CUSTODY_TEST_S3); without them the test
// is skipped, and under CI it fails.
package replica

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/testserver"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

// roundRobin is an http.RoundTripper that sends each request to the next
// replica in turn, as a load balancer would. A replica that refuses a
// connection is taken out of the rotation; the request goes to the next
// one when its body can be sent again, and otherwise fails with a
// temporary error so that the client retries it.
type roundRobin struct {
	base  http.RoundTripper
	mu    sync.Mutex
	hosts []string
	down  map[string]bool
	next  int
	// sent counts requests per host.
	sent map[string]*atomic.Int64
}

func newRoundRobin(hosts ...string) *roundRobin {
	rr := &roundRobin{base: http.DefaultTransport.(*http.Transport).Clone(), hosts: hosts, down: map[string]bool{}, sent: map[string]*atomic.Int64{}}
	for _, h := range hosts {
		rr.sent[h] = &atomic.Int64{}
	}
	return rr
}

// order returns the live hosts, starting with the next in turn.
func (rr *roundRobin) order() []string {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	var out []string
	for i := range rr.hosts {
		h := rr.hosts[(rr.next+i)%len(rr.hosts)]
		if !rr.down[h] {
			out = append(out, h)
		}
	}
	rr.next++
	return out
}

func (rr *roundRobin) markDown(h string) {
	rr.mu.Lock()
	rr.down[h] = true
	rr.mu.Unlock()
}

// backendDown is a replica refusing connections. It is temporary: the
// client's retry sends the request to another replica.
type backendDown struct{ err error }

func (e backendDown) Error() string   { return "replica unavailable: " + e.err.Error() }
func (e backendDown) Unwrap() error   { return e.err }
func (e backendDown) Temporary() bool { return true }

func (rr *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	hosts := rr.order()
	if len(hosts) == 0 {
		return nil, errors.New("no replica is up")
	}
	var lastErr error
	for i, h := range hosts {
		r := req.Clone(req.Context())
		r.URL.Host, r.Host = h, h
		if i > 0 && req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, backendDown{lastErr}
			}
			b, err := req.GetBody()
			if err != nil {
				return nil, backendDown{lastErr}
			}
			r.Body = b
		}
		rr.sent[h].Add(1)
		resp, err := rr.base.RoundTrip(r)
		if err == nil {
			return resp, nil
		}
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			return nil, err
		}
		rr.markDown(h)
		lastErr = err
	}
	return nil, backendDown{lastErr}
}

// cluster is two replicas on one store.
type cluster struct {
	store testserver.Replicated
	a, b  *testserver.Server
}

// keyFiles are the data directory files replicas must share.
var keyFiles = []string{"log-key", "log-key.pub", "token-key"}

// startCluster starts two replicas on a new store, with authentication
// on when auth is set (replica A creates the admin account).
func startCluster(t *testing.T, auth bool) *cluster {
	t.Helper()
	c := &cluster{store: testserver.NewReplicated(t, "replica")}
	c.a = testserver.Start(t, testserver.Options{Env: c.store.Env(), Auth: auth})
	dataB := t.TempDir()
	for _, f := range keyFiles {
		b, err := os.ReadFile(filepath.Join(c.a.Data, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataB, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.b = testserver.Start(t, testserver.Options{Data: dataB, Env: c.store.Env(), Auth: auth})
	return c
}

func ref(t *testing.T, host, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// do sends one request through rt and returns status, headers and body.
func do(t *testing.T, rt http.RoundTripper, method, url string, body []byte, hdr ...string) (int, http.Header, []byte, error) {
	t.Helper()
	return doReader(t, rt, method, url, bytes.NewReader(body), int64(len(body)), hdr...)
}

// doReader is do with a body that cannot be sent twice (nil: none).
func doReader(t *testing.T, rt http.RoundTripper, method, url string, body io.Reader, size int64, hdr ...string) (int, http.Header, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if size == 0 {
		req.Body, req.GetBody = http.NoBody, nil
	}
	req.ContentLength = size
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Transport: rt, Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// killReader sends its bytes slowly and calls kill halfway, so the
// replica dies while the request is in flight.
type killReader struct {
	b    []byte
	off  int
	kill func()
}

func (k *killReader) Read(p []byte) (int, error) {
	if k.off >= len(k.b) {
		return 0, io.EOF
	}
	if k.kill != nil && k.off >= len(k.b)/2 {
		k.kill() // returns once the replica has exited
		k.kill = nil
	}
	n := copy(p[:min(len(p), 64<<10)], k.b[k.off:])
	k.off += n
	return n, nil
}

// chunkedUpload uploads content in chunks through rt (so the chunks
// alternate between replicas); during the chunk after ack acknowledged
// ones it calls kill (halfway through sending it). A chunk
// that fails is resumed from the offset the upload session reports, on
// whichever replica answers. It returns the blob's digest.
func chunkedUpload(t *testing.T, rt http.RoundTripper, base, repo string, content []byte, chunk int, ack int, victim string, kill func()) (digest.Digest, int) {
	t.Helper()
	d := digest.FromBytes(content)
	code, h, b, err := do(t, rt, "POST", base+"/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("start upload: %d %v %s", code, err, b)
	}
	loc := h.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	offset, acked, resumed := 0, 0, 0
	for offset < len(content) {
		end := min(offset+chunk, len(content))
		var (
			body io.Reader         = bytes.NewReader(content[offset:end])
			via  http.RoundTripper = rt
		)
		if acked == ack && kill != nil {
			// This chunk goes to the victim, which dies while receiving it.
			body, via = &killReader{b: content[offset:end], kill: kill}, newRoundRobin(victim)
			kill = nil
		}
		code, h, b, err := doReader(t, via, "PATCH", loc, body, int64(end-offset),
			"Content-Type", "application/octet-stream",
			"Content-Range", fmt.Sprintf("%d-%d", offset, end-1))
		if err != nil || code != http.StatusAccepted {
			// Ask the session (any replica) how much it holds.
			resumed++
			if resumed > 10 {
				t.Fatalf("chunk %d-%d: %d %v %s; giving up after 10 resumptions", offset, end, code, err, b)
			}
			scode, sh, sb, serr := do(t, rt, "GET", loc, nil)
			if serr != nil || scode != http.StatusNoContent {
				t.Logf("upload status: %d %v %s", scode, serr, sb)
				time.Sleep(200 * time.Millisecond)
				continue
			}
			offset = rangeEnd(t, sh.Get("Range"))
			t.Logf("chunk failed (%d %v); the session reports %d bytes, resuming there", code, err, offset)
			continue
		}
		if l := h.Get("Location"); l != "" {
			loc = l
			if !strings.HasPrefix(loc, "http") {
				loc = base + loc
			}
		}
		offset = rangeEnd(t, h.Get("Range"))
		acked++
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	for try := 0; ; try++ {
		code, _, b, err = do(t, rt, "PUT", loc+sep+"digest="+d.String(), nil)
		if err == nil && code == http.StatusCreated {
			break
		}
		if try == 5 {
			t.Fatalf("commit upload: %d %v %s", code, err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return d, resumed
}

// rangeEnd parses a Range header "0-N" into N+1.
func rangeEnd(t *testing.T, r string) int {
	t.Helper()
	var a, b int
	if _, err := fmt.Sscanf(r, "%d-%d", &a, &b); err != nil {
		t.Fatalf("Range %q: %v", r, err)
	}
	return b + 1
}

type pushed struct {
	ref    string
	digest digest.Digest
	blobs  []digest.Digest
}

func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	c := startCluster(t, false)
	rr := newRoundRobin(c.a.Addr, c.b.Addr)
	host := c.a.Addr // the name in references; the transport picks the replica
	opts := []remote.Option{remote.WithTransport(rr), remote.WithRetryBackoff(remote.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 6})}

	// Concurrent ggcr pushes through both replicas, while a chunked
	// upload goes on; replica A is killed after the upload's third
	// chunk.
	var (
		mu    sync.Mutex
		acked []pushed
		fails []error
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				img, err := random.Image(256<<10, 2)
				if err != nil {
					panic(err)
				}
				r := fmt.Sprintf("apps/w%d:v%d", w, i)
				err = remote.Write(ref(t, host, r), img, opts...)
				mu.Lock()
				if err != nil {
					fails = append(fails, fmt.Errorf("%s: %w", r, err))
				} else {
					d, _ := img.Digest()
					var bs []digest.Digest
					for _, l := range must(img.Layers()) {
						bs = append(bs, digest.Digest(must(l.Digest()).String()))
					}
					acked = append(acked, pushed{r, digest.Digest(d.String()), bs})
				}
				mu.Unlock()
			}
		}()
	}
	// pushesDone waits until the pushers have finished n more pushes
	// (acknowledged or failed) than they had at the call.
	pushesDone := func(n int, what string) {
		t.Helper()
		mu.Lock()
		want := len(acked) + len(fails) + n
		mu.Unlock()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			got := len(acked) + len(fails)
			mu.Unlock()
			if got >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d pushes done after 2 minutes", what, got, want)
			}
		}
	}
	// The pushers are under way before the chunked upload starts.
	pushesDone(3, "pushes before the upload")
	content := make([]byte, 12<<20)
	rand.Read(content)
	killed := false
	big, resumed := chunkedUpload(t, rr, "http://"+host, "apps/big", content, 1<<20, 3, c.a.Addr, func() {
		c.a.Kill()
		killed = true
	})
	if !killed {
		t.Fatal("replica A was not killed during the upload")
	}
	t.Logf("chunked upload %s completed after %d resumption(s) on replica B", big, resumed)
	// A manifest naming the chunked blob as its layer, pushed with ggcr
	// (which finds the blob present and only sends the config and
	// manifest).
	bigImg, err := mutate.AppendLayers(empty.Image, static.NewLayer(content, types.DockerLayer))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, host, "apps/big:latest"), bigImg, opts...); err != nil {
		t.Fatalf("push apps/big: %v", err)
	}
	bd, _ := bigImg.Digest()
	pushesDone(3, "pushes on B alone") // pushes continue on B alone
	close(stop)
	wg.Wait()
	acked = append(acked, pushed{"apps/big:latest", digest.Digest(bd.String()), []digest.Digest{big}})
	if len(fails) > 0 {
		t.Errorf("%d pushes failed after the replica died (ggcr retries should carry them to the other): %v", len(fails), fails)
	}
	t.Logf("%d pushes acknowledged; requests sent: A %d, B %d", len(acked), rr.sent[c.a.Addr].Load(), rr.sent[c.b.Addr].Load())

	// Every acknowledged object is served by the survivor and by A once
	// restarted.
	c.a.Restart()
	for _, s := range []*testserver.Server{c.b, c.a} {
		direct := http.DefaultTransport
		for _, p := range acked {
			repo, tag, _ := strings.Cut(p.ref, ":")
			code, _, b, err := do(t, direct, "GET", s.URL+"/v2/"+repo+"/manifests/"+tag, nil,
				"Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
			if err != nil || code != http.StatusOK || digest.FromBytes(b) != p.digest {
				t.Fatalf("%s on %s: %d %v, digest %s want %s", p.ref, s.Addr, code, err, digest.FromBytes(b), p.digest)
			}
			for _, d := range p.blobs {
				code, _, b, err := do(t, direct, "GET", s.URL+"/v2/"+repo+"/blobs/"+d.String(), nil)
				if err != nil || code != http.StatusOK || digest.FromBytes(b) != d {
					t.Fatalf("blob %s of %s on %s: %d %v", d, p.ref, s.Addr, code, err)
				}
			}
		}
	}

	// Concurrent tag moves, one writer per replica, every move to a new
	// digest: the history keeps them all.
	const moves = 15
	prep := func(s *testserver.Server, who string) [][]byte {
		var out [][]byte
		for i := range moves {
			img := mutate.Annotations(must(random.Image(64, 1)), map[string]string{"who": who, "i": fmt.Sprint(i)}).(v1.Image)
			if err := remote.Write(ref(t, s.Addr, fmt.Sprintf("apps/moving@%s", must(img.Digest()))), img); err != nil {
				t.Fatal(err)
			}
			out = append(out, must(img.RawManifest()))
		}
		return out
	}
	rawA, rawB := prep(c.a, "a"), prep(c.b, "b")
	var (
		want   = map[digest.Digest]bool{}
		moveWG sync.WaitGroup
		errs   = make(chan error, 2*moves)
	)
	for _, side := range []struct {
		s   *testserver.Server
		raw [][]byte
	}{{c.a, rawA}, {c.b, rawB}} {
		for _, m := range side.raw {
			want[digest.FromBytes(m)] = true
		}
		moveWG.Add(1)
		go func() {
			defer moveWG.Done()
			for _, m := range side.raw {
				code, _, b, err := do(t, http.DefaultTransport, "PUT", side.s.URL+"/v2/apps/moving/manifests/moving", m,
					"Content-Type", string(types.DockerManifestSchema2))
				if err != nil || code != http.StatusCreated {
					errs <- fmt.Errorf("tag move on %s: %d %v %s", side.s.Addr, code, err, b)
				}
			}
		}()
	}
	moveWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_, _, hb, err := do(t, http.DefaultTransport, "GET", c.b.URL+"/api/v1/tags/apps/moving/moving/history", nil)
	if err != nil {
		t.Fatal(err)
	}
	var hist []struct {
		Digest digest.Digest `json:"digest"`
	}
	if err := json.Unmarshal(hb, &hist); err != nil {
		var wrapped struct {
			History []struct {
				Digest digest.Digest `json:"digest"`
			} `json:"history"`
		}
		if err := json.Unmarshal(hb, &wrapped); err != nil {
			t.Fatalf("tag history: %v %s", err, hb)
		}
		for _, h := range wrapped.History {
			hist = append(hist, struct {
				Digest digest.Digest `json:"digest"`
			}{h.Digest})
		}
	}
	seen := map[digest.Digest]bool{}
	for _, h := range hist {
		seen[h.Digest] = true
	}
	for d := range want {
		if !seen[d] {
			t.Errorf("tag history lacks the move to %s", d)
		}
	}
	if len(hist) != 2*moves {
		t.Errorf("tag history has %d entries, want %d (one per move)", len(hist), 2*moves)
	}

	// One audit log: contiguous indexes, and it verifies. Entries are
	// written in batches behind the responses, so wait for the last ones.
	entries := func() []tlog.EntryJSON {
		var all []tlog.EntryJSON
		size := uint64(1)
		for start := uint64(0); start < size; start += tlog.MaxEntries {
			_, _, b, err := do(t, http.DefaultTransport, "GET", fmt.Sprintf("%s/api/v1/audit/entries?start=%d&end=%d", c.b.URL, start, start+tlog.MaxEntries), nil)
			if err != nil {
				t.Fatal(err)
			}
			var r tlog.EntriesResponse
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("audit entries: %v %s", err, b)
			}
			size = r.Size
			all = append(all, r.Entries...)
		}
		return all
	}
	var all []tlog.EntryJSON
	manifestPuts := 0
	for deadline := time.Now().Add(15 * time.Second); ; {
		all, manifestPuts = entries(), 0
		for _, e := range all {
			if strings.Contains(e.Entry, `"action":"manifest.put"`) && strings.Contains(e.Entry, `"repo":"apps/moving"`) {
				manifestPuts++
			}
		}
		if manifestPuts >= 4*moves || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, e := range all {
		if e.Index != uint64(i) {
			t.Fatalf("audit entry %d has index %d: the log is not one contiguous sequence", i, e.Index)
		}
	}
	// Every push by digest and every tag move, on either replica.
	if manifestPuts != 4*moves {
		t.Errorf("audit log holds %d manifest.put entries for apps/moving, want %d", manifestPuts, 4*moves)
	}
	if code, _, b, err := do(t, http.DefaultTransport, "POST", c.a.URL+"/api/v1/audit/checkpoint", nil); err != nil || code != http.StatusOK {
		t.Fatalf("sign checkpoint: %d %v %s", code, err, b)
	}
	t.Logf("audit log: %d entries", len(all))
	for _, s := range []*testserver.Server{c.a, c.b} {
		cmd := exec.Command(testserver.Binary(t), "audit", "verify", "--server", s.URL, "--key", filepath.Join(s.Data, "log-key.pub"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("audit verify on %s: %v\n%s", s.Addr, err, out)
		}
		t.Logf("audit verify on %s: %s", s.Addr, strings.TrimSpace(string(out)))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
