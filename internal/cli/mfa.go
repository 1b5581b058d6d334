package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/auth"
)

// envOTP holds a one-time code custody's API commands send with the
// password (a step-up for a dangerous action).
const envOTP = "CUSTODY_OTP"

// otpHeader returns the header carrying $CUSTODY_OTP, nil without it.
func otpHeader() http.Header {
	if c := os.Getenv(envOTP); c != "" {
		return http.Header{auth.OTPHeader: {c}}
	}
	return nil
}

func newMFACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mfa",
		Short: "Enrol, show and remove the second factor of your account",
		Long: `Multi-factor sign-in for local accounts (docs/security.md). 'custody mfa
enrol' gives your account a TOTP secret for an authenticator app and ten
one-time recovery codes; from then on 'custody login' and the web interface
ask for a code with the password. Holders of the roles in auth.mfa.roles
(admin and promoter by default) must enrol: until they do, they may sign
in only to enrol. Dangerous actions (grant and user changes, governance
bypass, legal holds, key changes, protected promotions) need a code
presented within the last auth.mfa.stepUp (5m): custody's commands send
$CUSTODY_OTP with the password for that.`,
	}
	cmd.AddCommand(newMFAEnrolCmd(), newMFAConfirmCmd(), newMFAStatusCmd(), newMFARemoveCmd())
	return cmd
}

func newMFAEnrolCmd() *cobra.Command {
	var (
		f         apiFlags
		code      string
		noConfirm bool
	)
	cmd := &cobra.Command{
		Use:   "enrol",
		Short: "Enrol a TOTP authenticator and print recovery codes (once)",
		Long: `Start a TOTP enrolment: prints the secret and its otpauth:// URL (add it to
an authenticator app), then reads the app's current code (from --code, else
a line of standard input) and prints ten recovery codes. Keep them safe:
each signs in once in place of a code, and they are never shown again.
Re-enrolling replaces the secret and the recovery codes; with a factor
enrolled it needs a fresh code of the old one in $CUSTODY_OTP.
With --no-confirm it only starts the enrolment (with -o json it prints
{"secret","url"}); 'custody mfa confirm CODE' finishes it.`,
		Example: `  custody mfa enrol
  CUSTODY_OTP=123456 custody mfa enrol   # replace an enrolled authenticator
  custody mfa enrol --no-confirm -o json | jq -r .secret > my.totp
  custody mfa confirm "$(oathtool --totp -b "$(cat my.totp)")"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.call(cmd, http.MethodPost, "/api/v1/mfa/totp", nil, otpHeader())
			if err != nil {
				return err
			}
			var e auth.TOTPEnrolment
			if err := json.Unmarshal(b, &e); err != nil {
				return fmt.Errorf("decoding the enrolment: %w", err)
			}
			out := cmd.OutOrStdout()
			if noConfirm && f.output == outputJSON {
				return json.NewEncoder(out).Encode(e)
			}
			fmt.Fprintf(out, "Add this to your authenticator app:\n  secret: %s\n  URL:    %s\n", e.Secret, e.URL)
			if noConfirm {
				fmt.Fprintln(out, "Then finish with 'custody mfa confirm CODE' (the app's current code).")
				return nil
			}
			if code == "" {
				fmt.Fprint(cmd.ErrOrStderr(), "Enter the app's current code: ")
				if code, err = readLine(cmd); err != nil {
					return fmt.Errorf("reading the code: %w", err)
				}
			}
			return confirmTOTP(cmd, &f, code)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&code, "code", "", "the authenticator's current code (else read from standard input)")
	cmd.Flags().BoolVar(&noConfirm, "no-confirm", false, "only start the enrolment; finish it with 'custody mfa confirm CODE'")
	return cmd
}

func newMFAConfirmCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "confirm CODE",
		Short: "Finish an enrolment with the authenticator's current code and print recovery codes (once)",
		Long: `Finish the TOTP enrolment 'custody mfa enrol --no-confirm' started: CODE is
the authenticator app's current code for the new secret. Prints ten
recovery codes, once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return confirmTOTP(cmd, &f, args[0])
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// confirmTOTP finishes an enrolment with code and prints the recovery
// codes.
func confirmTOTP(cmd *cobra.Command, f *apiFlags, code string) error {
	b, err := f.call(cmd, http.MethodPost, "/api/v1/mfa/totp/confirm", auth.CodeRequest{Code: strings.TrimSpace(code)}, nil)
	if err != nil {
		return fmt.Errorf("confirming the enrolment (start again with custody mfa enrol): %w", err)
	}
	var rc auth.RecoveryCodes
	if err := json.Unmarshal(b, &rc); err != nil {
		return fmt.Errorf("decoding the recovery codes: %w", err)
	}
	out := cmd.OutOrStdout()
	if f.output == outputJSON {
		return json.NewEncoder(out).Encode(rc)
	}
	fmt.Fprintln(out, "Enrolled. Recovery codes (each works once; they are not shown again):")
	for _, c := range rc.Codes {
		fmt.Fprintln(out, "  "+c)
	}
	fmt.Fprintln(out, "Sign in again with 'custody login': it asks for a code now.")
	return nil
}

func newMFAStatusCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether your account has a second factor and how many recovery codes are left",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.callRaw(cmd, http.MethodGet, "/api/v1/mfa", nil)
			if err != nil {
				return err
			}
			if f.output == outputJSON {
				_, err := cmd.OutOrStdout().Write(b)
				return err
			}
			var v auth.FactorsView
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			state := "none"
			switch {
			case v.TOTP:
				state = "TOTP"
			case v.Pending:
				state = "none (an enrolment awaits its first code)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user: %s\nsecond factor: %s\nrecovery codes left: %d\nsecurity keys: %d (the web interface's Account page)\n", v.User, state, v.RecoveryCodes, len(v.WebAuthn))
			if v.Required != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "required by the %s role\n", v.Required)
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newMFARemoveCmd() *cobra.Command {
	var (
		f    apiFlags
		user string
	)
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Remove your second factor (or, as an admin, another user's)",
		Long: `Remove the second factor and recovery codes of your account, or with --user
of another account (admin: for a user who lost the device and the codes).
It is a dangerous action: send a fresh code in $CUSTODY_OTP.`,
		Example: `  CUSTODY_OTP=123456 custody mfa remove --user alice`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/api/v1/mfa"
			if user != "" {
				path += "?user=" + url.QueryEscape(user)
			}
			if _, err := f.call(cmd, http.MethodDelete, path, nil, otpHeader()); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Removed the second factor")
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&user, "user", "", "another user's factor (admin)")
	return cmd
}
