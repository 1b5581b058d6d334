package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/jsondoc"
	"github.com/custody-dev/custody/internal/key"
)

// ErrInvalid is wrapped by every error of Open about the bundle's content
// (as opposed to failing to read the file).
var ErrInvalid = errors.New("invalid evidence bundle")

// Bundle is an opened bundle: its small files parsed, its blobs located
// by offset in the file.
type Bundle struct {
	f        *os.File
	manifest Manifest
	trust    Trust
	audit    Audit
	summary  Summary
	index    v1.IndexManifest
	small    map[string][]byte
	files    map[string]located
}

type located struct {
	off, size int64
}

// invalid returns an error wrapping ErrInvalid.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Fingerprint returns the trust-root fingerprint of trust.json's bytes:
// their lowercase hex SHA-256.
func Fingerprint(trustJSON []byte) string {
	s := sha256.Sum256(trustJSON)
	return hex.EncodeToString(s[:])
}

// normalFingerprint accepts a fingerprint with or without "sha256:",
// in either case.
func normalFingerprint(fp string) (string, error) {
	fp = strings.ToLower(strings.TrimSpace(fp))
	fp = strings.TrimPrefix(fp, "sha256:")
	if b, err := hex.DecodeString(fp); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("trust-root fingerprint %q is not a SHA-256 (64 hex digits; custody key fingerprint prints it)", fp)
	}
	return fp, nil
}

// checkName refuses a tar or manifest name that is not a plain relative
// path: empty, absolute, with "." or ".." components, a backslash, a NUL
// or a doubled slash.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("absolute name %q", name)
	case strings.ContainsAny(name, "\\\x00"):
		return fmt.Errorf("name %q contains a backslash or NUL", name)
	case slices.Contains(strings.Split(name, "/"), ".."):
		return fmt.Errorf("name %q leaves the bundle (..)", name)
	case path.Clean(name) != name:
		return fmt.Errorf("name %q is not a clean path", name)
	}
	return nil
}

// blobDigest returns the digest a blobs/<alg>/<hex> path names.
func blobDigest(p string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(p, BlobsDirectory)
	if !ok {
		return "", false
	}
	alg, hx, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hx)
	if (alg != "sha256" && alg != "sha512") || d.Validate() != nil {
		return "", false
	}
	return d, true
}

// BlobPath returns the path of blob d in the layout: blobs/<alg>/<hex>.
func BlobPath(d digest.Digest) string {
	return BlobsDirectory + d.Algorithm().String() + "/" + d.Encoded()
}

// checkManifest checks the file list: the fixed files first, in order,
// then blobs in byte order, each once, valid names, sizes and hashes.
func checkManifest(m Manifest) error {
	if m.Format != Format {
		return invalid("manifest.json: format %q, want %s", m.Format, Format)
	}
	if len(m.Files) > MaxFiles {
		return invalid("manifest.json lists %d files, more than the %d allowed", len(m.Files), MaxFiles)
	}
	if len(m.Files) < len(fixedFiles) {
		return invalid("manifest.json lists %d files; a bundle has at least %s", len(m.Files), strings.Join(fixedFiles, ", "))
	}
	prev := ""
	for i, f := range m.Files {
		if err := checkName(f.Path); err != nil {
			return invalid("manifest.json: file %d: %v", i, err)
		}
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != sha256.Size || hex.EncodeToString(b) != f.SHA256 {
			return invalid("manifest.json: %s: sha256 %q is not 64 lowercase hex digits", f.Path, f.SHA256)
		}
		if f.Size < 0 {
			return invalid("manifest.json: %s: negative size", f.Path)
		}
		if i < len(fixedFiles) {
			if f.Path != fixedFiles[i] {
				return invalid("manifest.json: file %d is %s, want %s", i, f.Path, fixedFiles[i])
			}
			if f.Omitted {
				return invalid("manifest.json: %s cannot be omitted", f.Path)
			}
			if f.Size > MaxMetadataSize {
				return invalid("manifest.json: %s is %d bytes, more than the %d allowed", f.Path, f.Size, MaxMetadataSize)
			}
			continue
		}
		if f.Omitted && !m.Request.MetadataOnly {
			return invalid("manifest.json: %s is left out, but the bundle is not metadata-only", f.Path)
		}
		d, ok := blobDigest(f.Path)
		if !ok {
			return invalid("manifest.json: %s is neither a custody file nor blobs/<sha256|sha512>/<hex>", f.Path)
		}
		if d.Algorithm() == digest.SHA256 && d.Encoded() != f.SHA256 {
			return invalid("manifest.json: %s: sha256 %s differs from its name", f.Path, f.SHA256)
		}
		if f.Path <= prev {
			if f.Path == prev {
				return invalid("manifest.json lists %s twice", f.Path)
			}
			return invalid("manifest.json: blobs are not in byte order (%s after %s)", f.Path, prev)
		}
		prev = f.Path
	}
	return nil
}

