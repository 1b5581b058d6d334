package provenance

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/custody-dev/custody/internal/ecosystem"
)

// Lockfile limits.
const (
	// MaxLockfileBytes caps one lockfile; a larger one is an error.
	MaxLockfileBytes = 32 << 20
	// maxLockfiles caps how many lockfiles one workspace scan reads.
	maxLockfiles = 64
	// maxScanDepth is how deep below the workspace root lockfiles are sought.
	maxScanDepth = 4
)

// skipDirs are never descended into when looking for lockfiles: they hold
// dependencies' own files, not the build's.
var skipDirs = map[string]bool{
	".git": true, "node_modules": true, "vendor": true, "target": true,
	".venv": true, "venv": true, "__pycache__": true, ".tox": true, "dist": true, "build": true,
}

// Dependencies finds the lockfiles in a workspace (the root and up to
// four directory levels below it, skipping .git, node_modules, vendor,
// target, virtualenvs and build output) and returns the dependencies they
// pin, sorted by URI, without duplicates. The files are read by the
// internal/ecosystem parsers; this records, per format:
//
//   - go.sum: every module zip hash, pkg:golang purl, digest dirHash;
//   - package-lock.json (lockfile v1, v2, v3): pkg:npm purl, digest from
//     "integrity" (sha512/sha384/sha256/sha1, every one listed);
//   - requirements.txt: pinned "name==version" lines only, pkg:pypi purl;
//     the --hash values (one per distribution file) go to annotations
//     {"hashes": [...]}, and into digest only when there is exactly one;
//   - poetry.lock: pkg:pypi purl, file hashes as for requirements.txt;
//   - pom.xml: declared dependencies whose version is literal or a
//     property of the same file, pkg:maven purl, no digest;
//   - Cargo.lock: registry packages, pkg:cargo purl, digest sha256 from
//     "checksum".
//
// Unpinned entries are left out: provenance records what was resolved.
func Dependencies(workspace string) ([]ResourceDescriptor, error) {
	root, err := os.OpenRoot(workspace)
	if err != nil {
		return nil, fmt.Errorf("opening workspace: %w", err)
	}
	defer root.Close()
	var files []string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (skipDirs[d.Name()] || strings.Count(p, "/") >= maxScanDepth) {
				return fs.SkipDir
			}
			return nil
		}
		if _, ok := lockfileParsers[d.Name()]; ok && d.Type().IsRegular() {
			if len(files) == maxLockfiles {
				return fmt.Errorf("more than %d lockfiles under %s", maxLockfiles, workspace)
			}
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("looking for lockfiles: %w", err)
	}
	seen := map[string]bool{}
	var deps []ResourceDescriptor
	for _, p := range files {
		b, err := readCapped(root, p, MaxLockfileBytes)
		if err != nil {
			return nil, err
		}
		pkgs, err := lockfileParsers[path.Base(p)](b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for _, pkg := range pkgs {
			d, ok := descriptor(pkg)
			if !ok {
				continue
			}
			k := d.URI + "\x00" + digestKey(d.Digest)
			if seen[k] {
				continue
			}
			seen[k] = true
			deps = append(deps, d)
		}
		if len(deps) > MaxDependencies {
			return nil, fmt.Errorf("the workspace lockfiles pin more than %d dependencies, more than a provenance can carry", MaxDependencies)
		}
	}
	slices.SortStableFunc(deps, func(a, b ResourceDescriptor) int { return strings.Compare(a.URI, b.URI) })
	return deps, nil
}

func digestKey(d map[string]string) string {
	keys := make([]string, 0, len(d))
	for k, v := range d {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// readCapped reads a file inside root, refusing more than limit bytes.
func readCapped(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := root.Open(filepath.FromSlash(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b, nil
}

// lockfileParsers maps a lockfile's base name to its parser.
var lockfileParsers = map[string]func([]byte) ([]ecosystem.Package, error){
	"go.sum":            ecosystem.ParseGoSum,
	"package-lock.json": ecosystem.ParsePackageLock,
	"requirements.txt":  ecosystem.ParseRequirements,
	"poetry.lock":       ecosystem.ParsePoetryLock,
	"pom.xml":           ecosystem.ParsePom,
	"Cargo.lock":        ecosystem.ParseCargoLock,
}

// descriptor turns a lockfile's package into a resource descriptor, or
// reports false for one provenance leaves out (a Cargo workspace crate:
// the build's own code, not a dependency).
func descriptor(p ecosystem.Package) (ResourceDescriptor, bool) {
	d := ResourceDescriptor{URI: p.PURL()}
	switch p.Type {
	case ecosystem.TypeGolang:
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(p.GoH1, "h1:"))
		if err != nil || len(raw) != 32 {
			return d, false // ParseGoSum only returns verified h1 hashes
		}
		d.Digest = map[string]string{"dirHash": hex.EncodeToString(raw)}
	case ecosystem.TypeNPM:
		d.Digest = p.Hashes
		if strings.HasPrefix(p.Resolved, "https://") {
			d.DownloadLocation = p.Resolved
		}
	case ecosystem.TypePyPI:
		d.Digest = p.Hashes
		if len(p.FileHashes) > 0 {
			d.Annotations, _ = json.Marshal(map[string][]string{"hashes": p.FileHashes})
		}
	case ecosystem.TypeCargo:
		if p.Source == "" {
			return d, false
		}
		d.Digest = p.Hashes
	}
	return d, true
}
