package cli

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/notary"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/timestamp"
)

// signedAtAnnotation is the signed annotation carrying the signing time.
const signedAtAnnotation = evidence.SignedAtAnnotation

// signerFlags choose the signing key: a key file (cosign's encrypted
// format) or a key of the key ring (the active one by default).
type signerFlags struct {
	ring      keyRingFlags
	key       string
	plainHTTP bool
	timestamp timestampFlag
	keyless   keylessFlags
}

func (f *signerFlags) register(fs *pflag.FlagSet) {
	f.ring.register(fs)
	fs.StringVar(&f.key, "key", "", "signing key: a private key file (cosign format), a key ID of the key ring (default: the ring's active key), "+
		"a PKCS #11 URI (pkcs11:token=...;object=...?module-path=...; PIN from the URI, "+pkcs11PINEnv+" or a prompt), "+
		"or a KMS URI (awskms://, gcpkms://, azurekms://, hashivault://; not built into this version)")
	fs.BoolVar(&f.plainHTTP, "plain-http", false, "talk plain HTTP to a registry that is not on loopback or a private address")
	f.timestamp.register(fs)
	f.keyless.register(fs)
}

// signFor returns the signer for d: the key (signer) or, with --keyless,
// an ephemeral key and its certificate chain; keyID names the key.
func (f *signerFlags) signFor(cmd *cobra.Command, d name.Digest) (s crypto.Signer, keyID string, chain []*x509.Certificate, err error) {
	if !f.keyless.on {
		if f.keyless.token != "" || f.keyless.fulcioURL != "" {
			return nil, "", nil, errors.New("--identity-token and --fulcio-url need --keyless")
		}
		s, keyID, err = f.signer(cmd)
		return s, keyID, nil, err
	}
	if f.key != "" {
		return nil, "", nil, errors.New("--keyless signs with an ephemeral key: give no --key")
	}
	if s, chain, err = f.keyless.signer(cmd, d); err != nil {
		return nil, "", nil, err
	}
	keyID, err = key.ID(s.Public())
	return s, keyID, chain, err
}

// keylessStamper refuses keyless signing without a time-stamp authority:
// the certificate lives minutes, and only a trusted time-stamp shows the
// signature was made while it was valid.
func (f *signerFlags) keylessStamper(st timestamp.Stamper) error {
	if f.keyless.on && st == nil {
		return errors.New("--keyless needs a time-stamp authority (--timestamp-server-url, or a registry that serves one): without a trusted time the short-lived certificate cannot be judged")
	}
	return nil
}

// passphrase reads an existing key's passphrase from CUSTODY_KEY_PASSWORD,
// COSIGN_PASSWORD or a terminal prompt.
func passphrase(cmd *cobra.Command) ([]byte, error) {
	for _, env := range []string{keyPasswordEnv, "COSIGN_PASSWORD"} {
		if v, ok := os.LookupEnv(env); ok {
			return []byte(v), nil
		}
	}
	if in, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(in.Fd())) {
		return promptPassphrase(cmd.ErrOrStderr(), in, "Passphrase of the signing key: ")
	}
	return nil, fmt.Errorf("no passphrase for the signing key: set %s or run on a terminal", keyPasswordEnv)
}

// signer loads the signing key and returns it with its key ID: a key on a
// PKCS #11 token or in a KMS named by --key's URI, a key file, or a key of
// the ring (a file, or a token key the ring records by URI).
func (f *signerFlags) signer(cmd *cobra.Command) (crypto.Signer, string, error) {
	switch {
	case key.IsPKCS11URI(f.key):
		return openTokenKey(cmd, f.key, "")
	case key.IsKMSURI(f.key):
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		s, err := key.OpenKMS(ctx, f.key)
		//lint:ignore SA4023 this build has no KMS provider, so OpenKMS always fails; the success path is for builds that have one
		if err != nil {
			return nil, "", err
		}
		id, err := key.ID(s.Public())
		return s, id, err
	}
	if f.key != "" {
		if b, err := os.ReadFile(f.key); err == nil {
			pass, err := passphrase(cmd)
			if err != nil {
				return nil, "", err
			}
			s, err := key.DecryptPrivateKey(b, pass)
			if err != nil {
				return nil, "", fmt.Errorf("key file %s: %w", f.key, err)
			}
			id, err := key.ID(s.Public())
			return s, id, err
		} else if strings.ContainsAny(f.key, "/.") {
			return nil, "", fmt.Errorf("reading key file: %w", err)
		}
	}
	ring, err := f.ring.open()
	if err != nil {
		return nil, "", err
	}
	var info key.Info
	if f.key != "" {
		info, err = ring.Get(f.key)
	} else {
		info, err = ring.Active()
		if err != nil {
			err = fmt.Errorf("%w in %s: create one with 'custody key create', or give --key FILE", err, ring.Dir())
		}
	}
	if err != nil {
		return nil, "", err
	}
	if info.Status != key.Active {
		return nil, "", fmt.Errorf("key %s is %s: sign with the active key ('custody key list')", info.ID, info.Status)
	}
	if info.URI != "" {
		return openTokenKey(cmd, info.URI, info.ID)
	}
	pass, err := passphrase(cmd)
	if err != nil {
		return nil, "", err
	}
	s, err := ring.Signer(info, pass)
	return s, info.ID, err
}

