package proxy

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestClientAddr(t *testing.T) {
	xff, err := Parse([]string{"10.0.0.0/8", "192.0.2.7", "fd00::/8"}, "")
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := Parse([]string{"10.0.0.0/8"}, "forwarded")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		trust  *Trust
		peer   string
		header map[string][]string
		want   string
	}{
		{"no proxy", xff, "203.0.113.5:4000", nil, "203.0.113.5"},
		{"untrusted peer's header ignored", xff, "203.0.113.5:4000", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "203.0.113.5"},
		{"trusted peer", xff, "10.1.2.3:4000", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1"},
		{"forged leftmost entry ignored", xff, "10.1.2.3:4000", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1"}}, "198.51.100.1"},
		{"chain of trusted proxies", xff, "10.1.2.3:4000", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1", "192.0.2.7, 10.9.9.9"}}, "198.51.100.1"},
		{"all trusted: the leftmost", xff, "10.1.2.3:4000", map[string][]string{"X-Forwarded-For": {"10.0.0.1, 10.0.0.2"}}, "10.0.0.1"},
		{"no header: the proxy", xff, "10.1.2.3:4000", nil, "10.1.2.3"},
		{"garbage stops the walk", xff, "10.1.2.3:4000", map[string][]string{"X-Forwarded-For": {"198.51.100.1, nonsense, 10.0.0.9"}}, "10.0.0.9"},
		{"entry with a port", xff, "10.1.2.3:4000", map[string][]string{"X-Forwarded-For": {"198.51.100.1:5555"}}, "198.51.100.1"},
		{"IPv6 proxy", xff, "[fd00::1]:4000", map[string][]string{"X-Forwarded-For": {"2001:db8::1"}}, "2001:db8::1"},
		{"IPv4-mapped peer", xff, "[::ffff:10.1.2.3]:4000", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1"},
		{"only the configured header", xff, "10.1.2.3:4000", map[string][]string{"Forwarded": {"for=6.6.6.6"}}, "10.1.2.3"},
		{"Forwarded", fwd, "10.1.2.3:4000", map[string][]string{"Forwarded": {`for=198.51.100.1;proto=https, for="[2001:db8::2]:443";by=10.0.0.1`}}, "2001:db8::2"},
		{"Forwarded unknown", fwd, "10.1.2.3:4000", map[string][]string{"Forwarded": {"for=198.51.100.1, for=unknown"}}, "10.1.2.3"},
		{"Forwarded ignores XFF", fwd, "10.1.2.3:4000", map[string][]string{"X-Forwarded-For": {"6.6.6.6"}}, "10.1.2.3"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for k, vs := range c.header {
			for _, v := range vs {
				r.Header.Add(k, v)
			}
		}
		if got := c.trust.ClientAddr(r); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestHandler(t *testing.T) {
	tr, err := Parse([]string{"127.0.0.1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	h := tr.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr }))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:1234"
	r.Header.Set("X-Forwarded-For", "198.51.100.9")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if seen != "198.51.100.9" || r.RemoteAddr != "127.0.0.1:1234" {
		t.Fatalf("seen %q, original %q", seen, r.RemoteAddr)
	}
	r.Header.Del("X-Forwarded-For")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if seen != "127.0.0.1:1234" {
		t.Fatalf("without a header the peer's address must stay as it is: %q", seen)
	}
	none, _ := Parse(nil, "")
	inner := http.NotFoundHandler()
	if got := none.Handler(inner); got == nil {
		t.Fatal("nil handler")
	}
}

func TestParseRefuses(t *testing.T) {
	for _, in := range [][]string{{"10.0.0.0/33"}, {"example.org"}, {""}, {"fe80::1%eth0"}} {
		if _, err := Parse(in, ""); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
	if _, err := Parse(nil, "X-Real-IP"); err == nil || !strings.Contains(err.Error(), "X-Forwarded-For") {
		t.Errorf("unknown header: %v", err)
	}
}

func TestForwardedFor(t *testing.T) {
	got := ForwardedFor([]string{`for=192.0.2.60;proto=http;by=203.0.113.43`, `For="[2001:db8:cafe::17]:4711", by=x;for="a\"b,c"`, `proto=https`})
	want := []string{"192.0.2.60", "[2001:db8:cafe::17]:4711", `a"b,c`, ""}
	if !slices.Equal(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
}

// FuzzForwarded: the header parsers never panic, and a trusted request's
// client address is always an address (never text from the header that
// is not one).
func FuzzForwarded(f *testing.F) {
	for _, s := range []string{
		`for=192.0.2.60;proto=http;by=203.0.113.43`,
		`for="[2001:db8:cafe::17]:4711"`,
		`for=unknown, for=_hidden`,
		`for="\`, `"`, `for=";`, `1.2.3.4, 5.6.7.8:80`, `[::1]:5`, `,,,`,
	} {
		f.Add(s)
	}
	xff, _ := Parse([]string{"10.0.0.0/8"}, "")
	fwd, _ := Parse([]string{"10.0.0.0/8"}, "Forwarded")
	f.Fuzz(func(t *testing.T, h string) {
		_ = ForwardedFor([]string{h})
		for _, tr := range []*Trust{xff, fwd} {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = "10.0.0.1:1"
			r.Header.Set(HeaderXForwardedFor, h)
			r.Header.Set(HeaderForwarded, h)
			got := tr.ClientAddr(r)
			if _, ok := ParseNode(got); !ok {
				t.Fatalf("client address %q from %q", got, h)
			}
		}
	})
}
