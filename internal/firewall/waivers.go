package firewall

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	packageurl "github.com/package-url/packageurl-go"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/vuln"
)

// A feed's waivers are OpenVEX documents (vuln.VEXDocument, with
// custody's custody_expires), each stored as an OCI artifact in the
// repository named like the feed itself (no package maps to it: package
// repositories are "<feed>/<name>"), tagged "waiver-<time>-<random>".
// So waivers are immutable, audited, held, replicated and exported
// exactly like the versions they concern, and ApplyWaivers, which
// promotion gates use with VEX attestations, decides with them.
const (
	// WaiverArtifactType is the artifactType of a waiver's manifest.
	WaiverArtifactType = "application/vnd.custody.firewall.waiver.v1"
	// WaiverMediaType is the media type of its one layer, the document.
	WaiverMediaType = "application/vnd.openvex+json"
	waiverFile      = "waiver.openvex.json"
	waiverTagPrefix = "waiver-"
	// Manifest annotations of a waiver, for listings.
	annotationPackage  = "dev.custody.firewall.package"
	annotationAdvisory = "dev.custody.firewall.advisory"
	annotationExpires  = "dev.custody.firewall.expires"
)

// MaxWaiverRequest caps a waiver request's body.
const MaxWaiverRequest = 64 << 10

// WaiverRequest is the body of POST /api/v1/feeds/{feed}/waivers.
type WaiverRequest struct {
	// Package is the package URL waived: with a version
	// ("pkg:npm/left-pad@1.3.0") that version, without one every version.
	Package string `json:"package"`
	// Advisory is the advisory's ID or one of its aliases (a CVE).
	Advisory string `json:"advisory"`
	// Expires is when the waiver lapses: an RFC 3339 time or a date
	// (YYYY-MM-DD, its first instant in UTC). Required, in the future.
	Expires string `json:"expires"`
	// Reason is why the version is safe to serve; it becomes the VEX
	// statement's impact_statement.
	Reason string `json:"reason"`
}

// Waiver is one stored waiver, as listed.
type Waiver struct {
	ID       string    `json:"id"` // its tag in the feed's repository
	Feed     string    `json:"feed"`
	Package  string    `json:"package"`
	Advisory string    `json:"advisory"`
	Reason   string    `json:"reason"`
	Author   string    `json:"author"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	// Expired is true once Expires has passed (the waiver no longer
	// applies).
	Expired bool   `json:"expired"`
	Digest  string `json:"digest"`
}

var advisoryID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$`) })

// ParseWaiverRequest reads and checks a waiver request for feed f at
// time now: a purl of f's ecosystem (type npm, pypi, golang or maven), an
// advisory ID, an expiry after now, a reason. It returns the request with
// the package in canonical form and the expiry.
func ParseWaiverRequest(r io.Reader, f config.Feed, now time.Time) (WaiverRequest, time.Time, error) {
	var req WaiverRequest
	b, err := io.ReadAll(io.LimitReader(r, MaxWaiverRequest+1))
	if err != nil {
		return req, time.Time{}, err
	}
	if len(b) > MaxWaiverRequest {
		return req, time.Time{}, fmt.Errorf("the request is larger than %d bytes", MaxWaiverRequest)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, time.Time{}, fmt.Errorf("not a waiver request (JSON with package, advisory, expires, reason): %w", err)
	}
	if dec.More() {
		return req, time.Time{}, errors.New("trailing data after the JSON document")
	}
	p, err := packageurl.FromString(req.Package)
	if err != nil || p.Name == "" {
		return req, time.Time{}, fmt.Errorf("package %q is not a package URL (pkg:<type>/<name>[@<version>])", req.Package)
	}
	want := PURL(f.Ecosystem, "x", "")
	if want == "" || !strings.HasPrefix(want, "pkg:"+p.Type+"/") {
		return req, time.Time{}, fmt.Errorf("package %q is not a package of feed %s (a %s feed)", req.Package, f.Name, f.Ecosystem)
	}
	if len(p.Qualifiers) > 0 || p.Subpath != "" {
		return req, time.Time{}, errors.New("name the package without qualifiers or subpath")
	}
	name := p.Name
	if p.Namespace != "" {
		sep := "/"
		if p.Type == "maven" {
			sep = ":"
		}
		name = p.Namespace + sep + p.Name
	}
	req.Package = PURL(f.Ecosystem, name, p.Version)
	if !advisoryID().MatchString(req.Advisory) {
		return req, time.Time{}, fmt.Errorf("advisory %q is not an advisory ID (GHSA-..., CVE-..., GO-..., PYSEC-...)", req.Advisory)
	}
	exp, err := ParseExpiry(req.Expires)
	if err != nil {
		return req, time.Time{}, err
	}
	if !exp.After(now) {
		return req, time.Time{}, fmt.Errorf("expires %s is not in the future", exp.Format(time.RFC3339))
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > 1000 || !utf8.ValidString(req.Reason) {
		return req, time.Time{}, errors.New("give a reason (1 to 1000 characters of UTF-8): why this version is safe to serve")
	}
	return req, exp, nil
}

// ParseExpiry reads an RFC 3339 time or a date (YYYY-MM-DD, its first
// instant in UTC).
func ParseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("expires %q: use a date (2027-01-31) or an RFC 3339 time", s)
}

