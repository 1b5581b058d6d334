package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/builds"
)

// get fetches path from the server's /api/v1/ and decodes the JSON answer
// into v; it returns the raw body too, for -o json.
func (f *apiFlags) get(cmd *cobra.Command, path string, v any) ([]byte, error) {
	b, err := f.call(cmd, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, err
	}
	return b, json.Unmarshal(b, v)
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
		qf       apiFlags
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
			raw, err := qf.get(cmd, "/api/v1/builds?revision="+url.QueryEscape(revision), &res)
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
	var qf apiFlags
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
			raw, err := qf.get(cmd, "/api/v1/versions/"+args[0], &res)
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
	var qf apiFlags
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
			raw, err := qf.get(cmd, "/api/v1/tags/"+repo+"/"+tag+"/history", &res)
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
