package cli

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/custody-dev/custody/internal/apiclient"
)

// longRunning bounds the wait for the answer of a request the server
// works on for long before answering (GC, a vulnerability database import).
const longRunning = time.Hour

// registryTransport carries the registry protocol (/v2/) of push, pull,
// sign, verify, sbom and login, with the API client's bounded waits.
var registryTransport = apiclient.NewTransport(apiclient.Options{})

// apiFlags are the flags of the commands that talk to a server's
// /api/v1/ management API.
type apiFlags struct {
	server string
	output string
}

func (f *apiFlags) register(fs *pflag.FlagSet) {
	registerServer(fs, &f.server)
	fs.StringVarP(&f.output, "output", "o", outputText, "output format: text or json")
}

// client checks --output and returns the API client of the chosen server.
func (f *apiFlags) client() (*apiclient.Client, error) {
	if f.output != outputText && f.output != outputJSON {
		return nil, fmt.Errorf("invalid --output %q: use text or json", f.output)
	}
	server, err := resolveServer(f.server)
	if err != nil {
		return nil, err
	}
	return newAPIClient(server, apiclient.Options{})
}

// newAPIClient returns the client of server (a base URL), with the
// credentials the user has for it and custody's user agent.
func newAPIClient(server string, o apiclient.Options) (*apiclient.Client, error) {
	auth, err := authorization(server)
	if err != nil {
		return nil, err
	}
	o.Authorization, o.UserAgent = auth, "custody/"+Version
	return apiclient.New(server, o)
}

// explain adds what to do next to a failed API call's error: sign in on
// 401, check the server when it could not be reached (not when it was
// reached but did not answer in time).
func explain(c *apiclient.Client, err error) error {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		if ae.Status == http.StatusUnauthorized {
			return fmt.Errorf("%w; sign in with 'custody login %s' or set %s", err, c.Base(), envToken)
		}
		switch {
		case strings.HasSuffix(ae.Type, "/mfa-required"):
			return fmt.Errorf("%w; sign in with your one-time code ('custody login %s'), or enrol one with 'custody mfa enrol'", err, c.Base())
		case strings.HasSuffix(ae.Type, "/step-up-required"):
			return fmt.Errorf("%w; repeat it with a fresh code in %s", err, envOTP)
		}
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) && !ue.Timeout() {
		return fmt.Errorf("%w (is the server running? choose it with --server or %s)", err, envServer)
	}
	return err
}

// call sends a request to the API and returns the answer's body;
// problem+json answers become errors carrying their detail (the body is
// returned with them, for callers that read more of it).
func (f *apiFlags) call(cmd *cobra.Command, method, path string, body any, header http.Header) ([]byte, error) {
	c, err := f.client()
	if err != nil {
		return nil, err
	}
	if otp := otpHeader(); otp != nil && header == nil {
		header = otp
	}
	var b []byte
	if err := c.Send(cmd.Context(), apiclient.Request{Method: method, Path: path, Header: header, JSON: body}, &b); err != nil {
		var ae *apiclient.Error
		if errors.As(err, &ae) {
			b = ae.Body
		}
		return b, explain(c, err)
	}
	return b, nil
}

// callRaw is call without extra headers.
func (f *apiFlags) callRaw(cmd *cobra.Command, method, path string, body any) ([]byte, error) {
	return f.call(cmd, method, path, body, nil)
}
