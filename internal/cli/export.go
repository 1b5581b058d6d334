package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/bundle"
	"github.com/custody-dev/custody/internal/promotion"
)

func newExportCmd() *cobra.Command {
	var (
		server, out, env, project, at string
		metadataOnly                  bool
	)
	cmd := &cobra.Command{
		Use:   "export (REF... | --env ENV [--project P] [--at TIME]) -o FILE",
		Short: "Write an evidence bundle: artifacts, signatures, attestations, audit proofs, in one signed file",
		Long: `Write ONE file an auditor can verify without the server: an OCI image layout
(tar) holding every manifest and blob of the artifacts, their signatures and
all attestations (provenance, SBOMs, scans, promotions, approvals,
revocations), plus custody/: the audit-log entries about them with inclusion
proofs to one signed checkpoint, the trust root with each key's validity
window, and a summary (summary.md for people). The whole is signed with the
server's audit-log key. Format: docs/bundle.md.

Name artifacts as REPOSITORY@DIGEST or REPOSITORY:TAG (no registry host), or
ask for what an environment ran: --env ENV [--project P] [--at TIME], where
TIME is RFC 3339 (2026-03-03T14:00:00Z) or "2026-03-03 14:00" (UTC); without
--at, now. Reading an artifact's evidence needs pull on its repository.

The same store state and arguments give the same bytes. Exporting is a read:
it records no audit entry (it may sign a checkpoint covering the latest
entries). --metadata-only leaves layer bytes out (listed as omitted):
manifests, configs and all evidence stay in.

The bundle streams to FILE.partial and is renamed to FILE once complete;
progress goes to stderr. Verify it with
  custody verify --bundle FILE --trust-root-fingerprint SHA256
where SHA256 is what 'custody key fingerprint' printed (obtain it from the
server's operator through a channel you trust, not from the bundle).`,
		Example: `  custody export apps/web@sha256:4f1c... apps/api:1.4.2 -o evidence.tar
  custody export --env prod --project shop --at "2026-03-03 14:00" -o prod-0303.tar
  custody export --env prod -o prod-meta.tar --metadata-only`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("no -o FILE: name the bundle file to write")
			}
			q := url.Values{}
			switch {
			case len(args) > 0 && env != "":
				return errors.New("give artifacts (REF...) or --env, not both")
			case len(args) > 0:
				if project != "" || at != "" {
					return errors.New("--project and --at go with --env")
				}
				q["ref"] = args
			case env != "":
				q.Set("environment", env)
				if project != "" {
					q.Set("project", project)
				}
				if at != "" {
					t, err := promotion.ParseTime(at)
					if err != nil {
						return fmt.Errorf("--at: %w", err)
					}
					q.Set("at", t.UTC().Format(time.RFC3339Nano))
				}
			default:
				return errors.New("name artifacts (REPOSITORY@DIGEST or REPOSITORY:TAG) or an environment (--env ENV)")
			}
			if metadataOnly {
				q.Set("metadataOnly", "true")
			}
			addr, err := resolveServer(server)
			if err != nil {
				return err
			}
			c, err := newAPIClient(addr, apiclient.Options{HeaderTimeout: longRunning})
			if err != nil {
				return err
			}
			tmp := out + ".partial"
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			var last time.Time
			progress := func(n, total int64) {
				if time.Since(last) < time.Second {
					return
				}
				last = time.Now()
				if total > 0 {
					fmt.Fprintf(stderr, "exported %s of about %s (%d%%)\n", size(n), size(total), min(100, n*100/total))
				} else {
					fmt.Fprintf(stderr, "exported %s\n", size(n))
				}
			}
			start := time.Now()
			cw := &countWriter{w: f}
			err = c.Download(cmd.Context(), "/api/v1/export?"+q.Encode(), "X-Custody-Bundle-Bytes", cw, progress)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(tmp)
				return explain(c, err)
			}
			if err := os.Rename(tmp, out); err != nil {
				os.Remove(tmp)
				return err
			}
			el := time.Since(start)
			fmt.Fprintf(stderr, "wrote %s (%s in %s)\n", out, size(cw.n), el.Round(time.Millisecond))
			return nil
		},
	}
	fl := cmd.Flags()
	registerServer(fl, &server)
	fl.StringVarP(&out, "output", "o", "", "bundle file to write (required)")
	fl.StringVar(&env, "env", "", "export what this environment ran (instead of REFs)")
	fl.StringVar(&project, "project", "", "project of --env, by name or repositories pattern (needed when several are configured)")
	fl.StringVar(&at, "at", "", `instant for --env: RFC 3339 or "2026-03-03 14:00" (UTC); default now`)
	fl.BoolVar(&metadataOnly, "metadata-only", false, "leave layer bytes out (manifests, configs and evidence stay)")
	return cmd
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return strconv.FormatInt(n, 10) + " B"
}

