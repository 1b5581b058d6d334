package bundle

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Markdown renders summary.md: the same facts as summary.json, for people.
func Markdown(req Request, log LogRef, s Summary) []byte {
	var b bytes.Buffer
	b.WriteString("# Evidence bundle\n\n")
	switch {
	case req.Environment != "":
		at := "the time of export"
		if !req.At.IsZero() {
			at = req.At.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(&b, "What ran in **%s**", Printable(req.Environment))
		if req.Project != "" {
			fmt.Fprintf(&b, " (project %s)", Printable(req.Project))
		}
		fmt.Fprintf(&b, " at %s.\n\n", at)
	default:
		fmt.Fprintf(&b, "Artifacts asked for: %s.\n\n", Printable(strings.Join(req.Refs, ", ")))
	}
	if req.MetadataOnly {
		b.WriteString("Layer bytes are left out (--metadata-only); manifests, configs and all evidence are in.\n\n")
	}
	fmt.Fprintf(&b, "Audit log %s, checkpoint of size %d (root %s).\n\n", log.Origin, log.Size, log.Root)
	b.WriteString("Verify it offline: `custody verify --bundle FILE --trust-root-fingerprint SHA256`.\n")
	for _, a := range s.Artifacts {
		fmt.Fprintf(&b, "\n## %s@%s\n\n", Printable(a.Repository), Printable(a.Digest))
		line := func(k, v string) { fmt.Fprintf(&b, "- %s: %s\n", Printable(k), Printable(v)) }
		if len(a.Tags) > 0 {
			line("tags", strings.Join(a.Tags, ", "))
		}
		for _, e := range a.Environments {
			line("ran in "+e.Environment, "since "+ts(e.Since))
		}
		if a.Pushed != nil {
			line("pushed", fmt.Sprintf("by %s at %s (audit entry %d)", a.Pushed.By, ts(a.Pushed.At), a.Pushed.AuditIndex))
		}
		if a.Source != nil {
			line("built", fmt.Sprintf("from %s commit %s by %s", or(a.Source.Repository), or(a.Source.Commit), or(a.Source.Builder)))
		}
		for _, sg := range a.Signatures {
			line("signed", fmt.Sprintf("by key %s at %s (%s)", sg.KeyID, ts(sg.SignedAt), sg.Source))
		}
		for _, at := range a.Attestations {
			line("attestation", fmt.Sprintf("%s by key %s", at.PredicateType, at.KeyID))
		}
		for _, p := range a.Promotions {
			what := "promoted to "
			if p.Rollback {
				what = "rolled back in "
			}
			line(what+p.Environment, fmt.Sprintf("by %s at %s (previous %s; approvers %s)", p.By, ts(p.At), or(p.Previous), or(strings.Join(p.Approvers, ", "))))
		}
		for _, p := range a.Approvals {
			line("approved for "+p.Environment, fmt.Sprintf("by %s at %s", p.By, ts(p.At)))
		}
		for _, r := range a.Revocations {
			line("REVOKED", fmt.Sprintf("by %s at %s: %s", r.By, ts(r.At), r.Reason))
		}
		if r := a.Retention; r != nil {
			line("retention", fmt.Sprintf("%s until %s, legal hold %t", or(r.Mode), ts(r.RetainUntil), r.LegalHold))
		}
		line("evidence manifests in the bundle", fmt.Sprint(len(a.Evidence)))
	}
	return b.Bytes()
}

// Printable returns s with every control character (newlines, escape
// sequences) and invalid UTF-8 written as a Go escape (\n, \x1b): free
// text in a bundle (a revocation's reason, a name) stays on its line and
// cannot forge lines of summary.md or of a terminal's report.
func Printable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func or(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
