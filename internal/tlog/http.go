package tlog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/custody-dev/custody/internal/problem"
)

// MaxEntries caps the entries one GET /api/v1/audit/entries returns.
const MaxEntries = 1000

// EntryJSON is one entry as the API returns it. Entry is the leaf's exact
// bytes (canonical JSON) as a string, so re-encoding cannot change them.
type EntryJSON struct {
	Index    uint64 `json:"index"`
	Entry    string `json:"entry"`
	LeafHash string `json:"leafHash"` // hex
}

// EntriesResponse is the body of GET /api/v1/audit/entries and search.
type EntriesResponse struct {
	Size    uint64      `json:"size"` // current tree size
	Entries []EntryJSON `json:"entries"`
}

// ProofResponse is the body of the proof endpoints. Hashes are base64.
type ProofResponse struct {
	Index    *uint64  `json:"index,omitempty"`
	LeafHash string   `json:"leafHash,omitempty"` // hex
	From     uint64   `json:"from,omitempty"`
	Size     uint64   `json:"size"`
	Root     []byte   `json:"root"`
	Hashes   [][]byte `json:"hashes"`
}

// Handler serves the read-only audit API and on-demand checkpoints.
type Handler struct {
	Log    *Log
	Logger *slog.Logger
	// Holdings, when set, serves GET /api/v1/audit/reconcile: the tags
	// whose current target the log does not record.
	Holdings Holdings
}

// Register adds the /api/v1/audit/ routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/audit/key", h.key)
	mux.HandleFunc("GET /api/v1/audit/checkpoint", h.checkpoint)
	mux.HandleFunc("POST /api/v1/audit/checkpoint", h.sign)
	mux.HandleFunc("GET /api/v1/audit/entries", h.entries)
	mux.HandleFunc("GET /api/v1/audit/proof/inclusion", h.inclusion)
	mux.HandleFunc("GET /api/v1/audit/proof/consistency", h.consistency)
	mux.HandleFunc("GET /api/v1/audit/search", h.search)
	mux.HandleFunc("GET /api/v1/audit/verify", h.verify)
	if h.Holdings != nil {
		mux.HandleFunc("GET /api/v1/audit/reconcile", h.reconcile)
	}
}

func (h *Handler) reconcile(w http.ResponseWriter, r *http.Request) {
	rec, err := h.Log.Reconcile(r.Context(), h.Holdings)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	problem.JSON(w, http.StatusOK, rec)
}

func text(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(b)
}

func (h *Handler) key(w http.ResponseWriter, _ *http.Request) {
	text(w, []byte(h.Log.VerifierKey()+"\n"))
}

