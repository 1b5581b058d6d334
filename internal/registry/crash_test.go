package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/testserver"
	"github.com/custody-dev/custody/internal/tlog"
)

// The crash tests push through a real `custody serve` process, SIGKILL it
// at a random moment and check, after a restart on the same data directory,
// that everything acknowledged survived, that nothing partial or corrupt is
// ever visible, and that interrupted chunked uploads resume.

const (
	crashPushers      = 4
	crashMaxKillDelay = 300 * time.Millisecond
	crashMinBlob      = 1 << 10
	crashMaxBlob      = 8 << 20
)

func crashRounds(t *testing.T) int {
	if s := os.Getenv("CUSTODY_CRASH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CUSTODY_CRASH_ROUNDS=%q: want a positive integer", s)
		}
		return n
	}
	if testing.Short() {
		return 5
	}
	return 25
}

// blobRef is a blob pushed (or attempted) into a repository.
type blobRef struct {
	repo string
	d    digest.Digest
	size int64
}

// manifestRef is a manifest pushed (or attempted) under a unique tag.
type manifestRef struct {
	repo string
	tag  string
	d    digest.Digest
	body []byte
}

// session is a chunked upload whose POST was acknowledged.
type session struct {
	repo    string
	path    string // Location path, without scheme and host (the port changes)
	content []byte
	d       digest.Digest
	acked   int64 // offset of the last acknowledged PATCH
	sent    int64 // end of the last chunk the client started to send
	putSent bool  // the closing PUT was started
	done    bool  // the closing PUT was acknowledged
}

// ledger records what the pushers attempted and what was acknowledged.
type ledger struct {
	mu            sync.Mutex
	attBlobs      []blobRef
	ackBlobs      []blobRef
	attManifests  []manifestRef
	ackManifests  []manifestRef
	sessions      []*session
	opsByKind     map[string]int
	ackedByKind   map[string]int
	disconnected  int // requests that failed at the transport (the kill)
	unexpectedErr int
}

func newLedger() *ledger {
	return &ledger{opsByKind: map[string]int{}, ackedByKind: map[string]int{}}
}

func (l *ledger) attemptBlob(b blobRef) {
	l.mu.Lock()
	l.attBlobs = append(l.attBlobs, b)
	l.mu.Unlock()
}

func (l *ledger) ackBlob(kind string, b blobRef) {
	l.mu.Lock()
	l.ackBlobs = append(l.ackBlobs, b)
	l.ackedByKind[kind]++
	l.mu.Unlock()
}

func (l *ledger) op(kind string) {
	l.mu.Lock()
	l.opsByKind[kind]++
	l.mu.Unlock()
}

// pusher is one concurrent client. Its state (the blobs acknowledged in its
// repository) carries over from round to round.
type pusher struct {
	t      *testing.T
	id     int
	repo   string
	rng    *rand.Rand
	blobs  []blobRef     // acknowledged in repo
	mans   []manifestRef // acknowledged in repo
	others func() []blobRef
	seq    int
}

// errKilled marks a request that failed at the transport: the server died.
var errKilled = errors.New("server gone")

// crashClient is the HTTP client of one round.
type crashClient struct {
	base string
	hc   *http.Client
}

func newCrashClient(base string) *crashClient {
	return &crashClient{base: base, hc: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true},
		Timeout:   60 * time.Second,
	}}
}

func (c *crashClient) close() { c.hc.CloseIdleConnections() }

// do sends a request and reads the whole response. Transport failures
// wrap errKilled.
func (c *crashClient) do(ctx context.Context, method, path string, hdr map[string]string, body io.Reader, length int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.ContentLength = length
		if length == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s %s: %v", errKilled, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, nil, fmt.Errorf("%w: reading %s %s: %v", errKilled, method, path, err)
	}
	return resp, b, nil
}

// randomContent returns n random bytes.
func randomContent(rng *rand.Rand, n int) []byte {
	var seed [32]byte
	for i := range 4 {
		v := rng.Uint64()
		for j := range 8 {
			seed[i*8+j] = byte(v >> (8 * j))
		}
	}
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(seed).Read(b)
	return b
}

// randomSize is log-uniform in [crashMinBlob, crashMaxBlob].
func randomSize(rng *rand.Rand) int {
	lo, hi := 10.0, 23.0 // log2 of 1 KiB and 8 MiB
	exp := lo + rng.Float64()*(hi-lo)
	n := int(float64(int64(1)<<int(exp)) * (1 + (exp - float64(int(exp)))))
	return min(max(n, crashMinBlob), crashMaxBlob)
}

func digestOf(rng *rand.Rand, b []byte) digest.Digest {
	if rng.IntN(5) == 0 {
		return digest.SHA512.FromBytes(b)
	}
	return digest.SHA256.FromBytes(b)
}

// parseRange turns the spec's Range header "0-<last>" into an offset. The
// pushers never leave an upload at exactly one byte, so "0-0" means empty.
func parseRange(s string) (int64, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok || a != "0" {
		return 0, fmt.Errorf("malformed Range %q", s)
	}
	last, err := strconv.ParseInt(b, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed Range %q", s)
	}
	if last == 0 {
		return 0, nil
	}
	return last + 1, nil
}

func (p *pusher) run(ctx context.Context, c *crashClient, l *ledger, round int) {
	for ctx.Err() == nil {
		var err error
		switch r := p.rng.IntN(100); {
		case r < 35:
			err = p.monolithic(ctx, c, l)
		case r < 70:
			err = p.chunked(ctx, c, l)
		case r < 78:
			err = p.mount(ctx, c, l)
		default:
			err = p.manifest(ctx, c, l, round)
		}
		if err != nil {
			if errors.Is(err, errKilled) || ctx.Err() != nil {
				l.mu.Lock()
				l.disconnected++
				l.mu.Unlock()
				return
			}
			l.mu.Lock()
			l.unexpectedErr++
			l.mu.Unlock()
			p.t.Errorf("pusher %d (round %d): %v", p.id, round, err)
			return
		}
	}
}

