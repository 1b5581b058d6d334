package cli

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/trustedroot"
)

// keyPasswordEnv holds the passphrase of a new key; it is the same
// passphrase cosign reads from COSIGN_PASSWORD.
const keyPasswordEnv = "CUSTODY_KEY_PASSWORD"

// keyRingFlags choose the key ring directory: --keys, else <data>/keys
// with the data directory from --data, the config file or CUSTODY_DATA.
type keyRingFlags struct {
	keys       string
	data       string
	configPath string
}

func (f *keyRingFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.keys, "keys", "", "key ring directory (default <data>/keys)")
	fs.StringVar(&f.data, "data", "", "data directory whose keys/ subdirectory is the key ring (default from the config, ./custody-data)")
	fs.StringVar(&f.configPath, "config", "", "config file (default $CUSTODY_CONFIG)")
}

func (f *keyRingFlags) open() (*key.Ring, error) {
	dir := f.keys
	if dir == "" {
		data := f.data
		if data == "" {
			path := f.configPath
			if path == "" {
				path = os.Getenv("CUSTODY_CONFIG")
			}
			cfg, err := config.Load(path, os.Environ())
			if err != nil {
				return nil, err
			}
			data = cfg.Data
		}
		dir = filepath.Join(data, "keys")
	}
	return key.Open(dir)
}

// newKeyPassphrase reads the passphrase of a new key from
// CUSTODY_KEY_PASSWORD or, on a terminal, a prompt (typed twice).
func newKeyPassphrase(cmd *cobra.Command, allowEmpty bool) ([]byte, error) {
	var pass []byte
	if v, ok := os.LookupEnv(keyPasswordEnv); ok {
		pass = []byte(v)
	} else if in, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(in.Fd())) {
		p, err := promptPassphrase(cmd.ErrOrStderr(), in, "Passphrase for the new key: ")
		if err != nil {
			return nil, err
		}
		again, err := promptPassphrase(cmd.ErrOrStderr(), in, "Passphrase again: ")
		if err != nil {
			return nil, err
		}
		if string(p) != string(again) {
			return nil, errors.New("the two passphrases differ: run the command again")
		}
		pass = p
	} else if !allowEmpty {
		return nil, fmt.Errorf("no passphrase for the new key: set %s or run on a terminal to be prompted", keyPasswordEnv)
	}
	if len(pass) == 0 && !allowEmpty {
		return nil, fmt.Errorf("refusing an empty passphrase: the private key would be readable by anyone who can read the file; " +
			"choose a passphrase (" + keyPasswordEnv + " or the prompt), or pass --no-passphrase-unsafe to accept the risk")
	}
	return pass, nil
}

// pkcs11PINEnv holds the user PIN of a PKCS #11 token whose URI gives
// none (no pin-value or pin-source).
const pkcs11PINEnv = "CUSTODY_PKCS11_PIN"

// pkcs11URIWithPIN returns a PKCS #11 URI with a PIN: the URI's own
// (pin-value or pin-source), else CUSTODY_PKCS11_PIN, else a prompt on a
// terminal.
func pkcs11URIWithPIN(cmd *cobra.Command, uri string) (string, error) {
	u, err := key.ParsePKCS11URI(uri)
	if err != nil {
		return "", err
	}
	if u.PINValue != "" || u.PINSource != "" {
		return uri, nil
	}
	if v := os.Getenv(pkcs11PINEnv); v != "" {
		u.PINValue = v
	} else if in, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(in.Fd())) {
		pin, err := promptPassphrase(cmd.ErrOrStderr(), in, fmt.Sprintf("PIN of PKCS #11 token %q: ", u.Token))
		if err != nil {
			return "", err
		}
		u.PINValue = string(pin)
	} else {
		return "", fmt.Errorf("no PIN for the PKCS #11 token: set %s, add pin-source=file:/path/to/pin to the URI, or run on a terminal to be prompted", pkcs11PINEnv)
	}
	return u.String(), nil
}

// openTokenKey opens a signing key on a PKCS #11 token and returns it with
// its key ID, which must be wantID when that is not empty (a key of the
// ring). The token session lasts until the process exits.
func openTokenKey(cmd *cobra.Command, uri, wantID string) (crypto.Signer, string, error) {
	full, err := pkcs11URIWithPIN(cmd, uri)
	if err != nil {
		return nil, "", err
	}
	s, closer, err := key.OpenPKCS11(full)
	if err != nil {
		return nil, "", err
	}
	id, err := key.ID(s.Public())
	if err != nil {
		closer.Close()
		return nil, "", err
	}
	if wantID != "" && id != wantID {
		closer.Close()
		return nil, "", fmt.Errorf("the token key %s is key %s, not the ring's key %s: the token's key was replaced; check the URI in the ring's %s.json", uri, id, wantID, wantID)
	}
	return s, id, nil
}

