package sbom

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/custody-dev/custody/internal/ecosystem"
)

// evidenceKind says which cataloguer reads a file.
type evidenceKind int

const (
	kindNone evidenceKind = iota
	kindOSRelease
	kindDpkg
	kindAPK
	kindNPM
	kindRequirements
	kindPoetry
	kindCargo
	kindGoMod
	kindGoSum
	kindPom
	kindJar
	kindPythonMeta
	kindNodePackage
	kindDpkgCopyright
)

// classify picks the cataloguer for a cleaned, relative, slash-separated
// path. Executables are recognised later, by content.
func classify(p string) evidenceKind {
	base := path.Base(p)
	switch {
	case p == "etc/os-release" || p == "usr/lib/os-release":
		return kindOSRelease
	case p == "var/lib/dpkg/status":
		return kindDpkg
	case path.Dir(p) == "var/lib/dpkg/status.d":
		if strings.HasSuffix(base, ".md5sums") || strings.HasSuffix(base, ".list") || strings.HasSuffix(base, ".conffiles") {
			return kindNone
		}
		return kindDpkg
	case p == "lib/apk/db/installed":
		return kindAPK
	case base == "package-lock.json" || base == "npm-shrinkwrap.json":
		return kindNPM
	case strings.HasSuffix(base, ".txt") && strings.Contains(base, "requirements"):
		return kindRequirements
	case base == "poetry.lock":
		return kindPoetry
	case base == "Cargo.lock":
		return kindCargo
	case base == "go.mod":
		return kindGoMod
	case base == "go.sum":
		return kindGoSum
	case ecosystem.IsPomProperties(p):
		return kindPom
	case isPythonMetadata(p):
		return kindPythonMeta
	case isNodeModulePackageJSON(p):
		return kindNodePackage
	case dpkgCopyrightPackage(p) != "":
		return kindDpkgCopyright
	}
	switch strings.ToLower(path.Ext(base)) {
	case ".jar", ".war", ".ear":
		return kindJar
	}
	return kindNone
}

// found is what one path of the subject contributed.
type found struct {
	kind  evidenceKind
	pkgs  []Package
	file  *File
	osr   *OS
	goSum goSum
	// licenses of the Debian package a usr/share/doc/<pkg>/copyright names
	copyright []string
}

// cataloger accumulates what layers (or the one tree of an archive or
// directory) contain. Paths are relative, cleaned and slash-separated.
type cataloger struct {
	opts     Options
	listAll  bool
	listEvid bool
	state    map[string]*found
	warnings []string
	listed   int
}

func newCataloger(opts Options, kind SubjectKind) *cataloger {
	opts = opts.withDefaults()
	c := &cataloger{opts: opts, state: map[string]*found{}}
	switch opts.Files {
	case FilesAll:
		c.listAll = true
	case FilesEvidence:
		c.listEvid = true
	case FilesNone:
	default:
		if kind == KindImage {
			c.listEvid = true
		} else {
			c.listAll = true
		}
	}
	return c
}

func (c *cataloger) warnf(format string, args ...any) {
	if len(c.warnings) < 1000 {
		c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
	}
}

// layer collects one layer's entries; whiteouts and replaced paths take
// effect on the lower layers when the layer is committed.
type layer struct {
	c        *cataloger
	entries  map[string]*found // every non-directory path, nil when uninteresting
	whiteout map[string]bool   // paths removed with their subtrees
	opaque   map[string]bool   // directories whose lower contents are hidden
	count    int
}

func (c *cataloger) newLayer() *layer {
	return &layer{c: c, entries: map[string]*found{}, whiteout: map[string]bool{}, opaque: map[string]bool{}}
}

// cleanPath turns an archive entry name into a relative clean path; "" for
// the root.
func cleanPath(name string) string {
	p := path.Clean("/" + strings.ReplaceAll(name, "\\", "/"))
	return strings.TrimPrefix(p, "/")
}