// monolithic: POST /blobs/uploads/?digest= with the whole body.
func (p *pusher) monolithic(ctx context.Context, c *crashClient, l *ledger) error {
	l.op("monolithic")
	content := randomContent(p.rng, randomSize(p.rng))
	d := digestOf(p.rng, content)
	b := blobRef{repo: p.repo, d: d, size: int64(len(content))}
	l.attemptBlob(b)
	resp, body, err := c.do(ctx, http.MethodPost, "/v2/"+p.repo+"/blobs/uploads/?digest="+d.String(),
		map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(content), int64(len(content)))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("monolithic upload of %d bytes: %s: %s", len(content), resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		return fmt.Errorf("monolithic upload: Docker-Content-Digest %q, want %s", got, d)
	}
	p.blobs = append(p.blobs, b)
	l.ackBlob("monolithic", b)
	return nil
}

// chunked: POST, 1-4 PATCHes with Content-Range (or streamed without a
// length), then PUT ?digest= with or without a last chunk.
func (p *pusher) chunked(ctx context.Context, c *crashClient, l *ledger) error {
	l.op("chunked")
	size := randomSize(p.rng)
	content := randomContent(p.rng, size)
	d := digestOf(p.rng, content)
	b := blobRef{repo: p.repo, d: d, size: int64(size)}
	l.attemptBlob(b)

	resp, body, err := c.do(ctx, http.MethodPost, "/v2/"+p.repo+"/blobs/uploads/", nil, nil, 0)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload: %s: %s", resp.Status, body)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/"+p.repo+"/blobs/uploads/") {
		return fmt.Errorf("start upload: Location %q", loc)
	}
	s := &session{repo: p.repo, path: loc, content: content, d: d}
	l.mu.Lock()
	l.sessions = append(l.sessions, s)
	l.mu.Unlock()

	// Chunk boundaries at least 512 bytes apart, so no offset is 1.
	cuts := []int{0}
	for n := 1 + p.rng.IntN(4); n > 0; n-- {
		last := cuts[len(cuts)-1]
		if size-last < 1024 {
			break
		}
		cuts = append(cuts, last+512+p.rng.IntN(size-last-512))
	}
	lastChunkInPut := p.rng.IntN(2) == 0
	if !lastChunkInPut || len(cuts) == 1 {
		cuts = append(cuts, size)
	}
	for i := 0; i+1 < len(cuts); i++ {
		start, end := int64(cuts[i]), int64(cuts[i+1])
		if start == end {
			continue
		}
		hdr := map[string]string{"Content-Type": "application/octet-stream"}
		length := end - start
		var r io.Reader = bytes.NewReader(content[start:end])
		if p.rng.IntN(4) == 0 {
			// Streamed: no Content-Length, no Content-Range.
			r = struct{ io.Reader }{r}
			length = -1
		} else {
			hdr["Content-Range"] = fmt.Sprintf("%d-%d", start, end-1)
		}
		l.mu.Lock()
		s.sent = end
		l.mu.Unlock()
		resp, body, err := c.do(ctx, http.MethodPatch, s.path, hdr, r, length)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("PATCH %d-%d of %d: %s: %s", start, end-1, size, resp.Status, body)
		}
		if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", end-1); got != want {
			return fmt.Errorf("PATCH %d-%d: Range %q, want %q", start, end-1, got, want)
		}
		if nl := resp.Header.Get("Location"); nl != "" {
			s.path = nl
		}
		l.mu.Lock()
		s.acked = end
		l.mu.Unlock()
	}
	hdr := map[string]string{"Content-Type": "application/octet-stream"}
	var r io.Reader = http.NoBody
	var length int64
	if rest := content[s.acked:]; len(rest) > 0 {
		r, length = bytes.NewReader(rest), int64(len(rest))
		if p.rng.IntN(2) == 0 {
			hdr["Content-Range"] = fmt.Sprintf("%d-%d", s.acked, size-1)
		}
	}
	l.mu.Lock()
	s.sent = int64(size)
	s.putSent = true
	l.mu.Unlock()
	resp, body, err = c.do(ctx, http.MethodPut, s.path+"?digest="+d.String(), hdr, r, length)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("closing PUT of %d bytes: %s: %s", size, resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		return fmt.Errorf("closing PUT: Docker-Content-Digest %q, want %s", got, d)
	}
	l.mu.Lock()
	s.done = true
	s.content = nil
	l.mu.Unlock()
	p.blobs = append(p.blobs, b)
	l.ackBlob("chunked", b)
	return nil
}

// mount: cross-repository mount of a blob another pusher had acknowledged.
func (p *pusher) mount(ctx context.Context, c *crashClient, l *ledger) error {
	others := p.others()
	if len(others) == 0 {
		return nil
	}
	l.op("mount")
	src := others[p.rng.IntN(len(others))]
	b := blobRef{repo: p.repo, d: src.d, size: src.size}
	l.attemptBlob(b)
	resp, body, err := c.do(ctx, http.MethodPost, "/v2/"+p.repo+"/blobs/uploads/?mount="+src.d.String()+"&from="+src.repo, nil, nil, 0)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("mount of acknowledged %s from %s: %s: %s", src.d, src.repo, resp.Status, body)
	}
	p.blobs = append(p.blobs, b)
	l.ackBlob("mount", b)
	return nil
}

type ociDescriptor struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
}

