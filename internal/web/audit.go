package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/tlog"
)

// The Audit page: the audit log, filtered and paginated newest first
// (GET /api/v1/audit/search), its latest signed checkpoint
// (/api/v1/audit/checkpoint, opened with /api/v1/audit/key), and Verify,
// which shows GET /api/v1/audit/verify (tlog.Verify over the stored log)
// and /api/v1/audit/reconcile, the checks of `custody audit verify`.

// auditRoutes registers the Audit page's routes.
func (s *Site) auditRoutes() {
	s.page("GET /audit", s.audit)
	s.page("GET /audit/verify", s.auditVerify)
}

// auditFilter is the Audit page's query: what the API's search takes.
type auditFilter struct {
	Actor, Action, Repo, Since, Until string
}

// values is the filter as query parameters (empty ones left out).
func (f auditFilter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"actor": f.Actor, "action": f.Action, "repo": f.Repo, "since": f.Since, "until": f.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// auditRow is one entry of the log as the page shows it.
type auditRow struct {
	Index    uint64
	LeafHash string
	tlog.Entry
	// Time is the entry's time, parsed (zero if it is not a time).
	Time time.Time
	// Raw is the entry's bytes when they are not an entry this version
	// reads (newer keys, or damage): shown as they are.
	Raw string
}

type auditView struct {
	Filter  auditFilter
	Entries []auditRow
	// Size is the log's size.
	Size uint64
	// First is true on the first page; FirstLink leads there, Next to the
	// next (older) page.
	First           bool
	FirstLink, Next string
	Checkpoint      *checkpointView
}

// checkpointView is the latest signed checkpoint.
type checkpointView struct {
	Origin string
	Size   uint64
	Root   string // hex
	Note   string
	// Key is the log's public verifier key (for `custody audit verify
	// --key`); Problem says why the note does not open with it.
	Key, Problem string
}

// audit shows the log, newest first, filtered by actor, action,
// repository and time.
func (s *Site) audit(w http.ResponseWriter, r *Request) error {
	q := r.URL.Query()
	f := auditFilter{
		Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")),
		Repo: strings.TrimSpace(q.Get("repo")), Since: strings.TrimSpace(q.Get("since")), Until: strings.TrimSpace(q.Get("until")),
	}
	api := f.values()
	for _, k := range []string{"since", "until"} {
		if v := api.Get(k); v != "" {
			t, err := promotion.ParseTime(v)
			if err != nil {
				return BadRequest(k + ": " + err.Error())
			}
			api.Set(k, t.Format(time.RFC3339Nano))
		}
	}
	v := auditView{Filter: f, First: q.Get("before") == ""}
	if b := q.Get("before"); b != "" {
		if _, err := strconv.ParseUint(b, 10, 64); err != nil {
			return BadRequest("before must be an entry index")
		}
		api.Set("before", b)
	}
	api.Set("order", "newest")
	api.Set("limit", strconv.Itoa(pageSize+1)) // one more: is there a next page?
	var res tlog.EntriesResponse
	if err := r.Get("/api/v1/audit/search?"+api.Encode(), &res); err != nil {
		return err
	}
	v.Size = res.Size
	entries := res.Entries
	more := len(entries) > pageSize
	if more {
		entries = entries[:pageSize]
	}
	for _, e := range entries {
		v.Entries = append(v.Entries, newAuditRow(e))
	}
	link := f.values()
	v.FirstLink = "/audit"
	if len(link) > 0 {
		v.FirstLink += "?" + link.Encode()
	}
	if more {
		link.Set("before", strconv.FormatUint(entries[len(entries)-1].Index, 10))
		v.Next = "/audit?" + link.Encode()
	}
	cp, err := latestCheckpoint(r)
	if err != nil {
		return err
	}
	v.Checkpoint = cp
	return r.Render(w, http.StatusOK, "audit.html", "Audit log", v)
}

func newAuditRow(e tlog.EntryJSON) auditRow {
	row := auditRow{Index: e.Index, LeafHash: e.LeafHash}
	ent, err := tlog.ParseEntry([]byte(e.Entry))
	if err != nil {
		row.Raw = e.Entry
		return row
	}
	row.Entry = ent
	row.Time, _ = time.Parse(time.RFC3339Nano, ent.Time)
	return row
}

// latestCheckpoint reads the latest signed checkpoint and opens it with
// the log's key; nil when none has been signed yet.
func latestCheckpoint(r *Request) (*checkpointView, error) {
	var note, key []byte
	err := r.Get("/api/v1/audit/checkpoint", &note)
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := r.Get("/api/v1/audit/key", &key); err != nil {
		return nil, err
	}
	cv := &checkpointView{Note: string(note), Key: strings.TrimSpace(string(key))}
	cp, err := tlog.OpenCheckpoint(cv.Key, note)
	if err != nil {
		cv.Problem = err.Error()
		return cv, nil
	}
	cv.Origin, cv.Size, cv.Root = cp.Origin, cp.Size, fmt.Sprintf("%x", cp.Root)
	return cv, nil
}

type auditVerifyView struct {
	// Signed is false when no checkpoint has been signed yet (nothing to
	// verify against).
	Signed bool
	Result tlog.VerifyResponse
	Root   string // hex
	Rec    tlog.Reconciliation
	// OK is true when the log verified and every tag is recorded.
	OK   bool
	Host string // for the CLI command
}

// auditVerify runs the checks of `custody audit verify` on the server:
// tlog.Verify over the stored log (GET /api/v1/audit/verify) and the
// reconciliation of the registry's tags with the log.
func (s *Site) auditVerify(w http.ResponseWriter, r *Request) error {
	v := auditVerifyView{Host: r.Host}
	err := r.Get("/api/v1/audit/verify", &v.Result)
	var ae *apiclient.Error
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return r.Render(w, http.StatusOK, "audit_verify.html", "Audit log verification", v)
	case err != nil:
		return err
	}
	v.Signed = true
	v.Root = fmt.Sprintf("%x", v.Result.Root)
	if err := r.Get("/api/v1/audit/reconcile", &v.Rec); err != nil {
		return err
	}
	v.OK = v.Result.OK && len(v.Rec.Unrecorded) == 0 && !v.Rec.Truncated
	return r.Render(w, http.StatusOK, "audit_verify.html", "Audit log verification", v)
}
