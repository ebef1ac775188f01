package main

import (
	"testing"
	"time"
)

func TestBehaviourFromEnv(t *testing.T) {
	cases := []struct {
		env     map[string]string
		want    behaviour
		wantErr bool
	}{
		{env: nil, want: behaviour{mode: modeNormal, crashAfter: 2 * time.Second, controlPlane: controlPlaneXDS}},
		{env: map[string]string{envMode: "crash", envCrashAfter: "150ms"}, want: behaviour{mode: modeCrash, crashAfter: 150 * time.Millisecond, controlPlane: controlPlaneXDS}},
		{env: map[string]string{envMode: "never-ready"}, want: behaviour{mode: modeNeverReady, crashAfter: 2 * time.Second, controlPlane: controlPlaneXDS}},
		{env: map[string]string{envMode: "ignore-sigterm"}, want: behaviour{mode: modeIgnoreSigterm, crashAfter: 2 * time.Second, controlPlane: controlPlaneXDS}},
		{env: map[string]string{envControlPlane: "none"}, want: behaviour{mode: modeNormal, crashAfter: 2 * time.Second, controlPlane: controlPlaneNone}},
		{env: map[string]string{envControlPlane: "istiod"}, wantErr: true},
		{env: map[string]string{envMode: "Crash"}, wantErr: true},
		{env: map[string]string{envCrashAfter: "2"}, wantErr: true},
		{env: map[string]string{envCrashAfter: "-1s"}, wantErr: true},
	}
	for _, tc := range cases {
		got, err := behaviourFromEnv(func(k string) string { return tc.env[k] })
		if (err != nil) != tc.wantErr {
			t.Errorf("%v: err = %v, wantErr %v", tc.env, err, tc.wantErr)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("%v: got %+v, want %+v", tc.env, got, tc.want)
		}
	}
}

// A build for suites that can set no environment on the proxy changes the default, and the variable still wins.
func TestDefaultControlPlaneIsABuildSetting(t *testing.T) {
	defer func(d string) { defaultControlPlane = d }(defaultControlPlane)
	defaultControlPlane = controlPlaneNone
	for env, want := range map[string]string{"": controlPlaneNone, controlPlaneXDS: controlPlaneXDS} {
		got, err := controlPlaneFromEnv(func(string) string { return env })
		if err != nil || got != want {
			t.Errorf("%s=%q with default none: %q, %v; want %q", envControlPlane, env, got, err, want)
		}
	}
}
