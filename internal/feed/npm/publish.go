package npm

import (
	"archive/tar"
	"bufio"
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
	"strconv"
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

// maxPublishMeta caps what a publish holds in memory: the document
// without its tarball's data (the version document, at most
// feed.MaxManifest once stored, and what surrounds it).
const maxPublishMeta = 2 * feed.MaxManifest

// ErrDocumentTooLarge: the publish document without its tarball's data is
// larger than maxPublishMeta.
var ErrDocumentTooLarge = fmt.Errorf("the package document without its tarball's data is larger than %d MiB; nothing was stored", maxPublishMeta>>20)

// BodyError: reading the request body failed (it broke off, or was
// larger than the reader allowed); Err is the reader's error.
type BodyError struct{ Err error }

func (e *BodyError) Error() string { return "reading the body failed: " + e.Err.Error() }
func (e *BodyError) Unwrap() error { return e.Err }

// StoreError: the function storing the tarball failed for a reason of
// its own (not the tarball's).
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return "store tarball: " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

var (
	errSyntax    = errors.New("the body is not a package document (JSON)")
	errNotBase64 = errors.New("the tarball's data is not base64")
)

// Publish is a parsed, checked publish request: one version of one
// package, whose tarball was handed to ReadPublish's put.
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
	// Size is the tarball's length in bytes.
	Size int64
	// SHA512 and SHA1 are the tarball's hashes (hex), checked against
	// dist.integrity and dist.shasum.
	SHA512, SHA1 string
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

// ReadPublish reads the body of PUT /<package> for package want from r
// (libnpmpublish's document: _id, name, dist-tags, versions and
// _attachments, in any order), holding at most maxPublishMeta bytes of
// it in memory whatever the tarball's size. The first attachment's data
// is base64-decoded as it is read and handed to put as a stream, which
// put must read to its end: the stream fails instead of ending when the
// data is not base64 or the tarball is not a gzip'd tar whose entries
// stay inside the package directory. Whatever put keeps must stay
// invisible until ReadPublish returns no error: only then has the whole
// document been read and checked: exactly one version, its document
// naming the same package and version, exactly one attachment called
// <name>-<version>.tgz (or <base>-<version>.tgz), whose bytes match the
// length, the sha512 integrity and the sha1 shasum the document states,
// and at most maxPublishDistTags dist-tags, each naming the version.
//
// Errors: *BodyError (reading r failed), *StoreError (put failed of its
// own accord), ErrDocumentTooLarge, and the refusals, each saying what is
// wrong, for the client.
func ReadPublish(r io.Reader, want Name, put func(io.Reader) error) (*Publish, error) {
	s := &scanner{r: bufio.NewReaderSize(r, 64<<10)}
	if c, err := s.next(); err != nil {
		return nil, err
	} else if c != '{' {
		return nil, errSyntax
	}
	// The document without _attachments, for encoding/json to read.
	doc := []byte{'{'}
	var att attachments
	seen := map[string]bool{}
	for first := true; ; first = false {
		c, err := s.next()
		if err != nil {
			return nil, err
		}
		if c == '}' && first {
			break
		}
		if c != '"' {
			return nil, errSyntax
		}
		key, err := s.key(seen, "the document")
		if err != nil {
			return nil, err
		}
		if key == "_attachments" {
			if err := s.attachments(&att, put); err != nil {
				return nil, err
			}
		} else {
			if len(doc) > 1 {
				doc = append(doc, ',')
			}
			k, _ := json.Marshal(key)
			doc = append(append(doc, k...), ':')
			if doc, err = s.value(doc); err != nil {
				return nil, err
			}
		}
		if c, err = s.next(); err != nil {
			return nil, err
		} else if c == '}' {
			break
		} else if c != ',' {
			return nil, errSyntax
		}
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	return att.check(append(doc, '}'), want)
}

// attachments is what ReadPublish read of _attachments.
type attachments struct {
	count    int
	file     string          // the first attachment's name
	length   json.RawMessage // its length, when stated
	streamed bool            // its data was handed to put
	size     int64
	sha512   string
	sha1     string
}

// check reads the document without its attachments (doc) and checks it
// against them, as ReadPublish says.
func (a *attachments) check(doc []byte, want Name) (*Publish, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, errSyntax
	}
	// Keys are read exactly, as npm reads them.
	var id, name string
	var distTags map[string]string
	var versions map[string]json.RawMessage
	for k, v := range map[string]any{"_id": &id, "name": &name, "dist-tags": &distTags, "versions": &versions} {
		if raw, ok := top[k]; ok {
			if err := json.Unmarshal(raw, v); err != nil {
				return nil, errSyntax
			}
		}
	}
	if name != want.String() || (id != "" && id != want.String()) {
		return nil, fmt.Errorf("the document names package %q, the URL %q", name, want.String())
	}
	if len(versions) != 1 {
		return nil, fmt.Errorf("publish exactly one version (the document has %d)", len(versions))
	}
	if a.count != 1 {
		return nil, fmt.Errorf("publish exactly one tarball (the document has %d attachments)", a.count)
	}
	p := &Publish{Name: want}
	var raw json.RawMessage
	for v, d := range versions {
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
	// npm names the attachment <name>-<version>.tgz, scope and all; it
	// is stored as <base>-<version>.tgz, the file name npm's registry
	// serves it under.
	p.Filename = want.Base + "-" + p.Version + ".tgz"
	if a.file != want.String()+"-"+p.Version+".tgz" && a.file != p.Filename {
		return nil, fmt.Errorf("the tarball must be called %s-%s.tgz, not %q", want, p.Version, a.file)
	}
	if !a.streamed {
		return nil, errors.New("the attachment has no data (the tarball, base64-encoded)")
	}
	p.Size, p.SHA512, p.SHA1 = a.size, a.sha512, a.sha1
	if len(a.length) > 0 {
		var n int64
		if err := json.Unmarshal(a.length, &n); err != nil || n != p.Size {
			return nil, fmt.Errorf("the tarball is %d bytes, its length says %s", p.Size, a.length)
		}
	}
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
	if len(distTags) > maxPublishDistTags {
		return nil, fmt.Errorf("a publish may set at most %d dist-tags (the document has %d); add more with npm dist-tag", maxPublishDistTags, len(distTags))
	}
	for tag, v := range distTags {
		if v != p.Version {
			return nil, fmt.Errorf("dist-tag %q names version %q; a publish may only tag the version it publishes", tag, v)
		}
		if !ValidDistTag(tag) {
			return nil, fmt.Errorf("invalid dist-tag %q: letters, digits, '.' and '-', not starting with a digit or 'v' and a digit", tag)
		}
		p.DistTags = append(p.DistTags, tag)
	}
	return p, nil
}

// scanner reads a JSON document from a buffered body, counting what it
// holds in memory.
type scanner struct {
	r    *bufio.Reader
	held int
}

// hold accounts for n more bytes held in memory.
func (s *scanner) hold(n int) error {
	if s.held += n; s.held > maxPublishMeta {
		return ErrDocumentTooLarge
	}
	return nil
}

// readByte is the body's next byte; the end of the body is a syntax
// error (the document is not complete), any other failure a *BodyError.
func (s *scanner) readByte() (byte, error) {
	c, err := s.r.ReadByte()
	if errors.Is(err, io.EOF) {
		return 0, errSyntax
	} else if err != nil {
		return 0, &BodyError{Err: err}
	}
	return c, nil
}

// next is the next byte that is not white space.
func (s *scanner) next() (byte, error) {
	for {
		c, err := s.readByte()
		if err != nil || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return c, err
		}
	}
}

// end reads what follows the document: white space only.
func (s *scanner) end() error {
	for {
		c, err := s.r.ReadByte()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return &BodyError{Err: err}
		case c != ' ' && c != '\t' && c != '\n' && c != '\r':
			return errSyntax
		}
	}
}

