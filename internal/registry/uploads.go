package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/reqbody"
)

func newUploadID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

func uploadLocation(repo, id string) string {
	return "/v2/" + repo + "/blobs/uploads/" + id
}

func blobLocation(repo string, d digest.Digest) string {
	return "/v2/" + repo + "/blobs/" + d.String()
}

// rangeHeader is the Range header value for an upload holding size bytes.
func rangeHeader(size int64) string {
	if size <= 0 {
		return "0-0"
	}
	return fmt.Sprintf("0-%d", size-1)
}

// startUpload handles POST /v2/<name>/blobs/uploads/: a cross-repository
// mount, a single-request upload (?digest=) or the start of a session.
func (reg *Registry) startUpload(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if from := q.Get("from"); from != "" {
			if !ValidName(from) {
				writeError(w, r, errorf(http.StatusBadRequest, codeNameInvalid, "invalid repository name in from"))
				return
			}
			defer reg.locks.Lock(d)()
			size, err := reg.meta.BlobSize(ctx, from, d)
			if err == nil {
				if _, err := reg.blobs.Stat(ctx, d); err == nil {
					ev := audit.Event{Action: "blob.mount", Repo: rt.repo, Digest: d, Result: "ok", Reason: "from " + from, Request: r}
					cctx := reg.changeContext(ctx, events(ev))
					if err := reg.meta.LinkBlob(cctx, rt.repo, d, size); err != nil {
						writeError(w, r, reg.internal(r, "blob link", err))
						return
					}
					if !reg.recordChange(cctx, w, r, ev) {
						return
					}
					blobCreated(w, rt.repo, d)
					return
				}
			} else if !errors.Is(err, meta.ErrNotFound) {
				writeError(w, r, reg.internal(r, "blob lookup", err))
				return
			}
		}
		// Not mountable: fall back to a new session, as the spec says.
	} else if ds := q.Get("digest"); ds != "" {
		reg.monolithicUpload(w, r, rt, ds)
		return
	}
	id := newUploadID()
	if err := reg.blobs.CreateUpload(ctx, id); err != nil {
		writeError(w, r, reg.internal(r, "create upload", err))
		return
	}
	now := reg.now()
	if err := reg.meta.CreateUpload(sessionContext(ctx), meta.Upload{ID: id, Repo: rt.repo, Created: now, Updated: now}); err != nil {
		_ = reg.blobs.AbortUpload(ctx, id)
		writeError(w, r, reg.internal(r, "record upload", err))
		return
	}
	h := w.Header()
	h.Set("Location", uploadLocation(rt.repo, id))
	h.Set("Docker-Upload-UUID", id)
	h.Set("Range", "0-0")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// monolithicUpload stores the request body as blob ds in one request.
func (reg *Registry) monolithicUpload(w http.ResponseWriter, r *http.Request, rt route, ds string) {
	ctx := r.Context()
	d, err := parseDigest(ds)
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer reg.locks.Lock(d)()
	n, err := reg.blobs.Put(ctx, d, r.ContentLength, r.Body)
	if err != nil {
		reg.writeCommitError(w, r, rt, d, err)
		return
	}
	ev := audit.Event{Action: "blob.upload", Repo: rt.repo, Digest: d, Result: "ok", Request: r}
	cctx := reg.changeContext(ctx, events(ev))
	if err := reg.meta.LinkBlob(cctx, rt.repo, d, n); err != nil {
		writeError(w, r, reg.internal(r, "blob link", err))
		return
	}
	if !reg.recordChange(cctx, w, r, ev) {
		return
	}
	blobCreated(w, rt.repo, d)
}

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", blobLocation(repo, d))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (reg *Registry) writeCommitError(w http.ResponseWriter, r *http.Request, rt route, d digest.Digest, err error) {
	switch {
	case errors.Is(err, blob.ErrDigestMismatch):
		reg.audit.Record(r.Context(), audit.Event{Action: "blob.upload", Repo: rt.repo, Digest: d, Result: "invalid", Reason: "digest mismatch", Request: r})
		writeError(w, r, errorf(http.StatusBadRequest, codeDigestInvalid, "uploaded content does not match digest %s", d))
	case errors.Is(err, blob.ErrSizeMismatch):
		reg.audit.Record(r.Context(), audit.Event{Action: "blob.upload", Repo: rt.repo, Digest: d, Result: "invalid", Reason: "size mismatch", Request: r})
		writeError(w, r, errorf(http.StatusBadRequest, codeSizeInvalid, "uploaded content length does not match Content-Length"))
	case errors.Is(err, blob.ErrUnsupportedDigest):
		writeError(w, r, errorf(http.StatusBadRequest, codeDigestInvalid, "unsupported digest %s", d))
	default:
		if be := reqbody.Failed(r, err); be != nil && r.Context().Err() == nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			reg.unreadableBody(w, r, be)
			return
		}
		if r.Context().Err() != nil || errors.Is(err, io.ErrUnexpectedEOF) {
			// The body was cut short or the client went away; nothing is
			// visible. Answer anyway: a handler that writes nothing makes
			// net/http send 200 OK.
			writeError(w, r, errorf(http.StatusBadRequest, codeBlobUploadInvalid, "upload body incomplete"))
			return
		}
		writeError(w, r, reg.internal(r, "store blob", err))
	}
}