// countEntry enforces MaxEntries.
func (l *layer) countEntry() error {
	l.count++
	if l.count > l.c.opts.MaxEntries {
		return fmt.Errorf("more than %d entries in one layer, archive or directory; raise Options.MaxEntries if this is expected", l.c.opts.MaxEntries)
	}
	return nil
}

// whiteoutEntry records an OCI whiteout (".wh.<name>" removes name,
// ".wh..wh..opq" hides the lower contents of its directory). It reports
// false when name is not a whiteout.
func (l *layer) whiteoutEntry(p string) bool {
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if !strings.HasPrefix(base, ".wh.") {
		return false
	}
	if base == ".wh..wh..opq" {
		l.opaque[dir] = true
		return true
	}
	l.whiteout[path.Join(dir, strings.TrimPrefix(base, ".wh."))] = true
	return true
}

// other records a non-regular entry (symlink, device) that replaces
// whatever a lower layer had at p.
func (l *layer) other(p string) {
	if p != "" {
		l.entries[p] = nil
	}
}

// commit applies the layer to the cataloger state.
func (l *layer) commit() {
	st := l.c.state
	if len(l.whiteout) > 0 || len(l.opaque) > 0 {
		for p := range st {
			if l.hides(p) {
				delete(st, p)
			}
		}
	}
	for p, f := range l.entries {
		if f == nil {
			delete(st, p)
		} else {
			st[p] = f
		}
	}
}

// hides reports whether a lower-layer path p is removed by this layer's
// whiteouts.
func (l *layer) hides(p string) bool {
	for q := p; ; {
		if l.whiteout[q] {
			return true
		}
		i := strings.LastIndex(q, "/")
		if i < 0 {
			return l.opaque[""]
		}
		q = q[:i]
		if l.opaque[q] {
			return true
		}
	}
}

// hashes computes the digests listed files carry.
type hashes struct {
	s256, s1 hash.Hash
	n        int64
}

func newHashes() *hashes { return &hashes{s256: sha256.New(), s1: sha1.New()} }

func (h *hashes) Write(b []byte) (int, error) {
	h.s256.Write(b)
	h.s1.Write(b)
	h.n += int64(len(b))
	return len(b), nil
}

func (h *hashes) file(p string) *File {
	return &File{Path: "/" + p, Size: h.n, SHA256: hex.EncodeToString(h.s256.Sum(nil)), SHA1: hex.EncodeToString(h.s1.Sum(nil))}
}

// regular catalogues one regular file at p with content r. ra, when not
// nil, reads the same content at random (files of a directory); otherwise
// executables and jars are spooled to a temporary file.
func (l *layer) regular(ctx context.Context, p string, mode fs.FileMode, size int64, r io.Reader, ra io.ReaderAt) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p == "" {
		return nil
	}
	c := l.c
	loc := "/" + p
	kind := classify(p)
	var h *hashes
	if c.listAll || (c.listEvid && kind != kindNone) || mode&0o111 != 0 || kind == kindJar {
		h = newHashes()
		r = io.TeeReader(r, h)
	}
	f := &found{kind: kind}
	switch kind {
	case kindNone:
		if mode&0o111 != 0 && size >= 64 {
			br := bufio.NewReaderSize(r, 64)
			head, _ := br.Peek(4)
			r = br
			if isExecutableMagic(head) {
				pkgs, err := l.withReaderAt(p, size, r, ra, func(x io.ReaderAt, _ int64) []Package {
					pkgs, _ := goBinaryPackages(x, loc)
					return pkgs
				})
				if err != nil {
					return err
				}
				f.pkgs = pkgs
			}
		}
	case kindJar:
		pkgs, err := l.withReaderAt(p, size, r, ra, func(x io.ReaderAt, n int64) []Package {
			return l.jarPackages(x, n, loc)
		})
		if err != nil {
			return err
		}
		f.pkgs = pkgs
	default:
		if size > c.opts.MaxManifestBytes {
			c.warnf("%s: %d bytes is over the %d-byte limit for package databases and lockfiles; skipped (raise Options.MaxManifestBytes)", loc, size, c.opts.MaxManifestBytes)
			break
		}
		data, err := io.ReadAll(io.LimitReader(r, c.opts.MaxManifestBytes+1))
		if err != nil {
			return fmt.Errorf("read %s: %w", loc, err)
		}
		if int64(len(data)) > c.opts.MaxManifestBytes {
			c.warnf("%s: over the %d-byte limit for package databases and lockfiles; skipped (raise Options.MaxManifestBytes)", loc, c.opts.MaxManifestBytes)
			break
		}
		l.parseManifest(f, kind, data, loc)
	}
	if h != nil {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return fmt.Errorf("read %s: %w", loc, err)
		}
	}
	evidence := len(f.pkgs) > 0 || f.osr != nil || f.goSum != nil
	if h != nil && (c.listAll || (c.listEvid && evidence)) {
		if c.listed < c.opts.MaxFiles {
			f.file = h.file(p)
			c.listed++
		} else if c.listed == c.opts.MaxFiles {
			c.listed++
			c.warnf("more than %d files; the rest are catalogued but not listed (raise Options.MaxFiles)", c.opts.MaxFiles)
		}
	}
	if evidence || f.file != nil || f.copyright != nil {
		l.entries[p] = f
	} else {
		l.entries[p] = nil
	}
	return nil
}