// remoteOpts are the registry options of the signing commands: the same
// credentials as push and pull.
func remoteOpts(ctx context.Context) sign.Options {
	return sign.Options{Remote: []remote.Option{remote.WithAuthFromKeychain(keychain()), remote.WithUserAgent("custody/" + Version), remote.WithContext(ctx), remote.WithTransport(registryTransport)}}
}

func resolve(ctx context.Context, ref string, plainHTTP bool, o sign.Options) (name.Digest, error) {
	var nopts []name.Option
	if plainHTTP {
		nopts = append(nopts, name.Insecure)
	}
	d, err := sign.ResolveDigest(ctx, ref, o, nopts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	return d, nil
}

func parseStorage(s string) (sign.Storage, error) {
	switch s {
	case "both":
		return sign.StorageBoth, nil
	case "tag":
		return sign.StorageTag, nil
	case "referrer":
		return sign.StorageReferrer, nil
	}
	return 0, fmt.Errorf("invalid --storage %q: use both, tag (cosign v2's sha256-<hex>.sig) or referrer (OCI 1.1, cosign v3)", s)
}

func newSignCmd() *cobra.Command {
	var (
		f           signerFlags
		storage     string
		bundleOut   string
		annotations []string
		output      string
		format      string
		envelope    string
		nKey, nCert string
	)
	cmd := &cobra.Command{
		Use:   "sign REF",
		Short: "Sign an artifact the way cosign does (verifiable with cosign verify --key)",
		Long: `Sign the manifest digest REF resolves to, with a key of the key ring (the
active one by default) or a cosign-format key file, and store the signature
where cosign v2 looks (tag sha256-<hex>.sig) and as an OCI 1.1 referrer
carrying a Sigstore bundle v0.3 (cosign v3). No transparency log is used:
custody works air-gapped. When the registry runs a time-stamp authority
(custody key tsa create), the signature carries its RFC 3161 time-stamp
(--timestamp-server-url), and verifiers judge the key at that time. The signature is over the digest, so it holds for
every tag and every environment the digest is promoted to.

The key's passphrase comes from ` + keyPasswordEnv + ` (or COSIGN_PASSWORD),
or a prompt. Verify with 'custody verify REF --trust-root FILE' or
'cosign verify --key PUB --insecure-ignore-tlog=true REF' (cosign v2.6
needs '--trusted-root' naming an empty trusted root file once a bundle
referrer exists; see docs/signing.md).

With --keyless, sign as a CI workload with no key to keep: custody makes
an ephemeral P-256 key in memory, asks the certificate authority
(--fulcio-url, default the registry of REF: custody's own CA, docs/keyless.md,
or any Fulcio) for a 10-minute certificate binding it to the job's OIDC
identity (the token from --identity-token TOKEN|FILE, else
SIGSTORE_ID_TOKEN, else GitHub Actions' token service for audience
sigstore), signs, and stores the certificate with the signature where
cosign does. A time-stamp is required (the certificate expires in
minutes; only a trusted time-stamp shows it was valid when used). When
the server's signing_config.json names a transparency log (rekor: in its
configuration), the bundle's signature is logged there and the entry
stored in the bundle (the cosign v2 tag has no place for it); the output
says its log index, or "not logged". Verify with 'custody verify REF --trust-root FILE --certificate-identity ...
--certificate-oidc-issuer ...' or 'cosign verify --trusted-root
trusted_root.json --certificate-identity ... --certificate-oidc-issuer ...'.

With --format notation, sign as the Notary Project does instead: a JWS
(default) or COSE (--envelope cose) envelope signed with --notation-key
(a PEM private key file) and certified by --notation-cert (a PEM
certificate chain, leaf first, e.g. from 'notation cert generate-test' or
your CA), stored as an OCI 1.1 referrer with artifactType
application/vnd.cncf.notary.signature. 'notation verify' and 'custody verify
--notation-trust-policy ... --notation-trust-store ...' verify it.`,
		Example: `  custody sign 127.0.0.1:5000/apps/web:1.4.2
  custody sign --keyless registry.example.org/apps/web:1.4.2            # in GitHub Actions (id-token: write)
  custody sign --keyless --identity-token "$SIGSTORE_ID_TOKEN" registry.example.org/apps/web:1.4.2   # GitLab CI
  custody sign --format notation --notation-key release.key --notation-cert release.crt \
      --envelope cose 127.0.0.1:5000/apps/web:1.4.2
  custody sign --key cosign.key --bundle web.sigstore.json 127.0.0.1:5000/apps/web@sha256:...
  custody sign --storage tag -a team=web 127.0.0.1:5000/apps/web:1.4.2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := parseStorage(storage)
			if err != nil {
				return err
			}
			if output != outputText && output != outputJSON {
				return fmt.Errorf("invalid --output %q: use text or json", output)
			}
			ann := map[string]string{}
			for _, a := range annotations {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return fmt.Errorf("invalid annotation %q: use key=value", a)
				}
				ann[k] = v
			}
			switch format {
			case "cosign":
				if nKey != "" || nCert != "" || cmd.Flags().Changed("envelope") {
					return errors.New("--notation-key, --notation-cert and --envelope need --format notation")
				}
			case "notation":
				if nKey == "" || nCert == "" {
					return errors.New("--format notation needs --notation-key and --notation-cert: Notation verifies X.509 certificate chains, and ring keys have none")
				}
				if f.key != "" || f.keyless.on || bundleOut != "" || len(annotations) > 0 || cmd.Flags().Changed("storage") {
					return errors.New("--key, --bundle, --annotation and --storage are cosign's: --format notation signs with --notation-key and stores a referrer")
				}
				return signNotation(cmd, args[0], nKey, nCert, envelope, f.plainHTTP, output)
			default:
				return fmt.Errorf("invalid --format %q: use cosign or notation", format)
			}
			// A key is loaded first (a wrong passphrase fails before any
			// network); a keyless certificate last, just before signing.
			var (
				signer crypto.Signer
				keyID  string
				chain  []*x509.Certificate
			)
			if !f.keyless.on {
				if signer, keyID, _, err = f.signFor(cmd, name.Digest{}); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			o := remoteOpts(ctx)
			o.Storage = st
			ann[signedAtAnnotation] = time.Now().UTC().Format(time.RFC3339)
			o.Annotations = ann
			d, err := resolve(ctx, args[0], f.plainHTTP, o)
			if err != nil {
				return err
			}
			if o.Timestamper, err = f.timestamp.stamper(cmd, d); err != nil {
				return err
			}
			if err := f.keylessStamper(o.Timestamper); err != nil {
				return err
			}
			if f.keyless.on {
				if signer, keyID, chain, err = f.signFor(cmd, d); err != nil {
					return err
				}
			}
			o.Chain = chain
			var at *logged
			if f.keyless.on && st != sign.StorageTag { // the entry goes in the bundle
				if o.TransparencyLog, at, err = f.keyless.transparencyLog(cmd, d, chain); err != nil {
					return err
				}
			}
			res, err := sign.Sign(ctx, d, signer, o)
			if err != nil {
				return fmt.Errorf("signing %s: %w", d, err)
			}
			if bundleOut != "" && len(res.Bundle) > 0 {
				if err := os.WriteFile(bundleOut, res.Bundle, 0o644); err != nil {
					return err
				}
			}
			if output == outputJSON {
				out := map[string]any{
					"digest": d.String(), "keyId": keyID, "tag": res.Tag.String(), "referrer": res.Referrer, "bundle": bundleOut,
				}
				if len(chain) > 0 {
					out["certificate"] = string(ca.EncodeChain(chain[:1]))
				}
				if at != nil && at.url != "" {
					out["transparencyLog"] = map[string]any{"url": at.url, "logIndex": at.index}
				}
				return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
			}
			if len(chain) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "signed %s keyless as %s\n", d, describeCertificate(chain))
				if res.Referrer != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "  transparency log:    %s\n", at)
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "signed %s with key %s\n", d, keyID[:min(16, len(keyID))])
			}
			if res.TagDigest != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "  cosign v2 signature: %s\n", res.Tag)
			}
			if res.Referrer != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "  bundle referrer:     %s\n", res.Referrer)
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&storage, "storage", "both", "where to store: both, tag (cosign v2) or referrer (OCI 1.1 bundle, cosign v3)")
	fl.StringVar(&bundleOut, "bundle", "", "also write the Sigstore bundle (v0.3 JSON) to this file")
	fl.StringArrayVarP(&annotations, "annotation", "a", nil, "signed annotation key=value (repeatable)")
	fl.StringVarP(&output, "output", "o", outputText, "output format: text or json")
	fl.StringVar(&format, "format", "cosign", "signature format: cosign, or notation (Notary Project)")
	fl.StringVar(&envelope, "envelope", notary.FormatJWS, "Notation envelope: jws or cose (--format notation)")
	fl.StringVar(&nKey, "notation-key", "", "PEM private key file to sign with (--format notation)")
	fl.StringVar(&nCert, "notation-cert", "", "PEM certificate chain file of --notation-key, leaf first (--format notation)")
	return cmd
}

// signNotation signs ref as the Notary Project does and prints what it
// stored.
func signNotation(cmd *cobra.Command, ref, keyFile, certFile, envelope string, plainHTTP bool, output string) error {
	mt, err := notary.MediaTypeOf(envelope)
	if err != nil {
		return err
	}
	s, err := notary.LoadSigner(keyFile, certFile)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	o := remoteOpts(ctx)
	d, err := resolve(ctx, ref, plainHTTP, o)
	if err != nil {
		return err
	}
	res, err := s.Sign(ctx, d, mt, o.Remote...)
	if err != nil {
		return err
	}
	if output == outputJSON {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
			"digest": d.String(), "format": "notation", "envelope": res.MediaType, "identity": res.Identity, "referrer": res.Manifest,
		})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "signed %s as %q (Notation, %s)\n  notation referrer: %s\n", d, res.Identity, res.MediaType, res.Manifest)
	return nil
}

func newAttestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attest",
		Short: "Attach signed in-toto attestations: SLSA provenance, SBOMs, any predicate; verify the source commit",
		Long: `Attach signed in-toto Statement v1 attestations (DSSE envelopes) to an
artifact, stored where cosign verify-attestation finds them (tag
sha256-<hex>.att) and as OCI 1.1 referrers (Sigstore bundles).

Every subcommand that signs takes --keyless, as custody sign does: an
ephemeral key certified for the CI job's OIDC identity, time-stamped.`,
		Example: `  custody attest provenance --from-env --keyless REF
  custody attest sbom --keyless REF
  custody attest test-result --keyless REF --result PASSED`,
	}
	cmd.AddCommand(newAttestProvenanceCmd(), newAttestSBOMCmd(), newAttestTestResultCmd(), newAttestPredicateCmd(), newAttestSourceCmd())
	return cmd
}

// attach signs stmt and attaches it to d.
func attach(cmd *cobra.Command, f *signerFlags, d name.Digest, predicateType string, predicate []byte, envOut string) error {
	var (
		signer crypto.Signer
		chain  []*x509.Certificate
		err    error
	)
	if !f.keyless.on {
		if signer, _, _, err = f.signFor(cmd, d); err != nil {
			return err
		}
	}
	ctx := cmd.Context()
	o := remoteOpts(ctx)
	if o.Timestamper, err = f.timestamp.stamper(cmd, d); err != nil {
		return err
	}
	if err := f.keylessStamper(o.Timestamper); err != nil {
		return err
	}
	if f.keyless.on {
		if signer, _, chain, err = f.signFor(cmd, d); err != nil {
			return err
		}
	}
	o.Chain = chain
	var at *logged
	if f.keyless.on {
		if o.TransparencyLog, at, err = f.keyless.transparencyLog(cmd, d, chain); err != nil {
			return err
		}
	}
	stmt, err := attest.StatementFor(d.Context().Name(), d.DigestStr(), predicateType, predicate)
	if err != nil {
		return err
	}
	// An empty DSSE keyid: cosign matches keyids its own way, and
	// verifiers try every trusted key.
	env, err := attest.Sign(ctx, signer, "", stmt)
	if err != nil {
		return err
	}
	if envOut != "" {
		if err := os.WriteFile(envOut, env, 0o644); err != nil {
			return err
		}
	}
	res, err := sign.Attach(ctx, d, env, predicateType, o)
	if err != nil {
		return fmt.Errorf("attaching to %s: %w", d, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "attached %s to %s\n", predicateType, d)
	if len(chain) > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "  signed keyless as %s\n", describeCertificate(chain))
		if res.Referrer != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "  transparency log: %s\n", at)
		}
	}
	if res.Referrer != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "  referrer: %s\n", res.Referrer)
	}
	return nil
}