// countingReader counts the bytes read from r, so the tar reader's
// position is the offset of an entry's data.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// fileProblem is a file whose content does not match the manifest.
type fileProblem struct {
	path   string
	detail string
}

// Open checks the structure of a bundle file: safe names (no "..",
// absolute paths, duplicates, links, devices), sizes within caps, every
// file's SHA-256 against the signed manifest, the manifest's signature
// with the log key of trust.json, and trust.json's SHA-256 against
// fingerprint. It reads the file once, streaming, and keeps only offsets
// (and the small custody/ files and index.json, read again once trust.json
// and the signature have verified: a file nobody trusted signed costs
// no memory). Errors about the
// content wrap ErrInvalid and name the file (and, for a blob, what it is).
func Open(file, fingerprint string) (*Bundle, error) {
	fp, err := normalFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	b, err := open(f, fp)
	if err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

func open(f *os.File, fp string) (*Bundle, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, invalid("%s is not a regular file", f.Name())
	}
	cr := &countingReader{r: f}
	tr := tar.NewReader(cr)
	b := &Bundle{f: f, small: map[string][]byte{}, files: map[string]located{}}
	seen := map[string]bool{}
	// next reads the next header and checks it is a regular file with a
	// safe name seen for the first time, named want, of at most limit
	// bytes.
	next := func(want string, limit int64) (*tar.Header, error) {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, invalid("the bundle ends before %s (truncated, or a file is missing)", want)
		}
		if err != nil {
			return nil, truncated(err, "reading the entry before "+want)
		}
		if err := checkName(h.Name); err != nil {
			return nil, invalid("tar entry: %v", err)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, invalid("tar entry %s is not a regular file (type %q): links, directories and devices are refused", h.Name, h.Typeflag)
		}
		// A PAX sparse file's bytes are not where its entry is: refuse it
		// (Blob reads a file's bytes at its offset).
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return nil, invalid("tar entry %s is a sparse file: only regular files are allowed", h.Name)
			}
		}
		if seen[h.Name] {
			return nil, invalid("tar entry %s appears twice", h.Name)
		}
		seen[h.Name] = true
		if h.Name != want {
			if want == "" {
				return nil, invalid("unexpected tar entry %s after the last file the manifest lists", h.Name)
			}
			return nil, invalid("unexpected tar entry %s where the manifest lists %s", h.Name, want)
		}
		if h.Size > limit {
			return nil, invalid("%s is %d bytes, more than the %d allowed", h.Name, h.Size, limit)
		}
		return h, nil
	}
	// hashNext reads the next entry, named want, through hashes, keeping
	// only where it is: nothing is kept in memory before the signature
	// and the trust root are checked.
	type hashed struct {
		loc    located
		sha256 string
	}
	hashNext := func(want string, limit int64) (hashed, error) {
		h, err := next(want, limit)
		if err != nil {
			return hashed{}, err
		}
		off := cr.n
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			return hashed{}, truncated(err, "reading "+want)
		}
		return hashed{located{off: off, size: h.Size}, hex.EncodeToString(sum.Sum(nil))}, nil
	}
	// readAt reads a file hashNext located and checks it still hashes
	// the same (the file may change while it is read).
	readAt := func(name string, h hashed) ([]byte, error) {
		data := make([]byte, h.loc.size)
		if _, err := b.f.ReadAt(data, h.loc.off); err != nil {
			return nil, truncated(err, "reading "+name)
		}
		if sum(data) != h.sha256 {
			return nil, invalid("%s changed while the bundle was read", name)
		}
		return data, nil
	}
	man, err := hashNext(ManifestPath, MaxManifestSize)
	if err != nil {
		return nil, err
	}
	h, err := next(SignaturePath, MaxSignatureSize)
	if err != nil {
		return nil, err
	}
	sig, err := io.ReadAll(io.LimitReader(tr, h.Size))
	if err != nil {
		return nil, truncated(err, "reading "+SignaturePath)
	}
	// The fixed files, then trust.json decides: its fingerprint, then the
	// signature of manifest.json by its log key, before manifest.json is
	// parsed or any file kept in memory.
	fixed := map[string]hashed{}
	for _, name := range fixedFiles {
		fh, err := hashNext(name, MaxMetadataSize)
		if err != nil {
			return nil, err
		}
		fixed[name] = fh
		if name != TrustPath {
			continue
		}
		if fh.sha256 != fp {
			return nil, invalid("%s has fingerprint %s, not the trusted %s: this bundle was not written by the server you trust, or trust.json was modified", TrustPath, fh.sha256, fp)
		}
		data, err := readAt(TrustPath, fh)
		if err != nil {
			return nil, err
		}
		if err := b.parseTrust(data); err != nil {
			return nil, err
		}
		if err := b.checkSignature(man.sha256, sig); err != nil {
			return nil, err
		}
	}
	raw, err := readAt(ManifestPath, man)
	if err != nil {
		return nil, err
	}
	if err := jsondoc.UnmarshalStrict(raw, &b.manifest); err != nil {
		return nil, invalid("%s: %v", ManifestPath, err)
	}
	if err := checkManifest(b.manifest); err != nil {
		return nil, err
	}
	if b.manifest.Log.Origin != b.trust.Log.Origin {
		return nil, invalid("%s names log %q, trust.json %q", ManifestPath, b.manifest.Log.Origin, b.trust.Log.Origin)
	}
	var problems []fileProblem
	for _, mf := range b.manifest.Files[:len(fixedFiles)] {
		fh := fixed[mf.Path]
		if fh.loc.size != mf.Size {
			return nil, invalid("tar entry %s is %d bytes, the manifest says %d", mf.Path, fh.loc.size, mf.Size)
		}
		if fh.sha256 != mf.SHA256 {
			problems = append(problems, fileProblem{mf.Path, "its content hashes to sha256:" + fh.sha256 + ", the signed manifest says sha256:" + mf.SHA256})
			continue
		}
		// Signed and intact: now kept in memory.
		data, err := readAt(mf.Path, fh)
		if err != nil {
			return nil, err
		}
		b.small[mf.Path] = data
	}
	for _, mf := range b.manifest.Files[len(fixedFiles):] {
		if mf.Omitted {
			continue
		}
		h, err := next(mf.Path, math.MaxInt64)
		if err != nil {
			return nil, err
		}
		if h.Size != mf.Size {
			return nil, invalid("tar entry %s is %d bytes, the manifest says %d", h.Name, h.Size, mf.Size)
		}
		off := cr.n
		d, _ := blobDigest(mf.Path)
		sha := sha256.New()
		w := io.Writer(sha)
		var extra hash.Hash
		if d.Algorithm() == digest.SHA512 {
			extra = sha512.New()
			w = io.MultiWriter(sha, extra)
		}
		if _, err := io.Copy(w, tr); err != nil {
			return nil, truncated(err, "reading "+mf.Path)
		}
		if got := hex.EncodeToString(sha.Sum(nil)); got != mf.SHA256 {
			problems = append(problems, fileProblem{mf.Path, "its content hashes to sha256:" + got + ", the signed manifest says sha256:" + mf.SHA256})
		} else if extra != nil && hex.EncodeToString(extra.Sum(nil)) != d.Encoded() {
			problems = append(problems, fileProblem{mf.Path, "its content does not hash to its name"})
		}
		b.files[mf.Path] = located{off: off, size: mf.Size}
	}
	if h, err := tr.Next(); err != io.EOF {
		if err != nil {
			return nil, truncated(err, "reading the end of the tar")
		}
		if seen[h.Name] {
			return nil, invalid("tar entry %s appears twice", h.Name)
		}
		return nil, invalid("unexpected tar entry %s after the last file the manifest lists", h.Name)
	}
	if err := zeroTail(cr); err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, b.describe(problems)
	}
	return b, b.parseSmall()
}

