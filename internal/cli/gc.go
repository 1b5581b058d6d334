package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/gc"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
)

func newGCCmd() *cobra.Command {
	var (
		configPath string
		data       string
		serverURL  string
		dryRun     bool
		output     string
		grace      time.Duration
		untagged   []string
	)
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete unreferenced blobs, untagged manifests and stale uploads",
		Long: `Garbage-collect a custody store.

GC deletes
  - blobs that no repository links and no manifest references,
  - untagged manifests that no index references and that are not referrers
    of a live manifest, only in repositories listed in gc.untaggedManifests
    (or --untagged),
  - upload sessions idle for longer than uploads.ttl.
Nothing written less than gc.grace (default 1h) ago, and nothing under
retention or legal hold, is ever deleted.

Two ways to run it:
  --data DIR / --config FILE   offline: on an embedded store no server uses
                               (GC takes the data directory's lock, like
                               serve), or beside the replicas of a
                               PostgreSQL + S3 store
  --server URL                 online: asks the running server to collect
                               (POST URL/api/v1/gc), safe during pushes

--dry-run reports what would be deleted and deletes nothing. Details of
the concurrency design: docs/maintenance.md.`,
		Example: `  custody gc --data ./custody-data --dry-run
  custody gc --config /etc/custody.yaml -o json
  custody gc --server http://127.0.0.1:5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: use text or json", output)
			}
			var rep *gc.Report
			if serverURL != "" {
				r, err := remoteGC(cmd.Context(), serverURL, dryRun)
				if err != nil {
					return err
				}
				rep = r
			} else {
				if configPath == "" {
					configPath = os.Getenv("CUSTODY_CONFIG")
				}
				cfg, err := config.Load(configPath, os.Environ())
				if err != nil {
					return err
				}
				f := cmd.Flags()
				if f.Changed("data") {
					cfg.Data = data
				}
				if f.Changed("grace") {
					cfg.GC.Grace = config.Duration(grace)
				}
				if f.Changed("untagged") {
					cfg.GC.UntaggedManifests = untagged
				}
				if err := cfg.Validate(); err != nil {
					return err
				}
				if _, err := os.Stat(cfg.Data); err != nil {
					return fmt.Errorf("data directory: %w", err)
				}
				st, err := store.Open(cmd.Context(), cfg)
				if err != nil {
					if errors.Is(err, store.ErrInUse) {
						return fmt.Errorf("%w; to collect while it serves, use --server URL", err)
					}
					return err
				}
				srv, err := server.NewWith(cfg, newLogger(cmd.ErrOrStderr(), config.Log{Format: "text", Level: "warn"}), st)
				if err != nil {
					st.Close()
					return err
				}
				defer srv.Close()
				rep, err = srv.GC(cmd.Context(), dryRun)
				if err != nil {
					return err
				}
			}
			return printGC(cmd.OutOrStdout(), rep, output)
		},
	}
	d := config.Default()
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file (gc.*, uploads.ttl and data are read from it)")
	f.StringVar(&data, "data", d.Data, "data directory of the embedded store (offline GC)")
	f.StringVar(&serverURL, "server", "", "URL of a running custody server to run GC in (online GC)")
	f.BoolVar(&dryRun, "dry-run", false, "report what would be deleted, delete nothing")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	f.DurationVar(&grace, "grace", time.Duration(d.GC.Grace), "never delete anything younger than this (offline GC)")
	f.StringSliceVar(&untagged, "untagged", nil, "repository patterns where untagged manifests are collected (offline GC)")
	return cmd
}

// remoteGC runs GC in the server at base; the server answers when the
// collection is done, so the wait for its answer is long.
func remoteGC(ctx context.Context, base string, dryRun bool) (*gc.Report, error) {
	c, err := newAPIClient(strings.TrimSuffix(base, "/"), apiclient.Options{HeaderTimeout: longRunning})
	if err != nil {
		return nil, err
	}
	path := "/api/v1/gc"
	if dryRun {
		path += "?dryRun=true"
	}
	var rep gc.Report
	if err := c.Do(ctx, http.MethodPost, path, nil, &rep); err != nil {
		return nil, fmt.Errorf("gc via %s: %w", base, explain(c, err))
	}
	return &rep, nil
}

func printGC(w io.Writer, rep *gc.Report, output string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	verb := "deleted"
	if rep.DryRun {
		verb = "would delete"
	}
	for _, m := range rep.Manifests {
		fmt.Fprintf(w, "%s manifest %s@%s\n", verb, m.Repo, m.Digest)
	}
	for _, b := range rep.Blobs {
		fmt.Fprintf(w, "%s blob %s (%d bytes)\n", verb, b.Digest, b.Size)
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	fmt.Fprintf(w, "%s %d manifests, %d blobs (%d bytes), %d upload sessions; kept %d protected; %d errors\n",
		verb, len(rep.Manifests), len(rep.Blobs), rep.BytesReclaimed, rep.UploadsPurged, rep.Protected, len(rep.Errors))
	return nil
}
