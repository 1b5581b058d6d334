package maven

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta"
)

// Proxy (pull-through) Maven feeds. A file asked for and not stored is
// fetched from upstream once (concurrent requests collapsed), its bytes
// checked while they stream against upstream's own .sha1 (or .sha256,
// .sha512) and sealed exactly as a deployed file, annotated with the URL
// it came from; from then on it is served from custody. The first sealed
// bytes are the record: when upstream later states another checksum for
// a stored file, the recorded one is served and the change audited
// (feed.upstream_changed). maven-metadata.xml is upstream's, with the
// stored versions added, or, when upstream cannot be reached, generated
// from the stored files, so builds keep resolving air-gapped.

// tofuTimeout bounds the question to upstream that compares a stored
// file's checksum with what upstream states now.
const tofuTimeout = 5 * time.Second

// upstreamRefusal: upstream's answer cannot be stored; msg says why.
type upstreamRefusal struct{ msg string }

func (e *upstreamRefusal) Error() string { return e.msg }

// upstreamChecksum fetches upstream's checksum of the file at path (a
// path below the feed, escaped): its .sha1, which every Maven repository
// publishes, else .sha256 or .sha512; alg is "" when it publishes none.
func upstreamChecksum(ctx context.Context, up *feed.Upstream, path string) (alg, sum string, err error) {
	for _, a := range []string{"sha1", "sha256", "sha512"} {
		b, _, err := up.GetDocument(ctx, up.URL(path+"."+a), "text/plain")
		if errors.Is(err, feed.ErrUpstreamNotFound) {
			continue
		}
		if err != nil {
			return "", "", err
		}
		s, ok := parseChecksum(b, a)
		if !ok {
			return "", "", &upstreamRefusal{"upstream's " + path + "." + a + " is not a " + a + " checksum; nothing stored"}
		}
		return a, s, nil
	}
	return "", "", nil
}

// pull fetches the file p names from upstream and seals it, once for any
// number of concurrent requests; a no-op when it is stored.
func (h *Handler) pull(ctx context.Context, r *http.Request, feedName, repo string, p Path) error {
	up := h.Upstream(feedName)
	if up == nil {
		return errors.New("proxy feed " + feedName + " has no upstream client")
	}
	tag, err := feed.VersionTag(p.File)
	if err != nil {
		return fmt.Errorf("%s: %w", p.File, feed.ErrUpstreamNotFound)
	}
	path := strings.Join(p.Group, "/") + "/" + p.Artifact + "/" + p.Version + "/" + p.File
	return up.Collapse(ctx, repo+":"+tag, func(ctx context.Context) error {
		if _, err := h.Store.Resolve(ctx, repo, tag); err == nil {
			return nil // stored by a fetch that just ended
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		alg, want, err := upstreamChecksum(ctx, up, path)
		if err != nil {
			return err
		}
		src := up.URL(path)
		body, _, err := up.Get(ctx, src, "application/octet-stream", feed.MaxUpstreamFile)
		if err != nil {
			return err
		}
		defer body.Close()
		sums := newHashes()
		s256 := sha256.New()
		var refused error
		checked := feed.CheckAtEOF(body, func() error {
			if alg == "" {
				return nil // upstream publishes no checksum: recorded only
			}
			var got string
			switch alg {
			case "sha1":
				got = hex.EncodeToString(sums.sha1.Sum(nil))
			case "sha256":
				got = hex.EncodeToString(s256.Sum(nil))
			default:
				got = hex.EncodeToString(sums.sha512.Sum(nil))
			}
			if got != want {
				h.UpstreamMismatch(ctx, r, repo, tag, src, alg+":"+want, alg+":"+got)
				refused = fmt.Errorf("%w: %s: upstream's .%s says %s, its bytes' is %s; nothing stored",
					feed.ErrUpstreamMismatch, p.File, alg, want, got)
				return refused
			}
			return nil
		})
		b, unlock, err := h.Store.PutBlob(ctx, checked, -1, "", append(sums.writers(), s256)...)
		defer unlock()
		if err != nil {
			if refused != nil {
				return refused
			}
			if errors.Is(err, feed.ErrUpstreamTooLarge) {
				return &upstreamRefusal{"upstream's " + p.File + " is larger than the proxy's limit; nothing stored"}
			}
			return &feed.UpstreamError{URL: src, Err: err}
		}
		ann := map[string]string{
			feed.AnnotationPackage:   p.Package(),
			feed.AnnotationVersion:   p.Version,
			feed.AnnotationUpstream:  src,
			annotationExtension:      p.Extension,
			builds.AnnotationVersion: p.Version,
			builds.AnnotationCreated: h.Store.Now().UTC().Format(time.RFC3339),
		}
		if p.Snapshot != "" {
			ann[annotationSnapshot] = p.Snapshot
		}
		if p.Classifier != "" {
			ann[annotationClassifier] = p.Classifier
		}
		_, err = h.Store.Seal(ctx, r, feed.Spec{
			Repo: repo, Tag: tag, ArtifactType: ArtifactType, Annotations: ann,
			Files: []feed.File{{Name: p.File, MediaType: mediaType(p.Extension), Digest: b.Digest, Size: b.Size,
				Annotations: sums.annotations(b.Digest)}},
		})
		var exists *feed.ExistsError
		if errors.As(err, &exists) {
			return nil // another server sealed it first; that record stands
		}
		return err
	})
}

// pullError answers a failed pull-through.
func (h *Handler) pullError(w http.ResponseWriter, r *http.Request, feedName, repo string, p Path, err error) {
	var refusal *upstreamRefusal
	var upErr *feed.UpstreamError
	switch {
	case errors.Is(err, feed.ErrUpstreamNotFound):
		writeError(w, http.StatusNotFound, "no file "+p.File+" (not found upstream either)")
	case errors.Is(err, feed.ErrUpstreamMismatch):
		writeError(w, http.StatusBadGateway, err.Error())
	case errors.As(err, &refusal):
		h.Audit.Record(r.Context(), audit.Event{Action: "feed.upstream_refused", Repo: repo, Result: "denied", Reason: refusal.msg, Request: r})
		writeError(w, http.StatusBadGateway, refusal.msg)
	case errors.As(err, &upErr), errors.Is(err, feed.ErrUpstreamTooLarge):
		h.Log.WarnContext(r.Context(), "maven proxy: upstream fetch failed", "feed", feedName, "file", p.File, "err", err)
		writeError(w, http.StatusBadGateway, "upstream "+h.Upstream(feedName).Base()+" did not deliver "+p.File+"; nothing stored")
	case errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, "request ended before the upstream fetch did")
	default:
		h.fail(w, r, "pull file from upstream", err)
	}
}

