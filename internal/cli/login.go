package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/auth"
)

func newLoginCmd() *cobra.Command {
	var (
		user, password string
		passwordStdin  bool
		oidc           bool
		workload       keylessFlags
		otp            string
		otpLife        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "login [SERVER]",
		Short: "Sign in to a custody server and store the credentials for docker, crane and custody",
		Long: `Sign in to a custody server and store the credentials in the docker
config.json ($DOCKER_CONFIG/config.json or ~/.docker/config.json, through
its credential helper when one is configured), where docker, crane, skopeo,
regctl, cosign and custody's own commands find them.

The password may be an account password or an API token ('custody token
create'). SERVER is host:port or a URL (default: $CUSTODY_SERVER, else the
server of the last login, else 127.0.0.1:5000). The credentials are checked
first, through the same token flow docker uses.

An account with a second factor (custody mfa enrol) also gives its
one-time code: with --otp, else as the second line of standard input with
--password-stdin, else custody asks for it. custody then stores an API
token named "custody login" instead of the password: it holds the
account's grants and expires after --otp-session (12h); sign in again
after that. Dangerous actions need a fresh code even so: custody's
commands send $CUSTODY_OTP.

custody remembers the server in its own config file
($XDG_CONFIG_HOME/custody/config.json, else ~/.config/custody/config.json):
later commands talk to it without --server, unless --server or
CUSTODY_SERVER names another.

With --oidc, a CI job signs in with its workload OIDC token, found as
'custody sign --keyless' finds it: --identity-token (the token or a file
holding it), else SIGSTORE_ID_TOKEN, else in GitHub Actions a token for
audience sigstore from the job's token service ('permissions: id-token:
write'). The server must trust the issuer and audience (auth.oidc); the
user name is token. The token expires with the job's token (minutes).`,
		Example: `  custody login -u admin --password-stdin < custody-data/admin-password
  echo "$TOKEN" | custody login registry.example.org -u ci --password-stdin
  custody login registry.example.org --oidc                       # GitHub Actions, id-token: write
  custody login registry.example.org --oidc --identity-token "$SIGSTORE_ID_TOKEN"   # GitLab CI id_tokens
  printf '%s\n%s\n' "$PASSWORD" "$CODE" | custody login -u alice --password-stdin`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host, err := argHost(args)
			if err != nil {
				return err
			}
			if workload.token != "" && !oidc {
				return errors.New("--identity-token needs --oidc")
			}
			if oidc {
				if password != "" || passwordStdin {
					return errors.New("--oidc signs in with the workload's OIDC token: give no password")
				}
				if user == "" {
					user = "token"
				}
				if password, err = workload.identityToken(cmd); err != nil {
					return err
				}
			}
			if user == "" {
				return errors.New("no user name: give one with -u (e.g. -u admin)")
			}
			if passwordStdin {
				if password != "" {
					return errors.New("give the password with --password or --password-stdin, not both")
				}
				line, err := readLine(cmd)
				if err != nil {
					return fmt.Errorf("reading the password from standard input: %w", err)
				}
				password = line
			}
			if password == "" {
				return errors.New("no password: pipe it with --password-stdin (safer than --password, which other users may see in the process list)")
			}
			reg, err := name.NewRegistry(host, name.Insecure)
			if err != nil {
				return fmt.Errorf("invalid server %q: %w", host, err)
			}
			basic := &authn.Basic{Username: user, Password: password}
			// The ping tells whether the server speaks HTTPS or only HTTP
			// (allowed for loopback and private addresses).
			ping, err := transport.Ping(cmd.Context(), reg, registryTransport)
			if err != nil {
				return fmt.Errorf("signing in to %s failed: %w", host, err)
			}
			// The transport pings /v2/, follows the Bearer challenge to the
			// token endpoint with these credentials and fails if refused.
			scopes := []string{reg.Scope(transport.PullScope)}
			if _, err := transport.NewWithContext(cmd.Context(), reg, basic, registryTransport, scopes); err != nil {
				return fmt.Errorf("signing in to %s failed: %w", host, err)
			}
			server := serverURL(host, ping.Insecure)
			stored, note, err := secondFactor(cmd, server, user, password, otp, otpLife)
			if err != nil {
				return fmt.Errorf("signing in to %s failed: %w", host, err)
			}
			cf, err := config.Load(config.Dir())
			if err != nil {
				return fmt.Errorf("reading the docker config: %w", err)
			}
			if err := cf.GetCredentialsStore(host).Store(types.AuthConfig{Username: user, Password: stored, ServerAddress: host}); err != nil {
				return fmt.Errorf("storing credentials: %w", err)
			}
			if err := cf.Save(); err != nil {
				return fmt.Errorf("saving %s: %w", cf.Filename, err)
			}
			path, err := rememberServer(server)
			if err != nil {
				return fmt.Errorf("signed in, but remembering %s as the default server failed: %w", server, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Signed in to %s as %s (credentials in %s; %s is now the default server, kept in %s)\n",
				host, user, cf.Filename, server, path)
			if note != "" {
				fmt.Fprintln(cmd.OutOrStdout(), note)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&user, "username", "u", "", "user name (any name with an API token: e.g. token)")
	f.StringVarP(&password, "password", "p", "", "password or API token (prefer --password-stdin)")
	f.BoolVar(&oidc, "oidc", false, "sign in with the CI job's OIDC identity token (user token)")
	f.StringVar(&workload.token, "identity-token", "", "with --oidc: the OIDC token, or a file holding it (default: "+sigstoreTokenEnv+", else GitHub Actions' token service)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password or token from standard input (and a one-time code from its second line)")
	f.StringVar(&otp, "otp", "", "one-time code (TOTP or recovery code) of an account with a second factor")
	f.DurationVar(&otpLife, "otp-session", 12*time.Hour, "lifetime of the API token stored for an account with a second factor")
	return cmd
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Remove the stored credentials of a server, and forget it as the default server",
		Long: `Remove the stored credentials of SERVER (host:port or a URL; default:
$CUSTODY_SERVER, else the server of the last login, else 127.0.0.1:5000).
If SERVER is the one 'custody login' remembered, later commands go back to
$CUSTODY_SERVER or 127.0.0.1:5000.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host, err := argHost(args)
			if err != nil {
				return err
			}
			cf, err := config.Load(config.Dir())
			if err != nil {
				return fmt.Errorf("reading the docker config: %w", err)
			}
			if err := cf.GetCredentialsStore(host).Erase(host); err != nil {
				return fmt.Errorf("removing credentials: %w", err)
			}
			if err := cf.Save(); err != nil {
				return fmt.Errorf("saving %s: %w", cf.Filename, err)
			}
			forgot, err := forgetServer(host)
			if err != nil {
				return fmt.Errorf("removed the credentials of %s, but forgetting it as the default server failed: %w", host, err)
			}
			if forgot {
				fmt.Fprintf(cmd.OutOrStdout(), "Removed the credentials of %s; it is no longer the default server\n", host)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed the credentials of %s\n", host)
			return nil
		},
	}
}

// argHost returns the host[:port] of login's or logout's SERVER argument,
// or of the server client commands use when it is absent.
func argHost(args []string) (string, error) {
	if len(args) == 1 {
		return loginHost(args[0])
	}
	server, err := resolveServer("")
	if err != nil {
		return "", err
	}
	return serverHost(server)
}

// printJSONOrText prints b (a JSON answer) as indented JSON when -o json,
// or calls text.
func printJSONOrText(cmd *cobra.Command, output string, b []byte, text func() error) error {
	if output == outputJSON {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return text()
}

// secondFactor completes the sign-in of an account with a second factor:
// it reads the one-time code and creates an API token holding the
// account's grants, which is stored instead of the password. Other
// accounts keep their password (note then says what to do when their role
// requires a factor they lack). Servers without the MFA API, or without
// authentication, are left alone.
func secondFactor(cmd *cobra.Command, server, user, password, otp string, life time.Duration) (stored, note string, err error) {
	if strings.HasPrefix(password, "cst_") {
		return password, "", nil // an API token: no second factor
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	c, err := apiclient.New(server, apiclient.Options{Authorization: basic, UserAgent: "custody/" + Version})
	if err != nil {
		return "", "", err
	}
	var v auth.FactorsView
	if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/mfa", nil, &v); err != nil {
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.Status != http.StatusUnauthorized {
			return password, "", nil // no MFA API here (older server, auth off)
		}
		return "", "", err
	}
	if !v.TOTP && len(v.WebAuthn) > 0 {
		return "", "", errors.New("this account's second factor is a security key, which only the web interface can use: add an authenticator app on its Account page (or use an API token made there)")
	}
	if !v.TOTP {
		if v.Required != "" {
			note = fmt.Sprintf("The %s role requires a second factor: enrol one now with 'custody mfa enrol', then sign in again.", v.Required)
		}
		return password, note, nil
	}
	if otp == "" {
		fmt.Fprint(cmd.ErrOrStderr(), "One-time code: ")
		if otp, err = readLine(cmd); err != nil {
			return "", "", fmt.Errorf("reading the one-time code: %w", err)
		}
	}
	if otp = strings.TrimSpace(otp); otp == "" {
		return "", "", errors.New("the account has a second factor: give its one-time code with --otp or on the second line of standard input")
	}
	var who auth.Whoami
	if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/whoami", nil, &who); err != nil {
		return "", "", err
	}
	var tok auth.CreatedToken
	err = c.Send(cmd.Context(), apiclient.Request{Method: http.MethodPost, Path: "/api/v1/tokens",
		Header: http.Header{auth.OTPHeader: {otp}},
		JSON:   auth.TokenRequest{Name: "custody login", Scopes: who.Grants, ExpiresIn: life.String(), SignIn: true}}, &tok)
	if err != nil {
		return "", "", err
	}
	return tok.Secret, fmt.Sprintf("Stored API token %s (custody login) in place of the password; it expires %s.", tok.ID, tok.Expires.Local().Format(time.RFC1123)), nil
}