// Waivers stores and reads the feeds' waivers.
type Waivers struct {
	store *feed.Store

	mu    sync.Mutex
	cache map[string]waiverSet // by feed
}

type waiverSet struct {
	key  string // the tags read
	docs []*vuln.VEXDocument
	list []Waiver
}

// NewWaivers returns the waivers kept in store.
func NewWaivers(store *feed.Store) *Waivers {
	return &Waivers{store: store, cache: map[string]waiverSet{}}
}

// Add stores a waiver of feed f by author, made at now, on behalf of r.
func (w *Waivers) Add(ctx context.Context, r *http.Request, f config.Feed, req WaiverRequest, expires time.Time, author string, now time.Time) (Waiver, error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tag := fmt.Sprintf("%s%019d-%s", waiverTagPrefix, now.UnixNano(), hex.EncodeToString(rnd[:]))
	now = now.UTC().Truncate(time.Second)
	doc := vuln.VEXDocument{
		Context:   "https://openvex.dev/ns/v0.2.0",
		ID:        "urn:custody:firewall:" + f.Name + ":" + tag,
		Author:    author,
		Timestamp: now,
		Version:   1,
		Tooling:   "custody firewall waive",
		Statements: []vuln.VEXStatement{{
			Vulnerability:   vuln.VEXVulnerability{Name: req.Advisory},
			Products:        []vuln.VEXProduct{{ID: req.Package}},
			Status:          vuln.VEXNotAffected,
			ImpactStatement: req.Reason,
			Expires:         &expires,
		}},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return Waiver{}, err
	}
	if _, err := vuln.ParseVEX(bytes.NewReader(b)); err != nil {
		return Waiver{}, fmt.Errorf("the waiver is not valid OpenVEX: %w", err)
	}
	blob, unlock, err := w.store.PutBlob(ctx, bytes.NewReader(b), int64(len(b)), "")
	if err != nil {
		return Waiver{}, err
	}
	defer unlock()
	ann := map[string]string{annotationPackage: req.Package, annotationAdvisory: req.Advisory,
		annotationExpires: expires.Format(time.RFC3339)}
	d, err := w.store.Seal(ctx, r, feed.Spec{Repo: f.Name, Tag: tag, ArtifactType: WaiverArtifactType,
		Files: []feed.File{{Name: waiverFile, MediaType: WaiverMediaType, Digest: blob.Digest, Size: blob.Size}}, Annotations: ann})
	if err != nil {
		return Waiver{}, err
	}
	return Waiver{ID: tag, Feed: f.Name, Package: req.Package, Advisory: req.Advisory, Reason: req.Reason, Author: author,
		Created: now, Expires: expires, Digest: d.String()}, nil
}

// Documents returns the waivers of feed as OpenVEX documents, for
// vuln.ApplyWaivers; read again only when the feed's waiver tags change.
func (w *Waivers) Documents(ctx context.Context, feedName string) ([]*vuln.VEXDocument, error) {
	s, err := w.read(ctx, feedName)
	return s.docs, err
}

// List returns the waivers of feed, oldest first, with Expired set as of
// now.
func (w *Waivers) List(ctx context.Context, feedName string, now time.Time) ([]Waiver, error) {
	s, err := w.read(ctx, feedName)
	out := make([]Waiver, len(s.list))
	for i, x := range s.list {
		x.Expired = !x.Expires.After(now)
		out[i] = x
	}
	return out, err
}

func (w *Waivers) read(ctx context.Context, feedName string) (waiverSet, error) {
	tags, err := w.store.Tags(ctx, feedName)
	if errors.Is(err, meta.ErrNotFound) {
		return waiverSet{}, nil
	} else if err != nil {
		return waiverSet{}, err
	}
	var mine []string
	for _, t := range tags {
		if strings.HasPrefix(t, waiverTagPrefix) {
			mine = append(mine, t)
		}
	}
	sort.Strings(mine)
	key := strings.Join(mine, "\n")
	w.mu.Lock()
	s, ok := w.cache[feedName]
	w.mu.Unlock()
	if ok && s.key == key {
		return s, nil
	}
	s = waiverSet{key: key}
	for _, t := range mine {
		v, err := w.store.Version(ctx, feedName, t)
		if errors.Is(err, meta.ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return waiverSet{}, err
		}
		file, ok := v.File(waiverFile)
		if v.Manifest.ArtifactType != WaiverArtifactType || !ok {
			continue
		}
		rc, err := w.store.Open(ctx, feedName, file.Digest)
		if err != nil {
			return waiverSet{}, fmt.Errorf("waiver %s: %w", t, err)
		}
		doc, err := vuln.ParseVEX(rc)
		rc.Close()
		if err != nil {
			return waiverSet{}, fmt.Errorf("waiver %s: %w", t, err)
		}
		s.docs = append(s.docs, doc)
		for _, st := range doc.Statements {
			x := Waiver{ID: t, Feed: feedName, Advisory: st.Vulnerability.Name, Reason: st.ImpactStatement, Author: doc.Author,
				Created: doc.Timestamp, Digest: v.Manifest.Digest.String()}
			if len(st.Products) > 0 {
				x.Package = st.Products[0].ID
			}
			if st.Expires != nil {
				x.Expires = *st.Expires
			}
			s.list = append(s.list, x)
		}
	}
	w.mu.Lock()
	w.cache[feedName] = s
	w.mu.Unlock()
	return s, nil
}
