package istio

import "testing"

func TestNamespace(t *testing.T) {
	for _, c := range []struct{ configured, nomad, want string }{
		{"payments", "team-a", "payments"},
		{"", "Team_A.prod", "team-a-prod"},
		{"", "default", "default"},
		{"", "___", "default"},
	} {
		if got := Namespace(c.configured, c.nomad); got != c.want {
			t.Errorf("Namespace(%q, %q) = %q, want %q", c.configured, c.nomad, got, c.want)
		}
	}
	if got := ServiceAccount(""); got != "default" {
		t.Errorf("ServiceAccount(\"\") = %q", got)
	}
	if got := ServiceAccount("web"); got != "web" {
		t.Errorf("ServiceAccount(web) = %q", got)
	}
}