func (l *layer) parseManifest(f *found, kind evidenceKind, data []byte, loc string) {
	var err error
	switch kind {
	case kindOSRelease:
		f.osr, err = parseOSRelease(data)
	case kindDpkg:
		f.pkgs, err = parseDpkgStatus(data, loc)
	case kindAPK:
		f.pkgs, err = parseAPKInstalled(data, loc)
	case kindNPM:
		f.pkgs, err = parseWith(ecosystem.ParsePackageLock, "package-lock.json", TypeNPM, data, loc)
	case kindRequirements:
		f.pkgs, err = parseWith(ecosystem.ParseRequirements, "requirements", TypePyPI, data, loc)
	case kindPoetry:
		f.pkgs, err = parseWith(ecosystem.ParsePoetryLock, "poetry.lock", TypePyPI, data, loc)
	case kindCargo:
		f.pkgs, err = parseWith(ecosystem.ParseCargoLock, "Cargo.lock", TypeCargo, data, loc)
	case kindGoMod:
		f.pkgs, err = parseWith(ecosystem.ParseGoMod, "go.mod", TypeGolang, data, loc)
	case kindGoSum:
		var sums goSum
		sums, f.pkgs, err = parseGoSum(data, loc)
		if err == nil {
			f.goSum = sums
		}
	case kindPom:
		f.pkgs, err = parseWith(ecosystem.ParsePomProperties, "pom.properties", TypeMaven, data, loc)
	case kindPythonMeta:
		f.pkgs, err = parsePythonMetadata(data, loc)
	case kindNodePackage:
		f.pkgs, err = parseNodePackageJSON(data, loc)
	case kindDpkgCopyright:
		f.copyright = parseDpkgCopyright(data)
	}
	if err != nil {
		f.pkgs, f.osr, f.goSum = nil, nil, nil
		l.c.warnf("%v; skipped", err)
	}
}

