package plan

import "testing"

// A service's protocol: its protocol=<p> tag, else its port's label read as Istio reads a port name, else tcp.
func TestProtocolFromTagOrPortLabel(t *testing.T) {
	for _, c := range []struct {
		label string
		tags  []string
		want  string
	}{
		{"http", nil, "http"},
		{"grpc-api", nil, "grpc"},
		{"HTTP2", nil, "http2"},
		{"web", nil, "tcp"},
		{"httpd", nil, "tcp"},
		{"web", []string{"protocol=grpc"}, "grpc"},
		{"http", []string{"protocol=tcp"}, "tcp"},
		// A declaration that is not one of Istio's is still the job's word: tcp, with a warning, not the label.
		{"http", []string{"protocol=postgres"}, "tcp"},
	} {
		a := alloc("aaaaaaaa-1111", "web", "frontend", c.label, "10.0.0.1", 25001, 8080, "running")
		warned := false
		got := protocol(a, reg("r1", "web", "web", a.ID, "10.0.0.1", 25001, c.tags...), func(string, ...any) { warned = true })
		if got != c.want {
			t.Errorf("label %q, tags %v: protocol %q, want %q", c.label, c.tags, got, c.want)
		}
		if wantWarn := len(c.tags) > 0 && c.tags[0] == "protocol=postgres"; warned != wantWarn {
			t.Errorf("label %q, tags %v: warned %t", c.label, c.tags, warned)
		}
	}
}