// manifest: an image manifest over acknowledged blobs, or now and then an
// index over acknowledged manifests, under a tag used once.
func (p *pusher) manifest(ctx context.Context, c *crashClient, l *ledger, round int) error {
	if len(p.blobs) == 0 {
		return nil
	}
	l.op("manifest")
	p.seq++
	tag := fmt.Sprintf("r%d-p%d-%d", round, p.id, p.seq)
	var doc map[string]any
	var mt string
	if len(p.mans) > 0 && p.rng.IntN(4) == 0 {
		mt = "application/vnd.oci.image.index.v1+json"
		var ms []ociDescriptor
		for range 1 + p.rng.IntN(2) {
			m := p.mans[p.rng.IntN(len(p.mans))]
			ms = append(ms, ociDescriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: m.d, Size: int64(len(m.body))})
		}
		doc = map[string]any{"schemaVersion": 2, "mediaType": mt, "manifests": ms}
	} else {
		mt = "application/vnd.oci.image.manifest.v1+json"
		cfg := p.blobs[p.rng.IntN(len(p.blobs))]
		var layers []ociDescriptor
		for range 1 + p.rng.IntN(3) {
			b := p.blobs[p.rng.IntN(len(p.blobs))]
			layers = append(layers, ociDescriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: b.d, Size: b.size})
		}
		doc = map[string]any{
			"schemaVersion": 2, "mediaType": mt,
			"config":      ociDescriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cfg.d, Size: cfg.size},
			"layers":      layers,
			"annotations": map[string]string{"nonce": strconv.FormatUint(p.rng.Uint64(), 36)},
		}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	m := manifestRef{repo: p.repo, tag: tag, d: digest.FromBytes(body), body: body}
	l.mu.Lock()
	l.attManifests = append(l.attManifests, m)
	l.mu.Unlock()
	resp, rbody, err := c.do(ctx, http.MethodPut, "/v2/"+p.repo+"/manifests/"+tag,
		map[string]string{"Content-Type": mt}, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("manifest PUT %s: %s: %s", tag, resp.Status, rbody)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != m.d.String() {
		return fmt.Errorf("manifest PUT: Docker-Content-Digest %q, want %s", got, m.d)
	}
	p.mans = append(p.mans, m)
	l.mu.Lock()
	l.ackManifests = append(l.ackManifests, m)
	l.ackedByKind["manifest"]++
	l.mu.Unlock()
	return nil
}

// verifier checks a restarted server against a ledger.
type verifier struct {
	t *testing.T
	c *crashClient
	// hashed caches files under blobs/ already verified, by path, with
	// the identity they had then.
	hashed map[string]fileID
}

type fileID struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func sumOf(alg digest.Algorithm, r io.Reader) (digest.Digest, int64, error) {
	var h hash.Hash
	switch alg {
	case digest.SHA512:
		h = sha512.New()
	default:
		h = sha256.New()
	}
	n, err := io.Copy(h, r)
	return digest.NewDigestFromEncoded(alg, hex.EncodeToString(h.Sum(nil))), n, err
}

// getBlob GETs a blob and returns its status and the digest and length of
// what was served.
func (v *verifier) getBlob(repo string, d digest.Digest) (int, digest.Digest, int64, error) {
	resp, err := v.c.hc.Get(v.c.base + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, "", 0, nil
	}
	got, n, err := sumOf(d.Algorithm(), resp.Body)
	return resp.StatusCode, got, n, err
}

func (v *verifier) head(path string) (*http.Response, error) {
	resp, err := v.c.hc.Head(v.c.base + path)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp, nil
}

// checkAckedBlob: an acknowledged blob is served with exactly its bytes.
func (v *verifier) checkAckedBlob(b blobRef, full bool) {
	v.t.Helper()
	if !full {
		resp, err := v.head("/v2/" + b.repo + "/blobs/" + b.d.String())
		if err != nil {
			v.t.Errorf("HEAD acknowledged blob %s in %s: %v", b.d, b.repo, err)
			return
		}
		if resp.StatusCode != http.StatusOK || resp.ContentLength != b.size {
			v.t.Errorf("HEAD acknowledged blob %s in %s: %s, length %d, want 200 and %d", b.d, b.repo, resp.Status, resp.ContentLength, b.size)
		}
		return
	}
	status, got, n, err := v.getBlob(b.repo, b.d)
	switch {
	case err != nil:
		v.t.Errorf("GET acknowledged blob %s in %s: %v", b.d, b.repo, err)
	case status != http.StatusOK:
		v.t.Errorf("acknowledged blob %s (%d bytes) in %s lost after the crash: GET answers %d", b.d, b.size, b.repo, status)
	case got != b.d || n != b.size:
		v.t.Errorf("acknowledged blob %s in %s served %d bytes hashing to %s, want %d bytes", b.d, b.repo, n, got, b.size)
	}
}

// checkAttemptedBlob: if the blob is visible at all, it is complete.
func (v *verifier) checkAttemptedBlob(b blobRef) (visible bool) {
	v.t.Helper()
	resp, err := v.head("/v2/" + b.repo + "/blobs/" + b.d.String())
	if err != nil {
		v.t.Errorf("HEAD blob %s in %s: %v", b.d, b.repo, err)
		return false
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return false
	case http.StatusOK:
	default:
		v.t.Errorf("HEAD blob %s in %s: %s", b.d, b.repo, resp.Status)
		return false
	}
	if resp.ContentLength != b.size {
		v.t.Errorf("HEAD blob %s in %s: Content-Length %d, want %d", b.d, b.repo, resp.ContentLength, b.size)
	}
	status, got, n, err := v.getBlob(b.repo, b.d)
	switch {
	case err != nil:
		v.t.Errorf("GET blob %s in %s: %v", b.d, b.repo, err)
	case status != http.StatusOK:
		v.t.Errorf("blob %s in %s: HEAD answers 200 but GET %d", b.d, b.repo, status)
	case got != b.d || n != b.size:
		v.t.Errorf("partial or corrupt blob visible: %s in %s served %d bytes hashing to %s, want %d bytes", b.d, b.repo, n, got, b.size)
	}
	return true
}

