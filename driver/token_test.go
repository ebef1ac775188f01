package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRequireToken_MissingOrEmptyFailsAndQuotesTheRefusal(t *testing.T) {
	cases := []struct {
		name           string
		token, refused *string
		want           string // empty: no error
	}{
		{"token present", ptr("eyJhbGciOi.e30.sig\n"), nil, ""},
		{"token present, refusal ignored", ptr("eyJhbGciOi.e30.sig"), ptr("stale reason"), ""},
		{"token missing", nil, nil, `token_path: "secrets/istio-token" is missing or empty`},
		{"token empty", ptr(" \n"), nil, "is the controller running"},
		{"token missing, refused", nil, ptr("Nomad namespace \"team-a\"\nmay not claim Istio namespace \"payments\"\n"),
			`the mesh refused this group: Nomad namespace "team-a" may not claim Istio namespace "payments"`},
		{"token empty, empty refusal", ptr(""), ptr("\n"), "is the controller running"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			secrets := filepath.Join(dir, "secrets")
			if err := os.Mkdir(secrets, 0o755); err != nil {
				t.Fatal(err)
			}
			write := func(name string, data *string) {
				if data != nil {
					if err := os.WriteFile(filepath.Join(secrets, name), []byte(*data), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			write("istio-token", tc.token)
			write("istio-refused", tc.refused)
			err := requireToken(dir, defaultTokenSource)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestRequireToken_LongRefusalIsBounded(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, refusedPath), []byte(strings.Repeat("x", 10_000)), 0o600); err != nil {
		t.Fatal(err)
	}
	err := requireToken(dir, defaultTokenSource)
	if err == nil || len(err.Error()) > 1024 {
		t.Fatalf("got an error of %d bytes, want one bounded below 1 KiB", len(err.Error()))
	}
}

func ptr(s string) *string { return &s }
