package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/key"
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
		Short: "Create, list, rotate and export signing keys",
		Long: `Manage custody's signing keys (ECDSA P-256 or Ed25519).

Private keys are files encrypted with a passphrase in cosign's own format
("ENCRYPTED SIGSTORE PRIVATE KEY"), so 'cosign sign --key <file>' uses them
directly with the same passphrase in COSIGN_PASSWORD. They live in a key
ring directory (--keys, default <data>/keys) with one metadata file per key.
A ring has one active key; 'custody key rotate' replaces it and retires the
old one, which keeps verifying what it signed while it was valid. See
docs/signing.md.`,
	}
	cmd.AddCommand(newKeyCreateCmd(), newKeyListCmd(), newKeyRotateCmd(), newKeyExportPublicCmd())
	return cmd
}

func newKeyCreateCmd() *cobra.Command {
	var (
		f      keyRingFlags
		alg    string
		name   string
		unsafe bool
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the active signing key of the key ring",
		Long: `Create a signing key, encrypted with a passphrase from ` + keyPasswordEnv + `
or, on a terminal, a prompt. The ring must not have an active key yet
(replace one with 'custody key rotate').`,
		Example: `  CUSTODY_KEY_PASSWORD=... custody key create --name release
  custody key create --algorithm ed25519 --keys /etc/custody/keys`,
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
			pass, err := newKeyPassphrase(cmd, unsafe)
			if err != nil {
				return err
			}
			info, err := ring.Create(a, name, pass)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "created %s key %s\n", info.Algorithm, info.ID)
			fmt.Fprintf(w, "  private key: %s\n  public key:  %s\n", ring.Path(info.File), ring.Path(info.PublicFile))
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&alg, "algorithm", string(key.ECDSAP256), "key algorithm: ecdsa-p256 or ed25519")
	cmd.Flags().StringVar(&name, "name", "", "a label for the key")
	cmd.Flags().BoolVar(&unsafe, "no-passphrase-unsafe", false, "allow an empty passphrase (the private key is then unprotected)")
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
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the active key with a new one and retire the old one",
		Long: `Create a new active key and retire the current one: the retired key's
validity ends now, and it keeps verifying what it signed before. The new key
takes the old one's algorithm and name unless --algorithm or --name is given,
and its passphrase comes from ` + keyPasswordEnv + ` or a prompt.`,
		Example: "  CUSTODY_KEY_PASSWORD=... custody key rotate",
		Args:    cobra.NoArgs,
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
			pass, err := newKeyPassphrase(cmd, unsafe)
			if err != nil {
				return err
			}
			created, retired, err := ring.Rotate(a, name, pass)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "created %s key %s (active)\n", created.Algorithm, created.ID)
			fmt.Fprintf(w, "  private key: %s\n", ring.Path(created.File))
			fmt.Fprintf(w, "retired key %s (valid %s to %s)\n", retired.ID,
				retired.NotBefore.Format(time.RFC3339), retired.NotAfter.Format(time.RFC3339))
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&alg, "algorithm", "", "algorithm of the new key: ecdsa-p256 or ed25519 (default: the old key's)")
	cmd.Flags().StringVar(&name, "name", "", "label of the new key (default: the old key's)")
	cmd.Flags().BoolVar(&unsafe, "no-passphrase-unsafe", false, "allow an empty passphrase (the private key is then unprotected)")
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
