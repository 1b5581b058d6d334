// Command custody is the custody artifact repository: server and client.
package main

import (
	"os"

	"github.com/custody-dev/custody/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