// withReaderAt gives fn random access to the file: ra directly, or a
// temporary copy of r capped at MaxBinaryBytes.
func (l *layer) withReaderAt(p string, size int64, r io.Reader, ra io.ReaderAt, fn func(io.ReaderAt, int64) []Package) ([]Package, error) {
	if ra != nil {
		return fn(ra, size), nil
	}
	c := l.c
	if size > c.opts.MaxBinaryBytes {
		c.warnf("/%s: %d bytes is over the %d-byte limit for binaries and jars; not inspected (raise Options.MaxBinaryBytes)", p, size, c.opts.MaxBinaryBytes)
		return nil, nil
	}
	tmp, err := os.CreateTemp(c.opts.TempDir, "custody-sbom-*")
	if err != nil {
		return nil, fmt.Errorf("spool /%s for inspection: %w (set Options.TempDir to a writable directory)", p, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	n, err := io.Copy(tmp, io.LimitReader(r, c.opts.MaxBinaryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("spool /%s for inspection: %w", p, err)
	}
	if n > c.opts.MaxBinaryBytes {
		c.warnf("/%s: over the %d-byte limit for binaries and jars; not inspected (raise Options.MaxBinaryBytes)", p, c.opts.MaxBinaryBytes)
		return nil, nil
	}
	return fn(tmp, n), nil
}

// jarPackages reads the pom.properties files of a jar (not of jars nested
// inside it).
func (l *layer) jarPackages(ra io.ReaderAt, size int64, loc string) []Package {
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		l.c.warnf("%s: not a readable jar: %v; skipped", loc, err)
		return nil
	}
	var pkgs []Package
	for _, zf := range zr.File {
		if !ecosystem.IsPomProperties(zf.Name) || zf.UncompressedSize64 > 1<<20 {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if err != nil {
			continue
		}
		ps, err := parseWith(ecosystem.ParsePomProperties, "pom.properties", TypeMaven, data, loc)
		if err != nil {
			l.c.warnf("%s: %s: %v; skipped", loc, zf.Name, err)
			continue
		}
		pkgs = append(pkgs, ps...)
	}
	return pkgs
}

// inventory assembles the final inventory from the committed state.
func (c *cataloger) inventory(subject Subject) *Inventory {
	inv := &Inventory{Subject: subject}
	paths := make([]string, 0, len(c.state))
	for p := range c.state {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	// go.mod files take their h1 checksums from the go.sum beside them; a
	// go.sum without a go.mod stands alone.
	goMods := map[string]bool{}
	for _, p := range paths {
		if c.state[p].kind == kindGoMod {
			goMods[path.Dir(p)] = true
		}
	}
	var pkgs []Package
	for _, p := range paths {
		f := c.state[p]
		switch {
		case f.kind == kindGoSum && goMods[path.Dir(p)]:
			// used by the go.mod beside it
		case f.kind == kindGoMod:
			sum := c.state[path.Join(path.Dir(p), "go.sum")]
			for _, pk := range f.pkgs {
				if sum != nil && sum.goSum != nil {
					if h1, ok := sum.goSum[pk.Name+"@"+pk.Version]; ok {
						pk.Hashes = map[string]string{HashGoH1: h1}
						pk.Locations = append(append([]string(nil), pk.Locations...), "/"+path.Join(path.Dir(p), "go.sum"))
					}
				}
				pkgs = append(pkgs, pk)
			}
		default:
			pkgs = append(pkgs, f.pkgs...)
		}
		if f.file != nil {
			inv.Files = append(inv.Files, *f.file)
		}
	}
	if f := c.state["etc/os-release"]; f != nil && f.osr != nil {
		inv.OS = f.osr
	} else if f := c.state["usr/lib/os-release"]; f != nil && f.osr != nil {
		inv.OS = f.osr
	}
	// Debian packages take their licenses from usr/share/doc/<pkg>/copyright.
	for i := range pkgs {
		if pkgs[i].Type != TypeDeb || len(pkgs[i].Licenses) > 0 {
			continue
		}
		if f := c.state["usr/share/doc/"+pkgs[i].Name+"/copyright"]; f != nil && f.copyright != nil {
			pkgs[i].Licenses = append([]string(nil), f.copyright...)
		}
	}
	finishSystemPackages(pkgs, inv.OS)
	inv.Packages = mergePackages(pkgs)
	inv.Warnings = c.warnings
	return inv
}

// h1ToHex converts a Go "h1:<base64>" checksum to the hex SHA-256 it is.
func h1ToHex(h1 string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h1, "h1:"))
	if err != nil || len(b) != sha256.Size || !strings.HasPrefix(h1, "h1:") {
		return "", false
	}
	return hex.EncodeToString(b), true
}

var errNotRecognised = errors.New("not a Go binary, .tar, .tar.gz, .tgz or .zip archive, or directory")
