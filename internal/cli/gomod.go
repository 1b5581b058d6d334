package cli

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/feed/gomod"
)

// newGomodCmd is 'custody gomod': Go module feeds.
func newGomodCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "gomod", Short: "Publish Go modules to a Go module feed"}
	cmd.AddCommand(newGomodPublishCmd())
	return cmd
}

func newGomodPublishCmd() *cobra.Command {
	var server string
	cmd := &cobra.Command{
		Use:   "publish FEED MODULE@VERSION [DIR]",
		Short: "Publish the module in DIR (default .) as MODULE@VERSION to a Go module feed",
		Long: `Build the module zip of the module in DIR (default: the current
directory) as the go command would, and publish it as MODULE@VERSION to the
Go module feed FEED (PUT /go/FEED/MODULE/@v/VERSION.zip). The server checks
it (every file inside the module, go.mod declaring MODULE) and computes its
go.sum hash, which is printed. Publishing the same content again succeeds
and changes nothing; other content for a published version is refused.
Needs the writer role on the feed's repositories (docs/feeds.md).`,
		Example: `  custody gomod publish gomods example.com/lib@v1.2.3 ./lib`,
		Args:    cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, version, ok := strings.Cut(args[1], "@")
			if !ok {
				return fmt.Errorf("%q: give MODULE@VERSION", args[1])
			}
			urlPath, err := gomod.PublishPath(args[0], path, version)
			if err != nil {
				return err
			}
			dir := "."
			if len(args) == 3 {
				dir = args[2]
			}
			tmp, err := os.CreateTemp("", "custody-gomod-*.zip")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			defer tmp.Close()
			if err := gomod.Zip(tmp, path, version, dir); err != nil {
				return fmt.Errorf("building the module zip of %s: %w", dir, err)
			}
			if _, err := tmp.Seek(0, 0); err != nil {
				return err
			}
			srv, err := resolveServer(server)
			if err != nil {
				return err
			}
			c, err := newAPIClient(srv, apiclient.Options{})
			if err != nil {
				return err
			}
			var answer []byte
			err = c.Send(cmd.Context(), apiclient.Request{Method: http.MethodPut, Path: urlPath, Body: tmp, ContentType: "application/zip"}, &answer)
			var ae *apiclient.Error
			if errors.As(err, &ae) && len(ae.Body) > 0 && ae.Title == "" && len(ae.OCI) == 0 {
				// The feed answers in plain text, as the go command reads it.
				err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ae.Body)))
			}
			if err != nil {
				return explain(c, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.TrimSpace(string(answer)))
			return nil
		},
	}
	registerServer(cmd.Flags(), &server)
	return cmd
}