func (h *Handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := h.Log.Latest(r.Context())
	if errors.Is(err, ErrNotFound) {
		problem.Write(w, problem.NotFound, "no checkpoint has been signed yet (POST /api/v1/audit/checkpoint)")
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	text(w, cp.Note)
}

func (h *Handler) sign(w http.ResponseWriter, r *http.Request) {
	h.Log.Flush()
	cp, err := h.Log.Checkpoint(r.Context())
	if errors.Is(err, ErrInconsistent) {
		problem.Write(w, problem.AuditInconsistent, err.Error())
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	text(w, cp.Note)
}

func (h *Handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	problem.Fail(w, r, h.Logger, "audit API", err)
}

func badRequest(w http.ResponseWriter, detail string) {
	problem.Write(w, problem.Invalid, detail)
}

// uintParam parses query parameter name; def when absent.
func uintParam(r *http.Request, name string, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s must be a non-negative integer", name)
	}
	return n, nil
}

func (h *Handler) entries(w http.ResponseWriter, r *http.Request) {
	size := h.Log.Size()
	start, err := uintParam(r, "start", 0)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	end, err := uintParam(r, "end", size)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	if end < start {
		badRequest(w, "end must not be less than start")
		return
	}
	end = min(end, start+MaxEntries)
	leaves, err := h.Log.Leaves(r.Context(), start, end)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	problem.JSON(w, http.StatusOK, entriesResponse(size, leaves))
}

func entriesResponse(size uint64, leaves []Leaf) EntriesResponse {
	out := EntriesResponse{Size: size, Entries: make([]EntryJSON, 0, len(leaves))}
	for _, l := range leaves {
		out.Entries = append(out.Entries, EntryJSON{Index: l.Index, Entry: string(l.Entry), LeafHash: hex.EncodeToString(l.Hash)})
	}
	return out
}

func (h *Handler) inclusion(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	size, err := uintParam(r, "size", h.Log.Size())
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	var index uint64
	if hx := r.URL.Query().Get("hash"); hx != "" {
		b, err := hex.DecodeString(hx)
		if err != nil || len(b) != 32 {
			badRequest(w, "hash must be a hex SHA-256 leaf hash")
			return
		}
		index, err = h.Log.LeafIndex(ctx, b)
		if errors.Is(err, ErrNotFound) {
			problem.Write(w, problem.NotFound, "no entry has this leaf hash")
			return
		}
		if err != nil {
			h.internal(w, r, err)
			return
		}
	} else if r.URL.Query().Get("index") == "" {
		badRequest(w, "give index or hash")
		return
	} else if index, err = uintParam(r, "index", 0); err != nil {
		badRequest(w, err.Error())
		return
	}
	if index >= size || size > h.Log.Size() {
		badRequest(w, fmt.Sprintf("need index < size <= %d (index %d, size %d)", h.Log.Size(), index, size))
		return
	}
	p, err := h.Log.InclusionProof(ctx, index, size)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	root, err := h.Log.RootAt(ctx, size)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	leaves, err := h.Log.Leaves(ctx, index, index+1)
	if err != nil || len(leaves) != 1 {
		h.internal(w, r, fmt.Errorf("reading leaf %d: %v", index, err))
		return
	}
	problem.JSON(w, http.StatusOK, ProofResponse{Index: &index, LeafHash: hex.EncodeToString(leaves[0].Hash), Size: size, Root: root, Hashes: p})
}

func (h *Handler) consistency(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	from, err := uintParam(r, "from", 0)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	to, err := uintParam(r, "to", h.Log.Size())
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	if from > to || to > h.Log.Size() {
		badRequest(w, fmt.Sprintf("need from <= to <= %d (from %d, to %d)", h.Log.Size(), from, to))
		return
	}
	p, err := h.Log.ConsistencyProof(ctx, from, to)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	root, err := h.Log.RootAt(ctx, to)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	problem.JSON(w, http.StatusOK, ProofResponse{From: from, Size: to, Root: root, Hashes: p})
}

func (h *Handler) search(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := Query{Repo: v.Get("repo"), Digest: v.Get("digest"), Actor: v.Get("actor"), Action: v.Get("action"), Limit: MaxEntries}
	switch v.Get("order") {
	case "", "oldest":
	case "newest":
		q.Newest = true
	default:
		badRequest(w, "order must be oldest or newest")
		return
	}
	var err error
	if q.Before, err = uintParam(r, "before", 0); err != nil {
		badRequest(w, err.Error())
		return
	}
	if v.Has("before") && q.Before == 0 {
		badRequest(w, "before must be at least 1")
		return
	}
	limit, err := uintParam(r, "limit", MaxEntries)
	if err != nil || limit < 1 || limit > MaxEntries {
		badRequest(w, fmt.Sprintf("limit must be between 1 and %d", MaxEntries))
		return
	}
	q.Limit = int(limit)
	for name, t := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := v.Get(name); s != "" {
			var err error
			if *t, err = time.Parse(time.RFC3339Nano, s); err != nil {
				badRequest(w, name+" must be an RFC 3339 time")
				return
			}
		}
	}
	leaves, err := h.Log.Search(r.Context(), q)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	problem.JSON(w, http.StatusOK, entriesResponse(h.Log.Size(), leaves))
}

// VerifyResponse is the body of GET /api/v1/audit/verify: tlog.Verify's
// result over the stored log against the log's own key, with the
// checkpoint it verified.
type VerifyResponse struct {
	OK bool `json:"ok"`
	// Origin, Size and Root are the verified checkpoint's (empty when
	// it did not verify).
	Origin string `json:"origin,omitempty"`
	Size   uint64 `json:"size"`
	Root   []byte `json:"root,omitempty"`
	Verification
}

// verify runs Verify over the stored log, as `custody audit verify` does
// over the API: it re-hashes every stored entry against the latest signed
// checkpoint, with the log's own key (the server holds it; a verifier who
// distrusts the server pins the key and runs the CLI).
func (h *Handler) verify(w http.ResponseWriter, r *http.Request) {
	h.Log.Flush()
	v, err := Verify(r.Context(), h.Log.Source(), VerifyOptions{Key: h.Log.VerifierKey()})
	if errors.Is(err, ErrNotFound) {
		problem.Write(w, problem.NotFound, "no checkpoint has been signed yet (POST /api/v1/audit/checkpoint)")
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	if v.Problems == nil {
		v.Problems = []Problem{}
	}
	problem.JSON(w, http.StatusOK, VerifyResponse{OK: v.OK(), Origin: v.Checkpoint.Origin, Size: v.Checkpoint.Size, Root: v.Checkpoint.Root, Verification: *v})
}
