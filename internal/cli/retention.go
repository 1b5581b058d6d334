package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
)

// lockView is the retention state the API returns.
type lockView struct {
	Repo        string    `json:"repository"`
	Digest      string    `json:"digest"`
	Mode        string    `json:"mode,omitempty"`
	RetainUntil time.Time `json:"retainUntil,omitzero"`
	LegalHold   bool      `json:"legalHold"`
	Updated     time.Time `json:"updated,omitzero"`
}

// artifactPath parses "<repository>@<digest>" into the API path suffix.
func artifactPath(arg string) (string, error) {
	repo, d, ok := strings.Cut(arg, "@")
	if !ok || repo == "" {
		return "", errors.New("name the artifact as <repository>@<digest> (for example team/app@sha256:<hex>)")
	}
	if _, err := digest.Parse(d); err != nil {
		return "", fmt.Errorf("digest %q: %v", d, err)
	}
	// Accept a full reference (host/repo@digest), as copied from crane or
	// docker: a first component with '.' or ':' or "localhost" is a host.
	if host, rest, ok := strings.Cut(repo, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		repo = rest
	}
	return repo + "/@" + d, nil
}

// parsePeriod reads a period (a retention, a token's lifetime): a Go
// duration ("720h") or a whole number of days ("90d") or years of 365 days
// ("2y"). A period longer than a duration holds (about 292 years) is
// refused rather than wrapped around. Its error names no flag and suggests
// no value: callers do.
func parsePeriod(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "y": 365 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > 0 {
				if v > int64(math.MaxInt64/unit) {
					return 0, fmt.Errorf("%q is longer than %s (about 292 years)", s, time.Duration(math.MaxInt64))
				}
				return time.Duration(v) * unit, nil
			}
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration", s)
	}
	return d, nil
}

func (f *apiFlags) printLock(cmd *cobra.Command, b []byte) error {
	w := cmd.OutOrStdout()
	if f.output == outputJSON {
		_, err := w.Write(b)
		return err
	}
	var l lockView
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	ret := "none"
	if l.Mode != "" {
		ret = fmt.Sprintf("%s until %s", l.Mode, l.RetainUntil.UTC().Format(time.RFC3339))
	}
	hold := "off"
	if l.LegalHold {
		hold = "on"
	}
	fmt.Fprintf(w, "%s@%s\n  retention:  %s\n  legal hold: %s\n", l.Repo, l.Digest, ret, hold)
	return nil
}

func newRetentionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Show or set the retention lock of an artifact",
		Long: `Show or set the retention lock of an artifact (a repository and a manifest
digest; the lock covers every blob and child manifest it references).

governance: deleting the artifact or shortening the lock needs the bypass
permission and an explicit --bypass-governance reason (audited).
compliance: nobody can delete, shorten or change the mode until it expires.
Extending is always allowed. See docs/retention.md.`,
	}
	cmd.AddCommand(newRetentionShowCmd(), newRetentionSetCmd())
	return cmd
}

func newRetentionShowCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:     "show <repository>@<digest>",
		Short:   "Show the retention lock and legal hold of an artifact",
		Example: "  custody retention show team/app@sha256:4f1c... -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := artifactPath(args[0])
			if err != nil {
				return err
			}
			b, err := f.call(cmd, http.MethodGet, "/api/v1/retention/"+p, nil, nil)
			if err != nil {
				return err
			}
			return f.printLock(cmd, b)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newRetentionSetCmd() *cobra.Command {
	var (
		f      apiFlags
		mode   string
		until  string
		period string
		reason string
	)
	cmd := &cobra.Command{
		Use:   "set <repository>@<digest>",
		Short: "Set or extend the retention lock of an artifact",
		Long: `Set or extend the retention lock of an artifact. The retain-until date is
given with --until (RFC 3339) or --for (a duration from now, by the
client's clock; the server refuses dates in its past).`,
		Example: `  custody retention set team/app@sha256:4f1c... --mode compliance --for 2y
  custody retention set team/app@sha256:4f1c... --mode governance --until 2027-01-01T00:00:00Z
  custody retention set team/app@sha256:4f1c... --mode governance --for 1h --bypass-governance "INC-42: wrong artifact"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := artifactPath(args[0])
			if err != nil {
				return err
			}
			var t time.Time
			switch {
			case until != "" && period != "":
				return errors.New("give --until or --for, not both")
			case until != "":
				if t, err = time.Parse(time.RFC3339, until); err != nil {
					return fmt.Errorf("--until %q is not an RFC 3339 time (e.g. 2027-01-01T00:00:00Z)", until)
				}
			case period != "":
				d, err := parsePeriod(period)
				if err != nil {
					return fmt.Errorf("invalid --for: %w; use a duration such as 720h, 730d or 2y, or give a later date with --until", err)
				}
				t = time.Now().Add(d)
			default:
				return errors.New("give --until or --for")
			}
			h := http.Header{}
			if reason != "" {
				h.Set("X-Custody-Bypass-Governance", reason)
			}
			b, err := f.call(cmd, http.MethodPut, "/api/v1/retention/"+p,
				map[string]any{"mode": mode, "retainUntil": t.UTC().Format(time.RFC3339)}, h)
			if err != nil {
				return err
			}
			return f.printLock(cmd, b)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&mode, "mode", "governance", "retention mode: governance or compliance")
	cmd.Flags().StringVar(&until, "until", "", "retain until this RFC 3339 time")
	cmd.Flags().StringVar(&period, "for", "", "retain for this long from now (720h, 730d, 2y)")
	cmd.Flags().StringVar(&reason, "bypass-governance", "", "reason for bypassing governance retention (needs the bypass permission; audited)")
	return cmd
}

func newHoldCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hold",
		Short: "Place or clear a legal hold on an artifact",
		Long: `Place or clear a legal hold on an artifact. A held artifact, and every blob
and child manifest it references, cannot be deleted, whatever its retention
and even with a governance bypass, until the hold is cleared.`,
	}
	for _, on := range []bool{true, false} {
		var f apiFlags
		use, short, method := "set", "Place a legal hold", http.MethodPut
		if !on {
			use, short, method = "clear", "Clear a legal hold", http.MethodDelete
		}
		c := &cobra.Command{
			Use:     use + " <repository>@<digest>",
			Short:   short,
			Example: "  custody hold " + use + " team/app@sha256:4f1c...",
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				p, err := artifactPath(args[0])
				if err != nil {
					return err
				}
				b, err := f.call(cmd, method, "/api/v1/hold/"+p, nil, nil)
				if err != nil {
					return err
				}
				return f.printLock(cmd, b)
			},
		}
		f.register(c.Flags())
		cmd.AddCommand(c)
	}
	return cmd
}
