package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/tlog"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, export and checkpoint the tamper-evident audit log",
		Long: `The audit log records every state change and refusal as an entry of an
append-only RFC 6962 Merkle tree; the server signs checkpoints (tree size
and root hash) with its log key. See docs/audit.md.`,
	}
	cmd.AddCommand(newAuditVerifyCmd(), newAuditExportCmd(), newAuditCheckpointCmd())
	return cmd
}

func newAuditCheckpointCmd() *cobra.Command {
	var (
		serverURL string
		sign      bool
	)
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the latest signed checkpoint (save it for verify --since-checkpoint)",
		Example: `  custody audit checkpoint --server http://127.0.0.1:5000 > cp.txt
  custody audit checkpoint --server http://127.0.0.1:5000 --sign`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAuditClient(serverURL)
			if err != nil {
				return err
			}
			var b []byte
			if sign {
				b, err = c.do(cmd.Context(), http.MethodPost, "/api/v1/audit/checkpoint")
			} else {
				b, err = c.Checkpoint(cmd.Context())
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	registerServer(cmd.Flags(), &serverURL)
	cmd.Flags().BoolVar(&sign, "sign", false, "ask the server to sign a checkpoint of the current tree first")
	return cmd
}

func newAuditExportCmd() *cobra.Command {
	var serverURL string
	cmd := &cobra.Command{
		Use:   "export DIR",
		Short: "Write the latest checkpoint, the log's public key and every entry to DIR",
		Long: `export writes DIR/checkpoint (the latest signed checkpoint),
DIR/log-key.pub (the server's public key, as the server serves it) and
DIR/entries.jsonl (one {"index","entry","leafHash"} object a line), so that
'custody audit verify --export DIR --key KEY' works offline.`,
		Example: `  custody audit export --server http://127.0.0.1:5000 ./audit-2026-11`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			c, err := newAuditClient(serverURL)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cp, err := c.Checkpoint(ctx)
			if err != nil {
				return err
			}
			key, err := c.Key(ctx)
			if err != nil {
				return err
			}
			entries, err := c.Entries(ctx)
			if err != nil {
				return err
			}
			if err := tlog.WriteExport(dir, cp, key, entries); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %d entries and the checkpoint to %s\n", len(entries), dir)
			return nil
		},
	}
	registerServer(cmd.Flags(), &serverURL)
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var (
		serverURL, exportDir, keyFile, sinceFile string
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify the audit log against its signed checkpoint",
		Long: `verify checks the audit log end to end:

  1. the latest checkpoint's signature, with the log's public key (--key;
     without it, the key the server or export offers, which only proves the
     log is consistent with itself: trust on first use);
  2. every entry: recomputes its RFC 6962 leaf hash, checks it is in
     canonical form and that no index is missing;
  3. recomputes the Merkle root of the first <size> entries and compares it
     with the checkpoint's root (online, it also pinpoints the first entry
     that differs from the signed tree, using consistency proofs);
  4. with --since-checkpoint FILE (a checkpoint saved earlier with 'custody
     audit checkpoint'): that the current checkpoint extends the saved one
     (consistency proof, and the recomputed root of the saved size);
  5. online: that the log records every tag the registry holds (an ok
     tag.set entry for its current digest), so that a change the
     metadata holds but the log lacks is reported (not offline).

It prints every problem found and exits with status 1 if there is any.`,
		Example: `  custody audit verify --server http://127.0.0.1:5000 --key log-key.pub
  custody audit verify --export ./audit-2026-11 --key log-key.pub --since-checkpoint cp-2026-10.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if exportDir != "" && cmd.Flags().Changed("server") {
				return errors.New("give --server or --export, not both")
			}
			ctx := cmd.Context()
			var (
				src    tlog.Source = tlog.Export(exportDir)
				online *auditClient
				opts   tlog.VerifyOptions
			)
			if exportDir == "" {
				c, err := newAuditClient(serverURL)
				if err != nil {
					return err
				}
				src, online = c, &c
			}
			if keyFile != "" {
				b, err := os.ReadFile(keyFile)
				if err != nil {
					return fmt.Errorf("reading the log's public key: %w", err)
				}
				opts.Key = string(b)
			} else {
				opts.TrustSourceKey = true
			}
			if sinceFile != "" {
				b, err := os.ReadFile(sinceFile)
				if err != nil {
					return fmt.Errorf("--since-checkpoint: %w", err)
				}
				opts.Since = b
			}
			v, err := tlog.Verify(ctx, src, opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			problems := printVerification(out, cmd.ErrOrStderr(), v)
			if v.Checkpoint.Root != nil {
				if online == nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "note: offline, the registry's tags are not reconciled with the log")
				} else {
					rec, err := online.reconcile(ctx)
					if err != nil {
						return fmt.Errorf("reconciling the registry's tags with the log: %w", err)
					}
					problems += printReconciliation(out, rec)
				}
			}
			if problems > 0 {
				return fmt.Errorf("audit log verification failed: %d problem(s)", problems)
			}
			fmt.Fprintf(out, "OK: %d entries match the signed checkpoint\n", v.Checkpoint.Size)
			return nil
		},
	}
	f := cmd.Flags()
	registerServer(f, &serverURL)
	f.StringVar(&exportDir, "export", "", "verify an export directory (custody audit export) offline")
	f.StringVar(&keyFile, "key", "", "the log's public key (log-key.pub from the server's data directory)")
	f.StringVar(&sinceFile, "since-checkpoint", "", "a checkpoint saved earlier: check the log still extends it")
	return cmd
}

// auditClient reads the log from a running server's audit API; it is the
// online tlog.Source.
type auditClient struct{ api *apiclient.Client }

// newAuditClient talks to the server --server, CUSTODY_SERVER or the last
// login names.
func newAuditClient(flag string) (auditClient, error) {
	base, err := resolveServer(flag)
	if err != nil {
		return auditClient{}, err
	}
	c, err := newAPIClient(base, apiclient.Options{})
	return auditClient{api: c}, err
}

func (c auditClient) do(ctx context.Context, method, path string) ([]byte, error) {
	var b []byte
	if err := c.api.Do(ctx, method, path, nil, &b); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, explain(c.api, err))
	}
	return b, nil
}

func (c auditClient) Key(ctx context.Context) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/api/v1/audit/key")
}

func (c auditClient) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/api/v1/audit/checkpoint")
}

func (c auditClient) Entries(ctx context.Context) ([]tlog.EntryJSON, error) {
	var out []tlog.EntryJSON
	for start, size := uint64(0), uint64(1); start < size; start += tlog.MaxEntries {
		b, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/audit/entries?start=%d&end=%d", start, start+tlog.MaxEntries))
		if err != nil {
			return nil, err
		}
		var r tlog.EntriesResponse
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("entries: %w", err)
		}
		size = r.Size
		out = append(out, r.Entries...)
	}
	return out, nil
}

func (c auditClient) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	b, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/audit/proof/consistency?from=%d&to=%d", from, to))
	if err != nil {
		return nil, err
	}
	var r tlog.ProofResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	return r.Hashes, nil
}

func (c auditClient) reconcile(ctx context.Context) (tlog.Reconciliation, error) {
	var r tlog.Reconciliation
	b, err := c.do(ctx, http.MethodGet, "/api/v1/audit/reconcile")
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("reconciliation: %w", err)
	}
	return r, nil
}

// printVerification prints the result of tlog.Verify and returns the
// number of problems.
func printVerification(out, warn io.Writer, v *tlog.Verification) int {
	if v.TrustOnFirstUse {
		fmt.Fprintln(warn, "warning: no --key given: using the public key the log itself offers (trust on first use); this only shows the log is consistent with itself. Pin the key with --key.")
	}
	if cp := v.Checkpoint; cp.Root != nil {
		fmt.Fprintf(out, "checkpoint: origin %q, size %d, root %s (signature valid)\n", cp.Origin, cp.Size, hex.EncodeToString(cp.Root))
	}
	for _, p := range v.Problems {
		fmt.Fprintf(out, "FAIL: %s\n", p.Detail)
	}
	for _, w := range v.Warnings {
		fmt.Fprintf(warn, "warning: %s\n", w)
	}
	if v.Uncovered > 0 {
		fmt.Fprintf(out, "note: %d entries after index %d are not covered by the checkpoint yet\n", v.Uncovered, v.Checkpoint.Size)
	}
	if v.Since != nil && v.OK() {
		fmt.Fprintf(out, "consistent with the saved checkpoint of size %d\n", v.Since.Size)
	}
	return len(v.Problems)
}

// printReconciliation prints the tags the registry holds that the log
// does not record, and returns the number of problems.
func printReconciliation(out io.Writer, rec tlog.Reconciliation) int {
	n := 0
	for _, u := range rec.Unrecorded {
		fmt.Fprintf(out, "FAIL: tag %s:%s points at %s, but no audit entry records it being set (a change missing from the log)\n", u.Repo, u.Tag, u.Digest)
		n++
	}
	if rec.Truncated {
		fmt.Fprintln(out, "FAIL: more tags than listed are missing from the log")
		n++
	}
	fmt.Fprintf(out, "reconciliation: %d tags checked against the log, %d unrecorded\n", rec.Tags, len(rec.Unrecorded))
	return n
}
