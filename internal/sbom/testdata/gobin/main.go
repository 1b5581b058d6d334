// Command gobin is a tiny Go program the sbom tests build, to read its
// module build information back.
package main

import (
	"fmt"

	packageurl "github.com/package-url/packageurl-go"
)

func main() {
	fmt.Println(packageurl.NewPackageURL("golang", "example.com", "gobin", "v1.0.0", nil, "").ToString())
}
