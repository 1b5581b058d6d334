package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/scrub"
	"github.com/custody-dev/custody/internal/store"
)

func newScrubCmd() *cobra.Command {
	var (
		data       string
		configPath string
		subset     string
		output     string
	)
	cmd := &cobra.Command{
		Use:   "scrub",
		Short: "Verify every stored blob, manifest and reference",
		Long: `Check the integrity of a custody store.

scrub re-hashes stored blobs and every manifest, and checks every
reference: repository link -> blob, manifest -> blobs, index -> manifests,
tag -> manifest (a referrer whose subject is absent is a warning: OCI allows
pushing referrers first). It reports each damaged or missing object with
its digest and repositories and exits with status 1 if anything is wrong.

scrub only reads and takes no lock, so it is safe while 'custody serve'
runs on the same store: an embedded store's database is opened read-only;
with --config it opens the backends the file names (and CUSTODY_*
variables select), also PostgreSQL + S3, with S3 credentials from
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. The bucket's Object Lock
check runs only inside serve.

--read-data-subset n/t re-hashes only the blobs whose digest falls into
bucket n of t (manifests and references are always checked), so a large
store can be covered in rotation, e.g. 1/7 on Mondays ... 7/7 on Sundays.`,
		Example: `  custody scrub --data ./custody-data
  custody scrub --config /etc/custody.yaml
  custody scrub --data /srv/custody --read-data-subset 3/7 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: use text or json", output)
			}
			var sub scrub.Subset
			if subset != "" {
				var err error
				if sub, err = scrub.ParseSubset(subset); err != nil {
					return err
				}
			}
			cfg := config.Default()
			cfg.Data = data
			if configPath != "" {
				if cmd.Flags().Changed("data") {
					return fmt.Errorf("give the store with --data or --config, not both")
				}
				var err error
				if cfg, err = config.Load(configPath, os.Environ()); err != nil {
					return err
				}
			}
			view, err := store.OpenView(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer view.Close()
			rep, err := (&scrub.Scrubber{Blobs: view.Blobs, Meta: view.Scrub, Subset: sub}).Run(cmd.Context())
			if err != nil {
				return err
			}
			if err := printScrub(cmd.OutOrStdout(), rep, output); err != nil {
				return err
			}
			if !rep.OK() {
				return fmt.Errorf("scrub found %d damaged or missing objects", rep.DamagedCount)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", config.Default().Data, "data directory of the embedded store")
	f.StringVar(&configPath, "config", "", "scrub the store a custody configuration file names (also PostgreSQL + S3)")
	f.StringVar(&subset, "read-data-subset", "", "re-hash only blobs in bucket n of t (n/t)")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func printScrub(w io.Writer, rep *scrub.Report, output string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "%s %s in %s: %s\n", strings.ToUpper(p.Kind), p.Digest, strings.Join(p.Repos, ", "), p.Detail)
	}
	for _, wn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s in %s: %s\n", wn.Digest, wn.Repo, wn.Detail)
	}
	fmt.Fprintf(w, "scrubbed %d blobs (%d hashed, %d bytes, subset %s), %d manifests, %d tags, %d links: %d damaged or missing\n",
		rep.Blobs, rep.BlobsHashed, rep.BytesHashed, rep.Subset, rep.Manifests, rep.Tags, rep.Links, rep.DamagedCount)
	return nil
}
