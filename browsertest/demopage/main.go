// Command demopage prints jsclient.DemoPage for the given account, so the
// browser tests load the page exactly as the Go renderer makes it:
//
//	demopage USER API_KEY API_SECRET
package main

import (
	"fmt"
	"os"

	"github.com/halleypush/halley/jsclient"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: demopage USER API_KEY API_SECRET")
		os.Exit(2)
	}
	os.Stdout.Write(jsclient.DemoPage(os.Args[1], os.Args[2], os.Args[3]))
}
