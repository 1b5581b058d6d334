package feed

import (
	"context"
	"fmt"
	"strings"

	"github.com/custody-dev/custody/internal/config"
)

// Gate is the seam of the dependency firewall (internal/firewall
// implements it): the one place that decides whether a version of a
// package may be served from a feed. Every protocol asks it, through
// Protocol.Admit, before it serves a version's file, hosted and proxied
// alike, and renders a refusal in its ecosystem's own error format.
type Gate interface {
	// Admit returns nil when version of package name may be served from
	// feed f, a *Blocked when the feed's policy refuses it, or another
	// error when the decision could not be made (which refuses too).
	Admit(ctx context.Context, f config.Feed, name, version string) error
	// AdmitUnpinned returns nil when feed f may answer a query that asks
	// for package name by range or moving label rather than one exact
	// version (query names it: Go's "@latest" and "@v/list"), a *Blocked
	// when the feed's policy refuses unpinned requests (blockUnpinned),
	// or another error when the decision could not be made. Only queries
	// the server can tell apart call it: npm and pip resolve ranges and
	// dist-tags themselves from the whole version list.
	AdmitUnpinned(ctx context.Context, f config.Feed, name, query string) error
}

// Blocked is a Gate's refusal: which version, why (the advisory or the
// rule), and the command that waives it.
type Blocked struct {
	Feed, Package, Version string
	// Reason says why, naming the advisory ("GHSA-xxxx (high): summary")
	// or the rule that refused.
	Reason string
	// Waive is the command that lets this version through, if one can.
	Waive string
}

func (b *Blocked) Error() string {
	var s strings.Builder
	s.WriteString("custody's dependency firewall blocked " + b.Package + "@" + b.Version + " in feed " + b.Feed + ": " + b.Reason)
	if b.Waive != "" {
		s.WriteString("; to waive it: " + b.Waive)
	}
	return s.String()
}

// Admit asks the Protocol's Gate whether version of package name may be
// served from the feed called feedName; without a Gate everything is.
// When the request came through a virtual feed (WithVirtual), the Gate
// judges with the virtual feed's policy as well: both must admit, so a
// virtual feed's policy holds whichever member answers, and a member's
// policy holds whichever URL it is reached at.
func (p Protocol) Admit(ctx context.Context, feedName, name, version string) error {
	return p.judge(ctx, feedName, func(f config.Feed) error { return p.Gate.Admit(ctx, f, name, version) })
}

// AdmitUnpinned asks the Protocol's Gate whether the feed called feedName
// may answer query, an unpinned request for package name (see
// Gate.AdmitUnpinned); without a Gate every query is answered.
func (p Protocol) AdmitUnpinned(ctx context.Context, feedName, name, query string) error {
	return p.judge(ctx, feedName, func(f config.Feed) error { return p.Gate.AdmitUnpinned(ctx, f, name, query) })
}

// judge asks ask about the feed called feedName and, for a request that
// came through a virtual feed, about that feed too: both must admit.
func (p Protocol) judge(ctx context.Context, feedName string, ask func(config.Feed) error) error {
	if p.Gate == nil {
		return nil
	}
	if err := ask(p.Feeds[feedName]); err != nil {
		return err
	}
	v, ok := VirtualFrom(ctx)
	if !ok || v == feedName {
		return nil
	}
	vf, ok := p.Feeds[v]
	if !ok {
		return fmt.Errorf("the virtual feed %q a request came through is not a feed of this protocol", v)
	}
	return ask(vf)
}
