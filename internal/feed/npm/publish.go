package npm

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1" //nolint:gosec // npm's shasum is SHA-1; it is checked, never trusted alone
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/custody-dev/custody/internal/ecosystem"
	"github.com/custody-dev/custody/internal/feed"
)

// MaxPublish caps the body of a publish (the packument with its tarball,
// base64-encoded): 128 MiB, about 96 MiB of tarball.
const MaxPublish = 128 << 20

// Limits on what a tarball may unpack to: its entries are read (not
// stored) to refuse paths that escape the package directory.
const (
	maxUnpacked = 1 << 30
	maxEntries  = 100000
	// maxPublishDistTags caps the dist-tags one publish sets.
	maxPublishDistTags = 16
)

// semverRE is semver.org's grammar without build metadata, which npm
// drops from versions before it publishes them.
var semverRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$`)
})

// ValidVersion reports whether v is a version npm publishes: a semantic
// version without build metadata, at most 128 bytes.
func ValidVersion(v string) bool { return len(v) <= 128 && semverRE().MatchString(v) }

// Publish is a parsed, checked publish request: one version of one
// package with its tarball.
type Publish struct {
	Name    Name
	Version string
	// Doc is the version document as published, without dist.tarball
	// (the URL is the server's to generate).
	Doc json.RawMessage
	// DistTags are the labels to point at the version.
	DistTags []string
	// Filename is the tarball's file name: <base>-<version>.tgz.
	Filename string
	Tarball  []byte
	// SHA512 and SHA1 are the tarball's hashes (hex), checked against
	// dist.integrity and dist.shasum.
	SHA512, SHA1 string
}

// publishDoc is what a publish request carries (libnpmpublish's body).
type publishDoc struct {
	ID          string                     `json:"_id"`
	Name        string                     `json:"name"`
	DistTags    map[string]string          `json:"dist-tags"`
	Versions    map[string]json.RawMessage `json:"versions"`
	Attachments map[string]struct {
		ContentType string          `json:"content_type"`
		Data        string          `json:"data"`
		Length      json.RawMessage `json:"length"`
	} `json:"_attachments"`
}

// versionDoc is the part of a version document the server checks.
type versionDoc struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Dist    struct {
		Integrity string `json:"integrity"`
		Shasum    string `json:"shasum"`
	} `json:"dist"`
}

// ParsePublish reads the body of PUT /<package> for package want: exactly
// one version, its document naming the same package and version, exactly
// one attachment called <name>-<version>.tgz (or <base>-<version>.tgz),
// whose bytes match the
// length, the sha512 integrity and the sha1 shasum the document states,
// and which is a gzip'd tar whose entries stay inside the package
// directory. Every error says what is wrong, for the client.
func ParsePublish(body []byte, want Name) (*Publish, error) {
	var doc publishDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errors.New("the body is not a package document (JSON)")
	}
	if doc.Name != want.String() || (doc.ID != "" && doc.ID != want.String()) {
		return nil, fmt.Errorf("the document names package %q, the URL %q", doc.Name, want.String())
	}
	if len(doc.Versions) != 1 {
		return nil, fmt.Errorf("publish exactly one version (the document has %d)", len(doc.Versions))
	}
	if len(doc.Attachments) != 1 {
		return nil, fmt.Errorf("publish exactly one tarball (the document has %d attachments)", len(doc.Attachments))
	}
	p := &Publish{Name: want}
	var raw json.RawMessage
	for v, d := range doc.Versions {
		p.Version, raw = v, d
	}
	if !ValidVersion(p.Version) {
		return nil, fmt.Errorf("version %q is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE])", p.Version)
	}
	var vd versionDoc
	if err := json.Unmarshal(raw, &vd); err != nil {
		return nil, errors.New("the version document is not a JSON object")
	}
	if vd.Name != want.String() || vd.Version != p.Version {
		return nil, fmt.Errorf("the version document names %s@%s, not %s@%s", vd.Name, vd.Version, want, p.Version)
	}
	doc2, err := stripTarballURL(raw)
	if err != nil {
		return nil, err
	}
	if len(doc2) > feed.MaxManifest {
		return nil, fmt.Errorf("the version document is %d bytes; at most %d", len(doc2), feed.MaxManifest)
	}
	p.Doc = doc2
	for file, a := range doc.Attachments {
		// npm names the attachment <name>-<version>.tgz, scope and all;
		// it is stored as <base>-<version>.tgz, the file name npm's
		// registry serves it under.
		p.Filename = want.Base + "-" + p.Version + ".tgz"
		if file != want.String()+"-"+p.Version+".tgz" && file != p.Filename {
			return nil, fmt.Errorf("the tarball must be called %s-%s.tgz, not %q", want, p.Version, file)
		}
		p.Tarball, err = base64.StdEncoding.DecodeString(a.Data)
		if err != nil {
			return nil, errors.New("the tarball's data is not base64")
		}
		if len(a.Length) > 0 {
			var n int64
			if err := json.Unmarshal(a.Length, &n); err != nil || n != int64(len(p.Tarball)) {
				return nil, fmt.Errorf("the tarball is %d bytes, its length says %s", len(p.Tarball), a.Length)
			}
		}
	}
	s512 := sha512.Sum512(p.Tarball)
	s1 := sha1.Sum(p.Tarball) //nolint:gosec // npm's shasum
	p.SHA512, p.SHA1 = hex.EncodeToString(s512[:]), hex.EncodeToString(s1[:])
	sri := ecosystem.ParseSRI(vd.Dist.Integrity)
	if sri["sha512"] == "" {
		return nil, errors.New("dist.integrity must give the tarball's sha512 (sha512-<base64>)")
	}
	if sri["sha512"] != p.SHA512 {
		return nil, errors.New("the tarball does not match dist.integrity (sha512); nothing was stored")
	}
	if !strings.EqualFold(vd.Dist.Shasum, p.SHA1) {
		return nil, errors.New("the tarball does not match dist.shasum (sha1); nothing was stored")
	}
	// npm sends one; each is a tag appended to the label log, so a
	// publish naming thousands would cost quadratic work and leave
	// thousands of tags.
	if len(doc.DistTags) > maxPublishDistTags {
		return nil, fmt.Errorf("a publish may set at most %d dist-tags (the document has %d); add more with npm dist-tag", maxPublishDistTags, len(doc.DistTags))
	}
	for tag, v := range doc.DistTags {
		if v != p.Version {
			return nil, fmt.Errorf("dist-tag %q names version %q; a publish may only tag the version it publishes", tag, v)
		}
		if !ValidDistTag(tag) {
			return nil, fmt.Errorf("invalid dist-tag %q: letters, digits, '.' and '-', not starting with a digit or 'v' and a digit", tag)
		}
		p.DistTags = append(p.DistTags, tag)
	}
	if err := checkTarball(p.Tarball); err != nil {
		return nil, err
	}
	return p, nil
}

// stripTarballURL removes dist.tarball from a version document.
func stripTarballURL(raw json.RawMessage) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("the version document is not a JSON object")
	}
	// The checks above read the document with encoding/json, which takes
	// "Version" for "version"; npm reads keys exactly. A key that only
	// differs in case would have the stored document name another
	// package or version than the one checked and published.
	for k := range m {
		for _, f := range []string{"name", "version", "dist"} {
			if k != f && strings.EqualFold(k, f) {
				return nil, fmt.Errorf("the version document has the key %q besides %q: keys are spelt as npm spells them", k, f)
			}
		}
	}
	var dist map[string]json.RawMessage
	if err := json.Unmarshal(m["dist"], &dist); err != nil || dist == nil {
		return nil, errors.New("the version document has no dist object")
	}
	delete(dist, "tarball")
	b, err := json.Marshal(dist)
	if err != nil {
		return nil, err
	}
	m["dist"] = b
	return json.Marshal(m)
}

// ValidDistTag reports whether tag may be a dist-tag: a label (see
// feed.ValidLabel) that npm cannot read as a version or range (not
// starting with a digit, or 'v' and a digit).
func ValidDistTag(tag string) bool {
	if !feed.ValidLabel(tag) {
		return false
	}
	t := strings.TrimPrefix(tag, "v")
	return t == "" || t[0] < '0' || t[0] > '9'
}

// checkTarball reads the tarball's entries (gzip'd tar) and refuses one
// whose entries could leave the package directory. npm unpacks dropping
// the first path component ("package/") and follows the symlinks earlier
// entries made, so a lexical check of each path alone is not enough
// ("package/../x" lands beside the package; links to ".." chain out).
// The rule is therefore strict and needs no file system: no path and no
// link target is empty, absolute, or has a ".." component, so every path
// and every symlink only ever leads down. It stores nothing and caps what
// it unpacks.
func checkTarball(tgz []byte) error { return checkTarballFrom(bytes.NewReader(tgz)) }

// checkTarballFrom is checkTarball reading the tarball from r (which it
// may leave unread once it has judged).
func checkTarballFrom(r io.Reader) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return errors.New("the tarball is not gzip-compressed")
	}
	tr := tar.NewReader(io.LimitReader(zr, maxUnpacked))
	for n := 0; ; n++ {
		if n >= maxEntries {
			return fmt.Errorf("the tarball has more than %d entries", maxEntries)
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return errors.New("the tarball is empty")
			}
			return nil
		}
		if err != nil {
			return errors.New("the tarball is not a readable tar archive (or unpacks to more than 1 GiB)")
		}
		if feed.EntryEscapes(h.Name) {
			return fmt.Errorf("the tarball's entry %q leaves the package directory (absolute, or with a '..' component)", h.Name)
		}
		if (h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink) && feed.LinkEscapes(h.Name, h.Linkname, h.Typeflag == tar.TypeSymlink) {
			return fmt.Errorf("the tarball's link %q points outside the package directory (its target is absolute, empty or has a '..' component)", h.Name)
		}
	}
}
