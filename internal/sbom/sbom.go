// Package sbom builds software bills of materials (SBOMs) for what custody
// stores, and checks the SBOMs clients upload.
//
// An [Inventory] is what was found in one subject: the packages (Debian and
// Alpine system packages, with Debian licenses from usr/share/doc/*/copyright;
// Go modules in binaries and go.mod/go.sum files; npm, PyPI, Cargo and Maven
// packages from lockfiles, installed node_modules and Python site-packages
// metadata, and jars), the operating system and, optionally, every file with
// its SHA-256 and SHA-1. [FromImage] catalogues a
// go-containerregistry image layer by layer, streaming each layer and
// honouring whiteouts; [FromFile] catalogues a Go binary, a .tar, .tar.gz or
// .zip archive, or a directory. [Inventory.Encode] writes SPDX 2.3 JSON or
// CycloneDX 1.6 JSON, byte-for-byte deterministic for a fixed
// [EncodeOptions.Created].
//
// [Validate] parses an uploaded SPDX 2.3 or CycloneDX (1.4 or later) JSON
// document with the format's own library, checks the fields every consumer
// relies on, and reports which digests the document says it describes, so
// the caller can refuse an SBOM attached to the wrong artifact.
//
// [PredicateSPDX] and [PredicateCycloneDX] are the in-toto predicate types to
// use when an SBOM is attached as an attestation.
package sbom

import (
	"sort"
	"strings"
)

// Format names an SBOM serialisation.
type Format string

// The SBOM formats [Inventory.Encode] writes and [Validate] reads.
const (
	// FormatSPDXJSON is SPDX 2.3 in its JSON serialisation.
	FormatSPDXJSON Format = "spdx-json"
	// FormatCycloneDXJSON is CycloneDX (1.6 when written, 1.4 or later when
	// read) in its JSON serialisation.
	FormatCycloneDXJSON Format = "cyclonedx-json"
)

// In-toto predicate types for SBOM attestations (the values cosign and the
// in-toto attestation framework use).
const (
	// PredicateSPDX is the predicate type of an SPDX document.
	PredicateSPDX = "https://spdx.dev/Document"
	// PredicateCycloneDX is the predicate type of a CycloneDX BOM.
	PredicateCycloneDX = "https://cyclonedx.org/bom"
)

// Media types of the two formats, for OCI artifacts and HTTP.
const (
	// MediaTypeSPDXJSON is the IANA media type of SPDX JSON.
	MediaTypeSPDXJSON = "application/spdx+json"
	// MediaTypeCycloneDXJSON is the IANA media type of CycloneDX JSON.
	MediaTypeCycloneDXJSON = "application/vnd.cyclonedx+json"
)

// PredicateType returns the in-toto predicate type of format f, or "" for
// an unknown format.
func (f Format) PredicateType() string {
	switch f {
	case FormatSPDXJSON:
		return PredicateSPDX
	case FormatCycloneDXJSON:
		return PredicateCycloneDX
	}
	return ""
}

// MediaType returns the media type of format f, or "" for an unknown format.
func (f Format) MediaType() string {
	switch f {
	case FormatSPDXJSON:
		return MediaTypeSPDXJSON
	case FormatCycloneDXJSON:
		return MediaTypeCycloneDXJSON
	}
	return ""
}

// PackageType says which ecosystem a package belongs to. The values are the
// package-url types.
type PackageType string

// The ecosystems the cataloguers recognise.
const (
	TypeDeb    PackageType = "deb"    // dpkg status (Debian, Ubuntu, distroless)
	TypeApk    PackageType = "apk"    // Alpine apk database
	TypeGolang PackageType = "golang" // Go modules (binaries, go.mod, go.sum) and the Go standard library
	TypeNPM    PackageType = "npm"    // package-lock.json, node_modules/**/package.json
	TypePyPI   PackageType = "pypi"   // requirements*.txt, poetry.lock, *.dist-info/METADATA, *.egg-info/PKG-INFO
	TypeCargo  PackageType = "cargo"  // Cargo.lock
	TypeMaven  PackageType = "maven"  // META-INF/maven/**/pom.properties, also inside jars
)

// Hash algorithm keys used in [Package.Hashes] and [File] digests.
const (
	HashSHA1   = "sha1"
	HashSHA256 = "sha256"
	HashSHA384 = "sha384"
	HashSHA512 = "sha512"
	// HashGoH1 is a Go module's "h1:" checksum as written in go.sum (base64
	// SHA-256 of the module's file list); the value keeps the "h1:" prefix.
	HashGoH1 = "h1"
)

// Package is one software package found in a subject.
type Package struct {
	// Name is the package name in its ecosystem (Go: the module path).
	Name string
	// Version is the version as the ecosystem writes it (Debian: with epoch).
	Version string
	// PURL is the package URL, e.g. pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12.
	PURL string
	// Type is the ecosystem.
	Type PackageType
	// Licenses are the declared licenses, as found (often SPDX identifiers
	// or expressions), sorted.
	Licenses []string
	// Hashes maps an algorithm key (HashSHA256, HashSHA512, HashGoH1, ...)
	// to a lower-case hex value (or the raw "h1:..." string for HashGoH1).
	Hashes map[string]string
	// Locations are the paths, inside the subject, of the evidence the
	// package was found in (absolute, slash-separated), sorted.
	Locations []string
	// Arch is the CPU architecture of a system package ("amd64", "x86_64").
	Arch string
	// Upstream is the source package a system package was built from, when
	// it differs from Name.
	Upstream string
	// MainModule is true for the main module of a Go binary.
	MainModule bool
}

