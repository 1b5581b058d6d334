package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/spf13/cobra"
)

func newLoginCmd() *cobra.Command {
	var (
		user, password string
		passwordStdin  bool
	)
	cmd := &cobra.Command{
		Use:   "login [SERVER]",
		Short: "Sign in to a custody server and store the credentials for docker, crane and custody",
		Long: `Sign in to a custody server and store the credentials in the docker
config.json ($DOCKER_CONFIG/config.json or ~/.docker/config.json, through
its credential helper when one is configured), where docker, crane, skopeo,
regctl, cosign and custody's own commands find them.

The password may be an account password or an API token ('custody token
create'). SERVER is host:port (default 127.0.0.1:5000). The credentials are
checked first, through the same token flow docker uses.`,
		Example: `  custody login -u admin --password-stdin < custody-data/admin-password
  echo "$TOKEN" | custody login registry.example.org -u ci --password-stdin`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := "127.0.0.1:5000"
			if len(args) == 1 {
				host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(args[0], "https://"), "http://"), "/")
			}
			if user == "" {
				return errors.New("no user name: give one with -u (e.g. -u admin)")
			}
			if passwordStdin {
				if password != "" {
					return errors.New("give the password with --password or --password-stdin, not both")
				}
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("reading the password from standard input: %w", err)
				}
				password = strings.TrimRight(line, "\r\n")
			}
			if password == "" {
				return errors.New("no password: pipe it with --password-stdin (safer than --password, which other users may see in the process list)")
			}
			reg, err := name.NewRegistry(host, name.Insecure)
			if err != nil {
				return fmt.Errorf("invalid server %q: %w", host, err)
			}
			basic := &authn.Basic{Username: user, Password: password}
			// The transport pings /v2/, follows the Bearer challenge to the
			// token endpoint with these credentials and fails if refused.
			scopes := []string{reg.Scope(transport.PullScope)}
			if _, err := transport.NewWithContext(cmd.Context(), reg, basic, http.DefaultTransport, scopes); err != nil {
				return fmt.Errorf("signing in to %s failed: %w", host, err)
			}
			cf, err := config.Load(config.Dir())
			if err != nil {
				return fmt.Errorf("reading the docker config: %w", err)
			}
			if err := cf.GetCredentialsStore(host).Store(types.AuthConfig{Username: user, Password: password, ServerAddress: host}); err != nil {
				return fmt.Errorf("storing credentials: %w", err)
			}
			if err := cf.Save(); err != nil {
				return fmt.Errorf("saving %s: %w", cf.Filename, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Signed in to %s as %s (credentials in %s)\n", host, user, cf.Filename)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&user, "username", "u", "", "user name (any name with an API token: e.g. token)")
	f.StringVarP(&password, "password", "p", "", "password or API token (prefer --password-stdin)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password or token from standard input")
	return cmd
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Remove the stored credentials of a server",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := "127.0.0.1:5000"
			if len(args) == 1 {
				host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(args[0], "https://"), "http://"), "/")
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
			fmt.Fprintf(cmd.OutOrStdout(), "Removed the credentials of %s\n", host)
			return nil
		},
	}
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
