package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
)

// Client commands talk to one server, chosen in this order: their
// --server flag, the CUSTODY_SERVER environment variable, the server of
// the last 'custody login' (remembered in custody's own config file),
// then http://127.0.0.1:5000.

const (
	// envServer names the server when --server is not given.
	envServer = "CUSTODY_SERVER"
	// defaultServer is where 'custody serve' listens by default.
	defaultServer = "http://127.0.0.1:5000"
	// serverUsage is the help text of every client command's --server.
	serverUsage = "custody server URL (default: $" + envServer + ", else the server of the last 'custody login', else " + defaultServer + ")"
)

// registerServer adds the --server flag of a client command.
func registerServer(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "server", "", serverUsage)
}

// resolveServer returns the server URL a client command talks to: flag
// when given, else CUSTODY_SERVER, else the remembered server, else the
// default.
func resolveServer(flag string) (string, error) {
	server, from := flag, "--server"
	if server == "" {
		server, from = os.Getenv(envServer), envServer
	}
	if server == "" {
		c, err := loadClientConfig()
		if err != nil {
			return "", err
		}
		server = c.Server // checked by loadClientConfig
	}
	if server == "" {
		return defaultServer, nil
	}
	if _, err := serverHost(server); err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	return strings.TrimRight(server, "/"), nil
}

// clientConfig is custody's own client configuration file, separate from
// the docker config.json that holds the credentials.
type clientConfig struct {
	// Server is the URL of the server of the last 'custody login'.
	Server string `json:"server,omitempty"`
}

// clientConfigPath is $XDG_CONFIG_HOME/custody/config.json (on Linux;
// os.UserConfigDir elsewhere), ~/.config/custody/config.json without it.
func clientConfigPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding custody's config directory: %w", err)
	}
	return filepath.Join(dir, "custody", "config.json"), nil
}

func loadClientConfig() (clientConfig, error) {
	var c clientConfig
	path, err := clientConfigPath()
	if err != nil {
		return c, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("reading %s: %w (remove the file to start afresh)", path, err)
	}
	if c.Server != "" {
		if _, err := serverHost(c.Server); err != nil {
			return c, fmt.Errorf("%s: %w (remove the file or run 'custody login' again)", path, err)
		}
	}
	return c, nil
}

// saveClientConfig writes the file (mode 0600, in a 0700 directory)
// through a temporary file, so a crash leaves the old or the new one.
func saveClientConfig(c clientConfig) (string, error) {
	path, err := clientConfigPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.json")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// loginHost returns the host[:port] a login or logout argument names:
// "host:port", "http://host:port" or "https://host/".
func loginHost(arg string) (string, error) {
	if strings.Contains(arg, "://") {
		return serverHost(strings.TrimSuffix(arg, "/"))
	}
	h := strings.TrimSuffix(arg, "/")
	if h == "" || strings.ContainsAny(h, "/?#@ ") {
		return "", fmt.Errorf("invalid server %q (expected host:port, such as 127.0.0.1:5000, or a URL)", arg)
	}
	return h, nil
}

// rememberServer makes server the one client commands use by default.
func rememberServer(server string) (string, error) {
	c, err := loadClientConfig()
	if err != nil {
		// A damaged file is replaced: login is how to repair it.
		c = clientConfig{}
	}
	c.Server = server
	return saveClientConfig(c)
}

// forgetServer removes the remembered server if it is host's; it reports
// whether it did.
func forgetServer(host string) (bool, error) {
	c, err := loadClientConfig()
	if err != nil || c.Server == "" {
		return false, err
	}
	h, err := serverHost(c.Server)
	if err != nil || !strings.EqualFold(h, host) {
		return false, err
	}
	c.Server = ""
	_, err = saveClientConfig(c)
	return err == nil, err
}

// serverURL turns a host and the scheme a sign-in used into a base URL.
func serverURL(host string, insecure bool) string {
	u := url.URL{Scheme: "https", Host: host}
	if insecure {
		u.Scheme = "http"
	}
	return u.String()
}
