// Package config loads custody's configuration: defaults, then one YAML
// file, then CUSTODY_* environment variables, then command-line flags (the
// caller applies those last). Unknown YAML keys are errors, so a typo never
// silently falls back to a default.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is custody's whole configuration.
type Config struct {
	// Addr is the listen address (default 127.0.0.1:5000).
	Addr string `yaml:"addr"`
	// Data is the data directory of the embedded store (default ./custody-data).
	Data string `yaml:"data"`
	// Log configures structured logging.
	Log Log `yaml:"log"`
	// Uploads configures upload sessions.
	Uploads Uploads `yaml:"uploads"`
	// Limits caps request sizes.
	Limits Limits `yaml:"limits"`
	// ShutdownTimeout bounds how long a graceful shutdown waits for
	// in-flight requests (default 30s); unfinished uploads stay resumable.
	ShutdownTimeout Duration `yaml:"shutdownTimeout"`
}

// Log configures log/slog output.
type Log struct {
	Format string `yaml:"format"` // "text" (default) or "json"
	Level  string `yaml:"level"`  // "debug", "info" (default), "warn", "error"
}

// Uploads configures upload sessions.
type Uploads struct {
	// TTL is how long an idle upload session is kept before it is purged
	// (default 24h).
	TTL Duration `yaml:"ttl"`
}

// Limits caps request sizes.
type Limits struct {
	// MaxManifestBytes caps manifest bodies (default 4 MiB).
	MaxManifestBytes int64 `yaml:"maxManifestBytes"`
}

// Duration is a time.Duration written as "30s", "24h" in YAML and env.
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use e.g. 30s, 24h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Default returns the built-in configuration: the embedded store on loopback.
func Default() Config {
	return Config{
		Addr:            "127.0.0.1:5000",
		Data:            "./custody-data",
		Log:             Log{Format: "text", Level: "info"},
		Uploads:         Uploads{TTL: Duration(24 * time.Hour)},
		Limits:          Limits{MaxManifestBytes: 4 << 20},
		ShutdownTimeout: Duration(30 * time.Second),
	}
}

// Load returns the defaults overlaid with the YAML file at path (if path is
// not empty) and then with CUSTODY_* variables from environ.
func Load(path string, environ []string) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("reading config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := c.applyEnv(environ); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Env lists the environment variables custody reads, for --help.
var Env = []struct{ Name, Help string }{
	{"CUSTODY_CONFIG", "path of the YAML configuration file"},
	{"CUSTODY_ADDR", "listen address"},
	{"CUSTODY_DATA", "data directory of the embedded store"},
	{"CUSTODY_LOG_FORMAT", "text or json"},
	{"CUSTODY_LOG_LEVEL", "debug, info, warn or error"},
	{"CUSTODY_UPLOAD_TTL", "idle upload sessions are purged after this duration"},
	{"CUSTODY_MAX_MANIFEST_BYTES", "largest manifest accepted"},
	{"CUSTODY_SHUTDOWN_TIMEOUT", "how long shutdown waits for in-flight requests"},
	{"CUSTODY_READY_FILE", "write the bound address to this file once listening"},
}

func (c *Config) applyEnv(environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CUSTODY_") {
			env[k] = v
		}
	}
	for k, v := range env {
		var err error
		switch k {
		case "CUSTODY_CONFIG", "CUSTODY_READY_FILE":
			// Read by the serve command itself.
		case "CUSTODY_ADDR":
			c.Addr = v
		case "CUSTODY_DATA":
			c.Data = v
		case "CUSTODY_LOG_FORMAT":
			c.Log.Format = v
		case "CUSTODY_LOG_LEVEL":
			c.Log.Level = v
		case "CUSTODY_UPLOAD_TTL":
			err = setDuration(&c.Uploads.TTL, v)
		case "CUSTODY_SHUTDOWN_TIMEOUT":
			err = setDuration(&c.ShutdownTimeout, v)
		case "CUSTODY_MAX_MANIFEST_BYTES":
			c.Limits.MaxManifestBytes, err = strconv.ParseInt(v, 10, 64)
		default:
			// Other CUSTODY_* variables belong to client commands.
		}
		if err != nil {
			return fmt.Errorf("%s=%q: %v", k, v, err)
		}
	}
	return nil
}

func setDuration(d *Duration, v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("not a duration (use e.g. 30s, 24h)")
	}
	*d = Duration(x)
	return nil
}

// Validate checks the configuration and says what to fix.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr %q is not host:port (e.g. 127.0.0.1:5000)", c.Addr)
	}
	if c.Data == "" {
		return errors.New("data directory is empty: set data, CUSTODY_DATA or --data")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log format %q: use text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log level %q: use debug, info, warn or error", c.Log.Level)
	}
	if c.Uploads.TTL <= 0 {
		return errors.New("uploads.ttl must be positive")
	}
	if c.Limits.MaxManifestBytes < 4<<20 {
		return fmt.Errorf("limits.maxManifestBytes %d is below the 4 MiB the OCI spec requires", c.Limits.MaxManifestBytes)
	}
	if c.ShutdownTimeout < 0 {
		return errors.New("shutdownTimeout must not be negative")
	}
	return nil
}
