package main

import (
	"fmt"
	"time"
)

// Environment knobs. pilot-agent starts Envoy with its own environment (cmd.Env = os.Environ() in
// pkg/envoy/proxy.go, Run), so setting these on the pilot-agent task reaches the stand-in.
const (
	envMode          = "STANDIN_ENVOY_MODE"
	envCrashAfter    = "STANDIN_ENVOY_CRASH_AFTER"
	envConnectionLog = "STANDIN_ENVOY_CONNECTION_LOG"
	envVersion       = "STANDIN_ENVOY_VERSION"
	// envControlPlane says whether a control plane is there to be asked: "xds" (the default) subscribes over ADS
	// and SDS as Envoy does and is ready only once istiod's clusters and listeners are; "none" is for tests and
	// the demo without istiod, and opens fixed passthrough listeners on 15001/15006 and reports ready at once.
	envControlPlane = "STANDIN_ENVOY_CONTROL_PLANE"
)

const (
	controlPlaneXDS  = "xds"
	controlPlaneNone = "none"
)

// defaultControlPlane is envControlPlane's value when it is unset. A build for suites that can set no
// environment on the proxy changes it: go build -ldflags "-X main.defaultControlPlane=none" (see the Makefile).
var defaultControlPlane = controlPlaneXDS

const (
	modeNormal        = "normal"
	modeIgnoreSigterm = "ignore-sigterm" // dies only to SIGKILL, like a wedged Envoy
	modeCrash         = "crash"          // exits 1 some time after becoming ready
	modeNeverReady    = "never-ready"    // admin only; stays PRE_INITIALIZING as if istiod never answered
)

const defaultCrashAfter = 2 * time.Second

type behaviour struct {
	mode         string
	crashAfter   time.Duration
	controlPlane string
}

// behaviourFromEnv refuses unknown modes: a misspelt mode silently running as normal would make a failure
// test pass for the wrong reason.
func behaviourFromEnv(getenv func(string) string) (behaviour, error) {
	b := behaviour{mode: getenv(envMode), crashAfter: defaultCrashAfter}
	var err error
	switch b.mode {
	case "":
		b.mode = modeNormal
	case modeNormal, modeIgnoreSigterm, modeCrash, modeNeverReady:
	default:
		return b, fmt.Errorf("%s=%q: want one of %s, %s, %s, %s", envMode, b.mode,
			modeNormal, modeIgnoreSigterm, modeCrash, modeNeverReady)
	}
	if b.controlPlane, err = controlPlaneFromEnv(getenv); err != nil {
		return b, err
	}
	if v := getenv(envCrashAfter); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return b, fmt.Errorf("%s=%q: %w", envCrashAfter, v, err)
		}
		if d < 0 {
			return b, fmt.Errorf("%s=%q: must not be negative", envCrashAfter, v)
		}
		b.crashAfter = d
	}
	return b, nil
}

func controlPlaneFromEnv(getenv func(string) string) (string, error) {
	v := getenv(envControlPlane)
	if v == "" {
		v = defaultControlPlane
	}
	switch v {
	case controlPlaneXDS, controlPlaneNone:
		return v, nil
	}
	return "", fmt.Errorf("%s=%q: want %s or %s", envControlPlane, v, controlPlaneXDS, controlPlaneNone)
}
