package registry

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/meta"
)

// parseDigest validates a digest from a request: a supported algorithm
// (sha256, sha512) and lowercase hex of the right length.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err == nil {
		err = blob.Supported(d)
	}
	if err != nil {
		return "", errorf(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q: %v", truncate(s, 200), err)
	}
	return d, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// linkedBlob parses the route's digest and checks that the blob is linked
// into the route's repository.
func (reg *Registry) linkedBlob(r *http.Request, rt route) (digest.Digest, error) {
	d, err := parseDigest(rt.ref)
	if err != nil {
		return "", err
	}
	if _, err := reg.meta.BlobSize(r.Context(), rt.repo, d); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return "", errorf(http.StatusNotFound, codeBlobUnknown, "blob unknown to repository")
		}
		return "", reg.internal(r, "blob lookup", err)
	}
	return d, nil
}

// getBlob serves GET and HEAD of a blob linked into the repository, with
// Range support. The bytes are copied through copyWriter's buffers, not
// sent with sendfile(2) (see copyWriter).
func (reg *Registry) getBlob(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := reg.linkedBlob(r, rt)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ctx := r.Context()
	if reg.redirect != nil && r.Method == http.MethodGet {
		// The object store serves the bytes itself (a presigned URL):
		// clients verify the digest, as they always must.
		if u, err := reg.redirect(ctx, d); err == nil {
			w.Header().Set("Docker-Content-Digest", d.String())
			http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
			return
		} else {
			reg.log.Warn("blob redirect failed; serving the blob directly", "digest", d, "err", err)
		}
	}
	var content io.ReadSeeker
	if r.Method == http.MethodHead {
		// Headers only: the store's size, nothing opened or verified.
		size, err := reg.blobs.Stat(ctx, d)
		if err != nil {
			if errors.Is(err, blob.ErrNotFound) {
				writeError(w, r, errorf(http.StatusNotFound, codeBlobUnknown, "blob unknown to registry"))
				return
			}
			writeError(w, r, reg.internal(r, "blob stat", err))
			return
		}
		content = sizeOnly(size)
	} else {
		f, err := reg.openVerified(r, d)
		if err != nil {
			writeError(w, r, err)
			return
		}
		defer f.Close()
		content = f
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000, immutable")
	http.ServeContent(copyWriter{w}, r, "", time.Time{}, content)
}

// sizeOnly stands for a blob's content in a HEAD response: http.ServeContent
// seeks it to learn the size and, for a HEAD, reads nothing.
type sizeOnly int64

var errHeadRead = errors.New("registry: HEAD response content read")

func (s sizeOnly) Seek(offset int64, whence int) (int64, error) {
	if whence == io.SeekEnd {
		offset += int64(s)
	}
	return offset, nil
}

func (sizeOnly) Read([]byte) (int, error) { return 0, errHeadRead }

// copyBufSize is the size of the buffers blob downloads are copied
// through: large enough that the copy costs few system calls (a 512 MiB
// blob takes 0.1 s of server CPU), small enough for many downloads at once.
const copyBufSize = 256 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyWriter copies a response body with write(2) from a pooled buffer
// instead of letting net/http hand an *os.File to sendfile(2). sendfile
// costs the server least, but it queues the data faster than a client
// verifying the digest reads it, and the kernel then sends the rest from
// the client's own acknowledgements, in the client's context: on one
// machine, clients spent 15-20 % more CPU per blob pulled from custody
// than from the reference registry, and a client hashing what it reads is
// what limits a pull (profiles in docs/performance.md). Writing from the
// server's own context keeps that work on the server's side.
type copyWriter struct{ http.ResponseWriter }

func (w copyWriter) ReadFrom(src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// Plain wrappers, so that io.CopyBuffer uses the buffer instead of
	// the writer's ReadFrom or the file's WriteTo.
	return io.CopyBuffer(struct{ io.Writer }{w.ResponseWriter}, struct{ io.Reader }{src}, *bp)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w copyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// deleteBlob unlinks a blob from the repository. The bytes stay in the
// store (other repositories or manifests may share them) until garbage
// collection decides they are unreferenced.
func (reg *Registry) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := reg.linkedBlob(r, rt)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ctx := r.Context()
	if err := reg.policy.CheckDeleteBlob(ctx, rt.repo, d); err != nil {
		reg.audit.Record(ctx, audit.Event{Action: "blob.delete", Repo: rt.repo, Digest: d, Result: "denied", Reason: err.Error(), Request: r})
		writeError(w, r, denied(err))
		return
	}
	ev := audit.Event{Action: "blob.delete", Repo: rt.repo, Digest: d, Result: "ok", Request: r}
	cctx := reg.changeContext(ctx, events(ev))
	if err := reg.meta.UnlinkBlob(cctx, rt.repo, d); err != nil && !errors.Is(err, meta.ErrNotFound) {
		writeError(w, r, reg.internal(r, "blob unlink", err))
		return
	}
	if !reg.recordChange(cctx, w, r, ev) {
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// denied turns a policy refusal into the spec's DENIED error.
func denied(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	// The sentinel's own "denied: " prefix would repeat the DENIED code.
	return errorf(http.StatusForbidden, codeDenied, "%s", strings.TrimPrefix(err.Error(), ErrDenied.Error()+": "))
}
