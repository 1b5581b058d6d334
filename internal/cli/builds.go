package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/custody-dev/custody/internal/builds"
)

// queryFlags are the flags of the build metadata queries.
type queryFlags struct {
	server string
	output string
}

func (f *queryFlags) register(fs *pflag.FlagSet) {
	registerServer(fs, &f.server)
	fs.StringVarP(&f.output, "output", "o", outputText, "output format: text or json")
}

// get fetches path from the server's /api/v1/ and decodes the JSON answer
// into v; it returns the raw body too, for -o json.
func (f *queryFlags) get(ctx context.Context, path string, v any) ([]byte, error) {
	switch f.output {
	case outputText, outputJSON:
	default:
		return nil, fmt.Errorf("invalid --output %q: use text or json", f.output)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	server, err := resolveServer(f.server)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "custody/"+Version)
	if err := authorize(req, server); err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var p struct{ Title, Detail string }
		if json.Unmarshal(body, &p) == nil && p.Title != "" {
			if p.Detail != "" {
				return nil, fmt.Errorf("%s: %s", p.Title, p.Detail)
			}
			return nil, fmt.Errorf("%s", p.Title)
		}
		return nil, fmt.Errorf("server answered %s", resp.Status)
	}
	return body, json.Unmarshal(body, v)
}

// printBuilds writes builds as a table.
func printBuilds(w io.Writer, bs []builds.Build) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tDIGEST\tTAGS\tVERSION\tREVISION\tPUSHED")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Repo, b.Digest, strings.Join(b.Tags, ","),
			b.Version, b.Revision, b.Pushed.Format(time.RFC3339))
	}
	return tw.Flush()
}

func newBuildsCmd() *cobra.Command {
	var (
		qf       queryFlags
		revision string
	)
	cmd := &cobra.Command{
		Use:   "builds --revision COMMIT",
		Short: "List the artifacts built from a source revision",
		Long: `Builds lists every manifest whose org.opencontainers.image.revision
annotation is COMMIT: OCI pushes and generic uploads alike.`,
		Example: `  custody builds --revision 4f2c9e1
  custody builds --revision 4f2c9e1 -o json --server https://custody.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if revision == "" {
				return fmt.Errorf("--revision is required")
			}
			var res builds.BuildList
			raw, err := qf.get(cmd.Context(), "/api/v1/builds?revision="+url.QueryEscape(revision), &res)
			if err != nil {
				return err
			}
			if qf.output == outputJSON {
				_, err = cmd.OutOrStdout().Write(raw)
				return err
			}
			return printBuilds(cmd.OutOrStdout(), res.Builds)
		},
	}
	qf.register(cmd.Flags())
	cmd.Flags().StringVar(&revision, "revision", "", "source revision (commit) to look up, exactly as recorded (usually the full commit hash)")
	return cmd
}

func newVersionsCmd() *cobra.Command {
	var qf queryFlags
	cmd := &cobra.Command{
		Use:   "versions REPO",
		Short: "List every version of a repository with its digest and commit",
		Long: `Versions lists the manifests of REPO that carry an
org.opencontainers.image.version annotation (every generic upload does).`,
		Example: `  custody versions tools/app
  custody versions -o json tools/app`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res builds.VersionList
			raw, err := qf.get(cmd.Context(), "/api/v1/versions/"+args[0], &res)
			if err != nil {
				return err
			}
			if qf.output == outputJSON {
				_, err = cmd.OutOrStdout().Write(raw)
				return err
			}
			return printBuilds(cmd.OutOrStdout(), res.Versions)
		},
	}
	qf.register(cmd.Flags())
	return cmd
}

func newTagCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tag",
		Short: "Inspect tags",
		Args:  cobra.NoArgs,
	}
	var qf queryFlags
	history := &cobra.Command{
		Use:   "history REPO:TAG",
		Short: "Show every digest a tag has pointed at, oldest first",
		Example: `  custody tag history team/app:latest
  custody tag history -o json team/app:latest`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i := strings.LastIndexByte(args[0], ':')
			if i <= 0 || i == len(args[0])-1 || strings.Contains(args[0][i:], "/") {
				return fmt.Errorf("%q is not REPO:TAG", args[0])
			}
			repo, tag := args[0][:i], args[0][i+1:]
			var res builds.TagHistory
			raw, err := qf.get(cmd.Context(), "/api/v1/tags/"+repo+"/"+tag+"/history", &res)
			if err != nil {
				return err
			}
			if qf.output == outputJSON {
				_, err = cmd.OutOrStdout().Write(raw)
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SINCE\tDIGEST")
			for _, e := range res.History {
				fmt.Fprintf(tw, "%s\t%s\n", e.At.Format(time.RFC3339), e.Digest)
			}
			return tw.Flush()
		},
	}
	qf.register(history.Flags())
	cmd.AddCommand(history)
	return cmd
}
