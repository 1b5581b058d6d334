package cli

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/key"
)

// caPasswordEnv holds the passphrase of the CA's key file.
const caPasswordEnv = "CUSTODY_CA_PASSWORD"

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Manage the certificate authority for workloads (keyless signing)",
		Long: `The certificate authority issues short-lived code-signing certificates to CI
jobs that present an OIDC token of a trusted issuer (auth.oidc), at Fulcio's
API, so cosign signs with custody as its Fulcio (docs/keyless.md).`,
	}
	cmd.AddCommand(newCACreateCmd())
	return cmd
}

func newCACreateCmd() *cobra.Command {
	var (
		keyFile, certFile, token, name string
		lifetime                       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the CA's key and self-signed root certificate",
		Long: `Create an ECDSA P-256 key for the certificate authority, encrypted with the
passphrase in ` + caPasswordEnv + `, and its self-signed root certificate.
With --pkcs11 URI the key is created on a PKCS #11 token instead (an RFC 7512
URI with module-path and object=LABEL; the PIN from the URI or
` + pkcs11PINEnv + `). Configure the server with ca.key (the file or the URI)
and ca.certificate; publish the certificate to verifiers
(cosign verify --certificate-chain).`,
		Example: `  CUSTODY_CA_PASSWORD=... custody ca create --key /etc/custody/ca.key --cert /etc/custody/ca.pem
  custody ca create --pkcs11 'pkcs11:token=custody;object=ca?module-path=/usr/lib/softhsm/libsofthsm2.so' --cert ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if certFile == "" || (keyFile == "") == (token == "") {
				return errors.New("give --cert and one of --key or --pkcs11")
			}
			if _, err := os.Stat(certFile); err == nil {
				return fmt.Errorf("%s exists: refusing to replace a CA certificate verifiers may trust", certFile)
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
				pass := os.Getenv(caPasswordEnv)
				if pass == "" {
					return fmt.Errorf("set %s to the passphrase that protects the CA key", caPasswordEnv)
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
					return fmt.Errorf("writing the CA key: %w", err)
				}
				if _, err := f.Write(enc); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			root, err := ca.CreateRoot(signer, name, lifetime)
			if err != nil {
				return err
			}
			if err := os.WriteFile(certFile, ca.EncodeChain([]*x509.Certificate{root}), 0o644); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "created CA %q, valid until %s\n", name, root.NotAfter.UTC().Format(time.RFC3339))
			if keyFile != "" {
				fmt.Fprintf(w, "  key:         %s\n", keyFile)
			}
			fmt.Fprintf(w, "  certificate: %s\n", certFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "write the encrypted CA key to this file")
	cmd.Flags().StringVar(&certFile, "cert", "", "write the CA certificate (PEM) to this file")
	cmd.Flags().StringVar(&token, "pkcs11", "", "create the key on a PKCS #11 token: an RFC 7512 URI with module-path and object=LABEL")
	cmd.Flags().StringVar(&name, "name", "custody workload CA", "the certificate's common name")
	cmd.Flags().DurationVar(&lifetime, "lifetime", 5*365*24*time.Hour, "how long the CA certificate is valid")
	return cmd
}
