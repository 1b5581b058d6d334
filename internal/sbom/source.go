package sbom

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FromImage catalogues a container image. Each layer is streamed once, in
// order, through its uncompressed tar; OCI whiteouts (".wh.<name>",
// ".wh..wh..opq") and files replaced in later layers remove what lower
// layers contributed, so the inventory describes the image's final
// filesystem. Executables and jars are spooled to Options.TempDir one at a
// time to be read; nothing else is written to disk and no layer is held in
// memory.
//
// subject names the image; when subject.Digest is empty the image's
// manifest digest is used. Kind is set to KindImage.
func FromImage(ctx context.Context, img v1.Image, subject Subject, opts Options) (*Inventory, error) {
	if img == nil {
		return nil, errors.New("sbom: FromImage: nil image")
	}
	if subject.Digest == "" {
		d, err := img.Digest()
		if err != nil {
			return nil, fmt.Errorf("sbom: image digest: %w", err)
		}
		subject.Digest = d.String()
	}
	subject.Kind = KindImage
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("sbom: image layers: %w", err)
	}
	c := newCataloger(opts, KindImage)
	for i, ly := range layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rc, err := ly.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("sbom: open layer %d: %w", i, err)
		}
		l := c.newLayer()
		err = walkTar(ctx, l, rc, true)
		rc.Close()
		if err != nil {
			d, _ := ly.Digest()
			return nil, fmt.Errorf("sbom: layer %d (%s): %w", i, d, err)
		}
		l.commit()
	}
	return c.inventory(subject), nil
}

// FromFile catalogues the file or directory at path: a Go binary (its
// embedded module information), a .tar, .tar.gz/.tgz or .zip archive (the
// files inside it), or a directory tree (symbolic links are not followed).
// The kind is detected from the content, not the name. The subject is named
// after the path's base name; its digest is the SHA-256 of the file
// (directories have none).
func FromFile(ctx context.Context, path string, opts Options) (*Inventory, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	subject := Subject{Name: filepath.Base(path)}
	if st.IsDir() {
		subject.Kind = KindDirectory
		c := newCataloger(opts, KindDirectory)
		l := c.newLayer()
		if err := walkDir(ctx, l, path); err != nil {
			return nil, fmt.Errorf("sbom: directory %s: %w", path, err)
		}
		l.commit()
		return c.inventory(subject), nil
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("sbom: %s is not a regular file or directory", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("sbom: read %s: %w", path, err)
	}
	subject.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("sbom: read %s: %w", path, err)
	}
	head = head[:n]

	switch {
	case isExecutableMagic(head):
		subject.Kind = KindBinary
		pkgs, ok := goBinaryPackages(f, "/"+filepath.Base(path))
		if !ok {
			return nil, fmt.Errorf("sbom: %s is an executable without Go module build information (not built by Go 1.18+ with modules, or stripped of it)", path)
		}
		c := newCataloger(opts, KindBinary)
		inv := c.inventory(subject)
		finishSystemPackages(pkgs, nil)
		inv.Packages = mergePackages(pkgs)
		if c.listAll || c.listEvid {
			fh := newHashes()
			if _, err := io.Copy(fh, io.NewSectionReader(f, 0, st.Size())); err != nil {
				return nil, fmt.Errorf("sbom: read %s: %w", path, err)
			}
			inv.Files = []File{*fh.file(filepath.Base(path))}
		}
		return inv, nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		subject.Kind = KindArchive
		zr, err := gzip.NewReader(bufio.NewReader(io.NewSectionReader(f, 0, st.Size())))
		if err != nil {
			return nil, fmt.Errorf("sbom: %s: gzip: %w", path, err)
		}
		defer zr.Close()
		return fromTar(ctx, zr, subject, opts, path)
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		subject.Kind = KindArchive
		c := newCataloger(opts, KindArchive)
		l := c.newLayer()
		if err := walkZip(ctx, l, f, st.Size()); err != nil {
			return nil, fmt.Errorf("sbom: zip %s: %w", path, err)
		}
		l.commit()
		return c.inventory(subject), nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		subject.Kind = KindArchive
		return fromTar(ctx, io.NewSectionReader(f, 0, st.Size()), subject, opts, path)
	}
	return nil, fmt.Errorf("sbom: %s: %w", path, errNotRecognised)
}

func fromTar(ctx context.Context, r io.Reader, subject Subject, opts Options, name string) (*Inventory, error) {
	c := newCataloger(opts, KindArchive)
	l := c.newLayer()
	if err := walkTar(ctx, l, r, false); err != nil {
		return nil, fmt.Errorf("sbom: tar %s: %w", name, err)
	}
	l.commit()
	return c.inventory(subject), nil
}

// walkTar streams a tar into a layer. With whiteouts, OCI whiteout entries
// are honoured instead of catalogued.
func walkTar(ctx context.Context, l *layer, r io.Reader, whiteouts bool) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := l.countEntry(); err != nil {
			return err
		}
		p := cleanPath(hdr.Name)
		if p == "" {
			continue
		}
		if whiteouts && l.whiteoutEntry(p) {
			continue
		}
		if isSparse(hdr) {
			// A sparse entry's holes read back as zeros the archive does not
			// hold: a few bytes can claim terabytes. Layers never need them.
			l.c.warnf("/%s: sparse file (%d bytes claimed); not read", p, hdr.Size)
			l.other(p)
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeReg, '\x00': // '\x00' is the pre-POSIX regular file flag (TypeRegA)
			if err := l.regular(ctx, p, fs.FileMode(hdr.Mode).Perm(), hdr.Size, tr, nil); err != nil {
				return err
			}
		case tar.TypeDir:
		default:
			l.other(p)
		}
	}
}

// walkZip reads the regular files of a zip archive into a layer.
func walkZip(ctx context.Context, l *layer, ra io.ReaderAt, size int64) error {
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return err
	}
	for _, zf := range zr.File {
		if err := l.countEntry(); err != nil {
			return err
		}
		p := cleanPath(zf.Name)
		mode := zf.Mode()
		if p == "" || mode.IsDir() {
			continue
		}
		if !mode.IsRegular() {
			l.other(p)
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("open %s: %w", zf.Name, err)
		}
		err = l.regular(ctx, p, mode.Perm(), int64(zf.UncompressedSize64), rc, nil)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// walkDir reads a directory tree into a layer, without following symbolic
// links.
func walkDir(ctx context.Context, l *layer, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rp := cleanPath(filepath.ToSlash(rel))
		if rp == "" || d.IsDir() {
			return nil
		}
		if err := l.countEntry(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			l.other(rp)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return l.regular(ctx, rp, info.Mode().Perm(), info.Size(), f, f)
	})
}

// isSparse reports whether a tar entry is a GNU sparse file, in the old GNU
// format or the PAX one.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