func newAttestProvenanceCmd() *cobra.Command {
	var (
		f         signerFlags
		fromEnv   bool
		workspace string
		envOut    string
		predOut   string
	)
	cmd := &cobra.Command{
		Use:   "provenance REF --from-env",
		Short: "Attach SLSA v1 provenance built from the CI job's environment",
		Long: `Build SLSA v1 provenance (https://slsa.dev/provenance/v1) from the CI
environment — GitHub Actions (GITHUB_*), GitLab CI (CI_*) or the generic
CUSTODY_BUILD_* variables — with the source repository, commit, ref, the
workflow file and its digest, the builder and invocation IDs, and the
dependencies resolved from the lockfiles in --workspace (go.sum,
package-lock.json, requirements.txt, poetry.lock, pom.xml, Cargo.lock);
sign it and attach it to REF.

The generic variables (CUSTODY_BUILD_SOURCE_URI and CUSTODY_BUILD_BUILDER_ID
are required):
  CUSTODY_BUILD_SOURCE_URI     repository, e.g. git+https://git.example.com/team/app
  CUSTODY_BUILD_REF            full git ref, e.g. refs/heads/main
  CUSTODY_BUILD_COMMIT         commit hash (hex)
  CUSTODY_BUILD_WORKFLOW_PATH  pipeline file, relative to the workspace
  CUSTODY_BUILD_BUILDER_ID     URI of the build platform
  CUSTODY_BUILD_INVOCATION_ID  URI or ID of this run
  CUSTODY_BUILD_STARTED_ON     RFC 3339 start time (any platform)

This is the SLSA build level 2 shape: the job signs its own word. For level
3, let custody write and sign the provenance from the job's verified OIDC
token instead (docs/signing.md).`,
		Example: `  custody attest provenance --from-env 127.0.0.1:5000/apps/web@sha256:...`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !fromEnv {
				return errors.New("give --from-env: provenance is built from the CI job's environment variables")
			}
			ctx := cmd.Context()
			d, err := resolve(ctx, args[0], f.plainHTTP, remoteOpts(ctx))
			if err != nil {
				return err
			}
			p, err := provenance.FromEnv(os.Getenv, workspace, time.Now())
			if err != nil {
				return fmt.Errorf("building provenance: %w", err)
			}
			b, err := json.Marshal(p)
			if err != nil {
				return err
			}
			if predOut != "" {
				if err := os.WriteFile(predOut, b, 0o644); err != nil {
					return err
				}
			}
			return attach(cmd, &f, d, attest.PredicateSLSAProvenanceV1, b, envOut)
		},
	}
	f.register(cmd.Flags())
	fl := cmd.Flags()
	fl.BoolVar(&fromEnv, "from-env", false, "build the provenance from the CI environment (required)")
	fl.StringVar(&workspace, "workspace", ".", "the checked-out source tree, searched for lockfiles")
	fl.StringVar(&envOut, "envelope", "", "also write the signed DSSE envelope to this file")
	fl.StringVar(&predOut, "predicate-out", "", "also write the provenance predicate JSON to this file")
	return cmd
}

