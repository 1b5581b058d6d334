package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/tlog"
)

// TestTlogSearchUsesIndexes: every filter of the audit log search reads
// an index of tlog_search (migration 14), not every entry's JSON: a
// search for a rare value over 100,000 entries took 0.6 s as a scan. The
// newest matches come off the index's end, with no sort, and the tail
// (leaves not indexed yet) is read by index range.
func TestTlogSearchUsesIndexes(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		q     tlog.Query
		index string
	}{
		{tlog.Query{Action: "revoke", Newest: true, Limit: 51}, "tlog_search_action"},
		{tlog.Query{Actor: "ci", Newest: true, Limit: 51, Before: 500}, "tlog_search_actor"},
		{tlog.Query{Repo: "team/app", Newest: true, Limit: 51}, "tlog_search_repo"},
		{tlog.Query{Repo: "team/app", Digest: "sha256:00", Limit: 1001}, "tlog_search_"},
		{tlog.Query{Since: at, Until: at.Add(24 * time.Hour), Newest: true, Limit: 51}, "tlog_search_time"},
	} {
		query, args := searchQuery(c.q)
		rows, err := st.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		t.Logf("%+v: %s", c.q, p)
		if !strings.Contains(p, "USING INDEX "+c.index) || strings.Contains(p, "USE TEMP B-TREE") && c.q.Limit == 51 && c.q.Since.IsZero() {
			t.Errorf("%+v: plan %q, want a search using %s", c.q, p, c.index)
		}
	}
}