// sessionContext returns the context for the writes that start an upload
// session and record its offset: they skip their own flush
// (meta.FlushLater), and nothing in their request flushes them; the next
// flushing commit, such as the closing PUT's, does. A crash of the machine
// before it may lose them, which costs the client its upload and nothing
// else, as losing the session's bytes does (blob.Store keeps them durable
// only once committed): a session unknown to the store answers
// BLOB_UPLOAD_UNKNOWN, one whose bytes fall short of its recorded offset
// is discarded (appendChunk), and one recorded at an older offset
// continues from there, so the client's next chunk is refused by its
// Content-Range or lands at the wrong place, which the digest check of
// the closing PUT refuses. A blob the registry acknowledges is flushed
// before it answers (changeContext and the blob store's commit).
func sessionContext(ctx context.Context) context.Context {
	return meta.FlushLater(ctx)
}

// lockUpload serializes requests on one upload session.
func (reg *Registry) lockUpload(id string) func() {
	v, _ := reg.uploadLocks.LoadOrStore(id, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// session loads the upload session named by the route and checks it
// belongs to the route's repository.
func (reg *Registry) session(r *http.Request, rt route) (meta.Upload, error) {
	u, err := reg.meta.GetUpload(r.Context(), rt.ref)
	if err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return u, errorf(http.StatusNotFound, codeBlobUploadUnknown, "upload unknown")
		}
		return u, reg.internal(r, "upload lookup", err)
	}
	if u.Repo != rt.repo {
		return u, errorf(http.StatusNotFound, codeBlobUploadUnknown, "upload unknown")
	}
	return u, nil
}

func (reg *Registry) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) {
	u, err := reg.session(r, rt)
	if err != nil {
		writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Location", uploadLocation(rt.repo, u.ID))
	h.Set("Docker-Upload-UUID", u.ID)
	h.Set("Range", rangeHeader(u.Offset))
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}

// parseContentRange parses the spec's "<start>-<end>" (inclusive); a
// "bytes " or "bytes=" prefix is tolerated.
func parseContentRange(s string) (start, end int64, err error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "bytes=")
	s = strings.TrimPrefix(s, "bytes ")
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", truncate(s, 100))
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	// end-start+1 must not overflow: appendChunk takes a negative length
	// for "unknown".
	if err1 != nil || err2 != nil || start < 0 || end < start || end-start == math.MaxInt64 || a[0] == '+' || b[0] == '+' {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", truncate(s, 100))
	}
	return start, end, nil
}