func newAttestPredicateCmd() *cobra.Command {
	var (
		f      signerFlags
		typ    string
		pred   string
		envOut string
	)
	cmd := &cobra.Command{
		Use:     "predicate REF --type URI --predicate FILE",
		Short:   "Attach any predicate (test results, vulnerability scans, ...) as a signed attestation",
		Example: `  custody attest predicate --type https://in-toto.io/attestation/test-result/v0.1 --predicate results.json 127.0.0.1:5000/apps/web:1.4.2`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if typ == "" || pred == "" {
				return errors.New("give --type (the predicate type URI) and --predicate (a JSON file)")
			}
			b, err := readCapped(pred, attest.MaxPredicateBytes)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			d, err := resolve(ctx, args[0], f.plainHTTP, remoteOpts(ctx))
			if err != nil {
				return err
			}
			return attach(cmd, &f, d, typ, b, envOut)
		},
	}
	f.register(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&typ, "type", "", "predicate type URI")
	fl.StringVar(&pred, "predicate", "", "predicate JSON file")
	fl.StringVar(&envOut, "envelope", "", "also write the signed DSSE envelope to this file")
	return cmd
}

// readCapped reads a file of at most limit bytes.
func readCapped(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the %d-byte limit", path, st.Size(), limit)
	}
	return os.ReadFile(path)
}