// checkRecorded asks upstream for its checksum of a stored file (the
// client asked for that checksum): a different one is audited
// (feed.upstream_changed); the recorded one is served either way, and
// upstream being unreachable changes nothing.
func (h *Handler) checkRecorded(ctx context.Context, r *http.Request, feedName, repo, tag string, p Path, recorded string) {
	up := h.Upstream(feedName)
	if up == nil || p.Plain {
		return
	}
	path := strings.Join(p.Group, "/") + "/" + p.Artifact + "/" + p.Version + "/" + p.File + "." + p.Checksum
	// The recorded checksum is served whatever upstream says: wait for it
	// briefly, so an upstream that does not answer slows no build.
	ctx, cancel := context.WithTimeout(ctx, tofuTimeout)
	defer cancel()
	b, _, err := up.GetDocument(ctx, up.URL(path), "text/plain")
	if err != nil {
		return
	}
	offered, ok := parseChecksum(b, p.Checksum)
	if !ok {
		return
	}
	h.Recorded(ctx, r, repo, tag, up.URL(path), p.Checksum+":"+recorded, p.Checksum+":"+offered)
}

// upstreamMetadata returns upstream's maven-metadata.xml for p with the
// stored versions added, or nil when upstream has none or cannot be
// reached (the caller then generates it from the stored files).
func (h *Handler) upstreamMetadata(ctx context.Context, feedName string, p Path, files []Stored) *Metadata {
	up := h.Upstream(feedName)
	if up == nil {
		return nil
	}
	path := strings.Join(p.Group, "/") + "/" + p.Artifact + "/"
	if p.Version != "" {
		path += p.Version + "/"
	}
	b, _, err := up.GetDocument(ctx, up.URL(path+MetadataName), "text/xml")
	if err != nil {
		if !errors.Is(err, feed.ErrUpstreamNotFound) {
			h.Log.WarnContext(ctx, "maven proxy: upstream metadata unavailable; serving what is stored", "feed", feedName, "path", path, "err", err)
		}
		return nil
	}
	m, err := ParseMetadata(b)
	if err != nil || m.GroupID != p.GroupID() || m.ArtifactID != p.Artifact {
		h.Log.WarnContext(ctx, "maven proxy: upstream metadata unreadable; serving what is stored", "feed", feedName, "path", path)
		return nil
	}
	if p.Version == "" {
		if m.Versioning == nil {
			m.Versioning = &Versioning{}
		}
		have := map[string]bool{}
		for _, v := range m.Versioning.Versions {
			have[v] = true
		}
		for _, f := range byCreated(files) {
			if !have[f.Version] {
				have[f.Version] = true
				m.Versioning.Versions = append(m.Versioning.Versions, f.Version)
			}
		}
	}
	return m
}
