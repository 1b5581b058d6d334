package feed_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
)

// askedGate records the feeds it is asked about and blocks those named in
// block.
type askedGate struct {
	mu    sync.Mutex
	asked []string
	block map[string]bool
}

func (g *askedGate) AdmitUnpinned(context.Context, config.Feed, string, string) error { return nil }

func (g *askedGate) Admit(_ context.Context, f config.Feed, name, version string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, f.Name)
	if g.block[f.Name] {
		return &feed.Blocked{Feed: f.Name, Package: name, Version: version, Reason: "policy of " + f.Name}
	}
	return nil
}

func virtualFeeds() map[string]config.Feed {
	return feed.Feeds([]config.Feed{
		{Name: "internal", Ecosystem: "npm", Kind: "hosted"},
		{Name: "public", Ecosystem: "npm", Kind: "proxy", Upstream: "http://127.0.0.1:1"},
		{Name: "all", Ecosystem: "npm", Kind: "virtual", Members: []string{"internal", "public"}},
	}, "npm")
}

// TestAdmitAsksVirtualFeed: a request through a virtual feed is judged
// with the member's policy and the virtual feed's; either refuses.
func TestAdmitAsksVirtualFeed(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name      string
		ctx       context.Context
		block     []string
		wantAsked string
		blockedBy string
	}{
		{"direct", ctx, nil, "internal", ""},
		{"through the virtual feed", feed.WithVirtual(ctx, "all"), nil, "internal all", ""},
		{"the virtual feed's policy blocks", feed.WithVirtual(ctx, "all"), []string{"all"}, "internal all", "all"},
		{"the member's policy blocks", feed.WithVirtual(ctx, "all"), []string{"internal"}, "internal", "internal"},
		{"only the virtual feed blocks, asked directly", ctx, []string{"all"}, "internal", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := &askedGate{block: map[string]bool{}}
			for _, b := range c.block {
				g.block[b] = true
			}
			p := feed.Protocol{Feeds: virtualFeeds(), Gate: g}
			err := p.Admit(c.ctx, "internal", "left-pad", "1.0.0")
			if got := strings.Join(g.asked, " "); got != c.wantAsked {
				t.Errorf("the gate was asked about %q, want %q", got, c.wantAsked)
			}
			var b *feed.Blocked
			switch {
			case c.blockedBy == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.blockedBy != "" && (!errors.As(err, &b) || b.Feed != c.blockedBy):
				t.Errorf("err = %v, want blocked by %s", err, c.blockedBy)
			}
		})
	}
	// A virtual feed the protocol does not know refuses (never admits).
	g := &askedGate{}
	p := feed.Protocol{Feeds: virtualFeeds(), Gate: g}
	if err := p.Admit(feed.WithVirtual(ctx, "nosuch"), "internal", "x", "1.0.0"); err == nil {
		t.Error("a request through an unknown virtual feed was admitted")
	}
}

// member is a protocol handler standing in for npm's: it records the
// requests it gets and answers each feed with the status in answers.
type member struct {
	mu      sync.Mutex
	got     []string // "<method> <escaped path> via <virtual>"
	answers map[string]int
}

func (m *member) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v, _ := feed.VirtualFrom(r.Context())
	m.mu.Lock()
	m.got = append(m.got, r.Method+" "+r.URL.EscapedPath()+" via "+v)
	m.mu.Unlock()
	feedName, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/npm/"), "/")
	status := m.answers[feedName]
	if status == 0 {
		status = http.StatusOK
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+feedName+`"`)
	}
	w.Header().Set("X-Feed", feedName)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, "answer of "+feedName+" for "+feed.Addressed(r.Context(), feedName))
}