// File is one regular file in a subject.
type File struct {
	// Path is absolute and slash-separated, e.g. /usr/bin/env.
	Path string
	// Size is the size in bytes.
	Size int64
	// SHA256 and SHA1 are lower-case hex digests of the content.
	SHA256 string
	SHA1   string
}

// Subject names what an inventory describes.
type Subject struct {
	// Name is a human name: an image reference, a file name.
	Name string
	// Digest is the subject's content digest ("sha256:<hex>"): the image
	// manifest digest, or the digest of the file. Empty for directories.
	Digest string
	// Kind says what the subject is; FromImage and FromFile set it.
	Kind SubjectKind
}

// SubjectKind is the kind of thing an inventory describes.
type SubjectKind string

// The subject kinds.
const (
	KindImage     SubjectKind = "image"
	KindBinary    SubjectKind = "binary"
	KindArchive   SubjectKind = "archive"
	KindDirectory SubjectKind = "directory"
)

// OS is the operating system named by etc/os-release.
type OS struct {
	ID              string // "debian", "ubuntu", "alpine"
	VersionID       string // "12", "22.04", "3.19.1"
	VersionCodename string // "bookworm"
	PrettyName      string // "Debian GNU/Linux 12 (bookworm)"
	IDLike          []string
}

// Inventory is everything found in one subject.
type Inventory struct {
	Subject Subject
	// OS is nil when no os-release file was found.
	OS *OS
	// Packages are sorted by type, name, version and PURL; a package found
	// in several places appears once with all its locations.
	Packages []Package
	// Files are sorted by path. Which files are listed depends on
	// [Options.Files].
	Files []File
	// Warnings say what was skipped and why (an oversized lockfile, a
	// database that did not parse); an inventory with warnings is still
	// usable but may be incomplete.
	Warnings []string
}

// FileSelection says which files an inventory lists.
type FileSelection int

// The file selections.
const (
	// FilesDefault lists every regular file for archives and directories,
	// and only evidence files (package databases, lockfiles, binaries a
	// package was read from) for images, whose full listing is large.
	FilesDefault FileSelection = iota
	// FilesEvidence lists only files packages were found in.
	FilesEvidence
	// FilesAll lists (and hashes) every regular file.
	FilesAll
	// FilesNone lists no files.
	FilesNone
)

// Options tune cataloguing. The zero value is sensible.
type Options struct {
	// Files selects the file-level entries (default FilesDefault).
	Files FileSelection
	// MaxFiles caps the number of files listed (default 100000); past it,
	// files are still catalogued but no longer listed, and a warning says so.
	MaxFiles int
	// MaxManifestBytes caps a package database or lockfile read into memory
	// (default 64 MiB); a larger one is skipped with a warning.
	MaxManifestBytes int64
	// MaxBinaryBytes caps an executable or jar spooled to a temporary file
	// to be read (default 512 MiB); a larger one is skipped with a warning.
	MaxBinaryBytes int64
	// MaxEntries caps the number of entries walked in one archive, layer or
	// directory (default 1,000,000), against archive bombs.
	MaxEntries int
	// TempDir is where executables and jars found inside layers and
	// archives are spooled (default os.TempDir()).
	TempDir string
}

func (o Options) withDefaults() Options {
	if o.MaxFiles <= 0 {
		o.MaxFiles = 100000
	}
	if o.MaxManifestBytes <= 0 {
		o.MaxManifestBytes = 64 << 20
	}
	if o.MaxBinaryBytes <= 0 {
		o.MaxBinaryBytes = 512 << 20
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 1000000
	}
	return o
}

// sortPackages orders packages deterministically.
func sortPackages(pkgs []Package) {
	sort.SliceStable(pkgs, func(i, j int) bool {
		a, b := pkgs[i], pkgs[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		if a.PURL != b.PURL {
			return a.PURL < b.PURL
		}
		return strings.Join(a.Locations, "\n") < strings.Join(b.Locations, "\n")
	})
}

// mergePackages folds packages with the same type and PURL (or, without a
// PURL, the same name and version) into one, joining locations and hashes.
func mergePackages(pkgs []Package) []Package {
	type key struct {
		t             PackageType
		purl, n, v, a string
	}
	idx := map[key]int{}
	var out []Package
	for _, p := range pkgs {
		k := key{t: p.Type, purl: p.PURL}
		if p.PURL == "" {
			k = key{t: p.Type, n: p.Name, v: p.Version, a: p.Arch}
		}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			p.Locations = append([]string(nil), p.Locations...)
			p.Licenses = append([]string(nil), p.Licenses...)
			if p.Hashes != nil {
				h := make(map[string]string, len(p.Hashes))
				for a, v := range p.Hashes {
					h[a] = v
				}
				p.Hashes = h
			}
			out = append(out, p)
			continue
		}
		q := &out[i]
		q.Locations = append(q.Locations, p.Locations...)
		q.Licenses = append(q.Licenses, p.Licenses...)
		for a, v := range p.Hashes {
			if q.Hashes == nil {
				q.Hashes = map[string]string{}
			}
			if _, ok := q.Hashes[a]; !ok {
				q.Hashes[a] = v
			}
		}
		q.MainModule = q.MainModule || p.MainModule
	}
	for i := range out {
		out[i].Locations = uniqSorted(out[i].Locations)
		out[i].Licenses = uniqSorted(out[i].Licenses)
	}
	sortPackages(out)
	return out
}

func uniqSorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	sort.Strings(s)
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}