// checkManifest verifies a manifest by digest and by tag. acked demands
// that both resolve; otherwise whatever resolves must be right.
func (v *verifier) checkManifest(m manifestRef, acked bool) (visible bool) {
	v.t.Helper()
	for _, ref := range []string{m.d.String(), m.tag} {
		path := "/v2/" + m.repo + "/manifests/" + ref
		resp, err := v.head(path)
		if err != nil {
			v.t.Errorf("HEAD %s: %v", path, err)
			continue
		}
		if resp.StatusCode == http.StatusNotFound && !acked {
			continue
		}
		if resp.StatusCode != http.StatusOK {
			v.t.Errorf("HEAD %s (acknowledged %v): %s", path, acked, resp.Status)
			continue
		}
		visible = true
		if got := resp.Header.Get("Docker-Content-Digest"); got != m.d.String() {
			v.t.Errorf("HEAD %s: Docker-Content-Digest %q, want %s", path, got, m.d)
		}
		gresp, err := v.c.hc.Get(v.c.base + path)
		if err != nil {
			v.t.Errorf("GET %s: %v", path, err)
			continue
		}
		body, err := io.ReadAll(gresp.Body)
		gresp.Body.Close()
		if err != nil || gresp.StatusCode != http.StatusOK {
			v.t.Errorf("GET %s: %s, %v (HEAD answered 200)", path, gresp.Status, err)
			continue
		}
		if digest.FromBytes(body) != m.d || !bytes.Equal(body, m.body) {
			v.t.Errorf("manifest %s serves %d bytes hashing to %s, want %d bytes hashing to %s", path, len(body), digest.FromBytes(body), len(m.body), m.d)
		}
	}
	return visible
}

// audited returns the ok audit entries of repo and d, by action and tag.
func (v *verifier) audited(repo string, d digest.Digest) map[string]bool {
	v.t.Helper()
	path := "/api/v1/audit/search?repo=" + repo + "&digest=" + d.String()
	resp, err := v.c.hc.Get(v.c.base + path)
	if err != nil {
		v.t.Errorf("GET %s: %v", path, err)
		return nil
	}
	defer resp.Body.Close()
	var got tlog.EntriesResponse
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		v.t.Errorf("GET %s: %s, %v", path, resp.Status, err)
		return nil
	}
	out := map[string]bool{}
	for _, e := range got.Entries {
		ent, err := tlog.ParseEntry([]byte(e.Entry))
		if err != nil {
			v.t.Errorf("audit entry %d: %v", e.Index, err)
			continue
		}
		if ent.Result == "ok" {
			out[ent.Action] = true
			out[ent.Action+" "+ent.Tag] = true
		}
	}
	return out
}

// checkAudited: an acknowledged manifest put by tag has its manifest.put
// and tag.set audit entries, and an acknowledged blob its blob.upload or
// blob.mount entry.
func (v *verifier) checkAudited(mans []manifestRef, blobs []blobRef) {
	v.t.Helper()
	for _, m := range mans {
		got := v.audited(m.repo, m.d)
		for _, want := range []string{"manifest.put", "tag.set " + m.tag} {
			if !got[want] {
				v.t.Errorf("acknowledged manifest %s:%s (%s) has no %s audit entry", m.repo, m.tag, m.d, want)
			}
		}
	}
	for _, b := range blobs {
		if got := v.audited(b.repo, b.d); !got["blob.upload"] && !got["blob.mount"] {
			v.t.Errorf("acknowledged blob %s@%s has no blob.upload or blob.mount audit entry", b.repo, b.d)
		}
	}
}

// checkDisk re-hashes every file under blobs/ it has not verified yet: its
// content must match the digest its name and directory spell.
func (v *verifier) checkDisk(data string) (files int, rehashed int64) {
	v.t.Helper()
	root := filepath.Join(data, "blobs")
	err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if de.IsDir() {
			if rel == "." {
				return nil
			}
			ok := (len(parts) == 1 && (parts[0] == "sha256" || parts[0] == "sha512")) ||
				(len(parts) == 2 && len(parts[1]) == 2)
			if !ok {
				v.t.Errorf("unexpected directory under blobs/: %s", rel)
			}
			return nil
		}
		if !de.Type().IsRegular() || len(parts) != 3 {
			v.t.Errorf("unexpected entry under blobs/: %s (%v)", rel, de.Type())
			return nil
		}
		files++
		d := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
		if err := d.Validate(); err != nil || !strings.HasPrefix(parts[2], parts[1]) {
			v.t.Errorf("file under blobs/ whose name is not a digest in its fan-out directory: %s", rel)
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		id := fileID{size: fi.Size(), mtime: fi.ModTime()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			id.ino = st.Ino
		}
		if prev, ok := v.hashed[path]; ok && prev == id {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		got, n, err := sumOf(d.Algorithm(), f)
		f.Close()
		if err != nil {
			return err
		}
		rehashed += n
		if got != d {
			v.t.Errorf("corrupt blob on disk: %s holds %d bytes hashing to %s", rel, n, got)
			return nil
		}
		v.hashed[path] = id
		return nil
	})
	if err != nil {
		v.t.Errorf("walking %s: %v", root, err)
	}
	return files, rehashed
}

// Outcomes of resume.
const (
	resumeFailed    = iota
	resumeDone      // continued from the reported offset and closed
	resumeCommitted // the closing PUT had committed before the kill
)