func promptPassphrase(w io.Writer, in *os.File, prompt string) ([]byte, error) {
	fmt.Fprint(w, prompt)
	p, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(w)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase: %w", err)
	}
	return p, nil
}

func newKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Create, list, rotate, revoke and export signing keys",
		Long: `Manage custody's signing keys (ECDSA P-256 or Ed25519).

Private keys are files encrypted with a passphrase in cosign's own format
("ENCRYPTED SIGSTORE PRIVATE KEY"), so 'cosign sign --key <file>' uses them
directly with the same passphrase in COSIGN_PASSWORD. They live in a key
ring directory (--keys, default <data>/keys) with one metadata file per key.
A ring has one active key; 'custody key rotate' replaces it and retires the
old one, which keeps verifying what it signed while it was valid; 'custody
key revoke' withdraws a compromised key's trust entirely. Every change is
recorded in the ring's trust-root history (trust-history.jsonl). With
--pkcs11 URI, create and rotate put the key on a PKCS #11 token instead and
the ring records its public key and URI. See docs/signing.md.`,
	}
	cmd.AddCommand(newKeyCreateCmd(), newKeyListCmd(), newKeyRotateCmd(), newKeyRevokeCmd(), newKeyExportPublicCmd(), newKeyFingerprintCmd(), newKeyTSACmd(), newKeyTrustRootCmd(), newKeySigningConfigCmd())
	return cmd
}

