package main

import (
	"fmt"
	"io"
)

func cmdBootstrap(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "bootstrap: not built yet")
	return exitFailed
}