// truncated names a read error of the tar; a short file is "truncated".
func truncated(err error, what string) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return invalid("the bundle is truncated (%s)", what)
	}
	if errors.Is(err, tar.ErrHeader) || errors.Is(err, tar.ErrFieldTooLong) || errors.Is(err, tar.ErrInsecurePath) {
		return invalid("malformed tar (%s): %v", what, err)
	}
	var perr *os.PathError
	if errors.As(err, &perr) {
		return err
	}
	return invalid("malformed tar (%s): %v", what, err)
}

// zeroTail checks that only zero padding follows the tar's end.
func zeroTail(r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if bytes.ContainsFunc(buf[:n], func(r rune) bool { return r != 0 }) {
			return invalid("data after the end of the tar")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// parseTrust reads trust.json.
func (b *Bundle) parseTrust(data []byte) error {
	var t struct {
		TrustRoot json.RawMessage `json:"trustRoot"`
		Recorders []string        `json:"recorders"`
		Log       LogKey          `json:"log"`
	}
	if err := jsondoc.UnmarshalStrict(data, &t); err != nil {
		return invalid("%s: %v", TrustPath, err)
	}
	tr, err := key.ParseTrustRoot(t.TrustRoot)
	if err != nil {
		return invalid("%s: %v", TrustPath, err)
	}
	v, err := note.NewVerifier(t.Log.Key)
	if err != nil {
		return invalid("%s: log key: %v", TrustPath, err)
	}
	if v.Name() != t.Log.Origin {
		return invalid("%s: the log key names %q, not the origin %q", TrustPath, v.Name(), t.Log.Origin)
	}
	b.trust = Trust{TrustRoot: tr, Recorders: t.Recorders, Log: t.Log}
	return nil
}

// SignatureText is the text of the signed note in manifest.sig for
// manifest.json's bytes.
func SignatureText(manifestJSON []byte) string {
	s := sha256.Sum256(manifestJSON)
	return SignatureContext + "\nsha256:" + hex.EncodeToString(s[:]) + "\n"
}

// checkSignature verifies manifest.sig, for the manifest.json whose
// SHA-256 is manifestSHA256 (lowercase hex), with the log key.
func (b *Bundle) checkSignature(manifestSHA256 string, sig []byte) error {
	v, err := note.NewVerifier(b.trust.Log.Key)
	if err != nil {
		return invalid("%s: log key: %v", TrustPath, err)
	}
	n, err := note.Open(sig, note.VerifierList(v))
	if err != nil {
		return invalid("%s does not verify with the log key of trust.json (%v): manifest.json or manifest.sig was modified", SignaturePath, err)
	}
	if n.Text != SignatureContext+"\nsha256:"+manifestSHA256+"\n" {
		return invalid("%s signs another manifest.json: manifest.json was modified", SignaturePath)
	}
	return nil
}

// parseSmall parses index.json, audit.json and summary.json.
func (b *Bundle) parseSmall() error {
	if string(b.small[LayoutPath]) != ociLayoutContent {
		return invalid("%s is not %s", LayoutPath, ociLayoutContent)
	}
	if err := jsondoc.Unmarshal(b.small[IndexPath], &b.index); err != nil {
		return invalid("%s: %v", IndexPath, err)
	}
	if err := jsondoc.UnmarshalStrict(b.small[AuditPath], &b.audit); err != nil {
		return invalid("%s: %v", AuditPath, err)
	}
	if err := jsondoc.UnmarshalStrict(b.small[SummaryPath], &b.summary); err != nil {
		return invalid("%s: %v", SummaryPath, err)
	}
	return nil
}

// describe turns content mismatches into one error that says what each
// file is: a custody file, or a blob named by the layout's manifests.
func (b *Bundle) describe(problems []fileProblem) error {
	what := b.blobRoles(func(p string) bool {
		return !slices.ContainsFunc(problems, func(fp fileProblem) bool { return fp.path == p })
	})
	var lines []string
	for _, p := range problems {
		kind := fileKinds[p.path]
		if kind == "" {
			kind = what[p.path]
		}
		if kind == "" {
			kind = "blob"
		}
		lines = append(lines, fmt.Sprintf("%s (%s): %s", p.path, kind, p.detail))
	}
	return invalid("%d file(s) modified: %s", len(problems), strings.Join(lines, "; "))
}

var fileKinds = map[string]string{
	LayoutPath:    "OCI layout marker",
	IndexPath:     "OCI index",
	TrustPath:     "trust root",
	AuditPath:     "audit entries, inclusion proofs and checkpoint",
	SummaryPath:   "summary",
	SummaryMDPath: "human-readable summary",
}

// blobRoles names each blob the layout's manifests reference: "manifest
// of repo@digest (artifact)", "layer 2 of ...", "config of ...". Only
// blobs for which intact(path) holds are read.
func (b *Bundle) blobRoles(intact func(string) bool) map[string]string {
	out := map[string]string{}
	var idx v1.IndexManifest
	if json.Unmarshal(b.small[IndexPath], &idx) != nil {
		return out
	}
	var walk func(d v1.Descriptor, label string, depth int)
	walk = func(d v1.Descriptor, label string, depth int) {
		p := BlobPath(digest.Digest(d.Digest.String()))
		if _, ok := out[p]; !ok {
			out[p] = label
		}
		if depth > 4 || !intact(p) || !d.MediaType.IsIndex() && !d.MediaType.IsImage() {
			return
		}
		body, err := b.readBlobPath(p, MaxManifestBlobSize)
		if err != nil {
			return
		}
		var m struct {
			Config    v1.Descriptor   `json:"config"`
			Layers    []v1.Descriptor `json:"layers"`
			Manifests []v1.Descriptor `json:"manifests"`
		}
		if json.Unmarshal(body, &m) != nil {
			return
		}
		of := strings.TrimPrefix(label, "manifest of ")
		if m.Config.Digest.Hex != "" {
			p := BlobPath(digest.Digest(m.Config.Digest.String()))
			if _, ok := out[p]; !ok {
				out[p] = "config of " + of
			}
		}
		for i, l := range m.Layers {
			p := BlobPath(digest.Digest(l.Digest.String()))
			kind := "layer"
			switch of := of; {
			case strings.Contains(of, "("+RoleSignature+")"):
				kind = "signature layer"
			case strings.Contains(of, "("+RoleAttestation+")"):
				kind = "attestation layer"
			case strings.Contains(of, "("+RoleReferrer+")"):
				kind = "referrer layer (Sigstore bundle)"
			}
			if _, ok := out[p]; !ok {
				out[p] = fmt.Sprintf("%s %d of %s", kind, i+1, of)
			}
		}
		for _, c := range m.Manifests {
			walk(c, "manifest of "+of+" child "+c.Digest.String(), depth+1)
		}
	}
	for _, d := range idx.Manifests {
		walk(d, fmt.Sprintf("manifest of %s@%s (%s)", d.Annotations[AnnotationRepository], d.Digest, d.Annotations[AnnotationRole]), 0)
	}
	return out
}

// Close closes the bundle file.
func (b *Bundle) Close() error { return b.f.Close() }

// Manifest returns the signed manifest.
func (b *Bundle) Manifest() Manifest { return b.manifest }

// Summary returns the parsed summary.json.
func (b *Bundle) Summary() Summary { return b.summary }

// Trust returns the parsed trust.json.
func (b *Bundle) Trust() Trust { return b.trust }

// Audit returns the parsed audit.json.
func (b *Bundle) Audit() Audit { return b.audit }

// Index returns the layout's index.json.
func (b *Bundle) Index() v1.IndexManifest { return b.index }

// File returns the bytes of one of the small files (index.json,
// oci-layout, custody/*.json, summary.md), or nil.
func (b *Bundle) File(p string) []byte { return b.small[p] }

// ErrNotInBundle is returned by Blob for a blob the bundle does not hold
// (absent, or a layer left out by --metadata-only).
var ErrNotInBundle = errors.New("not in the bundle")

// Blob returns a reader of blob d and its size. The reader checks the
// bytes against d again as it reads (the file may have changed since
// Open): its last Read fails on a mismatch.
func (b *Bundle) Blob(d digest.Digest) (io.ReadCloser, int64, error) {
	if d.Validate() != nil {
		return nil, 0, fmt.Errorf("blob %s: invalid digest", d)
	}
	loc, ok := b.files[BlobPath(d)]
	if !ok {
		if b.omitted(d) {
			return nil, 0, fmt.Errorf("blob %s: %w (left out by --metadata-only)", d, ErrNotInBundle)
		}
		return nil, 0, fmt.Errorf("blob %s: %w", d, ErrNotInBundle)
	}
	return &verifying{r: io.NewSectionReader(b.f, loc.off, loc.size), v: d.Verifier(), d: d}, loc.size, nil
}

// omitted reports whether d is listed as left out.
func (b *Bundle) omitted(d digest.Digest) bool {
	p := BlobPath(d)
	return slices.ContainsFunc(b.manifest.Files, func(f File) bool { return f.Omitted && f.Path == p })
}

func (b *Bundle) readBlobPath(p string, limit int64) ([]byte, error) {
	loc, ok := b.files[p]
	if !ok {
		return nil, fmt.Errorf("%s: %w", p, ErrNotInBundle)
	}
	if loc.size > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d read", p, loc.size, limit)
	}
	buf := make([]byte, loc.size)
	if _, err := b.f.ReadAt(buf, loc.off); err != nil {
		return nil, err
	}
	return buf, nil
}

// readBlob reads a (small) blob whole and checks it against d.
func (b *Bundle) readBlob(d digest.Digest, limit int64) ([]byte, error) {
	body, err := b.readBlobPath(BlobPath(d), limit)
	if err != nil {
		return nil, err
	}
	if d.Algorithm().FromBytes(body) != d {
		return nil, fmt.Errorf("blob %s changed since the bundle was opened", d)
	}
	return body, nil
}

type verifying struct {
	r io.Reader
	v digest.Verifier
	d digest.Digest
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	_, _ = v.v.Write(p[:n])
	if err == io.EOF && !v.v.Verified() {
		return n, fmt.Errorf("blob %s changed since the bundle was opened", v.d)
	}
	return n, err
}

func (v *verifying) Close() error { return nil }
