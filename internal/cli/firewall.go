package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/firewall"
)

func newFirewallCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "firewall",
		Short: "Waive the dependency firewall's blocks and list the waivers",
		Long: `A feed's dependency firewall (docs/feeds.md) refuses to serve versions with
an advisory in the offline vulnerability database at or above the feed's
blockSeverity. A waiver lets one package (or one version of it) through for
one advisory until it expires; the refusal names the command that waives it.
Waivers are OpenVEX statements (not_affected, with custody_expires) stored in
the feed, and audited.`,
	}
	var f apiFlags
	var feedName, advisory, expires, reason string
	waive := &cobra.Command{
		Use:   "waive PURL --feed FEED --advisory ID --expires DATE --reason TEXT",
		Short: "Let a blocked package version through for one advisory until a date (admin)",
		Example: `  custody firewall waive --feed npm-public pkg:npm/left-pad@1.3.0 --advisory GHSA-xxxx-xxxx-xxxx \
      --expires 2027-01-31 --reason "only used at build time"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if feedName == "" || advisory == "" || expires == "" || reason == "" {
				return errors.New("--feed, --advisory, --expires and --reason are required")
			}
			req := firewall.WaiverRequest{Package: args[0], Advisory: advisory, Expires: expires, Reason: reason}
			b, err := f.call(cmd, http.MethodPost, "/api/v1/feeds/"+url.PathEscape(feedName)+"/waivers", req, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var w firewall.Waiver
				if err := json.Unmarshal(b, &w); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "waived %s for %s in feed %s until %s (waiver %s)\n",
					w.Advisory, w.Package, w.Feed, w.Expires.Format(time.RFC3339), w.ID)
				return nil
			})
		},
	}
	f.register(waive.Flags())
	waive.Flags().StringVar(&feedName, "feed", "", "the feed")
	waive.Flags().StringVar(&advisory, "advisory", "", "the advisory's ID (or a CVE alias)")
	waive.Flags().StringVar(&expires, "expires", "", "when the waiver lapses: a date (YYYY-MM-DD, midnight UTC) or an RFC 3339 time")
	waive.Flags().StringVar(&reason, "reason", "", "why the version is safe to serve (the VEX impact statement)")

	var lf apiFlags
	var listFeed string
	list := &cobra.Command{
		Use:   "waivers --feed FEED",
		Short: "List a feed's waivers, expired ones included",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listFeed == "" {
				return errors.New("--feed is required")
			}
			var ws []firewall.Waiver
			b, err := lf.get(cmd, "/api/v1/feeds/"+url.PathEscape(listFeed)+"/waivers", &ws)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, lf.output, b, func() error {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PACKAGE\tADVISORY\tEXPIRES\tSTATE\tAUTHOR\tREASON")
				for _, w := range ws {
					state := "active"
					if w.Expired {
						state = "expired"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", w.Package, w.Advisory, w.Expires.Format(time.RFC3339), state, w.Author, w.Reason)
				}
				return tw.Flush()
			})
		},
	}
	lf.register(list.Flags())
	list.Flags().StringVar(&listFeed, "feed", "", "the feed")
	cmd.AddCommand(waive, list)
	return cmd
}
