package artifact

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PushOptions configure Push.
type PushOptions struct {
	Options
	// ArtifactType is the manifest's artifactType; empty means
	// DefaultArtifactType.
	ArtifactType string
	// MediaType is the media type of every file layer; empty means
	// DefaultFileMediaType.
	MediaType string
	// Annotations are set on the manifest.
	Annotations map[string]string
}

// Push uploads files as one OCI artifact and tags (or pins) it as ref.
//
// Each file is hashed by streaming it from disk, then streamed again to the
// registry; a file that changes in between makes the push fail rather than
// upload content that does not match its digest. Files become layers in the
// order given, titled with their base names, which must be unique.
func Push(ctx context.Context, ref string, files []string, opts PushOptions) (Result, error) {
	if len(files) == 0 {
		return Result{}, errors.New("push: no files given: name at least one file to push")
	}
	r, err := parseReference(ref, opts.Options)
	if err != nil {
		return Result{}, err
	}
	artifactType := cmp.Or(opts.ArtifactType, DefaultArtifactType)
	mediaType := types.MediaType(cmp.Or(opts.MediaType, DefaultFileMediaType))

	res := Result{
		Reference:    r.String(),
		MediaType:    string(types.OCIManifestSchema1),
		ArtifactType: artifactType,
		Files:        make([]File, 0, len(files)),
	}
	img := &artifactImage{layers: make(map[v1.Hash]*fileLayer, len(files))}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  artifactType,
		Config:        emptyDescriptor,
		Layers:        make([]v1.Descriptor, 0, len(files)),
		Annotations:   opts.Annotations,
	}
	byName := make(map[string]string, len(files))
	var total int64 // bytes to upload: unique blobs plus config and manifest
	for _, p := range files {
		l, err := newFileLayer(ctx, p, mediaType)
		if err != nil {
			return Result{}, err
		}
		if prev, dup := byName[l.name]; dup {
			return Result{}, fmt.Errorf("push: %s and %s have the same file name %q: an artifact's files need distinct names, rename one of them", prev, p, l.name)
		}
		byName[l.name] = p
		if _, dup := img.layers[l.digest]; !dup {
			total += l.size
		}
		img.layers[l.digest] = l
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType:   mediaType,
			Size:        l.size,
			Digest:      l.digest,
			Annotations: map[string]string{AnnotationTitle: l.name},
		})
		res.Files = append(res.Files, File{Name: l.name, Path: p, Digest: l.digest.String(), Size: l.size, MediaType: string(mediaType)})
		res.Size += l.size
	}
	if img.manifest, err = json.Marshal(m); err != nil {
		return Result{}, fmt.Errorf("push: encoding manifest: %w", err)
	}
	total += emptyDescriptor.Size + int64(len(img.manifest))
	sum := sha256.Sum256(img.manifest)
	res.Digest = "sha256:" + hex.EncodeToString(sum[:])

	image, err := partial.CompressedToImage(img)
	if err != nil {
		return Result{}, fmt.Errorf("push: %w", err)
	}
	ropts := remoteOptions(ctx, opts.Options)
	var wait func()
	if opts.Progress != nil {
		var ropt remote.Option
		ropt, wait = forwardProgress(opts.Progress, total)
		ropts = append(ropts, ropt)
	}
	err = remote.Write(r, image, ropts...)
	if wait != nil {
		wait()
	}
	if err != nil {
		return Result{}, explain("push", r, err)
	}
	return res, nil
}

// forwardProgress returns a remote option that reports upload progress to
// fn, and a function to call once the upload returned; it waits until every
// update has been delivered. total is used when ggcr's own running total
// (which grows as uploads start) is smaller.
func forwardProgress(fn func(Progress), total int64) (remote.Option, func()) {
	updates := make(chan v1.Update, 64)
	stop := make(chan struct{})
	done := make(chan struct{})
	deliver := func(u v1.Update) {
		if u.Error == nil {
			fn(Progress{Complete: u.Complete, Total: max(total, u.Total)})
		}
	}
	go func() {
		defer close(done)
		for {
			select {
			case u, ok := <-updates:
				if !ok {
					return
				}
				deliver(u)
			case <-stop:
				// remote.Write has returned, so every update has been
				// sent; drain them. The channel is closed by ggcr, except
				// when it fails before starting, hence the default case.
				for {
					select {
					case u, ok := <-updates:
						if !ok {
							return
						}
						deliver(u)
					default:
						return
					}
				}
			}
		}
	}()
	return remote.WithProgress(updates), func() {
		close(stop)
		<-done
	}
}

// artifactImage is a partial.CompressedImageCore for an artifact manifest
// whose layers are local files.
type artifactImage struct {
	manifest []byte
	layers   map[v1.Hash]*fileLayer
}

// RawConfigFile returns the empty config, {}.
func (a *artifactImage) RawConfigFile() ([]byte, error) { return emptyJSON, nil }

// MediaType returns the OCI image manifest media type.
func (a *artifactImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// RawManifest returns the serialized manifest.
func (a *artifactImage) RawManifest() ([]byte, error) { return a.manifest, nil }

// LayerByDigest returns the file layer with digest h.
func (a *artifactImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := a.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("artifact has no layer %s", h)
}

// fileLayer is a layer whose content is a file on disk, opened afresh for
// every read so that it is never held in memory.
type fileLayer struct {
	path      string
	name      string
	digest    v1.Hash
	size      int64
	mediaType types.MediaType
}

// newFileLayer stats and hashes the file at path.
func newFileLayer(ctx context.Context, path string, mt types.MediaType) (*fileLayer, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("push: file %s does not exist: check the path", path)
		}
		return nil, fmt.Errorf("push: cannot open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("push: %s is not a regular file: custody push takes files (archive a directory first, e.g. with tar)", path)
	}
	name := filepath.Base(path)
	if err := checkTitle(name); err != nil {
		return nil, fmt.Errorf("push: %s: %w", path, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		return nil, fmt.Errorf("push: reading %s: %w", path, err)
	}
	return &fileLayer{
		path:      path,
		name:      name,
		digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))},
		size:      n,
		mediaType: mt,
	}, nil
}

// Digest implements partial.CompressedLayer.
func (l *fileLayer) Digest() (v1.Hash, error) { return l.digest, nil }

// Size implements partial.CompressedLayer.
func (l *fileLayer) Size() (int64, error) { return l.size, nil }

// MediaType implements partial.CompressedLayer.
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// Compressed opens the file. The returned reader fails at end of file if
// the content no longer matches the digest computed by newFileLayer.
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("reopening %s: %w", l.path, err)
	}
	return &checkedFile{f: f, l: l, h: sha256.New()}, nil
}

// checkedFile re-verifies a file's content while it is uploaded.
type checkedFile struct {
	f *os.File
	l *fileLayer
	h hash.Hash
	n int64
}

func (c *checkedFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if err == io.EOF {
		if c.n != c.l.size || hex.EncodeToString(c.h.Sum(nil)) != c.l.digest.Hex {
			return n, fmt.Errorf("%s changed while it was being pushed: push it again once it is no longer being written", c.l.path)
		}
	}
	return n, err
}

func (c *checkedFile) Close() error { return c.f.Close() }

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
