package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/feed/origin"
)

func newDependenciesCmd() *cobra.Command {
	var f apiFlags
	var file string
	cmd := &cobra.Command{
		Use:   "dependencies [REPOSITORY@DIGEST | --provenance FILE]",
		Short: "Say which of a build's dependencies came through custody's feeds",
		Long: `Reads the resolved dependencies of a build's SLSA v1 provenance (its trusted
provenance attestations in the registry, or a provenance document: predicate,
in-toto statement or DSSE envelope) and says, per dependency, whether a feed
served it: the same name and version stored in a feed AND one of the
provenance's digests equal to the stored file's (sha256, npm's sha512/sha1, Go's
h1). Versions in repositories you may not pull count as not found.`,
		Example: `  custody dependencies myteam/app@sha256:4f1c...
  custody dependencies --provenance provenance.json -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var b []byte
			var err error
			switch {
			case file != "" && len(args) == 0:
				doc, rerr := os.ReadFile(file)
				if rerr != nil {
					return rerr
				}
				c, cerr := f.client()
				if cerr != nil {
					return cerr
				}
				if err = c.Send(cmd.Context(), apiclient.Request{Method: http.MethodPost, Path: "/api/v1/feeds/report", Body: bytes.NewReader(doc), ContentType: "application/json"}, &b); err != nil {
					return explain(c, err)
				}
			case file == "" && len(args) == 1:
				repo, dgst, serr := splitRef(args[0])
				if serr != nil {
					return serr
				}
				b, err = f.call(cmd, http.MethodGet, "/api/v1/feeds/report?repository="+url.QueryEscape(repo)+"&digest="+url.QueryEscape(dgst), nil, nil)
				if err != nil {
					return err
				}
			default:
				return errors.New("name a build (REPOSITORY@DIGEST) or a provenance document (--provenance FILE)")
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var rep origin.Report
				if err := json.Unmarshal(b, &rep); err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "DEPENDENCY\tTHROUGH CUSTODY\tFEED\tMATCHED\tWHY NOT")
				for _, d := range rep.Dependencies {
					yes := "no"
					if d.ThroughCustody {
						yes = "yes"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.URI, yes, d.Feed, d.Matched, d.Reason)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d through custody, %d not\n", rep.Through, rep.Outside)
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&file, "provenance", "", "a provenance document instead of a stored build's attestations")
	return cmd
}
