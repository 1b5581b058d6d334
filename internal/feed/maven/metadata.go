package maven

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxMetadata caps a maven-metadata.xml a client uploads.
const MaxMetadata = 1 << 20

// Metadata is a maven-metadata.xml document (Maven's repository metadata
// model 1.1.0), the parts custody reads and writes.
type Metadata struct {
	XMLName      xml.Name    `xml:"metadata"`
	ModelVersion string      `xml:"modelVersion,attr,omitempty"`
	GroupID      string      `xml:"groupId"`
	ArtifactID   string      `xml:"artifactId"`
	Version      string      `xml:"version,omitempty"`
	Versioning   *Versioning `xml:"versioning,omitempty"`
}

// Versioning is the document's <versioning>.
type Versioning struct {
	Latest           string            `xml:"latest,omitempty"`
	Release          string            `xml:"release,omitempty"`
	Snapshot         *Snapshot         `xml:"snapshot,omitempty"`
	Versions         []string          `xml:"versions>version,omitempty"`
	LastUpdated      string            `xml:"lastUpdated,omitempty"`
	SnapshotVersions []SnapshotVersion `xml:"snapshotVersions>snapshotVersion,omitempty"`
}

// Snapshot names the latest build of a SNAPSHOT version.
type Snapshot struct {
	Timestamp   string `xml:"timestamp"`
	BuildNumber int    `xml:"buildNumber"`
}

// SnapshotVersion is the latest timestamped file of a SNAPSHOT version
// for one classifier and extension.
type SnapshotVersion struct {
	Classifier string `xml:"classifier,omitempty"`
	Extension  string `xml:"extension"`
	Value      string `xml:"value"`
	Updated    string `xml:"updated"`
}

// ParseMetadata reads a maven-metadata.xml (at most MaxMetadata bytes):
// it must be one well-formed <metadata> element naming a groupId and an
// artifactId. Document type declarations are refused.
func ParseMetadata(b []byte) (*Metadata, error) {
	if len(b) > MaxMetadata {
		return nil, fmt.Errorf("maven-metadata.xml is larger than %d bytes", MaxMetadata)
	}
	if bytes.Contains(b, []byte("<!")) && bytes.Contains(bytes.ToUpper(b), []byte("<!DOCTYPE")) {
		return nil, errors.New("maven-metadata.xml must not have a document type declaration")
	}
	var m Metadata
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	if err := d.Decode(&m); err != nil {
		return nil, errors.New("maven-metadata.xml is not a readable <metadata> document")
	}
	if m.GroupID == "" || m.ArtifactID == "" {
		return nil, errors.New("maven-metadata.xml names no groupId or artifactId")
	}
	return &m, nil
}

// Encode renders m as Maven writes it: an XML declaration and the
// indented document.
func (m *Metadata) Encode() []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	e := xml.NewEncoder(&b)
	e.Indent("", "  ")
	_ = e.Encode(m) // a struct of strings always encodes
	b.WriteByte('\n')
	return b.Bytes()
}

// Stored is one stored file, as the metadata documents are generated
// from: its version directory, the timestamped version of a SNAPSHOT
// file, classifier, extension and when it was stored.
type Stored struct {
	Version, Snapshot, Classifier, Extension string
	Created                                  time.Time
}

// stamp is Maven's lastUpdated/updated format, in UTC.
func stamp(t time.Time) string { return t.UTC().Format("20060102150405") }

// ArtifactMetadata generates the artifact-level document from the stored
// files of one artifact: every version, in the order first stored;
// latest the version stored last, release the non-SNAPSHOT version stored
// last (what Maven's deploy leaves in a repository); lastUpdated the time
// of the newest file. Nil when nothing is stored.
func ArtifactMetadata(groupID, artifactID string, files []Stored) *Metadata {
	if len(files) == 0 {
		return nil
	}
	files = byCreated(files)
	v := &Versioning{}
	seen := map[string]bool{}
	for _, f := range files {
		if !seen[f.Version] {
			seen[f.Version] = true
			v.Versions = append(v.Versions, f.Version)
		}
		v.Latest = f.Version
		if !IsSnapshot(f.Version) {
			v.Release = f.Version
		}
	}
	v.LastUpdated = stamp(files[len(files)-1].Created)
	return &Metadata{GroupID: groupID, ArtifactID: artifactID, Versioning: v}
}

// SnapshotMetadata generates the version-level document of a SNAPSHOT
// version from its stored files: <snapshot> names the newest build (by
// build number, then timestamp) and <snapshotVersions> the newest
// timestamped file of each classifier and extension. Nil when the version
// has no timestamped file.
func SnapshotMetadata(groupID, artifactID, version string, files []Stored) *Metadata {
	files = byCreated(files)
	type key struct{ classifier, ext string }
	newest := map[key]SnapshotVersion{}
	var order []key
	var latest string
	for _, f := range files {
		if f.Version != version || f.Snapshot == "" {
			continue
		}
		k := key{f.Classifier, f.Extension}
		cur, ok := newest[k]
		if !ok {
			order = append(order, k)
		}
		if !ok || laterBuild(f.Snapshot, cur.Value) || f.Snapshot == cur.Value {
			newest[k] = SnapshotVersion{Classifier: f.Classifier, Extension: f.Extension, Value: f.Snapshot, Updated: stamp(f.Created)}
		}
		if latest == "" || laterBuild(f.Snapshot, latest) {
			latest = f.Snapshot
		}
	}
	if latest == "" {
		return nil
	}
	ts, build := splitSnapshot(latest)
	v := &Versioning{Snapshot: &Snapshot{Timestamp: ts, BuildNumber: build}}
	last := ""
	for _, k := range order {
		sv := newest[k]
		v.SnapshotVersions = append(v.SnapshotVersions, sv)
		if sv.Updated > last {
			last = sv.Updated
		}
	}
	v.LastUpdated = last
	return &Metadata{ModelVersion: "1.1.0", GroupID: groupID, ArtifactID: artifactID, Version: version, Versioning: v}
}

// byCreated returns files sorted by the time stored (stably).
func byCreated(files []Stored) []Stored {
	out := append([]Stored(nil), files...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// splitSnapshot splits a timestamped version "1.1-20240101.120000-3"
// into its timestamp and build number.
func splitSnapshot(v string) (string, int) {
	i := strings.LastIndexByte(v, '-')
	if i < 0 {
		return "", 0
	}
	build, _ := strconv.Atoi(v[i+1:])
	j := strings.LastIndexByte(v[:i], '-')
	return v[j+1 : i], build
}

// laterBuild reports whether timestamped version a is a later build than
// b: a higher build number, or the same with a later timestamp.
func laterBuild(a, b string) bool {
	ta, ba := splitSnapshot(a)
	tb, bb := splitSnapshot(b)
	if ba != bb {
		return ba > bb
	}
	return ta > tb
}
