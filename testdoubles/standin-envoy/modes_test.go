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
		{env: nil, want: behaviour{mode: modeNormal, crashAfter: 2 * time.Second}},
		{env: map[string]string{envMode: "crash", envCrashAfter: "150ms"}, want: behaviour{mode: modeCrash, crashAfter: 150 * time.Millisecond}},
		{env: map[string]string{envMode: "never-ready"}, want: behaviour{mode: modeNeverReady, crashAfter: 2 * time.Second}},
		{env: map[string]string{envMode: "ignore-sigterm"}, want: behaviour{mode: modeIgnoreSigterm, crashAfter: 2 * time.Second}},
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