// key reads an object's key (its opening quote read) and the ':' after
// it, refusing a key the object has already (in is the object, for the
// message).
func (s *scanner) key(seen map[string]bool, in string) (string, error) {
	raw, err := s.str([]byte{'"'})
	if err != nil {
		return "", err
	}
	var k string
	if err := json.Unmarshal(raw, &k); err != nil {
		return "", errSyntax
	}
	if seen[k] {
		return "", fmt.Errorf("%s has the key %q twice", in, k)
	}
	seen[k] = true
	if c, err := s.next(); err != nil {
		return "", err
	} else if c != ':' {
		return "", errSyntax
	}
	return k, nil
}

// str appends a string's bytes, as written, to buf (its opening quote
// read, and in buf), up to its closing quote. A nil buf appends nothing
// and holds nothing.
func (s *scanner) str(buf []byte) ([]byte, error) {
	for escaped := false; ; {
		c, err := s.readByte()
		if err != nil {
			return buf, err
		}
		if buf != nil {
			if err := s.hold(1); err != nil {
				return buf, err
			}
			buf = append(buf, c)
		}
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			return buf, nil
		}
	}
}

// value appends the next value, as written, to buf. It checks only the
// nesting of objects, arrays and strings; encoding/json reads (and
// checks) the result.
func (s *scanner) value(buf []byte) ([]byte, error) {
	c, err := s.next()
	for depth := 0; ; {
		if err != nil {
			return buf, err
		}
		if err := s.hold(1); err != nil {
			return buf, err
		}
		buf = append(buf, c)
		switch c {
		case '"':
			if buf, err = s.str(buf); err != nil {
				return buf, err
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		default:
			if depth == 0 { // a number, true, false or null: up to a delimiter
				for {
					c, err := s.r.ReadByte()
					if errors.Is(err, io.EOF) {
						return buf, nil // the document's end refuses it
					} else if err != nil {
						return buf, &BodyError{Err: err}
					}
					if strings.IndexByte(",}] \t\r\n", c) >= 0 {
						return buf, s.r.UnreadByte()
					}
					if err := s.hold(1); err != nil {
						return buf, err
					}
					buf = append(buf, c)
				}
			}
		}
		if depth <= 0 {
			if depth < 0 {
				return buf, errSyntax
			}
			return buf, nil
		}
		c, err = s.readByte()
	}
}

// attachments reads _attachments (its ':' read): an object of
// attachments, each an object whose data is streamed (the first
// attachment's, to put) or skipped, the rest held.
func (s *scanner) attachments(a *attachments, put func(io.Reader) error) error {
	c, err := s.next()
	if err != nil {
		return err
	}
	if c == 'n' { // null: none
		for _, want := range []byte("ull") {
			if c, err := s.readByte(); err != nil || c != want {
				return errors.Join(err, errSyntax)
			}
		}
		return nil
	}
	if c != '{' {
		return errSyntax
	}
	seen := map[string]bool{}
	for first := true; ; first = false {
		c, err := s.next()
		if err != nil {
			return err
		}
		if c == '}' && first {
			return nil
		}
		if c != '"' {
			return errSyntax
		}
		file, err := s.key(seen, "_attachments")
		if err != nil {
			return err
		}
		if err := s.hold(len(file)); err != nil {
			return err
		}
		a.count++
		if a.count == 1 {
			a.file = file
		}
		if c, err := s.next(); err != nil {
			return err
		} else if c != '{' {
			return errSyntax
		}
		fields := map[string]bool{}
		for first := true; ; first = false {
			c, err := s.next()
			if err != nil {
				return err
			}
			if c == '}' && first {
				break
			}
			if c != '"' {
				return errSyntax
			}
			k, err := s.key(fields, "an attachment")
			if err != nil {
				return err
			}
			switch {
			case k == "data" && a.count == 1:
				if c, err := s.next(); err != nil {
					return err
				} else if c != '"' {
					return errors.New("the tarball's data must be a string (base64)")
				}
				if err := a.stream(s, put); err != nil {
					return err
				}
			case k == "data":
				if c, err := s.next(); err != nil {
					return err
				} else if c != '"' {
					return errSyntax
				}
				if _, err := s.str(nil); err != nil {
					return err
				}
			default:
				v, err := s.value(nil)
				if err != nil {
					return err
				}
				if !json.Valid(v) {
					return errSyntax
				}
				if k == "length" && a.count == 1 {
					a.length = v
				}
			}
			if c, err = s.next(); err != nil {
				return err
			} else if c == '}' {
				break
			} else if c != ',' {
				return errSyntax
			}
		}
		if c, err = s.next(); err != nil {
			return err
		} else if c == '}' {
			return nil
		} else if c != ',' {
			return errSyntax
		}
	}
}

// tarballRefused is the archive check's verdict on a streamed tarball.
type tarballRefused struct{ error }

// stream decodes the data string (its opening quote read) and hands the
// tarball to put, hashing it and checking its archive on the way; a
// failure of the stream itself (the body, the JSON, the base64 or the
// archive check) is the error, else put's as a *StoreError.
func (a *attachments) stream(s *scanner, put func(io.Reader) error) error {
	sr := &dataReader{s: s}
	h512, h1 := sha512.New(), sha1.New() //nolint:gosec // npm's shasum
	n := &counter{}
	// The archive check's verdict decides, at the end of the data,
	// whether the stream ends or fails.
	archive := newArchiveCheck()
	defer archive.Abort()
	src := io.TeeReader(base64.NewDecoder(base64.StdEncoding, sr), io.MultiWriter(h512, h1, n, archive))
	rec := &failReader{r: feed.CheckAtEOF(src, func() error {
		if err := archive.Verdict(); err != nil {
			return tarballRefused{err}
		}
		return nil
	})}
	perr := put(rec)
	var be *BodyError
	var tr tarballRefused
	switch {
	case rec.err == nil && perr != nil:
		return &StoreError{Err: perr}
	case rec.err == nil && !rec.eof:
		return &StoreError{Err: errors.New("the tarball was not read to its end")}
	case rec.err == nil:
	case errors.As(rec.err, &tr):
		return tr.error
	case errors.As(rec.err, &be), errors.Is(rec.err, errSyntax), errors.Is(rec.err, ErrDocumentTooLarge):
		return rec.err
	default: // the base64 decoder's
		return errNotBase64
	}
	a.streamed, a.size = true, n.n
	a.sha512, a.sha1 = hex.EncodeToString(h512.Sum(nil)), hex.EncodeToString(h1.Sum(nil))
	return nil
}

// failReader remembers how the reader it wraps ended.
type failReader struct {
	r   io.Reader
	err error
	eof bool
}

func (f *failReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		f.eof = true
	} else if err != nil && f.err == nil {
		f.err = err
	}
	return n, err
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// dataReader reads a JSON string's characters (its opening quote read)
// up to its closing quote, resolving escapes: the base64 text of a
// tarball. An escape of a character that is not ASCII is not base64.
// Its errors are sticky: the base64 decoder drops an error that came
// with nothing but line breaks, and reads again.
type dataReader struct {
	s    *scanner
	done bool
	err  error
}

func (d *dataReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		d.err = err
	}
	return n, err
}

