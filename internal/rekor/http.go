package rekor

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/transparency-dev/merkle/compact"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/problem"
)

// Paths of the API. Writes go to BaseURL + EntriesPath, as Rekor v2
// clients send them; reads (C2SP tlog-tiles) are under ReadPrefix, the
// log's read URL.
const (
	EntriesPath = "/api/v2/log/entries"
	ReadPrefix  = "/api/v2/log/"
)

// TileWidth is the number of hashes in a full tile and of entries in a
// full entry bundle (C2SP tlog-tiles).
const TileWidth = 256

// AddAction is the audit action of every entry added and every refusal.
const AddAction = "tlog.add"

// Handler serves the log's API.
type Handler struct {
	Log    *Log
	Audit  audit.Auditor
	Logger *slog.Logger
}

// Register mounts the endpoints.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+EntriesPath, h.add)
	mux.HandleFunc("GET "+ReadPrefix+"checkpoint", h.checkpoint)
	mux.HandleFunc("GET "+ReadPrefix+"tile/", h.tile)
}

func (h *Handler) add(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	refuse := func(k problem.Kind, reason string) {
		h.Audit.Record(ctx, audit.Event{Action: AddAction, Result: "invalid", Reason: reason, Request: r})
		problem.Write(w, k, reason)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			refuse(problem.BodyTooLarge, fmt.Sprintf("entry request larger than %d bytes", MaxRequestBytes))
			return
		}
		refuse(problem.Invalid, "reading the entry request: "+err.Error())
		return
	}
	e, err := h.Log.Check(body)
	if err != nil {
		if errors.Is(err, ErrInvalid) {
			refuse(problem.Invalid, err.Error())
			return
		}
		problem.Fail(w, r, h.Logger, "checking a log entry", err)
		return
	}
	tle, err := h.Log.Add(ctx, e)
	if err != nil {
		h.Audit.Record(ctx, audit.Event{Action: AddAction, Result: "error", Reason: err.Error(), Request: r})
		problem.Fail(w, r, h.Logger, "adding a log entry", err)
		return
	}
	ev := audit.Event{Action: AddAction, Result: "ok", Request: r,
		Reason: fmt.Sprintf("index %d, leaf %s, signer %s", tle.LogIndex, hex.EncodeToString(e.LeafHash), signerOf(e))}
	if e.Algorithm == v1.HashAlgorithm_SHA2_256 {
		ev.Digest = digest.NewDigestFromBytes(digest.SHA256, e.Digest)
	}
	h.Audit.Record(ctx, ev)
	out, err := protojson.Marshal(tle)
	if err != nil {
		problem.Fail(w, r, h.Logger, "encoding a log entry", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(out)
}

// signerOf names an entry's signer for the audit log: the certificate's
// identity, or the public key.
func signerOf(e *Entry) string {
	if c := e.Certificate; c != nil {
		switch {
		case len(c.EmailAddresses) > 0:
			return c.EmailAddresses[0]
		case len(c.URIs) > 0:
			return c.URIs[0].String()
		}
		return fmt.Sprintf("certificate %x", c.SerialNumber)
	}
	return "a public key"
}

func (h *Handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := h.Log.Checkpoint(r.Context())
	if err != nil {
		problem.Fail(w, r, h.Logger, "reading the checkpoint", err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(cp.Note)
}

// Tile is a parsed tlog-tiles path.
type Tile struct {
	// Entries marks an entry bundle (tile/entries/N); else a hash tile at
	// Level.
	Entries bool
	Level   uint64
	Index   uint64
	// Width is the partial width (1..255), 0 for a full tile.
	Width int
}

// ParseTilePath parses the path of a tile below the read prefix:
// "tile/<L>/<N>[.p/<W>]" or "tile/entries/<N>[.p/<W>]", where N is written
// in groups of three digits, all but the last prefixed by "x".
func ParseTilePath(p string) (Tile, error) {
	var t Tile
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return t, errors.New("not a tile path")
	}
	level, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return t, errors.New("tile path without an index")
	}
	if level == "entries" {
		t.Entries = true
	} else {
		l, err := strconv.ParseUint(level, 10, 8)
		if err != nil || strconv.FormatUint(l, 10) != level || l > 63 {
			return t, fmt.Errorf("invalid tile level %q", level)
		}
		t.Level = l
	}
	if i := strings.Index(rest, ".p/"); i >= 0 {
		ws := rest[i+3:]
		w, err := strconv.Atoi(ws)
		if err != nil || strconv.Itoa(w) != ws || w < 1 || w >= TileWidth {
			return t, fmt.Errorf("invalid partial tile width %q", ws)
		}
		t.Width, rest = w, rest[:i]
	}
	parts := strings.Split(rest, "/")
	var n uint64
	for i, part := range parts {
		last := i == len(parts)-1
		if !last {
			var ok bool
			if part, ok = strings.CutPrefix(part, "x"); !ok {
				return t, fmt.Errorf("invalid tile index element %q", parts[i])
			}
		}
		if len(part) != 3 || strings.Trim(part, "0123456789") != "" {
			return t, fmt.Errorf("invalid tile index element %q", parts[i])
		}
		d, _ := strconv.ParseUint(part, 10, 16)
		if n > (1<<63)/1000 {
			return t, errors.New("tile index too large")
		}
		n = n*1000 + d
	}
	if len(parts) > 1 && strings.TrimLeft(strings.TrimPrefix(parts[0], "x"), "0") == "" {
		return t, errors.New("tile index with a leading zero group")
	}
	t.Index = n
	return t, nil
}

// Path returns t's path (the inverse of ParseTilePath).
func (t Tile) Path() string {
	var b strings.Builder
	b.WriteString("tile/")
	if t.Entries {
		b.WriteString("entries")
	} else {
		b.WriteString(strconv.FormatUint(t.Level, 10))
	}
	n := strconv.FormatUint(t.Index, 10)
	for len(n)%3 != 0 {
		n = "0" + n
	}
	for i := 0; i < len(n); i += 3 {
		b.WriteString("/")
		if i+3 < len(n) {
			b.WriteString("x")
		}
		b.WriteString(n[i : i+3])
	}
	if t.Width > 0 {
		fmt.Fprintf(&b, ".p/%d", t.Width)
	}
	return b.String()
}

func (h *Handler) tile(w http.ResponseWriter, r *http.Request) {
	t, err := ParseTilePath(strings.TrimPrefix(r.URL.Path, ReadPrefix))
	if err != nil {
		problem.Write(w, problem.NotFound, err.Error())
		return
	}
	ctx := r.Context()
	cp, err := h.Log.Checkpoint(ctx)
	if err != nil {
		problem.Fail(w, r, h.Logger, "reading the checkpoint", err)
		return
	}
	// The tile's width in the tree of the latest checkpoint.
	count := cp.Size
	if !t.Entries {
		count = cp.Size >> (8 * t.Level)
	}
	want := uint64(TileWidth)
	if t.Width > 0 {
		want = uint64(t.Width)
	}
	if count < want || t.Index > (count-want)/TileWidth {
		problem.Write(w, problem.NotFound, fmt.Sprintf("%s is not in the tree of size %d", t.Path(), cp.Size))
		return
	}
	start := t.Index * TileWidth
	var out []byte
	if t.Entries {
		leaves, err := h.Log.tl.Leaves(ctx, start, start+want)
		if err != nil {
			problem.Fail(w, r, h.Logger, "reading log entries", err)
			return
		}
		for _, lf := range leaves {
			out = binary.BigEndian.AppendUint16(out, uint16(len(lf.Entry)))
			out = append(out, lf.Entry...)
		}
	} else {
		ids := make([]compact.NodeID, want)
		for i := range ids {
			ids[i] = compact.NewNodeID(uint(8*t.Level), start+uint64(i))
		}
		hashes, err := h.Log.tl.Hashes(ctx, ids)
		if err != nil {
			problem.Fail(w, r, h.Logger, "reading log tiles", err)
			return
		}
		for _, hs := range hashes {
			out = append(out, hs...)
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.Width == 0 {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	_, _ = w.Write(out)
}