func newKeyCreateCmd() *cobra.Command {
	var (
		f      keyRingFlags
		alg    string
		name   string
		unsafe bool
		token  string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the active signing key of the key ring",
		Long: `Create a signing key, encrypted with a passphrase from ` + keyPasswordEnv + `
or, on a terminal, a prompt. The ring must not have an active key yet
(replace one with 'custody key rotate').

With --pkcs11 URI the key is created on a PKCS #11 token (an HSM, a smart
card, SoftHSM2) instead, named by an RFC 7512 URI with module-path and the
key's label (object=); its private key never leaves the token. The ring
records its public key (so the trust root includes it) and the URI without
the PIN. The PIN comes from the URI (pin-value or pin-source=file:PATH),
` + pkcs11PINEnv + ` or a prompt.`,
		Example: `  CUSTODY_KEY_PASSWORD=... custody key create --name release
  custody key create --algorithm ed25519 --keys /etc/custody/keys
  CUSTODY_PKCS11_PIN=... custody key create --pkcs11 'pkcs11:token=custody;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := key.ParseAlgorithm(alg)
			if err != nil {
				return err
			}
			ring, err := f.open()
			if err != nil {
				return err
			}
			if _, err := ring.Active(); err == nil {
				return fmt.Errorf("key ring %s already has an active key: use 'custody key rotate' to replace it", ring.Dir())
			}
			w := cmd.OutOrStdout()
			if token != "" {
				uri, err := pkcs11URIWithPIN(cmd, token)
				if err != nil {
					return err
				}
				info, err := ring.CreatePKCS11(uri, a, name)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "created %s key %s on a PKCS #11 token\n", info.Algorithm, info.ID)
				fmt.Fprintf(w, "  token key:  %s\n  public key: %s\n", info.URI, ring.Path(info.PublicFile))
				return nil
			}
			pass, err := newKeyPassphrase(cmd, unsafe)
			if err != nil {
				return err
			}
			info, err := ring.Create(a, name, pass)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "created %s key %s\n", info.Algorithm, info.ID)
			fmt.Fprintf(w, "  private key: %s\n  public key:  %s\n", ring.Path(info.File), ring.Path(info.PublicFile))
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&alg, "algorithm", string(key.ECDSAP256), "key algorithm: ecdsa-p256 or ed25519")
	cmd.Flags().StringVar(&name, "name", "", "a label for the key")
	cmd.Flags().BoolVar(&unsafe, "no-passphrase-unsafe", false, "allow an empty passphrase (the private key is then unprotected)")
	cmd.Flags().StringVar(&token, "pkcs11", "", "create the key on a PKCS #11 token: an RFC 7512 URI with module-path and object=LABEL")
	return cmd
}

func newKeyListCmd() *cobra.Command {
	var (
		f      keyRingFlags
		output string
	)
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the keys of the key ring with their status and validity",
		Example: "  custody key list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != outputText && output != outputJSON {
				return fmt.Errorf("-o %q: use text or json", output)
			}
			ring, err := f.open()
			if err != nil {
				return err
			}
			keys, err := ring.List()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == outputJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(keys)
			}
			if len(keys) == 0 {
				fmt.Fprintf(w, "no keys in %s (create one with 'custody key create')\n", ring.Dir())
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tALGORITHM\tSTATUS\tVALID FROM\tVALID UNTIL\tNAME")
			for _, k := range keys {
				until := "-"
				if !k.NotAfter.IsZero() {
					until = k.NotAfter.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID[:16], k.Algorithm, k.Status,
					k.NotBefore.Format(time.RFC3339), until, k.Name)
			}
			return tw.Flush()
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", outputText, "output format: text or json")
	return cmd
}

func newKeyRotateCmd() *cobra.Command {
	var (
		f      keyRingFlags
		alg    string
		name   string
		unsafe bool
		token  string
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the active key with a new one and retire the old one",
		Long: `Create a new active key and retire the current one: the retired key's
validity ends now, and it keeps verifying what it signed before. The new key
takes the old one's algorithm and name unless --algorithm or --name is given,
and its passphrase comes from ` + keyPasswordEnv + ` or a prompt. With --pkcs11
URI the new key is created on a PKCS #11 token, as 'custody key create
--pkcs11' does.`,
		Example: `  CUSTODY_KEY_PASSWORD=... custody key rotate
  custody key rotate --pkcs11 'pkcs11:token=custody;object=release-2?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/custody/pin'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var a key.Algorithm
			if alg != "" {
				var err error
				if a, err = key.ParseAlgorithm(alg); err != nil {
					return err
				}
			}
			ring, err := f.open()
			if err != nil {
				return err
			}
			if _, err := ring.Active(); err != nil {
				return err
			}
			var created, retired key.Info
			if token != "" {
				uri, err := pkcs11URIWithPIN(cmd, token)
				if err != nil {
					return err
				}
				if created, retired, err = ring.RotatePKCS11(uri, a, name); err != nil {
					return err
				}
			} else {
				pass, err := newKeyPassphrase(cmd, unsafe)
				if err != nil {
					return err
				}
				if created, retired, err = ring.Rotate(a, name, pass); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "created %s key %s (active)\n", created.Algorithm, created.ID)
			if created.URI != "" {
				fmt.Fprintf(w, "  token key:   %s\n", created.URI)
			} else {
				fmt.Fprintf(w, "  private key: %s\n", ring.Path(created.File))
			}
			fmt.Fprintf(w, "retired key %s (valid %s to %s)\n", retired.ID,
				retired.NotBefore.Format(time.RFC3339), retired.NotAfter.Format(time.RFC3339))
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&alg, "algorithm", "", "algorithm of the new key: ecdsa-p256 or ed25519 (default: the old key's)")
	cmd.Flags().StringVar(&name, "name", "", "label of the new key (default: the old key's)")
	cmd.Flags().BoolVar(&unsafe, "no-passphrase-unsafe", false, "allow an empty passphrase (the private key is then unprotected)")
	cmd.Flags().StringVar(&token, "pkcs11", "", "create the new key on a PKCS #11 token: an RFC 7512 URI with module-path and object=LABEL")
	return cmd
}

func newKeyRevokeCmd() *cobra.Command {
	var f keyRingFlags
	cmd := &cobra.Command{
		Use:   "revoke KEYID",
		Short: "Revoke a compromised key: nothing it signed verifies any more",
		Long: `Mark a key of the ring revoked. A revoked key is trusted for nothing: it
leaves the trust root, and signatures and attestations it made, even while
it was valid, no longer verify (custody verify, promotion gates, and the
server's scrub, which reports each of them). Revocation is for a
compromised key; to stop signing with a key that is not, use 'custody key
rotate' (a retired key keeps verifying what it signed while valid).

The change is recorded in the ring's trust-root history
(trust-history.jsonl), which the server's scrub verifies against: a revoked
key stays revoked even if its files are edited or restored later. Revoking
the active key leaves the ring without one until 'custody key create'.
A running server sees the revocation at its next scrub; its promotions and
admission use the trust root read at start (restart it).`,
		Example: `  custody key revoke 58cd37fa`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ring, err := f.open()
			if err != nil {
				return err
			}
			info, err := ring.Revoke(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked key %s (it was valid from %s): nothing it signed verifies any more\n",
				info.ID, info.NotBefore.Format(time.RFC3339))
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newKeyExportPublicCmd() *cobra.Command {
	var (
		f         keyRingFlags
		trustRoot bool
	)
	cmd := &cobra.Command{
		Use:   "export-public [KEYID]",
		Short: "Print a public key (PEM) or the trust root (JSON)",
		Long: `Print the PEM public key of the active key, or of KEYID (the full ID or at
least its first 8 hex digits), for 'cosign verify --key'. With --trust-root,
print the trust root instead: every active and retired key with its validity
period, for offline verifiers (format in docs/signing.md).`,
		Example: `  custody key export-public > custody.pub
  custody key export-public 3f9a2c1d
  custody key export-public --trust-root > trust-root.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ring, err := f.open()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if trustRoot {
				if len(args) > 0 {
					return errors.New("--trust-root exports every trusted key: drop the KEYID argument")
				}
				tr, err := ring.TrustRoot()
				if err != nil {
					return err
				}
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(tr)
			}
			var info key.Info
			if len(args) == 1 {
				info, err = ring.Get(args[0])
			} else {
				info, err = ring.Active()
			}
			if err != nil {
				return err
			}
			b, err := ring.PublicKeyPEM(info)
			if err != nil {
				return err
			}
			_, err = w.Write(b)
			return err
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&trustRoot, "trust-root", false, "print the trust root (JSON) instead of one public key")
	return cmd
}

// The server's trust documents (docs/keyless.md, "Trust distribution").
const (
	trustedRootPath   = trustedroot.TrustedRootPath
	signingConfigPath = trustedroot.SigningConfigPath
)

func newKeyTrustRootCmd() *cobra.Command {
	var (
		server string
		format string
	)
	cmd := &cobra.Command{
		Use:   "trust-root",
		Short: "Print a server's trust root: custody's format or Sigstore's trusted_root.json",
		Long: `Print the trust root a server publishes, without credentials.

--format custody (the default) is custody's trust root (GET /api/v1/keys):
the key ring's signing keys and time-stamp authorities, as
'custody key export-public --trust-root' writes it from a ring directory.

--format sigstore is Sigstore's trusted_root.json (GET
` + trustedRootPath + `): the workload CA's certificate chains, the key
ring's time-stamp authorities, the CT log's keys and the transparency logs,
each with its validity window (retired ones closed), for
'cosign verify --trusted-root' and sigstore-go. For where signers find
those services, see 'custody key signing-config'.`,
		Example: `  custody key trust-root --format sigstore > trusted_root.json
  cosign verify --trusted-root trusted_root.json --certificate-identity ... --certificate-oidc-issuer ... IMAGE`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/api/v1/keys"
			switch format {
			case "custody":
			case "sigstore":
				path = trustedRootPath
			default:
				return fmt.Errorf("invalid --format %q: use custody or sigstore", format)
			}
			return printDocument(cmd, server, path)
		},
	}
	registerServer(cmd.Flags(), &server)
	cmd.Flags().StringVar(&format, "format", "custody", "custody (custody's trust root) or sigstore (trusted_root.json)")
	return cmd
}

func newKeySigningConfigCmd() *cobra.Command {
	var server string
	cmd := &cobra.Command{
		Use:   "signing-config",
		Short: "Print a server's Sigstore signing_config.json",
		Long: `Print Sigstore's signing_config.json (v0.2) a server publishes at
` + signingConfigPath + `, without credentials: the URLs of its
certificate authority, time-stamp authority and transparency logs with
their validity windows, for 'cosign sign --signing-config' (cosign v3) and
sigstore-go. Its trusted root is 'custody key trust-root --format sigstore'.`,
		Example: `  custody key signing-config > signing_config.json
  cosign sign --signing-config signing_config.json --identity-token "$TOKEN" IMAGE`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printDocument(cmd, server, signingConfigPath)
		},
	}
	registerServer(cmd.Flags(), &server)
	return cmd
}

// printDocument prints the body of a GET of path on the server.
func printDocument(cmd *cobra.Command, server, path string) error {
	f := apiFlags{server: server, output: outputText}
	b, err := f.callRaw(cmd, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if _, err := w.Write(b); err != nil {
		return err
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		_, err = io.WriteString(w, "\n")
	}
	return err
}
