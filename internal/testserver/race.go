//go:build race

package testserver

// raceBuild is true in a test binary built with -race: the custody binary
// the servers run is then built with -race too.
const raceBuild = true
