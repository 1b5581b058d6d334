package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/apiclient"
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
		serverURL  string
	)
	cmd := &cobra.Command{
		Use:   "scrub",
		Short: "Verify every stored blob, manifest and reference, and re-verify signatures",
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
store can be covered in rotation, e.g. 1/7 on Mondays ... 7/7 on Sundays.

Without --server, scrub checks bytes and references only. --server URL
runs the scrub inside a running server (POST /api/v1/scrub):
the next bucket of its scrub.buckets rotation, the Object Lock check, and
the revalidation of evidence. For every artifact in that bucket that has
signatures or attestations, the server re-verifies them against the
archived trust root (its key ring's trust-root history plus
promotion.trustRoot): a key revoked since, a signing time outside the
key's window, a signature or attestation that does not verify, or an
attestation about another digest is reported with the artifact, the
digest of the evidence (.sig/.att image or referrer manifest) and the
reason, and makes the exit status 1. Evidence that verifies with a
retired key is listed for information. Scheduled scrubs (scrub.schedule)
do the same and also log each failure, record it in the audit log and
count it in custody_scrub_evidence_failures.`,
		Example: `  custody scrub --data ./custody-data
  custody scrub --config /etc/custody.yaml
  custody scrub --data /srv/custody --read-data-subset 3/7 -o json
  custody scrub --server http://127.0.0.1:5000 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: use text or json", output)
			}
			if serverURL != "" {
				if cmd.Flags().Changed("data") || configPath != "" || subset != "" {
					return fmt.Errorf("--server runs the server's own rotation: leave out --data, --config and --read-data-subset")
				}
				rep, err := remoteScrub(cmd.Context(), serverURL)
				if err != nil {
					return err
				}
				return scrubResult(cmd.OutOrStdout(), rep, output)
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
			return scrubResult(cmd.OutOrStdout(), rep, output)
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", config.Default().Data, "data directory of the embedded store")
	f.StringVar(&configPath, "config", "", "scrub the store a custody configuration file names (also PostgreSQL + S3)")
	f.StringVar(&subset, "read-data-subset", "", "re-hash only blobs in bucket n of t (n/t)")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	f.StringVar(&serverURL, "server", "", "URL of a running custody server to scrub in (also re-verifies signatures and attestations)")
	return cmd
}

// scrubResult prints rep and fails when it found anything wrong.
func scrubResult(w io.Writer, rep *scrub.Report, output string) error {
	if err := printScrub(w, rep, output); err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("scrub found %d damaged or missing objects and %d signatures or attestations that no longer verify",
			rep.DamagedCount, len(rep.EvidenceFailures))
	}
	return nil
}

// remoteScrub runs one scrub in the server at base, which answers when it
// is done.
func remoteScrub(ctx context.Context, base string) (*scrub.Report, error) {
	c, err := newAPIClient(strings.TrimSuffix(base, "/"), apiclient.Options{HeaderTimeout: longRunning})
	if err != nil {
		return nil, err
	}
	var rep scrub.Report
	if err := c.Do(ctx, http.MethodPost, "/api/v1/scrub", nil, &rep); err != nil {
		return nil, fmt.Errorf("scrub via %s: %w", base, explain(c, err))
	}
	return &rep, nil
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
	for _, f := range rep.EvidenceFailures {
		fmt.Fprintf(w, "EVIDENCE %s@%s: %s\n", f.Repo, f.Artifact, describeFinding(f))
	}
	for _, f := range rep.RetiredKeyEvidence {
		fmt.Fprintf(w, "info: %s@%s: %s\n", f.Repo, f.Artifact, describeFinding(f))
	}
	fmt.Fprintf(w, "scrubbed %d blobs (%d hashed, %d bytes, subset %s), %d manifests, %d tags, %d links: %d damaged or missing\n",
		rep.Blobs, rep.BlobsHashed, rep.BytesHashed, rep.Subset, rep.Manifests, rep.Tags, rep.Links, rep.DamagedCount)
	if rep.TrustRoot != "" {
		fmt.Fprintf(w, "re-verified %d signatures and attestations of %d artifacts against trust root %s: %d no longer verify, %d verify with a retired key\n",
			rep.EvidenceChecked, rep.ArtifactsRevalidated, rep.TrustRoot, len(rep.EvidenceFailures), len(rep.RetiredKeyEvidence))
	}
	return nil
}

// describeFinding says which evidence a finding is about and why.
func describeFinding(f scrub.EvidenceFinding) string {
	what := f.Kind
	if f.PredicateType != "" {
		what += " " + f.PredicateType
	}
	if f.Evidence != "" {
		what += " in " + f.Evidence
	}
	if f.KeyID != "" {
		what += " (key " + f.KeyID + ")"
	}
	return what + ": " + f.Reason
}
