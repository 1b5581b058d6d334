package maven

import (
	"errors"
	"fmt"
	"strings"

	"github.com/custody-dev/custody/internal/feed"
)

// MetadataName is the file name of Maven's repository metadata, at the
// artifact level (<group>/<artifact>/maven-metadata.xml) and, for
// SNAPSHOT versions, at the version level.
const MetadataName = "maven-metadata.xml"

// Checksum algorithms whose files (<file>.<alg>) Maven reads and writes.
var checksumAlgs = []string{"sha1", "md5", "sha256", "sha512"}

// Path is a parsed request path below /maven/<feed>/.
type Path struct {
	// Group is the groupId's segments ("com.example" is com, example);
	// Artifact the artifactId.
	Group    []string
	Artifact string
	// Version is the version directory ("1.0", "1.1-SNAPSHOT"); empty for
	// artifact-level metadata.
	Version string
	// File is the file's name without a checksum suffix: an artifact file
	// or MetadataName.
	File string
	// Checksum is the checksum algorithm when the path names
	// <File>.<Checksum> (sha1, md5, sha256, sha512), else empty.
	Checksum string
	// Metadata: File is MetadataName (artifact level when Version is
	// empty, version level otherwise).
	Metadata bool
	// For artifact files: Snapshot is the timestamped version of a
	// SNAPSHOT file ("1.1-20240101.120000-3"), empty for a release file
	// and for the plain "-SNAPSHOT" name (Plain); Classifier and Extension
	// as in <artifactId>-<version>[-<classifier>].<extension>.
	Snapshot              string
	Plain                 bool
	Classifier, Extension string
}

// GroupID is the groupId, its segments joined by '.'.
func (p Path) GroupID() string { return strings.Join(p.Group, ".") }

// Package is how a version's package is named: groupId:artifactId.
func (p Path) Package() string { return p.GroupID() + ":" + p.Artifact }

// Repository is the artifact's repository in feed feedName:
// <feed>/<group segments>/<artifactId>.
func (p Path) Repository(feedName string) (string, error) {
	return feed.Repository(feedName, append(append([]string{}, p.Group...), p.Artifact)...)
}

// IsSnapshot reports whether version is a SNAPSHOT version.
func IsSnapshot(version string) bool { return strings.HasSuffix(version, "-SNAPSHOT") }

// ParsePath parses rest, the escaped path below /maven/<feed>/:
//
//	<group...>/<artifact>/maven-metadata.xml[.<alg>]
//	<group...>/<artifact>/<X-SNAPSHOT>/maven-metadata.xml[.<alg>]
//	<group...>/<artifact>/<version>/<artifact>-<version>[-<classifier>].<ext>[.<alg>]
//
// Every segment must be a valid repository name component for the group
// and artifact (lowercase; see feed.Repository) and a plain file name for
// the version; "." and ".." segments, empty segments and percent-escapes
// are refused, so a path never leaves its feed. A file's name must belong
// to its directory: the artifactId, then the version (for a SNAPSHOT
// directory the plain "-SNAPSHOT" version or a timestamped one,
// <base>-yyyyMMdd.HHmmss-<build>), an optional classifier and the
// extension. The errors say what is wrong, for the client.
func ParsePath(rest string) (Path, error) {
	var p Path
	if strings.Contains(rest, "%") {
		return p, errors.New("percent-escapes are not allowed in Maven paths")
	}
	segs := strings.Split(rest, "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return p, errors.New("a Maven path has no empty, '.' or '..' segments")
		}
	}
	n := len(segs)
	if n < 3 {
		return p, errors.New("a Maven path is <groupId as path>/<artifactId>/<version>/<file> or <groupId as path>/<artifactId>/maven-metadata.xml")
	}
	last := segs[n-1]
	p.File = last
	for _, alg := range checksumAlgs {
		if base, ok := strings.CutSuffix(last, "."+alg); ok {
			p.File, p.Checksum = base, alg
			break
		}
	}
	if p.File == MetadataName {
		p.Metadata = true
		if IsSnapshot(segs[n-2]) && n >= 4 {
			p.Group, p.Artifact, p.Version = segs[:n-3], segs[n-3], segs[n-2]
		} else {
			p.Group, p.Artifact = segs[:n-2], segs[n-2]
		}
	} else {
		if n < 4 {
			return p, errors.New("a Maven file's path is <groupId as path>/<artifactId>/<version>/<file>")
		}
		p.Group, p.Artifact, p.Version = segs[:n-3], segs[n-3], segs[n-2]
	}
	for _, s := range append(append([]string{}, p.Group...), p.Artifact) {
		if !feed.ValidComponent(s) {
			return p, fmt.Errorf("%q: groupId and artifactId parts must be lowercase letters and digits, separated by '.', '_' or '-'", s)
		}
	}
	if p.Version != "" && (!feed.ValidFilename(p.Version) || !validVersion(p.Version)) {
		return p, fmt.Errorf("invalid version %q", p.Version)
	}
	if p.Metadata {
		return p, nil
	}
	if !feed.ValidFilename(p.File) {
		return p, fmt.Errorf("invalid file name %q", p.File)
	}
	return p, p.parseFile()
}

