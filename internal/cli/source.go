package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/gitcommit"
)

// newAttestSourceCmd is 'attest source REF [--commit-object FILE]'.
func newAttestSourceCmd() *cobra.Command {
	var (
		f    apiFlags
		file string
	)
	cmd := &cobra.Command{
		Use:   "source REF [--commit-object FILE]",
		Short: "Have the server verify the signed git commit an artifact was built from",
		Long: `Send the raw git commit object of the revision CI built (git cat-file
commit HEAD) to the server (POST /api/v1/source/REPO/@DIGEST). The server
checks that it is the commit the artifact's verified SLSA provenance
names, verifies its SSH signature against the allowed signers
(promotion.allowedSigners, git's gpg.ssh.allowedSignersFile format) or
its OpenPGP signature against the keyring (promotion.openpgpKeyring), and
attaches a server-signed source-verification attestation
(https://custody.dev/attestation/source/v1) that the commit_signed_by
gate rule reads. A refused commit records nothing.

The commit object is read from --commit-object, or from standard input.`,
		Example: `  git cat-file commit HEAD | custody attest source registry.example.org/apps/web@sha256:...
  custody attest source apps/web@sha256:... --commit-object commit.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, dgst, err := splitRef(args[0])
			if err != nil {
				return err
			}
			in := cmd.InOrStdin()
			if file != "" {
				fh, err := os.Open(file)
				if err != nil {
					return err
				}
				defer fh.Close()
				in = fh
			}
			raw, err := io.ReadAll(io.LimitReader(in, gitcommit.MaxBytes+1))
			if err != nil {
				return err
			}
			if len(raw) == 0 {
				return errors.New("no commit object: pipe git cat-file commit HEAD in, or give --commit-object FILE")
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			var b []byte
			err = c.Send(cmd.Context(), apiclient.Request{Method: http.MethodPost, Path: "/api/v1/source/" + repo + "/@" + dgst,
				Body: bytes.NewReader(raw), ContentType: "application/x-git-commit"}, &b)
			if err != nil {
				return explain(c, err)
			}
			var rec evidence.Source
			return printJSONOrText(cmd, f.output, b, func() error {
				if err := json.Unmarshal(b, &rec); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "verified commit %s of %s@%s: %s signature by %s (key %s)\n",
					rec.Commit, repo, dgst, rec.Method, strings.Join(rec.Principals, ", "), rec.KeyFingerprint)
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&file, "commit-object", "", "file holding the raw commit object (git cat-file commit REV); default: standard input")
	return cmd
}