func (d *dataReader) read(p []byte) (int, error) {
	if d.done {
		return 0, io.EOF
	}
	i := 0
	for i < len(p) {
		// Plain characters straight from the buffer.
		if buf, _ := d.s.r.Peek(min(d.s.r.Buffered(), len(p)-i)); len(buf) > 0 {
			k := 0
			for k < len(buf) && buf[k] >= 0x20 && buf[k] < 0x80 && buf[k] != '"' && buf[k] != '\\' {
				k++
			}
			copy(p[i:], buf[:k])
			_, _ = d.s.r.Discard(k)
			if i += k; i == len(p) {
				break
			}
		}
		c, err := d.s.readByte()
		if err != nil {
			return i, err
		}
		switch {
		case c == '"':
			d.done = true
			if i == 0 {
				return 0, io.EOF
			}
			return i, nil
		case c < 0x20:
			return i, errSyntax
		case c >= 0x80:
			return i, errNotBase64
		case c != '\\':
			p[i] = c
			i++
			continue
		}
		e, err := d.s.readByte()
		if err != nil {
			return i, err
		}
		switch e {
		case '"', '\\', '/':
			p[i] = e
		case 'n':
			p[i] = '\n'
		case 'r':
			p[i] = '\r'
		case 'b', 'f', 't':
			return i, errNotBase64
		case 'u':
			var hx [4]byte
			for j := range hx {
				if hx[j], err = d.s.readByte(); err != nil {
					return i, err
				}
			}
			v, err := strconv.ParseUint(string(hx[:]), 16, 16)
			if err != nil {
				return i, errSyntax
			}
			if v >= 0x80 {
				return i, errNotBase64
			}
			p[i] = byte(v)
		default:
			return i, errSyntax
		}
		i++
	}
	return i, nil
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

// checkTarballFrom reads the tarball's entries (gzip'd tar) and refuses one
// whose entries could leave the package directory. npm unpacks dropping
// the first path component ("package/") and follows the symlinks earlier
// entries made, so a lexical check of each path alone is not enough
// ("package/../x" lands beside the package; links to ".." chain out).
// The rule is therefore strict and needs no file system: no path and no
// link target is empty, absolute, or has a ".." component, so every path
// and every symlink only ever leads down. It stores nothing and caps what
// it unpacks. It may leave r unread once it has judged.
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
