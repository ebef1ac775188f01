// Command mkrootcert prints a throwaway self-signed mesh root certificate (PEM) for `make demo` on hosts
// without openssl. The private key is never written: nothing in the demo signs with it.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

func main() {
	pem, err := harness.ThrowawayRootCert("istio-sidecar demo root", 24*time.Hour)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkrootcert:", err)
		os.Exit(1)
	}
	os.Stdout.Write(pem)
}