// resume continues an interrupted chunked upload from the offset the
// server reports, closes it and checks the blob.
func (v *verifier) resume(rng *rand.Rand, s *session) int {
	v.t.Helper()
	ctx := context.Background()
	resp, body, err := v.c.do(ctx, http.MethodGet, s.path, nil, nil, 0)
	if err != nil {
		v.t.Errorf("upload status %s: %v", s.path, err)
		return resumeFailed
	}
	if resp.StatusCode == http.StatusNotFound && s.putSent {
		// The closing PUT committed before the kill; the blob must be there.
		status, got, n, err := v.getBlob(s.repo, s.d)
		if err != nil || status != http.StatusOK || got != s.d || n != int64(len(s.content)) {
			v.t.Errorf("upload %s vanished after its PUT was sent, but blob %s is not served correctly: status %d, %d bytes, %s, %v",
				s.path, s.d, status, n, got, err)
			return resumeFailed
		}
		return resumeCommitted
	}
	if resp.StatusCode != http.StatusNoContent {
		v.t.Errorf("acknowledged upload session %s (acked %d of %d bytes) not resumable after the crash: status %s: %s",
			s.path, s.acked, len(s.content), resp.Status, body)
		return resumeFailed
	}
	off, err := parseRange(resp.Header.Get("Range"))
	if err != nil {
		v.t.Errorf("upload status %s: %v", s.path, err)
		return resumeFailed
	}
	if off != s.acked && off != s.sent {
		v.t.Errorf("upload %s reports %d bytes after the crash; acknowledged %d, last chunk sent ended at %d", s.path, off, s.acked, s.sent)
		return resumeFailed
	}
	path := s.path
	if nl := resp.Header.Get("Location"); nl != "" {
		path = nl
	}
	size := int64(len(s.content))
	// One or two PATCHes for the rest, then an empty PUT.
	for off < size {
		end := size
		if rng.IntN(2) == 0 && size-off > 1024 {
			end = off + 512 + rng.Int64N(size-off-512)
		}
		resp, body, err := v.c.do(ctx, http.MethodPatch, path,
			map[string]string{"Content-Type": "application/octet-stream", "Content-Range": fmt.Sprintf("%d-%d", off, end-1)},
			bytes.NewReader(s.content[off:end]), end-off)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			v.t.Errorf("resuming %s at %d (acked %d, sent %d): PATCH %d-%d: %v %v %s", s.path, off, s.acked, s.sent, off, end-1, err, status(resp), body)
			return resumeFailed
		}
		if nl := resp.Header.Get("Location"); nl != "" {
			path = nl
		}
		off = end
	}
	resp, body, err = v.c.do(ctx, http.MethodPut, path+"?digest="+s.d.String(), nil, http.NoBody, 0)
	if err != nil || resp.StatusCode != http.StatusCreated {
		st, got, n, gerr := v.getBlob(s.repo, s.d)
		v.t.Errorf("resuming %s (acked %d, sent %d, PUT sent %v): closing PUT: %v %v %s (blob %s in the repository: status %d, %d bytes, %s, %v)",
			s.path, s.acked, s.sent, s.putSent, err, status(resp), body, s.d, st, n, got, gerr)
		return resumeFailed
	}
	st, got, n, err := v.getBlob(s.repo, s.d)
	if err != nil || st != http.StatusOK || got != s.d || n != size {
		v.t.Errorf("resumed upload %s: blob %s served with status %d, %d bytes hashing to %s (want %d bytes), %v", s.path, s.d, st, n, got, size, err)
		return resumeFailed
	}
	return resumeDone
}

func status(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	return resp.Status
}

// TestKillDuringPush SIGKILLs a server under concurrent pushes of blobs
// (monolithic, chunked, mounted) and manifests, round after round on the
// same data directory, and checks what survives each crash.
func TestKillDuringPush(t *testing.T) {
	rounds := crashRounds(t)
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CUSTODY_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (set CUSTODY_CRASH_SEED to replay the client side), %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 1))

	srv := testserver.Start(t, testserver.Options{})
	var (
		pushers []*pusher
		allMu   sync.Mutex
		allAck  []blobRef // every acknowledged blob of every round
		allMans []manifestRef
	)
	for i := range crashPushers {
		pushers = append(pushers, &pusher{
			t: t, id: i, repo: fmt.Sprintf("crash/p%d", i),
			rng: rand.New(rand.NewPCG(seed, uint64(100+i))),
			others: func() []blobRef {
				allMu.Lock()
				defer allMu.Unlock()
				return append([]blobRef(nil), allAck...)
			},
		})
	}
	v := &verifier{t: t, hashed: map[string]fileID{}}
	var (
		totalAcked, totalAttempted, resumed, committedBeforeKill, sessionsSeen int
		visibleUnacked, finished                                               int
		bytesRehashed                                                          int64
	)
	for round := range rounds {
		if round > 0 {
			srv.Restart()
		}
		l := newLedger()
		c := newCrashClient(srv.URL)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, p := range pushers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.run(ctx, c, l, round)
			}()
		}
		delay := time.Duration(rng.Int64N(int64(crashMaxKillDelay) + 1))
		time.Sleep(delay)
		srv.Kill()
		cancel()
		wg.Wait()
		c.close()
		if t.Failed() {
			t.Fatalf("round %d: pushers failed before the kill; server log:\n%s", round, tail(srv.Logs(), 4000))
		}

		srv.Restart()
		v.c = newCrashClient(srv.URL)
		// (a) everything acknowledged this round, byte for byte; earlier
		// rounds' blobs by HEAD.
		for _, b := range l.ackBlobs {
			v.checkAckedBlob(b, true)
		}
		allMu.Lock()
		for _, b := range allAck {
			v.checkAckedBlob(b, false)
		}
		allAck = append(allAck, l.ackBlobs...)
		allMu.Unlock()
		for _, m := range l.ackManifests {
			v.checkManifest(m, true)
		}
		for _, m := range allMans {
			v.checkManifest(m, true)
		}
		allMans = append(allMans, l.ackManifests...)
		// (b) anything attempted is either absent or complete.
		acked := map[blobRef]bool{}
		for _, b := range l.ackBlobs {
			acked[b] = true
		}
		for _, b := range l.attBlobs {
			if !acked[b] && v.checkAttemptedBlob(b) {
				visibleUnacked++
			}
		}
		ackedMan := map[string]bool{}
		for _, m := range l.ackManifests {
			ackedMan[m.tag] = true
		}
		for _, m := range l.attManifests {
			if !ackedMan[m.tag] && v.checkManifest(m, false) {
				visibleUnacked++
			}
		}
		// (c) every file under blobs/ matches its name.
		_, n := v.checkDisk(srv.Data)
		// (c') every change acknowledged this round is in the audit log.
		v.checkAudited(l.ackManifests, l.ackBlobs)
		bytesRehashed += n
		// (d) resume interrupted sessions: up to 3 per round.
		var open []*session
		for _, s := range l.sessions {
			if !s.done {
				open = append(open, s)
			}
		}
		sessionsSeen += len(open)
		rng.Shuffle(len(open), func(i, j int) { open[i], open[j] = open[j], open[i] })
		for _, s := range open[:min(3, len(open))] {
			switch v.resume(rng, s) {
			case resumeDone:
				resumed++
			case resumeCommitted:
				committedBeforeKill++
			default:
				continue
			}
			allMu.Lock()
			allAck = append(allAck, blobRef{repo: s.repo, d: s.d, size: int64(len(s.content))})
			allMu.Unlock()
		}
		// Closing PUTs that found their bytes committed by the PUT the kill
		// interrupted (see Registry.finishCommitted).
		finished += strings.Count(srv.Logs(), "completed after restart")
		v.c.close()
		totalAcked += len(l.ackBlobs) + len(l.ackManifests)
		totalAttempted += len(l.attBlobs) + len(l.attManifests)
		t.Logf("round %2d: kill after %3dms: attempted %v, acknowledged %v; %d open sessions",
			round, delay.Milliseconds(), l.opsByKind, l.ackedByKind, len(open))
		if t.Failed() {
			t.Fatalf("round %d failed; server log:\n%s", round, tail(srv.Logs(), 4000))
		}
		srv.Kill()
	}
	// A last full pass over everything ever acknowledged.
	srv.Restart()
	v.c = newCrashClient(srv.URL)
	for _, b := range allAck {
		v.checkAckedBlob(b, true)
	}
	files, n := v.checkDisk(srv.Data)
	bytesRehashed += n
	v.c.close()
	t.Logf("%d rounds in %v: %d operations attempted, %d acknowledged; %d unacknowledged objects visible and intact; "+
		"%d interrupted sessions, %d resumed (%d of them committed by the interrupted PUT), %d gone with their blob in place; "+
		"%d blob files on disk, %d MiB re-hashed",
		rounds, time.Since(start).Round(time.Millisecond), totalAttempted, totalAcked, visibleUnacked,
		sessionsSeen, resumed, finished, committedBeforeKill, files, bytesRehashed>>20)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// largeUpload drives one big upload against a server it kills mid-stream.