func newKeyFingerprintCmd() *cobra.Command {
	var server, save string
	cmd := &cobra.Command{
		Use:   "fingerprint",
		Short: "Print the trust-root fingerprint auditors verify evidence bundles against",
		Long: `Print the trust-root fingerprint of a server: the SHA-256 of the exact bytes
of its trust.json (GET /api/v1/keys/trust: the signing keys with their
validity windows and the audit log's key), which every evidence bundle it
writes carries as custody/trust.json.

Hand the fingerprint to auditors through a channel they trust (a signed
letter, a ticket, a phone call); they pass it to
  custody verify --bundle FILE --trust-root-fingerprint SHA256
The fingerprint changes when keys are created, rotated or revoked.
--save FILE also writes trust.json.`,
		Example: `  custody key fingerprint --server https://registry.example.com`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			af := apiFlags{server: server, output: outputText}
			b, err := af.call(cmd, http.MethodGet, "/api/v1/keys/trust", nil, nil)
			if err != nil {
				return err
			}
			if save != "" {
				if err := os.WriteFile(save, b, 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), bundle.Fingerprint(b))
			return nil
		},
	}
	registerServer(cmd.Flags(), &server)
	cmd.Flags().StringVar(&save, "save", "", "also write trust.json to this file")
	return cmd
}

// verifyBundle is custody verify --bundle: no server, no network.
func verifyBundle(cmd *cobra.Command, file, fingerprint, output string) error {
	if fingerprint == "" {
		return errors.New("no --trust-root-fingerprint: give the SHA-256 'custody key fingerprint' printed on the server you trust")
	}
	b, err := bundle.Open(filepath.Clean(file), fingerprint)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	defer b.Close()
	rep, err := b.Verify(cmd.Context())
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if output == outputJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printBundleReport(w, b, rep)
	}
	if !rep.OK() {
		return fmt.Errorf("%w: %d problem(s)", bundle.ErrFailed, len(rep.Failures))
	}
	return nil
}

func printBundleReport(w io.Writer, b *bundle.Bundle, r bundle.Report) {
	m := b.Manifest()
	fmt.Fprintf(w, "bundle: %d files, signed by audit log %s\n", len(m.Files)+2, m.Log.Origin)
	if q := r.Request; q.Environment != "" {
		at := "the time of export"
		if !q.At.IsZero() {
			at = q.At.UTC().Format(time.RFC3339)
		}
		project := ""
		if q.Project != "" {
			project = " of project " + q.Project
		}
		fmt.Fprintf(w, "exported for: what ran in %s%s at %s\n", bundle.Printable(q.Environment), bundle.Printable(project), at)
	} else {
		fmt.Fprintf(w, "exported for: %s\n", bundle.Printable(strings.Join(q.Refs, " ")))
	}
	fmt.Fprintf(w, "checkpoint: size %d, root %s; %d audit entries proved included\n", r.Checkpoint.Size, r.Checkpoint.Root, r.AuditEntries)
	if r.LayersOmitted > 0 {
		fmt.Fprintf(w, "metadata only: %d layer(s) left out, their bytes are not in the bundle and were not verified\n", r.LayersOmitted)
	}
	for _, a := range r.Artifacts {
		fmt.Fprintf(w, "%s@%s: %d signature(s), %d attestation(s), %d promotion(s)", bundle.Printable(a.Repository), bundle.Printable(a.Digest), a.Signatures, a.Attestations, a.Promotions)
		if a.Revoked {
			fmt.Fprint(w, ", REVOKED")
		}
		fmt.Fprintln(w)
	}
	// Free text (a revocation's reason, names from the bundle) is
	// printed with control characters escaped: it cannot forge lines.
	for _, rv := range r.Revocations {
		fmt.Fprintf(w, "revoked: %s\n", bundle.Printable(fmt.Sprintf("%s@%s by %s at %s: %s", rv.Repository, rv.Digest, rv.By, rv.At.UTC().Format(time.RFC3339), rv.Reason)))
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAIL %s\n", bundle.Printable(f.String()))
	}
	if r.OK() {
		fmt.Fprintln(w, "OK: the bundle verifies")
	}
}
