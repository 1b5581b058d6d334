package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/sbom"
)

// maxSBOMBytes caps SBOMs read from files or attached.
const maxSBOMBytes = 64 << 20

func parseFormat(s string) (sbom.Format, error) {
	switch f := sbom.Format(s); f {
	case sbom.FormatSPDXJSON, sbom.FormatCycloneDXJSON:
		return f, nil
	}
	return "", fmt.Errorf("invalid --format %q: use spdx-json or cyclonedx-json", s)
}

// inventory catalogues a local file or directory, or else the image ref
// names in its registry.
func inventory(ctx context.Context, target string, plainHTTP bool) (*sbom.Inventory, error) {
	if _, err := os.Stat(target); err == nil {
		return sbom.FromFile(ctx, target, sbom.Options{})
	}
	var nopts []name.Option
	if plainHTTP {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(target, nopts...)
	if err != nil {
		return nil, fmt.Errorf("%s is neither a file nor an image reference: %w", target, err)
	}
	img, err := remote.Image(ref, remote.WithAuthFromKeychain(keychain()), remote.WithContext(ctx), remote.WithUserAgent("custody/"+Version), remote.WithTransport(registryTransport))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", target, err)
	}
	return sbom.FromImage(ctx, img, sbom.Subject{Name: ref.Context().Name()}, sbom.Options{})
}

func encodeSBOM(inv *sbom.Inventory, f sbom.Format, w io.Writer) error {
	return inv.Encode(w, f, sbom.EncodeOptions{Created: time.Now().UTC().Truncate(time.Second), ToolName: "custody", ToolVersion: Version})
}

func newSBOMCmd() *cobra.Command {
	var (
		format    string
		out       string
		plainHTTP bool
	)
	cmd := &cobra.Command{
		Use:   "sbom REF|FILE",
		Short: "Generate an SBOM (SPDX 2.3 or CycloneDX JSON) of an image, Go binary, archive or directory",
		Long: `Generate a software bill of materials: packages with purls, versions,
licenses and hashes. For container images: Debian/Ubuntu (dpkg) and Alpine
(apk) packages, language lockfiles and installed packages (npm, pip,
poetry, Cargo, Go modules, Maven jars) and Go binaries found in the layers,
with deleted files honoured. For Go binaries: the module build info. For
archives (.tar, .tar.gz, .zip) and directories: the same cataloguers over
their contents, and every file's hash.

A local path is read as a file or directory; anything else is an image
reference fetched from its registry. Attach the result with
'custody attest sbom'.`,
		Example: `  custody sbom 127.0.0.1:5000/apps/web:1.4.2 > web.spdx.json
  custody sbom --format cyclonedx-json ./dist/app-linux-amd64 -o app.cdx.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			inv, err := inventory(cmd.Context(), args[0], plainHTTP)
			if err != nil {
				return err
			}
			for _, w := range inv.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			w := cmd.OutOrStdout()
			if out != "" {
				file, err := os.Create(out)
				if err != nil {
					return err
				}
				defer file.Close()
				w = file
			}
			if err := encodeSBOM(inv, f, w); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d packages in %s (%s)\n", len(inv.Packages), inv.Subject.Name, inv.Subject.Digest)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&format, "format", string(sbom.FormatSPDXJSON), "spdx-json or cyclonedx-json")
	fl.StringVarP(&out, "output-file", "o", "", "write the SBOM to this file instead of standard output")
	fl.BoolVar(&plainHTTP, "plain-http", false, "talk plain HTTP to a registry that is not on loopback or a private address")
	return cmd
}

func newAttestSBOMCmd() *cobra.Command {
	var (
		f      signerFlags
		format string
		file   string
		envOut string
	)
	cmd := &cobra.Command{
		Use:   "sbom REF [--sbom FILE]",
		Short: "Attach an SBOM as a signed attestation (generated, or a validated upload)",
		Long: `Attach an SBOM to REF as a signed in-toto attestation (predicate
https://spdx.dev/Document or https://cyclonedx.org/bom).

Without --sbom, custody generates it from the image. With --sbom FILE (for
example syft's output in CI), the file is validated first: it must be SPDX
2.3 or CycloneDX 1.4+ JSON and describe REF's digest; anything else is
refused before a signature is made.`,
		Example: `  custody attest sbom 127.0.0.1:5000/apps/web@sha256:...
  syft -o spdx-json $IMAGE > sbom.json && custody attest sbom --sbom sbom.json $IMAGE`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			d, err := resolve(ctx, args[0], f.plainHTTP, remoteOpts(ctx))
			if err != nil {
				return err
			}
			var body []byte
			var predicateType string
			if file != "" {
				fh, err := os.Open(file)
				if err != nil {
					return err
				}
				doc, err := sbom.Validate(fh, maxSBOMBytes)
				fh.Close()
				if err != nil {
					return fmt.Errorf("SBOM %s refused: %w", file, err)
				}
				if !doc.DescribesDigest(d.DigestStr()) {
					return fmt.Errorf("SBOM %s refused: it describes %v, not %s (generate it from the image by digest)", file, doc.Subjects, d.DigestStr())
				}
				body, predicateType = doc.Raw, doc.PredicateType()
			} else {
				fm, err := parseFormat(format)
				if err != nil {
					return err
				}
				inv, err := inventory(ctx, d.String(), f.plainHTTP)
				if err != nil {
					return err
				}
				var buf bytes.Buffer
				if err := encodeSBOM(inv, fm, &buf); err != nil {
					return err
				}
				body, predicateType = buf.Bytes(), fm.PredicateType()
			}
			if len(body) == 0 {
				return errors.New("empty SBOM")
			}
			return attach(cmd, &f, d, predicateType, body, envOut)
		},
	}
	f.register(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&format, "format", string(sbom.FormatSPDXJSON), "format of a generated SBOM: spdx-json or cyclonedx-json")
	fl.StringVar(&file, "sbom", "", "attach this SBOM file (validated) instead of generating one")
	fl.StringVar(&envOut, "envelope", "", "also write the signed DSSE envelope to this file")
	return cmd
}
