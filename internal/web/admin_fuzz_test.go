package web

import (
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzGroupList: the group names read from a form are never empty, never
// hold a separator, never repeat, and reading them back is the same list.
func FuzzGroupList(f *testing.F) {
	for _, s := range []string{"", "release, ci", "a,,b", " a  a ", "x\ty\nz", "ü,ü", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		gs := groupList(s)
		for i, g := range gs {
			if g == "" || strings.ContainsAny(g, ", \t\r\n") || slices.Contains(gs[:i], g) {
				t.Fatalf("groupList(%q) = %q", s, gs)
			}
		}
		if again := groupList(strings.Join(gs, ", ")); !slices.Equal(again, gs) {
			t.Fatalf("groupList(%q) = %q, read back %q", s, gs, again)
		}
	})
}

// FuzzSortPage: any ?sort=&order=&page= gives a page within the list and
// at most pageSize rows, never a panic.
func FuzzSortPage(f *testing.F) {
	f.Add("name", "desc", "2", 120)
	f.Add("", "", "", 0)
	f.Add("nope", "asc", "-5", 3)
	f.Add("name", "desc", "99999999999999999999", 51)
	f.Fuzz(func(t *testing.T, sort, order, page string, n int) {
		n = min(max(n, 0), 500)
		items := make([]int, n)
		for i := range items {
			items[i] = (i * 7919) % 101
		}
		q := url.Values{"sort": {sort}, "order": {order}, "page": {page}}
		r := &Request{Request: httptest.NewRequest("GET", "/admin/x?"+q.Encode(), nil)}
		cols := []column[int]{{Key: "name", Label: "N", Cmp: func(a, b int) int { return a - b }}}
		got, tb := sortPage(r, items, cols)
		if tb.Page < 1 || tb.Page > tb.Pages || len(got) > pageSize || tb.Total != n {
			t.Fatalf("page %d of %d, %d rows of %d", tb.Page, tb.Pages, len(got), n)
		}
		if n > 0 && len(got) == 0 {
			t.Fatalf("an empty page %d of a list of %d", tb.Page, n)
		}
	})
}
