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
)

const (
	modeNormal        = "normal"
	modeIgnoreSigterm = "ignore-sigterm" // dies only to SIGKILL, like a wedged Envoy
	modeCrash         = "crash"          // exits 1 some time after becoming ready
	modeNeverReady    = "never-ready"    // admin only; stays PRE_INITIALIZING as if istiod never answered
)

const defaultCrashAfter = 2 * time.Second

type behaviour struct {
	mode       string
	crashAfter time.Duration
}

// behaviourFromEnv refuses unknown modes: a misspelt mode silently running as normal would make a failure
// test pass for the wrong reason.
func behaviourFromEnv(getenv func(string) string) (behaviour, error) {
	b := behaviour{mode: getenv(envMode), crashAfter: defaultCrashAfter}
	switch b.mode {
	case "":
		b.mode = modeNormal
	case modeNormal, modeIgnoreSigterm, modeCrash, modeNeverReady:
	default:
		return b, fmt.Errorf("%s=%q: want one of %s, %s, %s, %s", envMode, b.mode,
			modeNormal, modeIgnoreSigterm, modeCrash, modeNeverReady)
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