type largeUpload struct {
	t   *testing.T
	srv *testserver.Server
	v   *verifier
	rng *rand.Rand
}

func (lu *largeUpload) client() *crashClient {
	if lu.v.c != nil {
		lu.v.c.close()
	}
	lu.v.c = newCrashClient(lu.srv.URL)
	return lu.v.c
}

// start opens an upload session and returns its Location and ID.
func (lu *largeUpload) start(repo string) (loc, id string) {
	lu.t.Helper()
	resp, body, err := lu.v.c.do(context.Background(), http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil, 0)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		lu.t.Fatalf("start upload: %v %s %s", err, status(resp), body)
	}
	loc = resp.Header.Get("Location")
	return loc, loc[strings.LastIndex(loc, "/")+1:]
}

func (lu *largeUpload) patch(loc string, content []byte, start, end int64) {
	lu.t.Helper()
	resp, body, err := lu.v.c.do(context.Background(), http.MethodPatch, loc,
		map[string]string{"Content-Range": fmt.Sprintf("%d-%d", start, end-1)}, bytes.NewReader(content[start:end]), end-start)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		lu.t.Fatalf("PATCH %d-%d: %v %s %s", start, end-1, err, status(resp), body)
	}
	if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", end-1); got != want {
		lu.t.Fatalf("PATCH %d-%d: Range %q, want %q", start, end-1, got, want)
	}
}

// killMidStream sends method path with a body that streams content[from:]
// (with Content-Length unless chunked), waits until the server has taken
// in more than minIn bytes of it (watching file, or the upload directory
// when file is empty), then SIGKILLs the server and restarts it. It returns
// how far the watched file had grown past from.
func (lu *largeUpload) killMidStream(method, path string, hdr map[string]string, content []byte, from int64, chunked bool, file string, minIn int64) int64 {
	lu.t.Helper()
	pr, pw := io.Pipe()
	go func() {
		rest := content[from:]
		for len(rest) > 0 {
			n := min(len(rest), 256<<10)
			if _, err := pw.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
		pw.Close()
	}()
	length := int64(len(content)) - from
	if chunked {
		length = -1
	}
	errc := make(chan error, 1)
	go func() {
		resp, body, err := lu.v.c.do(context.Background(), method, path, hdr, pr, length)
		if err == nil {
			err = fmt.Errorf("request finished before the kill: %s %s", resp.Status, body)
		}
		pr.CloseWithError(err)
		errc <- err
	}()
	grown := func() int64 {
		if file != "" {
			fi, err := os.Stat(file)
			if err != nil {
				return 0
			}
			return fi.Size() - from
		}
		var most int64
		entries, _ := os.ReadDir(filepath.Join(lu.srv.Data, "uploads"))
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), ".put-") {
				most = max(most, fi.Size())
			}
		}
		return most
	}
	deadline := time.Now().Add(30 * time.Second)
	for grown() <= minIn {
		select {
		case err := <-errc:
			lu.t.Fatalf("%s %s ended before the kill: %v", method, path, err)
		default:
		}
		if time.Now().After(deadline) {
			lu.t.Fatalf("%s %s: the server took in no more than %d bytes in 30s", method, path, minIn)
		}
		time.Sleep(2 * time.Millisecond)
	}
	lu.srv.Kill()
	in := grown()
	if err := <-errc; !errors.Is(err, errKilled) {
		lu.t.Fatalf("%s %s: %v", method, path, err)
	}
	lu.srv.Restart()
	lu.client()
	return in
}