// TestRouter: reads go to the first member holding the package (its
// answer final: shadowing), else through the members while they do not
// have it; writes go to the first hosted member.
func TestRouter(t *testing.T) {
	s, _, rec := newStore(t)
	if _, err := put(t, s, "internal/acme/util", "1.0.0", "util-1.0.0.tgz", []byte("hosted")); err != nil {
		t.Fatal(err)
	}
	feeds := virtualFeeds()
	feeds["onlyproxy"] = config.Feed{Name: "onlyproxy", Ecosystem: "npm", Kind: "virtual", Members: []string{"public"}}
	p := &feed.Protocol{Feeds: feeds, Store: s, Audit: rec, Log: slog.New(slog.DiscardHandler)}
	cases := []struct {
		name     string
		method   string
		virtual  string
		rest     string
		pkg      []string
		answers  map[string]int
		code     int
		from     string // the member whose answer the client gets
		askedLen int    // how many members were asked
	}{
		{"held by the first member: answered there", "GET", "all", "@acme%2futil", []string{"acme", "util"}, nil, 200, "internal", 1},
		{"held by the first member, which lacks the version: no fall-through", "GET", "all", "@acme/util/-/util-9.9.9.tgz", []string{"acme", "util"},
			map[string]int{"internal": 404}, 404, "internal", 1},
		{"held by the first member, which refuses the caller: no fall-through", "GET", "all", "@acme/util", []string{"acme", "util"},
			map[string]int{"internal": 403}, 403, "internal", 1},
		{"held by none: the second member answers", "GET", "all", "left-pad", []string{"left-pad"},
			map[string]int{"internal": 404}, 200, "public", 2},
		{"refused by the first, which does not hold it: passed on", "HEAD", "all", "left-pad", []string{"left-pad"},
			map[string]int{"internal": 403}, 200, "public", 2},
		{"nobody has it: the last answer", "GET", "all", "nope", []string{"nope"},
			map[string]int{"internal": 404, "public": 404}, 404, "public", 2},
		{"nobody has it, one asked for credentials: 401", "GET", "all", "nope", []string{"nope"},
			map[string]int{"internal": 401, "public": 403}, 401, "internal", 2},
		{"names no package: the first member", "GET", "all", "-/ping", nil, nil, 200, "internal", 1},
		{"a write: the first hosted member", "PUT", "all", "left-pad", []string{"left-pad"}, nil, 200, "internal", 1},
		{"a server error is not passed on", "GET", "all", "left-pad", []string{"left-pad"},
			map[string]int{"internal": 500}, 500, "internal", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &member{answers: c.answers}
			x := feed.Router{Protocol: p, Prefix: "/npm/", Member: m, Error: func(w http.ResponseWriter, status int, msg string) {
				w.WriteHeader(status)
				_, _ = io.WriteString(w, msg)
			}, WriteAction: "npm.publish"}
			r := httptest.NewRequest(c.method, "/npm/"+c.virtual+"/"+c.rest, nil)
			w := httptest.NewRecorder()
			x.Serve(w, r, feeds[c.virtual], c.rest, c.pkg)
			if w.Code != c.code || w.Header().Get("X-Feed") != c.from {
				t.Errorf("%d from %q, want %d from %q (asked %v)", w.Code, w.Header().Get("X-Feed"), c.code, c.from, m.got)
			}
			if c.method != "HEAD" && w.Body.String() != "answer of "+c.from+" for "+c.virtual {
				t.Errorf("body %q: not %s's answer naming the virtual feed", w.Body.String(), c.from)
			}
			if len(m.got) != c.askedLen {
				t.Fatalf("members asked: %v, want %d", m.got, c.askedLen)
			}
			if want := c.method + " /npm/internal/" + c.rest + " via " + c.virtual; m.got[0] != want {
				t.Errorf("the member got %q, want %q", m.got[0], want)
			}
			if c.code == 401 && !strings.Contains(w.Header().Get("WWW-Authenticate"), "internal") {
				t.Errorf("the 401's challenge is not the member's: %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
	// No hosted member: a write is refused, nothing reaches a member, and
	// the refusal is audited.
	m := &member{}
	x := feed.Router{Protocol: p, Prefix: "/npm/", Member: m, Error: func(w http.ResponseWriter, status int, msg string) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, msg)
	}, WriteAction: "npm.publish"}
	w := httptest.NewRecorder()
	x.Serve(w, httptest.NewRequest("PUT", "/npm/onlyproxy/left-pad", strings.NewReader("{}")), feeds["onlyproxy"], "left-pad", []string{"left-pad"})
	if w.Code != http.StatusMethodNotAllowed || !strings.Contains(w.Body.String(), "no hosted member") || len(m.got) != 0 {
		t.Errorf("write to a virtual feed without hosted members: %d %q, members asked %v", w.Code, w.Body.String(), m.got)
	}
	if !strings.Contains(rec.actions(), "npm.publish:denied") {
		t.Errorf("the refused write is not audited: %s", rec.actions())
	}
}

// TestRoute: Route answers a path naming no feed with the protocol's
// 404s, hands a virtual feed's requests to its members unless Own keeps
// them, and returns any other feed with the rest of the path, escaped.
func TestRoute(t *testing.T) {
	s, _, _ := newStore(t)
	p := &feed.Protocol{Feeds: virtualFeeds(), Store: s, Log: slog.New(slog.DiscardHandler)}
	m := &member{}
	x := feed.Router{Protocol: p, Prefix: "/npm/", Member: m, Error: func(w http.ResponseWriter, status int, msg string) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, msg)
	}, WriteAction: "npm.publish",
		NotFound: "outside", NoFeed: func(name string) string { return "no feed " + name },
		Package: func(rest string) []string { return []string{rest} },
		Own:     func(r *http.Request, rest string) bool { return rest == "own" }}
	for _, c := range []struct {
		path, feed, rest, answer string
		asked                    int // requests the member got
	}{
		{"/pypi/internal/x", "", "", "outside", 0},
		{"/npm/nosuch/x", "", "", "no feed nosuch", 0},
		{"/npm/internal/@acme%2futil", "internal", "@acme%2futil", "", 0},
		{"/npm/all/own", "all", "own", "", 0},
		{"/npm/all/left-pad", "", "", "answer of internal for all", 1},
	} {
		m.got = nil
		w := httptest.NewRecorder()
		f, rest, ok := x.Route(w, httptest.NewRequest("GET", c.path, nil))
		if ok != (c.feed != "") || f.Name != c.feed || rest != c.rest || w.Body.String() != c.answer || len(m.got) != c.asked {
			t.Errorf("%s: %v %q %q, answered %d %q, member asked %v", c.path, ok, f.Name, rest, w.Code, w.Body.String(), m.got)
		}
		if c.answer != "" && c.asked == 0 && w.Code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", c.path, w.Code)
		}
	}
}
