package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/migrate"
	"github.com/custody-dev/custody/internal/store"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func newMigrateCmd() *cobra.Command {
	var (
		from, to string
		resume   bool
		workers  int
		output   string
	)
	cmd := &cobra.Command{
		Use:   "migrate --from CONFIG --to CONFIG",
		Short: "Copy a whole store to other backends (embedded <-> PostgreSQL + S3)",
		Long: `migrate copies everything a custody store holds into another store: every
blob (each verified against its digest as it streams into the target), every
repository's blob links, manifests (references, subjects, annotations), tags
and their history, retention locks and legal holds, policy versions, users,
their second factors (TOTP, recovery codes, security keys), grants and API
tokens, the audit log's entries, tree and latest checkpoint,
and the data directory's key files, so that the log verifies with the same
key and tokens keep working.

--from and --to name custody configuration files (their data, metadata,
blobs and s3 settings), or data directories of embedded stores (a target
directory that does not exist yet is created). CUSTODY_*
variables are not applied (they would select the same backend for both);
S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.

Stop the servers first: an embedded store is locked while a server runs on
it, and writes to a PostgreSQL + S3 source during the copy may be missed
(run migrate --resume again after stopping them to catch up).

The target must be empty. An interrupted migration continues with --resume,
which skips what the target already holds.`,
		Example: `  custody migrate --from ./custody-data --to /etc/custody/replicas.yaml
  custody migrate --from old.yaml --to new.yaml --resume -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: use text or json", output)
			}
			if from == "" || to == "" {
				return fmt.Errorf("give both --from and --to (a configuration file or a data directory)")
			}
			ctx := cmd.Context()
			src, err := openMigrateStore(cmd, from)
			if err != nil {
				return fmt.Errorf("--from %s: %w", from, err)
			}
			defer src.Close()
			dst, err := openMigrateStore(cmd, to)
			if err != nil {
				return fmt.Errorf("--to %s: %w", to, err)
			}
			defer dst.Close()
			opts := migrate.Options{Resume: resume, Workers: workers}
			var bar *barReporter
			if output == "text" && isTerminal(cmd.ErrOrStderr()) {
				bar = &barReporter{w: cmd.ErrOrStderr()}
				opts.Progress = bar
			}
			sum, err := migrate.Run(ctx, src.store, dst.store, opts)
			if bar != nil {
				bar.finish()
			}
			if err != nil {
				if output == "json" && sum != nil {
					_ = writeMigrateJSON(cmd.OutOrStdout(), sum, err)
				}
				return err
			}
			if output == "json" {
				return writeMigrateJSON(cmd.OutOrStdout(), sum, nil)
			}
			printMigrate(cmd.OutOrStdout(), src.desc, dst.desc, sum)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the source store: a custody configuration file or a data directory")
	f.StringVar(&to, "to", "", "the target store: a custody configuration file or a data directory")
	f.BoolVar(&resume, "resume", false, "continue into a non-empty target, copying only what it lacks")
	f.IntVar(&workers, "workers", 4, "blobs copied at once")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

type migrateStore struct {
	stores *store.Set
	store  migrate.Store
	desc   string
}

func (m *migrateStore) Close() { _ = m.stores.Close() }

// openMigrateStore opens the store a configuration file or data directory
// names, with the opener the server uses (it locks an embedded store).
func openMigrateStore(cmd *cobra.Command, arg string) (*migrateStore, error) {
	var cfg config.Config
	st, err := os.Stat(arg)
	ext := strings.ToLower(filepath.Ext(arg))
	switch {
	case err == nil && st.IsDir(),
		errors.Is(err, fs.ErrNotExist) && ext != ".yaml" && ext != ".yml":
		// A data directory (a new one for a target).
		cfg = config.Default()
		cfg.Data = arg
	default:
		if cfg, err = config.Load(arg, nil); err != nil {
			return nil, err
		}
	}
	stores, err := store.Open(cmd.Context(), cfg)
	if err != nil {
		return nil, err
	}
	return &migrateStore{
		stores: stores,
		store:  migrate.Store{Meta: stores.Meta, Scrub: stores.Scrub, Blobs: stores.Blobs, Data: cfg.Data},
		desc:   stores.Desc + " (data " + cfg.Data + ")",
	}, nil
}

// barReporter draws one progress bar per phase on a terminal.
type barReporter struct {
	w   io.Writer
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func (b *barReporter) Phase(name string, total int64, bytes bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		_ = b.bar.Finish()
		fmt.Fprintln(b.w)
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(b.w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-10s", name)),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionShowTotalBytes(true))
	}
	b.bar = progressbar.NewOptions64(total, opts...)
}

func (b *barReporter) Add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		_ = b.bar.Add64(n)
	}
}

func (b *barReporter) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		_ = b.bar.Finish()
		fmt.Fprintln(b.w)
	}
}

// migrateJSON is the -o json document.
type migrateJSON struct {
	*migrate.Summary
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func writeMigrateJSON(w io.Writer, sum *migrate.Summary, err error) error {
	doc := migrateJSON{Summary: sum, OK: err == nil}
	if err != nil {
		doc.Error = err.Error()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func printMigrate(w io.Writer, from, to string, s *migrate.Summary) {
	fmt.Fprintf(w, "migrated %s\n      to %s in %s\n", from, to, s.Duration.Round(time.Millisecond))
	row := func(what string, c migrate.Count) {
		fmt.Fprintf(w, "  %-16s %8d copied %8d already there\n", what, c.Copied, c.Skipped)
	}
	row("blobs", s.Blobs)
	fmt.Fprintf(w, "  %-16s %8d bytes copied\n", "", s.BlobBytes)
	row("blob links", s.Links)
	row("manifests", s.Manifests)
	row("tags", s.Tags)
	fmt.Fprintf(w, "  %-16s %8d moves replayed\n", "tag history", s.TagMoves)
	row("retention", s.Locks)
	row("policy versions", s.Policies)
	row("users", s.Users)
	row("grants", s.Grants)
	row("tokens", s.Tokens)
	row("second factors", s.Factors)
	row("audit entries", s.AuditLeaves)
	row("key files", s.KeyFiles)
	if s.Checkpoint {
		fmt.Fprintln(w, "  audit checkpoint copied")
	}
	for _, m := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", m)
	}
}
