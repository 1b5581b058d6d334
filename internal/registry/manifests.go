package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/meta"
)

// resolve turns a manifest reference (tag or digest) into a digest.
func (reg *Registry) resolve(r *http.Request, repo, ref string) (digest.Digest, error) {
	if isDigestRef(ref) {
		return parseDigest(ref)
	}
	if !ValidTag(ref) {
		return "", errorf(http.StatusBadRequest, codeManifestInvalid, "invalid tag %q", truncate(ref, 200))
	}
	d, err := reg.meta.ResolveTag(r.Context(), repo, ref)
	if err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return "", errorf(http.StatusNotFound, codeManifestUnknown, "manifest unknown: tag %s", ref)
		}
		return "", reg.internal(r, "resolve tag", err)
	}
	return d, nil
}

// isDigestRef reports whether a manifest reference names a digest (tags
// cannot contain ':').
func isDigestRef(ref string) bool {
	return strings.Contains(ref, ":")
}

func (reg *Registry) getManifest(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	d, err := reg.resolve(r, rt.repo, rt.ref)
	if err != nil {
		writeError(w, r, err)
		return
	}
	m, err := reg.meta.GetManifest(ctx, rt.repo, d)
	if err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			writeError(w, r, errorf(http.StatusNotFound, codeManifestUnknown, "manifest unknown"))
			return
		}
		writeError(w, r, reg.internal(r, "manifest lookup", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	f, size, err := reg.blobs.Open(ctx, d)
	if err != nil {
		h.Del("Content-Length")
		if errors.Is(err, blob.ErrNotFound) {
			writeError(w, r, errorf(http.StatusNotFound, codeManifestUnknown, "manifest content missing from store"))
			return
		}
		writeError(w, r, reg.internal(r, "manifest open", err))
		return
	}
	defer f.Close()
	if size != m.Size {
		h.Del("Content-Length")
		writeError(w, r, reg.internal(r, "manifest size", errors.New("stored manifest size differs from record")))
		return
	}
	// A manifest is small (at most MaxManifestSize): read it whole and
	// check the bytes about to be sent, instead of asking the Verifier,
	// which costs an object store a HEAD request (and a full read when it
	// has not seen the object's version verified).
	body, err := io.ReadAll(io.LimitReader(f, m.Size+1))
	if err == nil && int64(len(body)) != m.Size {
		err = fmt.Errorf("read %d bytes of a %d-byte manifest", len(body), m.Size)
	}
	if err != nil {
		h.Del("Content-Length")
		writeError(w, r, reg.internal(r, "manifest read", err))
		return
	}
	if err := reg.verifyContent(r, d, body); err != nil {
		h.Del("Content-Length")
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// readManifestBody reads at most max bytes; larger bodies are refused with
// 413 before more is read.
func readManifestBody(r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, errorf(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest exceeds %d bytes", max)
	}
	buf := bytes.Buffer{}
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, codeManifestInvalid, "reading manifest: %v", err)
	}
	if n > max {
		return nil, errorf(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest exceeds %d bytes", max)
	}
	if r.ContentLength >= 0 && n != r.ContentLength {
		return nil, errorf(http.StatusBadRequest, codeSizeInvalid, "manifest length %d does not match Content-Length %d", n, r.ContentLength)
	}
	return buf.Bytes(), nil
}

func (reg *Registry) putManifest(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	refIsDigest := isDigestRef(rt.ref)
	var tags []string
	if !refIsDigest {
		if !ValidTag(rt.ref) {
			writeError(w, r, errorf(http.StatusBadRequest, codeManifestInvalid, "invalid tag %q", truncate(rt.ref, 200)))
			return
		}
		tags = append(tags, rt.ref)
	}
	for _, t := range r.URL.Query()["tag"] {
		if !ValidTag(t) {
			writeError(w, r, errorf(http.StatusBadRequest, codeManifestInvalid, "invalid tag %q", truncate(t, 200)))
			return
		}
		tags = append(tags, t)
	}
	tags = dedupe(tags)
	var want digest.Digest
	if refIsDigest {
		d, err := parseDigest(rt.ref)
		if err != nil {
			writeError(w, r, err)
			return
		}
		want = d
	}
	body, err := readManifestBody(r, reg.maxManifest)
	if err != nil {
		reg.audit.Record(ctx, audit.Event{Action: "manifest.put", Repo: rt.repo, Result: "invalid", Reason: err.Error(), Request: r})
		writeError(w, r, err)
		return
	}
	d := digest.FromBytes(body)
	// The current value of the tag named in the path, read once for the
	// algorithm below and the tag policy's pre-check.
	var refCur digest.Digest
	var refErr error
	if want == "" {
		// A tag keeps the algorithm it was given: re-pushing the bytes a
		// tag already points at (say, under sha512) answers with that
		// digest instead of moving the tag to the sha256 of the same bytes.
		refCur, refErr = reg.meta.ResolveTag(ctx, rt.repo, rt.ref)
		if cur := refCur; refErr == nil &&
			cur.Algorithm() != d.Algorithm() && cur.Algorithm().Available() && cur.Algorithm().FromBytes(body) == cur {
			d = cur
		}
	}
	if want != "" {
		if got := want.Algorithm().FromBytes(body); got != want {
			reg.audit.Record(ctx, audit.Event{Action: "manifest.put", Repo: rt.repo, Digest: want, Result: "invalid", Reason: "digest mismatch", Request: r})
			writeError(w, r, errorf(http.StatusBadRequest, codeDigestInvalid, "manifest content has digest %s, not %s", got, want))
			return
		}
		d = want
	}
	p, err := ParseManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		reg.audit.Record(ctx, audit.Event{Action: "manifest.put", Repo: rt.repo, Digest: d, Result: "invalid", Reason: err.Error(), Request: r})
		writeError(w, r, errorf(http.StatusBadRequest, codeManifestInvalid, "%v", err))
		return
	}
	m := meta.Manifest{
		Repo:         rt.repo,
		Digest:       d,
		MediaType:    p.MediaType,
		Size:         int64(len(body)),
		ArtifactType: p.ArtifactType,
		Annotations:  p.Annotations,
		Created:      reg.now().UTC(),
	}
	if p.Subject != nil {
		m.Subject = p.Subject.Digest
	}
	if err := reg.checkReferences(r, rt.repo, p, &m); err != nil {
		reg.audit.Record(ctx, audit.Event{Action: "manifest.put", Repo: rt.repo, Digest: d, Result: "invalid", Reason: err.Error(), Request: r})
		writeError(w, r, err)
		return
	}
	err = reg.policy.CheckManifest(ctx, m)
	if bp, ok := reg.policy.(BlobPolicy); ok && err == nil && !p.IsIndex() {
		err = bp.CheckBlobs(ctx, m, blobDescriptors(p))
	}
	if err != nil {
		reg.audit.Record(ctx, audit.Event{Action: "manifest.put", Repo: rt.repo, Digest: d, Result: "denied", Reason: err.Error(), Request: r})
		writeError(w, r, denied(err))
		return
	}
	// Ask the tag policy before anything is stored, so that a refused tag
	// leaves nothing behind. The check runs again inside the transaction
	// recording the manifest, against the tag's value at commit.
	for _, t := range tags {
		cur, err := refCur, refErr
		if refIsDigest || t != rt.ref {
			cur, err = reg.meta.ResolveTag(ctx, rt.repo, t)
		}
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			writeError(w, r, reg.internal(r, "resolve tag", err))
			return
		}
		if cur == d {
			continue
		}
		if err := reg.policy.CheckTag(ctx, rt.repo, t, cur, d); err != nil {
			reg.audit.Record(ctx, audit.Event{Action: "tag.move", Repo: rt.repo, Digest: d, Tag: t, Result: "denied", Reason: err.Error(), Request: r})
			writeError(w, r, denied(err))
			return
		}
	}
	// Bytes first, then the record: a crash in between leaves an
	// unreferenced blob for GC, never a record without content. The
	// digest lock keeps GC from deleting the bytes before the record
	// commits.
	defer reg.locks.Lock(d)()
	if _, err := reg.blobs.Put(ctx, d, m.Size, bytes.NewReader(body)); err != nil {
		writeError(w, r, reg.internal(r, "store manifest", err))
		return
	}
	moved := map[string]digest.Digest{}
	var refusedTag string
	check := func(tag string, current, next digest.Digest) error {
		if current == next {
			// A retried transaction may find the tag already here:
			// forget what an earlier attempt saw move.
			delete(moved, tag)
			return nil
		}
		if err := reg.policy.CheckTag(ctx, rt.repo, tag, current, next); err != nil {
			refusedTag = tag
			return err
		}
		moved[tag] = current
		return nil
	}
	// The verified put: what m references is re-checked in the
	// transaction recording it, which garbage collection serialises with
	// (meta.Store.PutManifestVerified).
	// The change's events: the manifest, and each tag the put set or
	// moved (check, called in the put's transaction, collects them).
	changed := func() []audit.Event {
		events := []audit.Event{{Action: "manifest.put", Repo: rt.repo, Digest: d, Result: "ok", Request: r}}
		for _, t := range tags {
			if prev, ok := moved[t]; ok {
				reason := "created"
				if prev != "" {
					reason = "moved from " + prev.String()
				}
				events = append(events, audit.Event{Action: "tag.set", Repo: rt.repo, Digest: d, Tag: t, Result: "ok", Reason: reason, Request: r})
			}
		}
		return events
	}
	cctx := reg.changeContext(ctx, changed)
	if err := reg.meta.PutManifestVerified(cctx, m, tags, check); err != nil {
		var e *Error
		if errors.Is(err, meta.ErrReferenceGone) {
			reg.audit.Record(ctx, audit.Event{Action: "manifest.put", Repo: rt.repo, Digest: d, Result: "invalid", Reason: err.Error(), Request: r})
			writeError(w, r, errorf(http.StatusBadRequest, codeManifestBlobUnknown, "content the manifest references was deleted meanwhile: %v", err))
			return
		}
		if errors.Is(err, ErrDenied) || errors.As(err, &e) {
			reg.audit.Record(ctx, audit.Event{Action: "tag.move", Repo: rt.repo, Digest: d, Tag: refusedTag, Result: "denied", Reason: err.Error(), Request: r})
			writeError(w, r, denied(err))
			return
		}
		writeError(w, r, reg.internal(r, "record manifest", err))
		return
	}
	if !reg.recordChange(cctx, w, r, changed()...) {
		return
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.repo+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if p.Subject != nil {
		h.Set("OCI-Subject", p.Subject.Digest.String())
	}
	// A client pushing with ?tag= learns which tags now point here: one
	// OCI-Tag header per tag (distribution-spec, "Pushing Manifests with
	// tags"); without it clients take ?tag= as unsupported.
	for _, t := range r.URL.Query()["tag"] {
		if !slices.Contains(h.Values("OCI-Tag"), t) {
			h.Add("OCI-Tag", t)
		}
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// checkReferences verifies that everything a manifest references is in the
// repository, and fills the record's reference lists.
func (reg *Registry) checkReferences(r *http.Request, repo string, p *ParsedManifest, m *meta.Manifest) error {
	ctx := r.Context()
	if p.IsIndex() {
		for _, c := range p.Manifests {
			if _, err := reg.meta.GetManifest(ctx, repo, c.Digest); err != nil {
				if errors.Is(err, meta.ErrNotFound) {
					return &Error{Status: http.StatusBadRequest, Code: codeManifestBlobUnknown,
						Message: "index references a manifest unknown to the repository", Detail: map[string]string{"digest": c.Digest.String()}}
				}
				return reg.internal(r, "manifest lookup", err)
			}
			m.Manifests = append(m.Manifests, c.Digest)
		}
		return nil
	}
	blobs := append([]descriptor{*p.Config}, p.Layers...)
	for _, b := range blobs {
		size, err := reg.meta.BlobSize(ctx, repo, b.Digest)
		if err != nil {
			if errors.Is(err, meta.ErrNotFound) && nonDistributable(b) {
				continue
			}
			if errors.Is(err, meta.ErrNotFound) {
				return &Error{Status: http.StatusBadRequest, Code: codeManifestBlobUnknown,
					Message: "manifest references a blob unknown to the repository", Detail: map[string]string{"digest": b.Digest.String()}}
			}
			return reg.internal(r, "blob lookup", err)
		}
		if size != b.Size {
			return errorf(http.StatusBadRequest, codeManifestInvalid, "descriptor of %s says %d bytes, the blob has %d", b.Digest, b.Size, size)
		}
		m.Blobs = append(m.Blobs, b.Digest)
	}
	return nil
}

// blobDescriptors returns the config and layer descriptors of an image manifest.
func blobDescriptors(p *ParsedManifest) []meta.Descriptor {
	var out []meta.Descriptor
	for _, b := range append([]descriptor{*p.Config}, p.Layers...) {
		out = append(out, meta.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size})
	}
	return out
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func (reg *Registry) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	if !isDigestRef(rt.ref) {
		reg.deleteTag(w, r, rt)
		return
	}
	d, err := parseDigest(rt.ref)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if _, err := reg.meta.GetManifest(ctx, rt.repo, d); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			writeError(w, r, errorf(http.StatusNotFound, codeManifestUnknown, "manifest unknown"))
			return
		}
		writeError(w, r, reg.internal(r, "manifest lookup", err))
		return
	}
	if err := reg.policy.CheckDeleteManifest(ctx, rt.repo, d); err != nil {
		reg.audit.Record(ctx, audit.Event{Action: "manifest.delete", Repo: rt.repo, Digest: d, Result: "denied", Reason: err.Error(), Request: r})
		writeError(w, r, denied(err))
		return
	}
	// The entry names the tags the deletion removed, which only
	// DeleteManifest's answer tells: it is stored after the write.
	cctx := reg.changeContext(ctx, nil)
	tags, err := reg.meta.DeleteManifest(cctx, rt.repo, d)
	if err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			writeError(w, r, errorf(http.StatusNotFound, codeManifestUnknown, "manifest unknown"))
			return
		}
		writeError(w, r, reg.internal(r, "manifest delete", err))
		return
	}
	if !reg.recordChange(cctx, w, r, audit.Event{Action: "manifest.delete", Repo: rt.repo, Digest: d, Result: "ok", Reason: tagsReason(tags), Request: r}) {
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

func tagsReason(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	s := "removed tags:"
	for _, t := range tags {
		s += " " + t
	}
	return s
}

func (reg *Registry) deleteTag(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	if !ValidTag(rt.ref) {
		writeError(w, r, errorf(http.StatusBadRequest, codeManifestInvalid, "invalid tag %q", truncate(rt.ref, 200)))
		return
	}
	cur, err := reg.meta.ResolveTag(ctx, rt.repo, rt.ref)
	if err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			writeError(w, r, errorf(http.StatusNotFound, codeManifestUnknown, "tag unknown"))
			return
		}
		writeError(w, r, reg.internal(r, "resolve tag", err))
		return
	}
	if err := reg.policy.CheckDeleteTag(ctx, rt.repo, rt.ref, cur); err != nil {
		reg.audit.Record(ctx, audit.Event{Action: "tag.delete", Repo: rt.repo, Tag: rt.ref, Digest: cur, Result: "denied", Reason: err.Error(), Request: r})
		writeError(w, r, denied(err))
		return
	}
	ev := audit.Event{Action: "tag.delete", Repo: rt.repo, Tag: rt.ref, Digest: cur, Result: "ok", Request: r}
	cctx := reg.changeContext(ctx, events(ev))
	if err := reg.meta.DeleteTag(cctx, rt.repo, rt.ref); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			writeError(w, r, errorf(http.StatusNotFound, codeManifestUnknown, "tag unknown"))
			return
		}
		writeError(w, r, reg.internal(r, "tag delete", err))
		return
	}
	if !reg.recordChange(cctx, w, r, ev) {
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}
