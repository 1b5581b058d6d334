// Package bench holds the client side of custody's benchmarks: a v1.Layer
// streamed from a file, tiny artifact manifests, and push/pull helpers on
// top of go-containerregistry, the one client library used against every
// registry so that differences come from the servers.
//
// The comparison harness (bench/cmd/custody-bench) runs these against a
// `custody serve` process and the CNCF reference registry; the Go
// benchmarks in this directory run them against an in-process custody,
// which is what to profile.
package bench

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FileLayer is a v1.Layer whose content is read from a file each time it
// is opened, so large blobs are streamed, never held in memory. Its digest
// is computed once, up front.
type FileLayer struct {
	Path   string
	digest v1.Hash
	size   int64
}

var _ v1.Layer = (*FileLayer)(nil)

// NewFileLayer hashes the file at path and returns it as a layer.
func NewFileLayer(path string) (*FileLayer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, err
	}
	return &FileLayer{
		Path:   path,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))},
		size:   n,
	}, nil
}

func (l *FileLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *FileLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *FileLayer) Size() (int64, error)                 { return l.size, nil }
func (l *FileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.Path) }
func (l *FileLayer) Uncompressed() (io.ReadCloser, error) { return os.Open(l.Path) }
func (l *FileLayer) MediaType() (types.MediaType, error) {
	return types.OCIUncompressedLayer, nil
}

// WriteRandomFile writes size random bytes (ChaCha8, seeded from the
// operating system) to path, 1 MiB at a time.
func WriteRandomFile(path string, size int64) error {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], rand.Uint64())
	binary.LittleEndian.PutUint64(seed[8:], rand.Uint64())
	binary.LittleEndian.PutUint64(seed[16:], rand.Uint64())
	binary.LittleEndian.PutUint64(seed[24:], rand.Uint64())
	src := rand.NewChaCha8(seed)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		_, _ = src.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}

// EmptyConfig is the OCI empty JSON blob ("{}") that artifact manifests use
// as their config.
var EmptyConfig = []byte("{}")

// EmptyConfigLayer returns EmptyConfig as a layer, for pushing it.
func EmptyConfigLayer() v1.Layer { return bytesLayer{b: EmptyConfig, mt: types.OCIEmptyJSON} }

func emptyDescriptor() map[string]any {
	sum := sha256.Sum256(EmptyConfig)
	return map[string]any{
		"mediaType": string(types.OCIEmptyJSON),
		"digest":    "sha256:" + hex.EncodeToString(sum[:]),
		"size":      len(EmptyConfig),
	}
}

// ArtifactManifest returns a tiny OCI image manifest (an artifact with the
// empty config as config and only layer) made distinct by its annotations.
func ArtifactManifest(nonce string, i int) []byte {
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     string(types.OCIManifestSchema1),
		"artifactType":  "application/vnd.custody.bench.v1",
		"config":        emptyDescriptor(),
		"layers":        []any{emptyDescriptor()},
		"annotations": map[string]string{
			"dev.custody.bench.nonce": nonce,
			"dev.custody.bench.index": strconv.Itoa(i),
		},
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// RawManifest is a remote.Taggable for manifest bytes.
type RawManifest []byte

func (m RawManifest) RawManifest() ([]byte, error) { return m, nil }
func (m RawManifest) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}

