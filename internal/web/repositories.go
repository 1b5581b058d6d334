package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/catalog"
)

// The Repositories page (search, paginated) and the Repository page (tags
// with what they point at, versions, a tag's history), from
// /api/v1/repositories, /api/v1/versions and /api/v1/tags/.../history.

// repositoriesRoutes mounts the Repositories and Repository pages.
func (s *Site) repositoriesRoutes() {
	s.page("GET /repositories", s.repositories)
	s.page("GET /repositories/{name...}", s.repository)
}

// pageSize is the rows of one page of a list.
const pageSize = 50

type repositoriesView struct {
	Query, Prefix string
	Host          string // for pull commands
	Repositories  []string
	// First is true on the first page; FirstLink leads there, Next to the
	// next page.
	First           bool
	FirstLink, Next string
}

// repositories lists the repositories the caller may read.
func (s *Site) repositories(w http.ResponseWriter, r *Request) error {
	q := r.URL.Query()
	v := repositoriesView{Query: strings.TrimSpace(q.Get("q")), Prefix: q.Get("prefix"), Host: r.Host, First: q.Get("after") == ""}
	api := url.Values{"n": {strconv.Itoa(pageSize)}}
	for k, val := range map[string]string{"q": v.Query, "prefix": v.Prefix, "after": q.Get("after")} {
		if val != "" {
			api.Set(k, val)
		}
	}
	var list catalog.List
	if err := r.Get("/api/v1/repositories?"+api.Encode(), &list); err != nil {
		return err
	}
	v.Repositories = list.Repositories
	search := url.Values{}
	if v.Query != "" {
		search.Set("q", v.Query)
	}
	if v.Prefix != "" {
		search.Set("prefix", v.Prefix)
	}
	v.FirstLink = "/repositories"
	if len(search) > 0 {
		v.FirstLink += "?" + search.Encode()
	}
	if list.Next != "" {
		search.Set("after", list.Next)
		v.Next = "/repositories?" + search.Encode()
	}
	return r.Render(w, http.StatusOK, "repositories.html", "Repositories", v)
}

type repositoryView struct {
	Name  string
	Host  string // for pull commands
	Tags  []catalog.Tag
	First bool
	Next  string
	// Sort are the sortable columns' headers (Tag, Size, Pushed: links
	// with ?sort=&order=, as the admin tables); Page and Pages number the
	// pages of an order other than name ascending (?page=).
	Sort            map[string]sortHeader
	Page, Pages     int
	Prev, FirstHref string
	Versions        []builds.Build
	// History is the chosen tag's history (?tag=), newest first.
	HistoryTag string
	History    []builds.TagEvent
}

// repository shows one repository.
func (s *Site) repository(w http.ResponseWriter, r *Request) error {
	name := r.PathValue("name")
	q := r.URL.Query()
	v := repositoryView{Name: name, Host: r.Host, First: q.Get("after") == "" && q.Get("page") == ""}
	api := url.Values{"n": {strconv.Itoa(pageSize)}}
	sortKey, desc := q.Get("sort"), q.Get("order") == "desc"
	if !slices.Contains([]string{"name", "size", "pushed"}, sortKey) {
		sortKey = "name"
	}
	self := "/repositories/" + urlPathEscape(name)
	link := func(key string, desc bool, page int) string {
		l := url.Values{}
		if key != "name" || desc {
			l.Set("sort", key)
		}
		if desc {
			l.Set("order", "desc")
		}
		if page > 1 {
			l.Set("page", strconv.Itoa(page))
		}
		if len(l) == 0 {
			return self + "#tags"
		}
		return self + "?" + l.Encode() + "#tags"
	}
	v.Sort = map[string]sortHeader{}
	for _, k := range []string{"name", "size", "pushed"} {
		h := sortHeader{Href: link(k, false, 1)}
		if k == sortKey {
			h.Sort, h.Href = "ascending", link(k, !desc, 1)
			if desc {
				h.Sort = "descending"
			}
		}
		v.Sort[k] = h
	}
	if sortKey != "name" || desc {
		api.Set("sort", sortKey)
		if desc {
			api.Set("order", "desc")
		}
		if p := q.Get("page"); p != "" {
			api.Set("page", p)
		}
	} else if a := q.Get("after"); a != "" {
		api.Set("after", a)
	}
	var tags catalog.Tags
	if err := r.Get("/api/v1/repositories/"+urlPathEscape(name)+"/tags?"+api.Encode(), &tags); err != nil {
		return err
	}
	v.Tags = tags.Tags
	v.Page, v.Pages = tags.Page, tags.Pages
	if tags.Next != "" {
		v.Next = self + "?" + url.Values{"after": {tags.Next}}.Encode() + "#tags"
	}
	v.FirstHref = link(sortKey, desc, 1)
	if tags.Page > 1 {
		v.Prev = link(sortKey, desc, tags.Page-1)
	}
	if tags.Page > 0 && tags.Page < tags.Pages {
		v.Next = link(sortKey, desc, tags.Page+1)
	}
	var versions builds.VersionList
	if err := r.Get("/api/v1/versions/"+urlPathEscape(name), &versions); err != nil {
		return err
	}
	v.Versions = versions.Versions
	for i, j := 0, len(v.Versions)-1; i < j; i, j = i+1, j-1 { // newest first
		v.Versions[i], v.Versions[j] = v.Versions[j], v.Versions[i]
	}
	if tag := q.Get("tag"); tag != "" {
		var h builds.TagHistory
		err := r.Get("/api/v1/tags/"+urlPathEscape(name)+"/"+url.PathEscape(tag)+"/history", &h)
		var ae *apiclient.Error
		if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
			return err
		}
		v.HistoryTag = tag
		for i := len(h.History) - 1; i >= 0; i-- {
			v.History = append(v.History, h.History[i])
		}
	}
	return r.Render(w, http.StatusOK, "repository.html", name, v)
}
