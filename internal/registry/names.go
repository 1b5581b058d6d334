package registry

import (
	"regexp"
	"strings"
	"sync"
)

const (
	// maxNameLength caps repository names (the reference registry's limit,
	// counted without a host name).
	maxNameLength = 255
	maxTagLength  = 128
)

var (
	// nameComponent is the distribution spec's path-component grammar.
	nameRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	})
	tagRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`) })
)

// ValidName reports whether name is a repository name the spec allows. The
// grammar admits no "..", no uppercase, no NUL and no leading or trailing
// slash, so a valid name never escapes a directory it is joined to.
func ValidName(name string) bool {
	return len(name) > 0 && len(name) <= maxNameLength && nameRE().MatchString(name)
}

// ValidTag reports whether tag is a tag the spec allows.
func ValidTag(tag string) bool {
	return len(tag) <= maxTagLength && tagRE().MatchString(tag)
}

// route is a parsed /v2/ request path.
type route struct {
	kind string // "base", "catalog", "manifest", "blob", "upload", "uploads", "tags", "referrers"
	repo string
	ref  string // tag or digest, blob digest, or upload ID
}

// parseRoute splits a /v2/ path into the endpoint and its parameters. It
// does not validate the repository name. ok is false when no endpoint of
// the spec matches.
func parseRoute(path string) (rt route, ok bool) {
	if path == "/v2" || path == "/v2/" {
		return route{kind: "base"}, true
	}
	rest, found := strings.CutPrefix(path, "/v2/")
	if !found {
		return route{}, false
	}
	if rest == "_catalog" {
		return route{kind: "catalog"}, true
	}
	parts := strings.Split(rest, "/")
	n := len(parts)
	if n < 3 {
		return route{}, false
	}
	last, prev := parts[n-1], parts[n-2]
	switch {
	case prev == "tags" && last == "list":
		return route{kind: "tags", repo: strings.Join(parts[:n-2], "/")}, true
	case prev == "manifests":
		return route{kind: "manifest", repo: strings.Join(parts[:n-2], "/"), ref: last}, true
	case prev == "referrers":
		return route{kind: "referrers", repo: strings.Join(parts[:n-2], "/"), ref: last}, true
	case n >= 4 && prev == "uploads" && parts[n-3] == "blobs":
		if last == "" {
			return route{kind: "uploads", repo: strings.Join(parts[:n-3], "/")}, true
		}
		return route{kind: "upload", repo: strings.Join(parts[:n-3], "/"), ref: last}, true
	case prev == "blobs" && last == "uploads":
		return route{kind: "uploads", repo: strings.Join(parts[:n-2], "/")}, true
	case prev == "blobs":
		return route{kind: "blob", repo: strings.Join(parts[:n-2], "/"), ref: last}, true
	}
	return route{}, false
}

// ParseRoute splits a /v2/ request path into the kind of endpoint
// ("base", "catalog", "manifest", "blob", "upload", "uploads", "tags",
// "referrers"), the repository and the reference (tag or digest, blob
// digest, upload ID), reading from the end as the spec's paths are: a
// repository may have components named "manifests" or "blobs". It does
// not validate the name; ok is false when no endpoint matches.
func ParseRoute(path string) (kind, repo, ref string, ok bool) {
	rt, ok := parseRoute(path)
	return rt.kind, rt.repo, rt.ref, ok
}

// Endpoint names the kind of /v2/ endpoint a path addresses ("manifest",
// "blob", "upload", ...), or "other": a metrics label free of repository
// names and digests.
func Endpoint(path string) string {
	if rt, ok := parseRoute(path); ok {
		return rt.kind
	}
	return "other"
}
