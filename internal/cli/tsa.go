package cli

import (
	"crypto"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/timestamp"
)

func newKeyTSACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tsa",
		Short: "Set up the key ring's RFC 3161 time-stamp authority",
		Long: `The key ring's time-stamp authority (TSA) vouches for when signatures were
made: the server serves it at /api/v1/timestamp (the path of sigstore's
timestamp-authority, for cosign --timestamp-server-url and openssl ts) and
time-stamps what it signs; custody sign and attest ask it too. Its
certificate chain enters the trust root, and verification then judges a
key's validity at the time-stamp, not at the signer's claimed time (see
docs/signing.md, "Trusted time").`,
	}
	cmd.AddCommand(newKeyTSACreateCmd())
	return cmd
}

func newKeyTSACreateCmd() *cobra.Command {
	var (
		f        keyRingFlags
		chain    string
		keyFile  string
		cn       string
		validity time.Duration
		unsafe   bool
		token    string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create (or replace) the ring's time-stamp authority key and certificate chain",
		Long: `Create an ECDSA P-256 TSA key, encrypted with the ring's passphrase from
` + keyPasswordEnv + ` (or a prompt), and a certificate chain for it: a
self-signed root and the TSA certificate (critical extended key usage
timeStamping), valid for --validity. With --chain FILE and --key FILE, use
a chain your own CA issued (PEM, leaf first) and its private key (cosign's
encrypted format or the ring's) instead. With --pkcs11 URI the TSA key is created on a PKCS #11 token and
never leaves it. A replaced chain stays in the
trust root, so old time-stamps keep verifying. Restart the server to serve
the new authority.`,
		Example: `  CUSTODY_KEY_PASSWORD=... custody key tsa create
  custody key tsa create --chain tsa-chain.pem --key tsa.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ring, err := f.open()
			if err != nil {
				return err
			}
			var signer crypto.Signer
			var chainPEM []byte
			var pass []byte
			if (chain == "") != (keyFile == "") {
				return fmt.Errorf("give --chain and --key together, or neither")
			}
			if token != "" {
				if chain != "" {
					return fmt.Errorf("--pkcs11 generates the key on the token: give no --chain and --key")
				}
				uri, err := pkcs11URIWithPIN(cmd, token)
				if err != nil {
					return err
				}
				if signer, err = key.GeneratePKCS11(uri, key.ECDSAP256); err != nil {
					return err
				}
				certs, err := timestamp.NewChain(signer, cn, time.Now().UTC().Truncate(time.Second), validity)
				if err != nil {
					return err
				}
				if err := ring.SetTSAOnToken(timestamp.EncodeChain(certs), uri); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "time-stamp authority %q on a PKCS #11 token, valid from %s to %s\n", certs[0].Subject.CommonName,
					certs[0].NotBefore.UTC().Format(time.RFC3339), certs[0].NotAfter.UTC().Format(time.RFC3339))
				return nil
			}
			if chain != "" {
				if chainPEM, err = os.ReadFile(chain); err != nil {
					return err
				}
				b, err := os.ReadFile(keyFile)
				if err != nil {
					return err
				}
				if pass, err = passphrase(cmd); err != nil {
					return err
				}
				if signer, err = key.DecryptPrivateKey(b, pass); err != nil {
					return fmt.Errorf("%s: %w", keyFile, err)
				}
			} else {
				if pass, err = newKeyPassphrase(cmd, unsafe); err != nil {
					return err
				}
				if signer, err = key.Generate(key.ECDSAP256); err != nil {
					return err
				}
				certs, err := timestamp.NewChain(signer, cn, time.Now().UTC().Truncate(time.Second), validity)
				if err != nil {
					return err
				}
				chainPEM = timestamp.EncodeChain(certs)
			}
			certs, err := timestamp.ParseChain(chainPEM)
			if err != nil {
				return err
			}
			if _, err := timestamp.New(timestamp.Config{Signer: signer, Chain: certs}); err != nil {
				return err
			}
			if err := ring.SetTSA(chainPEM, signer, pass); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "time-stamp authority %q valid from %s to %s\n", certs[0].Subject.CommonName,
				certs[0].NotBefore.UTC().Format(time.RFC3339), certs[0].NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	f.register(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&chain, "chain", "", "the TSA certificate chain (PEM, leaf first) issued by your CA")
	fl.StringVar(&keyFile, "key", "", "the TSA private key file for --chain (encrypted, cosign format)")
	fl.StringVar(&cn, "common-name", "custody time-stamp authority", "the TSA certificate's common name (generated chain)")
	fl.DurationVar(&validity, "validity", 10*365*24*time.Hour, "how long the generated chain is valid")
	fl.StringVar(&token, "pkcs11", "", "create the TSA key on a PKCS #11 token named by this URI (PIN from the URI, "+pkcs11PINEnv+" or a prompt; the server then needs "+pkcs11PINEnv+")")
	fl.BoolVar(&unsafe, "no-passphrase-unsafe", false, "allow an empty passphrase (the TSA key is then readable by anyone who can read the file)")
	return cmd
}

// timestampFlag chooses the time-stamp authority of custody sign and
// attest.
type timestampFlag struct{ url string }

func (t *timestampFlag) register(fs *pflag.FlagSet) {
	fs.StringVar(&t.url, "timestamp-server-url", "auto", "RFC 3161 time-stamp authority to time-stamp the signature: a URL, "+
		"'auto' (the registry's own /api/v1/timestamp when it serves one) or 'none'")
}

// stamper returns the Stamper for signing d, or nil for none.
func (t *timestampFlag) stamper(cmd *cobra.Command, d name.Digest) (timestamp.Stamper, error) {
	hc := &http.Client{Transport: registryTransport, Timeout: 30 * time.Second}
	switch t.url {
	case "none", "":
		return nil, nil
	case "auto":
		u := d.Context().Registry.Scheme() + "://" + d.RegistryStr()
		req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, u+timestamp.ChainPath, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil // not reachable as custody: sign without
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, nil // a registry without a time-stamp authority
		}
		return timestamp.Client(u+timestamp.Path, hc), nil
	}
	return timestamp.Client(t.url, hc), nil
}