// validVersion: letters, digits and . - _ + only (what Maven versions use).
func validVersion(v string) bool {
	if v == "" || len(v) > 100 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == '+') {
			return false
		}
	}
	return true
}

// parseFile checks that p.File is <artifact>-<version>[-classifier].<ext>
// for p's directory and fills Snapshot, Plain, Classifier and Extension.
func (p *Path) parseFile() error {
	wrong := fmt.Errorf("the file name %q does not belong in %s/%s: it must be %s-%s[-classifier].extension",
		p.File, p.Artifact, p.Version, p.Artifact, p.Version)
	rest, ok := strings.CutPrefix(p.File, p.Artifact+"-")
	if !ok {
		return wrong
	}
	switch after, plain := strings.CutPrefix(rest, p.Version); {
	case plain && (after == "" || after[0] == '.' || after[0] == '-'):
		rest, p.Plain = after, IsSnapshot(p.Version)
	case IsSnapshot(p.Version):
		base := strings.TrimSuffix(p.Version, "-SNAPSHOT") + "-"
		after, ok := strings.CutPrefix(rest, base)
		if !ok {
			return wrong
		}
		ts, n, ok := snapshotStamp(after)
		if !ok {
			return wrong
		}
		p.Snapshot = base + ts
		rest = after[n:]
	default:
		return wrong
	}
	if c, ok := strings.CutPrefix(rest, "-"); ok {
		i := strings.IndexByte(c, '.')
		if i <= 0 {
			return wrong
		}
		p.Classifier, rest = c[:i], c[i:]
		for j := 0; j < len(p.Classifier); j++ {
			if c := p.Classifier[j]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return wrong
			}
		}
	}
	ext, ok := strings.CutPrefix(rest, ".")
	if !ok || !validExtension(ext) {
		return wrong
	}
	p.Extension = ext
	return nil
}

// validExtension: dot-separated runs of letters and digits, the first
// starting with a letter ("jar", "tar.gz", "jar.asc"), so "1.jar" in
// "demo-1.0.1.jar" is not read as the extension of version 1.0.
func validExtension(ext string) bool {
	if ext == "" || !(ext[0] >= 'a' && ext[0] <= 'z' || ext[0] >= 'A' && ext[0] <= 'Z') {
		return false
	}
	for _, part := range strings.Split(ext, ".") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// snapshotStamp reads the "yyyyMMdd.HHmmss-<build>" that starts s: it
// returns it, its length, and whether s starts with one.
func snapshotStamp(s string) (string, int, bool) {
	if len(s) < 17 || s[8] != '.' || s[15] != '-' || !digits(s[:8]) || !digits(s[9:15]) {
		return "", 0, false
	}
	n := 16
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	if n == 16 || n-16 > 9 {
		return "", 0, false
	}
	return s[:n], n, true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