// Digest returns the manifest's sha256 digest.
func (m RawManifest) Digest() v1.Hash {
	sum := sha256.Sum256(m)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

type bytesLayer struct {
	b  []byte
	mt types.MediaType
}

func (l bytesLayer) Digest() (v1.Hash, error) {
	sum := sha256.Sum256(l.b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}, nil
}
func (l bytesLayer) DiffID() (v1.Hash, error)            { return l.Digest() }
func (l bytesLayer) Size() (int64, error)                { return int64(len(l.b)), nil }
func (l bytesLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l bytesLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(byteReader(l.b)), nil
}
func (l bytesLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }

func byteReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// Client talks to one registry with go-containerregistry. It keeps one
// Pusher and one Puller (and so one connection pool and one ping per
// repository) for all its operations.
type Client struct {
	Host   string
	ctx    context.Context
	opts   []remote.Option
	pusher *remote.Pusher
	puller *remote.Puller

	transport http.RoundTripper
	fetcher   *http.Client
}

// NewClient returns a client for the registry at host (host:port, plain
// HTTP). transport may be nil for a fresh default transport.
func NewClient(ctx context.Context, host string, transport http.RoundTripper) (*Client, error) {
	if transport == nil {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		transport = t
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(transport)}
	pusher, err := remote.NewPusher(opts...)
	if err != nil {
		return nil, err
	}
	puller, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	return &Client{Host: host, ctx: ctx, opts: opts, pusher: pusher, puller: puller, transport: transport}, nil
}

// Repo returns repository repo on the client's registry.
func (c *Client) Repo(repo string) (name.Repository, error) {
	return name.NewRepository(c.Host+"/"+repo, name.Insecure)
}

// PushLayer uploads l to repo: HEAD, POST, PATCH (whole body), PUT, as
// ggcr does. The Pusher skips a digest it already pushed to repo, so push
// each digest to a repository once per client.
func (c *Client) PushLayer(repo string, l v1.Layer) error {
	r, err := c.Repo(repo)
	if err != nil {
		return err
	}
	return remote.WriteLayer(r, l, remote.Reuse(c.pusher))
}

// PullBlob downloads blob d from repo and discards it; ggcr verifies the
// digest while reading. It returns the number of bytes read.
func (c *Client) PullBlob(repo string, d v1.Hash) (int64, error) {
	r, err := c.Repo(repo)
	if err != nil {
		return 0, err
	}
	l, err := remote.Layer(r.Digest(d.String()), remote.Reuse(c.puller))
	if err != nil {
		return 0, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// FetchBlob downloads blob d from repo through go-containerregistry's
// registry transport and discards it without hashing: it measures how fast
// the server delivers bytes, where PullBlob is bounded by the client's own
// digest check when client and server share two cores.
func (c *Client) FetchBlob(repo string, d v1.Hash) (int64, error) {
	r, err := c.Repo(repo)
	if err != nil {
		return 0, err
	}
	if c.fetcher == nil {
		t, err := transport.NewWithContext(c.ctx, r.Registry, authn.Anonymous, c.transport, []string{r.Scope(transport.PullScope)})
		if err != nil {
			return 0, err
		}
		c.fetcher = &http.Client{Transport: t}
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", r.Scheme(), r.RegistryStr(), r.RepositoryStr(), d)
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.fetcher.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.Copy(io.Discard, resp.Body)
}

// PutManifest PUTs m to repo under tag (by digest when tag is empty).
func (c *Client) PutManifest(repo, tag string, m RawManifest) error {
	r, err := c.Repo(repo)
	if err != nil {
		return err
	}
	var ref name.Reference = r.Digest(m.Digest().String())
	if tag != "" {
		ref = r.Tag(tag)
	}
	return remote.Put(ref, m, remote.Reuse(c.pusher))
}

// GetManifest GETs manifest d from repo (ggcr checks the digest).
func (c *Client) GetManifest(repo string, d v1.Hash) error {
	r, err := c.Repo(repo)
	if err != nil {
		return err
	}
	desc, err := remote.Get(r.Digest(d.String()), remote.Reuse(c.puller))
	if err != nil {
		return err
	}
	if desc.Digest != d {
		return fmt.Errorf("manifest %s: got %s", d, desc.Digest)
	}
	return nil
}

// Warm makes the client ping the registry and set up its per-repository
// state for repo (for pushes and pulls) by pushing the empty config blob,
// so that timed operations do not include it.
func (c *Client) Warm(repo string) error {
	if err := c.PushLayer(repo, EmptyConfigLayer()); err != nil {
		return err
	}
	d, _ := EmptyConfigLayer().Digest()
	_, err := c.PullBlob(repo, d)
	return err
}