// appendChunk writes the request body to the session at its acknowledged
// offset, honouring Content-Range and Content-Length, and records the new
// offset. It returns the session as updated.
func (reg *Registry) appendChunk(w http.ResponseWriter, r *http.Request, rt route, u meta.Upload) (meta.Upload, bool) {
	ctx := r.Context()
	body := io.Reader(r.Body)
	want := int64(-1)
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, err := parseContentRange(cr)
		if err != nil {
			w.Header().Set("Range", rangeHeader(u.Offset))
			writeError(w, r, errorf(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid, "%v", err))
			return u, false
		}
		if start != u.Offset {
			w.Header().Set("Location", uploadLocation(rt.repo, u.ID))
			w.Header().Set("Range", rangeHeader(u.Offset))
			writeError(w, r, errorf(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
				"chunk starts at %d but the upload holds %d bytes", start, u.Offset))
			return u, false
		}
		want = end - start + 1
		if r.ContentLength >= 0 && r.ContentLength != want {
			w.Header().Set("Range", rangeHeader(u.Offset))
			writeError(w, r, errorf(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
				"Content-Range covers %d bytes but Content-Length is %d", want, r.ContentLength))
			return u, false
		}
	} else if r.ContentLength >= 0 {
		want = r.ContentLength
	}
	if want >= 0 {
		body = io.LimitReader(body, want)
	}
	size, err := reg.blobs.Append(ctx, u.ID, u.Offset, body)
	if err != nil {
		if errors.Is(err, blob.ErrUploadNotFound) {
			writeError(w, r, errorf(http.StatusNotFound, codeBlobUploadUnknown, "upload unknown"))
			return u, false
		}
		if errors.Is(err, blob.ErrOffset) {
			// The upload holds fewer bytes than the session acknowledged:
			// a crash of the machine lost some (blob.Store keeps an
			// upload's bytes durable only once committed). The session
			// cannot continue; the client starts over.
			reg.log.WarnContext(ctx, "upload session lost acknowledged bytes in a crash; discarding it", "id", u.ID, "err", err)
			if err := reg.blobs.AbortUpload(ctx, u.ID); err != nil && !errors.Is(err, blob.ErrUploadNotFound) {
				writeError(w, r, reg.internal(r, "abort upload", err))
				return u, false
			}
			if err := reg.meta.DeleteUpload(ctx, u.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
				writeError(w, r, reg.internal(r, "delete upload", err))
				return u, false
			}
			writeError(w, r, errorf(http.StatusNotFound, codeBlobUploadUnknown, "upload unknown"))
			return u, false
		}
		if ctx.Err() != nil || errors.Is(err, io.ErrUnexpectedEOF) {
			// Body cut short: nothing past the acknowledged offset counts.
			// Answer anyway, or net/http would send 200 OK.
			w.Header().Set("Range", rangeHeader(u.Offset))
			writeError(w, r, errorf(http.StatusBadRequest, codeBlobUploadInvalid, "upload body incomplete"))
			return u, false
		}
		if be := reqbody.Failed(r, err); be != nil {
			w.Header().Set("Range", rangeHeader(u.Offset))
			reg.unreadableBody(w, r, be)
			return u, false
		}
		writeError(w, r, reg.internal(r, "append upload", err))
		return u, false
	}
	if want >= 0 && size-u.Offset != want {
		// Short body: nothing past the acknowledged offset counts; the
		// next append truncates it.
		w.Header().Set("Range", rangeHeader(u.Offset))
		writeError(w, r, errorf(http.StatusBadRequest, codeBlobUploadInvalid,
			"received %d bytes, expected %d", size-u.Offset, want))
		return u, false
	}
	if size != u.Offset {
		if err := reg.meta.UpdateUpload(sessionContext(ctx), u.ID, size); err != nil {
			writeError(w, r, reg.internal(r, "record upload offset", err))
			return u, false
		}
		u.Offset = size
	}
	return u, true
}

