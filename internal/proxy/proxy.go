// Package proxy finds a request's client address behind trusted reverse
// proxies: from the X-Forwarded-For or Forwarded (RFC 7239) header they
// set, believed only on requests whose peer is one of them. Everything
// downstream (sign-in throttling, logs, the audit log) sees the address
// through http.Request.RemoteAddr, which Handler rewrites; see
// docs/security.md.
package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The headers a proxy may carry the client address in.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded"
)

// Trust is the set of trusted proxies and the header they set.
type Trust struct {
	nets   []netip.Prefix
	header string
}

// Parse returns the trust in the proxies at addrs (addresses or CIDR
// ranges) that set header (X-Forwarded-For or Forwarded; "" is
// X-Forwarded-For).
func Parse(addrs []string, header string) (*Trust, error) {
	t := &Trust{header: http.CanonicalHeaderKey(header)}
	switch t.header {
	case "":
		t.header = HeaderXForwardedFor
	case HeaderXForwardedFor, HeaderForwarded:
	default:
		return nil, fmt.Errorf("proxy header %q: use X-Forwarded-For or Forwarded", header)
	}
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if p, err := netip.ParsePrefix(a); err == nil {
			t.nets = append(t.nets, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(a)
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("trusted proxy %q is neither an address nor a CIDR range (e.g. 10.0.0.0/8, 192.0.2.7, fd00::/8)", a)
		}
		ip = ip.Unmap()
		t.nets = append(t.nets, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return t, nil
}

func (t *Trust) trusted(a netip.Addr) bool {
	for _, n := range t.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr returns the address r comes from: its peer, or when the peer
// is a trusted proxy, the rightmost address of the header that is not
// itself a trusted proxy (the client as the outermost trusted proxy saw
// it). An entry that is not an address (RFC 7239's "unknown" or an
// obfuscated name, or garbage) ends the walk at the proxy that wrote it.
func (t *Trust) ClientAddr(r *http.Request) string {
	peer, ok := remoteIP(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if t == nil || !t.trusted(peer) {
		return peer.String()
	}
	var hops []string
	if t.header == HeaderForwarded {
		hops = ForwardedFor(r.Header.Values(HeaderForwarded))
	} else {
		hops = XForwardedFor(r.Header.Values(HeaderXForwardedFor))
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := ParseNode(hops[i])
		if !ok {
			break
		}
		client = a
		if !t.trusted(a) {
			break
		}
	}
	return client.String()
}

// Handler sets RemoteAddr of requests through trusted proxies to the
// client's address (without a port: the headers rarely carry one). With
// no trusted proxies it returns next.
func (t *Trust) Handler(next http.Handler) http.Handler {
	if t == nil || len(t.nets) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if peer, ok := remoteIP(r.RemoteAddr); ok {
			if c := t.ClientAddr(r); c != peer.String() {
				r = r.WithContext(r.Context()) // a shallow copy
				r.RemoteAddr = c
			}
		}
		next.ServeHTTP(w, r)
	})
}

func remoteIP(addr string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(addr)
	return a.Unmap(), err == nil
}

// XForwardedFor splits X-Forwarded-For header values into their entries,
// in order.
func XForwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		for _, e := range strings.Split(v, ",") {
			out = append(out, strings.TrimSpace(e))
		}
	}
	return out
}

// ForwardedFor returns the "for" parameter of every element of Forwarded
// header values (RFC 7239), in order, with quotes removed; "" for an
// element without one.
func ForwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		for _, elem := range splitQuoted(v, ',') {
			var forv string
			for _, pair := range splitQuoted(elem, ';') {
				k, val, ok := strings.Cut(pair, "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "for") {
					continue
				}
				forv, _ = unquote(strings.TrimSpace(val))
			}
			out = append(out, forv)
		}
	}
	return out
}

// splitQuoted splits s at sep outside quoted strings.
func splitQuoted(s string, sep byte) []string {
	var (
		out    []string
		start  int
		quoted bool
	)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

var errQuote = errors.New("malformed quoted string")

// unquote removes the quotes of an RFC 7230 quoted-string, or returns a
// token as it is.
func unquote(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	if len(s) < 2 || !strings.HasSuffix(s, `"`) {
		return "", errQuote
	}
	var b strings.Builder
	in := s[1 : len(s)-1]
	for i := 0; i < len(in); i++ {
		if in[i] == '\\' {
			if i+1 == len(in) {
				return "", errQuote
			}
			i++
		}
		b.WriteByte(in[i])
	}
	return b.String(), nil
}

// ParseNode parses one hop: an IPv4 address, an IPv6 address (bare, or in
// brackets as RFC 7239 requires), either optionally with a port.
func ParseNode(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
