package cli

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/key"
)

// rekorPasswordEnv holds the passphrase of the transparency log's key file.
const rekorPasswordEnv = "CUSTODY_REKOR_PASSWORD"

func newRekorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rekor",
		Short: "Manage the transparency log for signing events (keyless signing)",
		Long: `The transparency log records signing events at Rekor v2's API
(POST /api/v2/log/entries, C2SP tlog-tiles reads under /api/v2/log/), so
cosign logs its signatures in custody and verifies them offline
(docs/keyless.md).`,
	}
	cmd.AddCommand(newRekorCreateCmd())
	return cmd
}

func newRekorCreateCmd() *cobra.Command {
	var keyFile, token, pubFile string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the transparency log's key",
		Long: `Create an ECDSA P-256 key that signs the transparency log's checkpoints,
encrypted with the passphrase in ` + rekorPasswordEnv + `. With --pkcs11 URI the
key is created on a PKCS #11 token instead (an RFC 7512 URI with module-path
and object=LABEL; the PIN from the URI or ` + pkcs11PINEnv + `). Configure the
server with rekor.key (the file or the URI) and rekor.url; verifiers get the
public key in the trusted root. It prints the log ID (SHA-256 of the public
key) and writes the public key (PEM) to --pub.`,
		Example: `  CUSTODY_REKOR_PASSWORD=... custody rekor create --key /etc/custody/rekor.key --pub rekor.pub
  custody rekor create --pkcs11 'pkcs11:token=custody;object=rekor?module-path=/usr/lib/softhsm/libsofthsm2.so'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (keyFile == "") == (token == "") {
				return errors.New("give one of --key or --pkcs11")
			}
			var (
				signer crypto.Signer
				err    error
			)
			if token != "" {
				uri, err := pkcs11URIWithPIN(cmd, token)
				if err != nil {
					return err
				}
				if signer, err = key.GeneratePKCS11(uri, key.ECDSAP256); err != nil {
					return err
				}
			} else {
				pass := os.Getenv(rekorPasswordEnv)
				if pass == "" {
					return fmt.Errorf("set %s to the passphrase that protects the log key", rekorPasswordEnv)
				}
				if signer, err = key.Generate(key.ECDSAP256); err != nil {
					return err
				}
				enc, err := key.EncryptPrivateKey(signer, []byte(pass))
				if err != nil {
					return err
				}
				f, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("writing the log key: %w", err)
				}
				if _, err := f.Write(enc); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			der, err := x509.MarshalPKIXPublicKey(signer.Public())
			if err != nil {
				return err
			}
			if pubFile != "" {
				if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "created transparency log key, log ID %x\n", sha256.Sum256(der))
			if keyFile != "" {
				fmt.Fprintf(w, "  key:        %s\n", keyFile)
			}
			if pubFile != "" {
				fmt.Fprintf(w, "  public key: %s\n", pubFile)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "write the encrypted log key to this file")
	cmd.Flags().StringVar(&token, "pkcs11", "", "create the key on a PKCS #11 token: an RFC 7512 URI with module-path and object=LABEL")
	cmd.Flags().StringVar(&pubFile, "pub", "", "write the log's public key (PEM) to this file")
	return cmd
}
