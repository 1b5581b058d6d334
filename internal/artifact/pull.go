package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PullOptions configure Pull.
type PullOptions struct {
	Options
}

// Pull downloads every layer of the artifact ref into dir, which is created
// if needed.
//
// Each layer is written to dir/<title>, where title is its
// org.opencontainers.image.title annotation, or the digest hex when it has
// none. Titles that are not plain file names (path separators, "." or "..",
// absolute paths, empty or control characters) or that repeat are refused
// before anything is written, so a hostile manifest cannot write outside
// dir. Content is streamed to a temporary file in dir while its size and
// digest are verified, then renamed into place; existing files of the same
// name are replaced.
func Pull(ctx context.Context, ref, dir string, opts PullOptions) (Result, error) {
	r, err := parseReference(ref, opts.Options)
	if err != nil {
		return Result{}, err
	}
	if dir == "" {
		dir = "."
	}
	puller, err := remote.NewPuller(remoteOptions(ctx, opts.Options)...)
	if err != nil {
		return Result{}, fmt.Errorf("pull %s: %w", r, err)
	}
	desc, err := puller.Get(ctx, r)
	if err != nil {
		return Result{}, explain("pull", r, err)
	}
	if desc.MediaType.IsIndex() {
		return Result{}, fmt.Errorf("pull %s: it is an image index (e.g. a multi-platform image), not a file artifact: pull one of its manifests by digest instead", r)
	}
	if !isManifestType(desc.MediaType) {
		return Result{}, fmt.Errorf("pull %s: unsupported manifest type %q: custody pull handles OCI and Docker image manifests", r, desc.MediaType)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return Result{}, fmt.Errorf("pull %s: malformed manifest: %w", r, err)
	}

	// Plan every file before writing anything.
	res := Result{
		Reference:    r.String(),
		Digest:       desc.Digest.String(),
		MediaType:    string(desc.MediaType),
		ArtifactType: m.ArtifactType,
		Dir:          dir,
		Files:        make([]File, 0, len(m.Layers)),
	}
	seen := make(map[string]bool, len(m.Layers))
	for _, l := range m.Layers {
		if l.Digest.Algorithm != "sha256" || len(l.Digest.Hex) != sha256.Size*2 {
			return Result{}, fmt.Errorf("pull %s: layer %s uses an unsupported digest (only sha256 is supported); nothing was written", r, l.Digest)
		}
		if l.Size < 0 {
			return Result{}, fmt.Errorf("pull %s: layer %s has invalid size %d; nothing was written", r, l.Digest, l.Size)
		}
		fname, ok := l.Annotations[AnnotationTitle]
		if !ok {
			fname = l.Digest.Hex
		}
		if err := checkTitle(fname); err != nil {
			return Result{}, fmt.Errorf("pull %s: refusing layer %s: %w; the artifact may be malicious, nothing was written", r, l.Digest, err)
		}
		if seen[fname] {
			return Result{}, fmt.Errorf("pull %s: two layers are named %q; refusing to let one overwrite the other, nothing was written", r, fname)
		}
		seen[fname] = true
		res.Files = append(res.Files, File{
			Name:      fname,
			Path:      filepath.Join(dir, fname),
			Digest:    l.Digest.String(),
			Size:      l.Size,
			MediaType: string(l.MediaType),
		})
		res.Size += l.Size
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("pull %s: cannot create destination directory: %w", r, err)
	}
	var done int64
	for i, l := range m.Layers {
		f := res.Files[i]
		report := func(n int64) {
			done += n
			if opts.Progress != nil {
				opts.Progress(Progress{Complete: done, Total: res.Size})
			}
		}
		if err := fetchFile(ctx, puller, r.Context(), l, f.Path, report); err != nil {
			return Result{}, fmt.Errorf("pull %s: %s: %w", r, f.Name, explainIn(r, err))
		}
	}
	return res, nil
}

// explainIn explains registry errors, leaving custody's own errors alone.
func explainIn(r name.Reference, err error) error {
	var ve *verifyError
	if errors.As(err, &ve) {
		return err
	}
	return explain("", r, err)
}

// verifyError reports content that does not match its descriptor.
type verifyError struct{ msg string }

func (e *verifyError) Error() string { return e.msg }

// fetchFile streams the blob described by l from repo into a temporary file
// next to dest, verifying size and digest, then renames it to dest.
func fetchFile(ctx context.Context, p *remote.Puller, repo name.Repository, l v1.Descriptor, dest string, report func(int64)) (rerr error) {
	layer, err := p.Layer(ctx, repo.Digest(l.Digest.String()))
	if err != nil {
		return err
	}
	rc, err := layer.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()

	tmp, err := os.CreateTemp(filepath.Dir(dest), ".custody-pull-*")
	if err != nil {
		return fmt.Errorf("cannot create a temporary file in the destination directory: %w", err)
	}
	defer func() {
		if rerr != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	h := sha256.New()
	// Read at most one byte more than declared, so an over-long blob is
	// detected without reading it all.
	n, copyErr := io.Copy(io.MultiWriter(tmp, h, progressWriter(report)), io.LimitReader(rc, l.Size+1))
	got := hex.EncodeToString(h.Sum(nil))
	switch {
	case n > l.Size:
		return &verifyError{fmt.Sprintf("registry sent more than the %d bytes the manifest declares for blob %s: the registry's content is corrupt or hostile", l.Size, l.Digest)}
	case n == l.Size && got != l.Digest.Hex:
		// ggcr's own verification fails the copy too; say it plainly.
		return &verifyError{fmt.Sprintf("content verification failed: registry sent data with digest sha256:%s for blob %s: the registry's storage may be corrupt; nothing was written for this file", got, l.Digest)}
	case ctx.Err() != nil:
		return ctx.Err()
	case n < l.Size:
		msg := fmt.Sprintf("download of blob %s stopped after %d of its %d bytes: retry the pull", l.Digest, n, l.Size)
		if copyErr != nil {
			msg += " (" + copyErr.Error() + ")"
		}
		return &verifyError{msg}
	case copyErr != nil:
		return copyErr
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("cannot move the downloaded file into place: %w", err)
	}
	return nil
}

// progressWriter turns a byte-count callback into an io.Writer.
type progressWriter func(int64)

func (p progressWriter) Write(b []byte) (int, error) {
	p(int64(len(b)))
	return len(b), nil
}

// checkTitle reports why t cannot be used as a file name inside the
// destination directory, or nil if it can.
func checkTitle(t string) error {
	switch {
	case t == "":
		return errors.New("file name is empty")
	case t == "." || t == "..":
		return fmt.Errorf("file name %q is not a file name", t)
	case strings.ContainsAny(t, `/\`):
		return fmt.Errorf("file name %q contains a path separator", t)
	case strings.IndexFunc(t, unicode.IsControl) >= 0:
		return fmt.Errorf("file name %q contains control characters", t)
	case filepath.IsAbs(t) || !filepath.IsLocal(t):
		return fmt.Errorf("file name %q is not a plain local file name", t)
	}
	return nil
}