// status returns the offset an upload session reports.
func (lu *largeUpload) status(loc string) (int64, int) {
	lu.t.Helper()
	resp, body, err := lu.v.c.do(context.Background(), http.MethodGet, loc, nil, nil, 0)
	if err != nil {
		lu.t.Fatalf("upload status: %v", err)
	}
	if resp.StatusCode != http.StatusNoContent {
		return 0, resp.StatusCode
	}
	off, err := parseRange(resp.Header.Get("Range"))
	if err != nil {
		lu.t.Fatalf("upload status: %v (%s)", err, body)
	}
	return off, resp.StatusCode
}

func (lu *largeUpload) expectAbsent(repo string, d digest.Digest) {
	lu.t.Helper()
	resp, err := lu.v.head("/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		lu.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotFound {
		lu.t.Errorf("blob %s visible after its upload was killed mid-stream: HEAD %s", d, resp.Status)
	}
	enc := d.Encoded()
	if _, err := os.Stat(filepath.Join(lu.srv.Data, "blobs", string(d.Algorithm()), enc[:2], enc)); err == nil {
		lu.t.Errorf("blob %s exists under blobs/ after its upload was killed mid-stream", d)
	}
}

func (lu *largeUpload) expectBlob(repo string, d digest.Digest, size int64) {
	lu.t.Helper()
	st, got, n, err := lu.v.getBlob(repo, d)
	if err != nil || st != http.StatusOK || got != d || n != size {
		lu.t.Errorf("blob %s in %s: status %d, %d bytes hashing to %s, want %d bytes; %v", d, repo, st, n, got, size, err)
	}
}

// TestKillDuringLargeUpload SIGKILLs the server while a single 64 MiB
// upload streams in: inside a Content-Range PATCH after three acknowledged
// chunks, inside a streamed PATCH without a length, inside a monolithic
// POST, and while the closing PUT verifies and commits the upload.
func TestKillDuringLargeUpload(t *testing.T) {
	const size = 64 << 20
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	lu := &largeUpload{t: t, rng: rand.New(rand.NewPCG(seed, 2))}
	lu.srv = testserver.Start(t, testserver.Options{})
	lu.v = &verifier{t: t, hashed: map[string]fileID{}}
	lu.client()
	defer func() { lu.v.c.close() }()
	const repo = "crash/large"

	t.Run("patch-with-range", func(t *testing.T) {
		lu.t = t
		content := randomContent(lu.rng, size)
		d := digest.FromBytes(content)
		loc, id := lu.start(repo)
		const acked = 24 << 20
		for off := int64(0); off < acked; off += 8 << 20 {
			lu.patch(loc, content, off, off+8<<20)
		}
		file := filepath.Join(lu.srv.Data, "uploads", id)
		minIn := 1<<20 + lu.rng.Int64N(16<<20)
		in := lu.killMidStream(http.MethodPatch, loc, map[string]string{"Content-Range": fmt.Sprintf("%d-%d", acked, size-1)},
			content, acked, false, file, minIn)
		t.Logf("killed with %d unacknowledged bytes of the 4th chunk in the upload file", in)
		lu.expectAbsent(repo, d)
		off, st := lu.status(loc)
		if st != http.StatusNoContent || off != acked {
			t.Fatalf("after the crash the upload reports status %d, %d bytes; want 204 and the %d acknowledged", st, off, acked)
		}
		lu.patch(loc, content, off, off+20<<20)
		lu.patch(loc, content, off+20<<20, size)
		resp, body, err := lu.v.c.do(context.Background(), http.MethodPut, loc+"?digest="+d.String(), nil, http.NoBody, 0)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("closing PUT: %v %s %s", err, status(resp), body)
		}
		lu.expectBlob(repo, d, size)
		lu.v.checkDisk(lu.srv.Data)
	})

	t.Run("streamed-patch", func(t *testing.T) {
		lu.t = t
		content := randomContent(lu.rng, size)
		d := digest.SHA512.FromBytes(content)
		loc, id := lu.start(repo)
		file := filepath.Join(lu.srv.Data, "uploads", id)
		in := lu.killMidStream(http.MethodPatch, loc, nil, content, 0, true, file, 1<<20+lu.rng.Int64N(32<<20))
		t.Logf("killed with %d unacknowledged bytes in the upload file", in)
		lu.expectAbsent(repo, d)
		off, st := lu.status(loc)
		if st != http.StatusNoContent || off != 0 {
			t.Fatalf("after the crash the upload reports status %d, %d bytes; want 204 and 0", st, off)
		}
		// Close the session with the whole content in the PUT.
		resp, body, err := lu.v.c.do(context.Background(), http.MethodPut, loc+"?digest="+d.String(), nil, bytes.NewReader(content), size)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("closing PUT with the whole body: %v %s %s", err, status(resp), body)
		}
		lu.expectBlob(repo, d, size)
		lu.v.checkDisk(lu.srv.Data)
	})

	t.Run("monolithic", func(t *testing.T) {
		lu.t = t
		content := randomContent(lu.rng, size)
		d := digest.FromBytes(content)
		path := "/v2/" + repo + "/blobs/uploads/?digest=" + d.String()
		in := lu.killMidStream(http.MethodPost, path, nil, content, 0, false, "", 1<<20+lu.rng.Int64N(39<<20))
		t.Logf("killed with %d bytes in Put's temporary file", in)
		lu.expectAbsent(repo, d)
		lu.v.checkDisk(lu.srv.Data)
		resp, body, err := lu.v.c.do(context.Background(), http.MethodPost, path, nil, bytes.NewReader(content), size)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("pushing again after the crash: %v %s %s", err, status(resp), body)
		}
		lu.expectBlob(repo, d, size)
	})

	// All bytes acknowledged, then the kill lands somewhere in the closing
	// PUT: while it hashes the file from disk (the restart dropped the
	// cached hash state), renames it, links the blob or drops the session.
	t.Run("commit", func(t *testing.T) {
		lu.t = t
		outcomes := map[string]int{}
		// Calibrate: how long does the closing PUT take after a restart?
		window := 200 * time.Millisecond
		{
			content := randomContent(lu.rng, size)
			d := digest.FromBytes(content)
			loc, _ := lu.start(repo)
			for off := int64(0); off < size; off += 16 << 20 {
				lu.patch(loc, content, off, off+16<<20)
			}
			lu.srv.Kill()
			lu.srv.Restart()
			lu.client()
			began := time.Now()
			resp, body, err := lu.v.c.do(context.Background(), http.MethodPut, loc+"?digest="+d.String(), nil, http.NoBody, 0)
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("closing PUT: %v %s %s", err, status(resp), body)
			}
			window = time.Since(began)
			t.Logf("a closing PUT of %d MiB after a restart takes %v", size>>20, time.Since(began))
		}
		for i := range 3 {
			content := randomContent(lu.rng, size)
			d := digest.FromBytes(content)
			if i%2 == 1 {
				d = digest.SHA512.FromBytes(content)
			}
			loc, _ := lu.start(repo)
			for off := int64(0); off < size; off += 16 << 20 {
				lu.patch(loc, content, off, off+16<<20)
			}
			lu.srv.Kill()
			lu.srv.Restart()
			lu.client()
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _, _ = lu.v.c.do(context.Background(), http.MethodPut, loc+"?digest="+d.String(), nil, http.NoBody, 0)
			}()
			// Aim at the end of the PUT, where it renames, links and
			// drops the session: 70% to 120% of the calibrated time.
			time.Sleep(window*7/10 + time.Duration(lu.rng.Int64N(int64(window/2))))
			lu.srv.Kill()
			<-done
			lu.srv.Restart()
			lu.client()
			off, st := lu.status(loc)
			switch {
			case st == http.StatusNotFound:
				outcomes["committed"]++
			case st == http.StatusNoContent && off == size:
				resp, body, err := lu.v.c.do(context.Background(), http.MethodPut, loc+"?digest="+d.String(), nil, http.NoBody, 0)
				if err != nil || resp.StatusCode != http.StatusCreated {
					t.Errorf("closing PUT retried after the crash: %v %s %s", err, status(resp), body)
				}
				if strings.Contains(lu.srv.Logs(), "completed after restart") {
					outcomes["finished after commit"]++
				} else {
					outcomes["retried"]++
				}
			default:
				t.Fatalf("fully acknowledged upload reports status %d, %d bytes after the crash; want %d", st, off, size)
			}
			lu.expectBlob(repo, d, size)
		}
		t.Logf("outcomes: %v", outcomes)
		lu.v.checkDisk(lu.srv.Data)
	})
}

