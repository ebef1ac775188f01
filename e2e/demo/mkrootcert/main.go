// Command mkrootcert prints a throwaway self-signed mesh root certificate (PEM) for `make demo` on hosts
// without openssl. The private key is never written: nothing in the demo signs with it.
package main

import (
	"fmt"
	"os"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

func main() {
	pem, err := testenv.RootCert("istio-sidecar demo root")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkrootcert:", err)
		os.Exit(1)
	}
	os.Stdout.Write(pem)
}
