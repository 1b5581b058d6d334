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
API, so cosign signs with custody as its Fulcio (docs/keyless.md). With a CT
log ('custody ca ctlog create', ca.ctlog.key) every certificate embeds its
signed certificate timestamp, which cosign checks against the log's key in
the server's trusted_root.json ('custody key trust-root --format sigstore').`,
	}
	cmd.AddCommand(newCACreateCmd(), newCACTLogCmd())
	return cmd
}

// createAuthorityKey makes an ECDSA P-256 key for the CA or its CT log:
// on the PKCS #11 token that token names, else in keyFile encrypted with
// the passphrase in CUSTODY_CA_PASSWORD (never replacing a file).
func createAuthorityKey(cmd *cobra.Command, what, keyFile, token string) (crypto.Signer, error) {
	if token != "" {
		uri, err := pkcs11URIWithPIN(cmd, token)
		if err != nil {
			return nil, err
		}
		return key.GeneratePKCS11(uri, key.ECDSAP256)
	}
	pass := os.Getenv(caPasswordEnv)
	if pass == "" {
		return nil, fmt.Errorf("set %s to the passphrase that protects the %s key", caPasswordEnv, what)
	}
	signer, err := key.Generate(key.ECDSAP256)
	if err != nil {
		return nil, err
	}
	enc, err := key.EncryptPrivateKey(signer, []byte(pass))
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("writing the %s key: %w", what, err)
	}
	if _, err := f.Write(enc); err != nil {
		f.Close()
		return nil, err
	}
	return signer, f.Close()
}

func newCACTLogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ctlog",
		Short: "Manage the certificate transparency log whose SCTs the CA embeds",
		Long: `The CT log signs a signed certificate timestamp (RFC 6962) over each
certificate the CA issues, embedded in the certificate as Fulcio does, so
cosign and sigstore-go verify certificates without --insecure-ignore-sct
(its key is in trusted_root.json; docs/keyless.md).`,
	}
	cmd.AddCommand(newCACTLogCreateCmd())
	return cmd
}

func newCACTLogCreateCmd() *cobra.Command {
	var keyFile, token, pubFile string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the CT log's key",
		Long: `Create an ECDSA P-256 key for the CT log, encrypted with the CA's
passphrase in ` + caPasswordEnv + `, or with --pkcs11 URI on a PKCS #11 token
(the PIN from the URI or ` + pkcs11PINEnv + `). It prints the public key (PEM),
or writes it to --public: keep it, so that after replacing the log's key the
old one can stay in trusted_root.json (ca.ctlog.retired). Configure the
server with ca.ctlog.key (the file or the URI); every certificate the CA
issues then carries an SCT by this log, and trusted_root.json lists the
log's key in ctlogs.`,
		Example: `  CUSTODY_CA_PASSWORD=... custody ca ctlog create --key /etc/custody/ctlog.key --public /etc/custody/ctlog.pub
  custody ca ctlog create --pkcs11 'pkcs11:token=custody;object=ctlog?module-path=/usr/lib/softhsm/libsofthsm2.so'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (keyFile == "") == (token == "") {
				return errors.New("give one of --key or --pkcs11")
			}
			if pubFile != "" {
				if _, err := os.Stat(pubFile); err == nil {
					return fmt.Errorf("%s exists: refusing to replace it", pubFile)
				}
			}
			signer, err := createAuthorityKey(cmd, "CT log", keyFile, token)
			if err != nil {
				return err
			}
			pub, err := key.MarshalPublicKey(signer.Public())
			if err != nil {
				return err
			}
			if pubFile == "" {
				_, err = cmd.OutOrStdout().Write(pub)
				return err
			}
			if err := os.WriteFile(pubFile, pub, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created the CT log key\n  public key: %s\n", pubFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "write the encrypted CT log key to this file")
	cmd.Flags().StringVar(&token, "pkcs11", "", "create the key on a PKCS #11 token: an RFC 7512 URI with module-path and object=LABEL")
	cmd.Flags().StringVar(&pubFile, "public", "", "write the public key (PEM) to this file instead of printing it")
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
			signer, err := createAuthorityKey(cmd, "CA", keyFile, token)
			if err != nil {
				return err
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
