package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/apiclient"
)

func newVulnDBCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vulndb",
		Short: "Load and inspect the offline vulnerability database (OSV)",
		Long: `custody matches the packages of verified SBOMs against an offline copy of
OSV advisories (Go, npm, PyPI, Maven, Debian, Alpine and more), with each
ecosystem's version rules and CVSS severities. Load osv.dev's per-ecosystem
exports (https://osv-vulnerabilities.storage.googleapis.com/<ecosystem>/all.zip)
or single advisories; after each import the server re-evaluates every
promoted artifact against its environment's gate ('custody violations').`,
	}
	var f apiFlags
	imp := &cobra.Command{
		Use:     "import FILE",
		Short:   "Upload an OSV .zip export or advisory .json to the server (admin)",
		Example: `  custody vulndb import Go-all.zip && custody vulndb import Debian-all.zip`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fh, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer fh.Close()
			server, err := resolveServer(f.server)
			if err != nil {
				return err
			}
			c, err := newAPIClient(server, apiclient.Options{HeaderTimeout: longRunning})
			if err != nil {
				return err
			}
			ctype := "application/json"
			if strings.HasSuffix(strings.ToLower(args[0]), ".zip") {
				ctype = "application/zip"
			}
			var b []byte
			if err := c.Send(cmd.Context(), apiclient.Request{Method: http.MethodPost, Path: "/api/v1/vulndb", Body: fh, ContentType: ctype}, &b); err != nil {
				return fmt.Errorf("import refused: %w", explain(c, err))
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var st struct {
					Revision   int64
					Advisories int
					Violations int
				}
				_ = json.Unmarshal(b, &st)
				fmt.Fprintf(cmd.OutOrStdout(), "imported; database revision %d holds %d advisories; %d promoted artifact(s) now violate their gate\n", st.Revision, st.Advisories, st.Violations)
				return nil
			})
		},
	}
	f.register(imp.Flags())
	var sf apiFlags
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the database revision, last update and advisory count",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := sf.call(cmd, http.MethodGet, "/api/v1/vulndb", nil, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, sf.output, b, func() error {
				_, err := cmd.OutOrStdout().Write(append(b, '\n'))
				return err
			})
		},
	}
	sf.register(status.Flags())
	cmd.AddCommand(imp, status)
	return cmd
}

func newViolationsCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "violations",
		Short: "List promoted artifacts whose environment's gate no longer holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.call(cmd, http.MethodGet, "/api/v1/violations", nil, nil)
			if err != nil {
				return err
			}
			var vs []struct {
				Repository, Environment, Digest string
				Failed                          []struct{ Name string }
			}
			if err := json.Unmarshal(b, &vs); err != nil {
				return err
			}
			err = printJSONOrText(cmd, f.output, b, func() error {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ENVIRONMENT\tREPOSITORY\tDIGEST\tFAILED RULES")
				for _, v := range vs {
					var names []string
					for _, r := range v.Failed {
						names = append(names, r.Name)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Environment, v.Repository, v.Digest, strings.Join(names, ","))
				}
				return tw.Flush()
			})
			if err == nil && len(vs) > 0 {
				err = fmt.Errorf("%d promoted artifact(s) violate their gate", len(vs))
			}
			return err
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newScanCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "scan REF",
		Short: "Match an artifact's SBOMs against the vulnerability database and attach the signed result",
		Long: `The server matches the packages of REF's verified SBOM attestations against
its offline OSV database, applies the waivers of its verified OpenVEX
attestations, and attaches the result as a vulnerability-scan attestation
(https://in-toto.io/attestation/vulns/v0.2) signed with its own key.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, dgst, err := splitRef(args[0])
			if err != nil {
				return err
			}
			b, err := f.call(cmd, http.MethodPost, "/api/v1/scan", map[string]string{"repository": repo, "digest": dgst}, nil)
			if err != nil {
				return err
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var res struct {
					Scanner struct {
						Result []struct {
							ID, Package, Version, Fixed string
							Waived                      bool
							Severity                    []struct{ Method, Score string }
						}
					}
				}
				if err := json.Unmarshal(b, &res); err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSEVERITY\tPACKAGE\tVERSION\tFIXED\tWAIVED")
				for _, r := range res.Scanner.Result {
					sev := ""
					if len(r.Severity) > 0 {
						sev = r.Severity[0].Score
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", r.ID, sev, r.Package, r.Version, r.Fixed, r.Waived)
				}
				fmt.Fprintf(tw, "%d finding(s); attached to %s@%s\n", len(res.Scanner.Result), repo, dgst)
				return tw.Flush()
			})
		},
	}
	f.register(cmd.Flags())
	return cmd
}