// TestKillRightAfterAcknowledgedPush pushes a small manifest by tag and
// SIGKILLs the server as soon as it answers 201: after a restart the tag
// and its manifest.put and tag.set audit entries must all be there.
func TestKillRightAfterAcknowledgedPush(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	ctx := context.Background()
	const rounds = 10
	for i := range rounds {
		c := newCrashClient(srv.URL)
		repo := "crash/ack"
		cfg := []byte(fmt.Sprintf(`{"round":%d}`, i))
		cd := digest.FromBytes(cfg)
		resp, body, err := c.do(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+cd.String(),
			map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(cfg), int64(len(cfg)))
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("round %d: config upload: %v %s", i, err, body)
		}
		doc, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": ociDescriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cd, Size: int64(len(cfg))},
			"layers": []ociDescriptor{},
		})
		m := manifestRef{repo: repo, tag: fmt.Sprintf("v%d", i), d: digest.FromBytes(doc), body: doc}
		resp, body, err = c.do(ctx, http.MethodPut, "/v2/"+repo+"/manifests/"+m.tag,
			map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, bytes.NewReader(doc), int64(len(doc)))
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("round %d: manifest PUT: %v %s", i, err, body)
		}
		srv.Kill()
		c.close()
		srv.Restart()
		v := &verifier{t: t, c: newCrashClient(srv.URL), hashed: map[string]fileID{}}
		v.checkManifest(m, true)
		v.checkAudited([]manifestRef{m}, []blobRef{{repo: repo, d: cd, size: int64(len(cfg))}})
		v.checkLogVerifies(3 * uint64(i+1))
		v.c.close()
		if t.Failed() {
			t.Fatalf("round %d failed; server log:\n%s", i, tail(srv.Logs(), 4000))
		}
	}
}

// checkLogVerifies signs a checkpoint of the audit log (which the log
// refuses if its tree does not extend the last one it signed) and checks
// the whole log against it (GET /api/v1/audit/verify: signature, every
// entry's hash, the Merkle root): it must hold at least min entries and
// show no problem.
func (v *verifier) checkLogVerifies(min uint64) {
	v.t.Helper()
	resp, err := v.c.hc.Post(v.c.base+"/api/v1/audit/checkpoint", "", nil)
	if err != nil {
		v.t.Errorf("POST checkpoint: %v", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		v.t.Errorf("POST checkpoint: %s", resp.Status)
		return
	}
	resp, err = v.c.hc.Get(v.c.base + "/api/v1/audit/verify")
	if err != nil {
		v.t.Errorf("GET verify: %v", err)
		return
	}
	defer resp.Body.Close()
	var got tlog.VerifyResponse
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		v.t.Errorf("GET verify: %s, %v", resp.Status, err)
		return
	}
	if !got.OK || len(got.Problems) != 0 || got.Size < min {
		v.t.Errorf("audit log after the crash: ok %v, checkpoint of %d entries (want at least %d), problems %+v", got.OK, got.Size, min, got.Problems)
	}
}