func (reg *Registry) patchUpload(w http.ResponseWriter, r *http.Request, rt route) {
	defer reg.lockUpload(rt.ref)()
	u, err := reg.session(r, rt)
	if err != nil {
		writeError(w, r, err)
		return
	}
	u, ok := reg.appendChunk(w, r, rt, u)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Location", uploadLocation(rt.repo, u.ID))
	h.Set("Docker-Upload-UUID", u.ID)
	h.Set("Range", rangeHeader(u.Offset))
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// putUpload closes a session: an optional last chunk, then the digest check.
func (reg *Registry) putUpload(w http.ResponseWriter, r *http.Request, rt route) {
	defer reg.lockUpload(rt.ref)()
	ctx := r.Context()
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	u, err := reg.session(r, rt)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if _, err := reg.blobs.UploadSize(ctx, u.ID); errors.Is(err, blob.ErrUploadNotFound) {
		reg.finishCommitted(w, r, rt, u, d)
		return
	}
	// Always append, even an empty body: it also discards bytes a crashed
	// request left past the acknowledged offset.
	u, ok := reg.appendChunk(w, r, rt, u)
	if !ok {
		return
	}
	defer reg.locks.Lock(d)()
	n, err := reg.blobs.CommitUpload(ctx, u.ID, d, u.Offset)
	if err != nil {
		if errors.Is(err, blob.ErrUploadNotFound) {
			writeError(w, r, errorf(http.StatusNotFound, codeBlobUploadUnknown, "upload unknown"))
			return
		}
		reg.writeCommitError(w, r, rt, d, err)
		return
	}
	if err := reg.meta.LinkBlob(reg.changeContext(ctx, nil), rt.repo, d, n); err != nil {
		writeError(w, r, reg.internal(r, "blob link", err))
		return
	}
	// The session's deletion is the change's last write: it carries the
	// entry.
	ev := audit.Event{Action: "blob.upload", Repo: rt.repo, Digest: d, Result: "ok", Request: r}
	cctx := reg.changeContext(ctx, events(ev))
	if err := reg.meta.DeleteUpload(cctx, u.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
		reg.log.WarnContext(ctx, "upload session left behind", "id", u.ID, "err", err)
	}
	reg.uploadLocks.Delete(u.ID)
	if !reg.recordChange(cctx, w, r, ev) {
		return
	}
	blobCreated(w, rt.repo, d)
}

// finishCommitted answers a closing PUT on a session whose bytes the blob
// store no longer holds as an upload: an earlier PUT committed them, then
// the process died before it linked the blob or removed the session. The
// retried PUT succeeds if the blob it names is the one committed: linked
// into the repository already with the session's size, or stored with that
// size and linked nowhere (so no other repository's blob is exposed).
// Anything else, or a PUT carrying more bytes, is an unknown upload.
func (reg *Registry) finishCommitted(w http.ResponseWriter, r *http.Request, rt route, u meta.Upload, d digest.Digest) {
	ctx := r.Context()
	unknown := errorf(http.StatusNotFound, codeBlobUploadUnknown, "upload unknown")
	if r.ContentLength != 0 {
		writeError(w, r, unknown)
		return
	}
	defer reg.locks.Lock(d)()
	size, err := reg.meta.BlobSize(ctx, rt.repo, d)
	switch {
	case err == nil:
		if size != u.Offset {
			writeError(w, r, unknown)
			return
		}
	case errors.Is(err, meta.ErrNotFound):
		n, err := reg.blobs.Stat(ctx, d)
		if errors.Is(err, blob.ErrNotFound) || (err == nil && n != u.Offset) {
			writeError(w, r, unknown)
			return
		}
		if err != nil {
			writeError(w, r, reg.internal(r, "blob lookup", err))
			return
		}
		linked, err := reg.meta.BlobLinked(ctx, d)
		if err != nil {
			writeError(w, r, reg.internal(r, "blob lookup", err))
			return
		}
		if linked {
			writeError(w, r, unknown)
			return
		}
		if err := reg.meta.LinkBlob(reg.changeContext(ctx, nil), rt.repo, d, n); err != nil {
			writeError(w, r, reg.internal(r, "blob link", err))
			return
		}
	default:
		writeError(w, r, reg.internal(r, "blob lookup", err))
		return
	}
	ev := audit.Event{Action: "blob.upload", Repo: rt.repo, Digest: d, Result: "ok", Reason: "completed after restart", Request: r}
	cctx := reg.changeContext(ctx, events(ev))
	if err := reg.meta.DeleteUpload(cctx, u.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
		reg.log.WarnContext(ctx, "upload session left behind", "id", u.ID, "err", err)
	}
	reg.uploadLocks.Delete(u.ID)
	if !reg.recordChange(cctx, w, r, ev) {
		return
	}
	blobCreated(w, rt.repo, d)
}

func (reg *Registry) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) {
	defer reg.lockUpload(rt.ref)()
	ctx := r.Context()
	u, err := reg.session(r, rt)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := reg.blobs.AbortUpload(ctx, u.ID); err != nil && !errors.Is(err, blob.ErrUploadNotFound) {
		writeError(w, r, reg.internal(r, "abort upload", err))
		return
	}
	if err := reg.meta.DeleteUpload(ctx, u.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
		writeError(w, r, reg.internal(r, "delete upload", err))
		return
	}
	reg.uploadLocks.Delete(u.ID)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}
