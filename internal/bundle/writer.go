package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
)

// Contents is everything a bundle holds, before it is written: the small
// generated files in memory and the blobs by digest (their bytes are
// read from a BlobSource while writing).
type Contents struct {
	Request Request
	Log     LogRef
	// Index, Trust, Audit, Summary and SummaryMD are the bytes of
	// index.json and the custody/ files.
	Index, Trust, Audit, Summary, SummaryMD []byte
	// Blobs are the layout's blobs; duplicates are written once.
	Blobs []BlobFile
}

// BlobFile is one blob of the layout.
type BlobFile struct {
	Digest digest.Digest
	Size   int64
	// SHA256 is the lowercase hex SHA-256 of the content (the digest's
	// hex for a sha256 digest).
	SHA256 string
	// Omitted leaves the bytes out (a layer with --metadata-only).
	Omitted bool
}

// BlobSource opens the blobs Write streams into the bundle.
type BlobSource func(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error)

// Signer signs the text of manifest.sig as a C2SP signed note with the
// audit log's key (tlog.Log.SignNote).
type Signer func(text string) ([]byte, error)

// Plan returns the manifest of c (manifest.json's bytes) and the files
// in tar order after manifest.sig.
func Plan(c Contents) ([]byte, []File, error) {
	small := [][]byte{[]byte(ociLayoutContent), c.Index, c.Trust, c.Audit, c.Summary, c.SummaryMD}
	var files []File
	for i, p := range fixedFiles {
		files = append(files, File{Path: p, Size: int64(len(small[i])), SHA256: sum(small[i])})
	}
	blobs := map[string]BlobFile{}
	for _, bf := range c.Blobs {
		if err := bf.Digest.Validate(); err != nil {
			return nil, nil, fmt.Errorf("blob %s: %w", bf.Digest, err)
		}
		if bf.Digest.Algorithm() == digest.SHA256 {
			bf.SHA256 = bf.Digest.Encoded()
		}
		p := BlobPath(bf.Digest)
		if prev, ok := blobs[p]; ok && !prev.Omitted {
			bf.Omitted = false // a blob needed whole anywhere is written
		}
		blobs[p] = bf
	}
	paths := make([]string, 0, len(blobs))
	for p := range blobs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		bf := blobs[p]
		files = append(files, File{Path: p, Size: bf.Size, SHA256: bf.SHA256, Omitted: bf.Omitted})
	}
	m := Manifest{Format: Format, Request: c.Request, Log: c.Log, Files: files}
	if err := checkManifest(m); err != nil {
		return nil, nil, err
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return append(raw, '\n'), files, nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Write writes the bundle of c to w: manifest.json, manifest.sig (signed
// by sign), the fixed files, then every blob in byte order of its path,
// streamed from open and checked against its digest on the way (a blob
// that does not match stops the write with an error, leaving a truncated
// file every reader refuses). The output depends only on c and the
// blobs' bytes: mode 0644, uid/gid 0, no user or group names, times at
// the Unix epoch, regular files only.
func Write(ctx context.Context, w io.Writer, c Contents, open BlobSource, sign Signer) error {
	raw, files, err := Plan(c)
	if err != nil {
		return err
	}
	sig, err := sign(SignatureText(raw))
	if err != nil {
		return fmt.Errorf("signing the bundle: %w", err)
	}
	small := map[string][]byte{LayoutPath: []byte(ociLayoutContent), IndexPath: c.Index, TrustPath: c.Trust,
		AuditPath: c.Audit, SummaryPath: c.Summary, SummaryMDPath: c.SummaryMD}
	tw := tar.NewWriter(w)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(header(name, int64(len(b)))); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := put(ManifestPath, raw); err != nil {
		return err
	}
	if err := put(SignaturePath, sig); err != nil {
		return err
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.Omitted {
			continue
		}
		if b, ok := small[f.Path]; ok {
			if err := put(f.Path, b); err != nil {
				return err
			}
			continue
		}
		d, _ := blobDigest(f.Path)
		if err := copyBlob(ctx, tw, f, d, open); err != nil {
			return err
		}
	}
	return tw.Close()
}

func header(name string, size int64) *tar.Header {
	return &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
}

// copyBlob streams one blob into the tar, checking its size and digest.
func copyBlob(ctx context.Context, tw *tar.Writer, f File, d digest.Digest, open BlobSource) error {
	rc, size, err := open(ctx, d)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	defer rc.Close()
	if size != f.Size {
		return fmt.Errorf("blob %s is %d bytes, %d expected", d, size, f.Size)
	}
	if err := tw.WriteHeader(header(f.Path, f.Size)); err != nil {
		return err
	}
	v := d.Verifier()
	n, err := io.Copy(io.MultiWriter(tw, v), io.LimitReader(rc, f.Size))
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if n != f.Size || !v.Verified() {
		return fmt.Errorf("blob %s: the stored bytes do not match their digest", d)
	}
	return nil
}

// Bytes returns the bytes of a small generated file as JSON (indented,
// with a final newline), the form Write expects.
func Bytes(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
