package apiserver

import (
	"encoding/base64"
	"regexp"
	"testing"
	"time"
)

func TestParseReadsWhatTheTokenIsBoundTo(t *testing.T) {
	payload := `{"exp":1800000000,"kubernetes.io":{"namespace":"team-a","serviceaccount":{"name":"web","uid":"u1"},` +
		`"secret":{"name":"istio-sidecar-0011","uid":"u2"}}}`
	jwt := "e30." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	tok, err := Parse(jwt)
	if err != nil {
		t.Fatal(err)
	}
	want := Token{JWT: jwt, Expires: time.Unix(1800000000, 0), Namespace: "team-a", ServiceAccount: "web",
		Secret: "istio-sidecar-0011", SecretUID: "u2"}
	if tok != want {
		t.Errorf("Parse = %+v, want %+v", tok, want)
	}
	if _, err := Parse("not-a-jwt"); err == nil {
		t.Errorf("Parse accepted a non-JWT")
	}
}

func TestSecretNameIsPerNomadGroup(t *testing.T) {
	a, b := SecretName("team-a", "web", "g"), SecretName("team-b", "web", "g")
	if a == b || a != SecretName("team-a", "web", "g") {
		t.Errorf("SecretName: %q, %q", a, b)
	}
	if !regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`).MatchString(a) || len(a) > 63 {
		t.Errorf("SecretName %q is not a DNS label", a)
	}
}
