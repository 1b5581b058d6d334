package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/imports"
)

func newImportCmd() *cobra.Command {
	var (
		f           apiFlags
		fingerprint string
	)
	cmd := &cobra.Command{
		Use:   "import FILE --trust-root-fingerprint SHA256",
		Short: "Import an evidence bundle from another custody: same digests, evidence and retention",
		Long: `Carry artifacts between sites (air-gapped ones included): upload an evidence
bundle written by 'custody export' on another custody server into this one.

The server streams the upload to a temporary file in its data directory,
opens it against the trust-root fingerprint (the SHA-256 'custody key
fingerprint' printed on the exporting server, obtained through a channel you
trust) and verifies it whole, as 'custody verify --bundle' does offline.
Only a bundle that verifies is imported; otherwise nothing is stored and
the failures are printed. Then:

  - every artifact, its cosign signature and attestation images (with their
    sha256-<hex>.sig/.att tags) and its referrers are stored by digest: the
    same digests, signatures and attestations as at the source (verify them
    with the source's trust root);
  - the retention lock (while it still runs) and legal hold of each artifact
    are carried from the bundle's summary;
  - one audit entry per artifact records the import with the source's audit
    log origin and checkpoint (size and root hash).

Other tags (versions, environments) are not moved: this site's promotions
own its environments. Needs the admin role.`,
		Example: `  custody import prod-0303.tar --trust-root-fingerprint 3f9a...c21e --server https://dr.example.com`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fingerprint == "" {
				return errors.New("no --trust-root-fingerprint: give the SHA-256 'custody key fingerprint' printed on the exporting server")
			}
			if f.output != outputText && f.output != outputJSON {
				return fmt.Errorf("invalid --output %q: use text or json", f.output)
			}
			file, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer file.Close()
			addr, err := resolveServer(f.server)
			if err != nil {
				return err
			}
			c, err := newAPIClient(addr, apiclient.Options{HeaderTimeout: longRunning})
			if err != nil {
				return err
			}
			var b []byte
			err = c.Send(cmd.Context(), apiclient.Request{Method: "POST", Path: "/api/v1/imports?" + url.Values{"fingerprint": {fingerprint}}.Encode(),
				Body: file, ContentType: "application/x-tar"}, &b)
			if err != nil {
				var ae *apiclient.Error
				if errors.As(err, &ae) && f.output == outputJSON && len(ae.Body) > 0 {
					_, _ = cmd.OutOrStdout().Write(ae.Body)
				}
				return explain(c, err)
			}
			return printJSONOrText(cmd, f.output, b, func() error {
				var res imports.Result
				if err := json.Unmarshal(b, &res); err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "imported %d artifact(s), %d manifest(s), from %s (checkpoint size %d, root %s)\n", len(res.Artifacts), res.Manifests, res.Origin, res.Size, res.Root)
				for _, a := range res.Artifacts {
					line := fmt.Sprintf("  %s@%s", a.Repository, a.Digest)
					if a.Lock != nil {
						if a.Lock.Mode != "" {
							line += fmt.Sprintf(" retained (%s) until %s", a.Lock.Mode, a.Lock.RetainUntil.Format("2006-01-02T15:04:05Z07:00"))
						}
						if a.Lock.LegalHold {
							line += " legal hold"
						}
					}
					fmt.Fprintln(w, line)
				}
				for _, p := range res.Problems {
					fmt.Fprintln(w, "  problem: "+p)
				}
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&fingerprint, "trust-root-fingerprint", "", "SHA-256 of the exporting server's trust.json (custody key fingerprint there)")
	return cmd
}
