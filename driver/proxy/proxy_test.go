package proxy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParsePilotAgentVersion(t *testing.T) {
	out := []byte("2026/11/27 INFO memory is not limited\n{\n  \"clientVersion\": {\n    \"version\": \"1.31-dev\",\n    \"revision\": \"eed52ebb66ad\"\n  }\n}\n")
	v, err := ParsePilotAgentVersion(out)
	if err != nil || v != "1.31-dev" {
		t.Fatalf("got %q, %v", v, err)
	}
	for _, bad := range []string{"", "1.23.0", `{"clientVersion":{}}`} {
		if _, err := ParsePilotAgentVersion([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestParseEnvoyVersion(t *testing.T) {
	out := "\nenvoy  version: 6d9bb7d9a85d616b220d1f8fe67b61f82bbdb8d3/1.36.2/Clean/RELEASE/BoringSSL\n\n"
	v, err := ParseEnvoyVersion([]byte(out))
	if err != nil || v != "1.36.2" {
		t.Fatalf("got %q, %v", v, err)
	}
	for _, bad := range []string{"", "envoy 1.36", "envoy  version: abc"} {
		if _, err := ParseEnvoyVersion([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestEnvironment_IdentityMeshAndNomadMetadata(t *testing.T) {
	env, err := Environment(
		Workload{PodName: "payments-api-1a2b3c4d", Namespace: "payments", ServiceAccount: "api", WorkloadName: "payments",
			CanonicalService: "payments", CanonicalRevision: "v2", Labels: map[string]string{"app": "payments"},
			InstanceIP: "10.0.0.7", InterceptionMode: "REDIRECT"},
		Mesh{TrustDomain: "example.org", ClusterID: "nomad-east", Network: "vm-net"},
		NomadMeta{AllocID: "1a2b3c4d-0000", JobID: "payments", Group: "api", Task: "istio-proxy", Namespace: "default",
			Datacenter: "dc1", NodeID: "n1", NodeName: "host-1"},
		"discoveryAddress: istiod:15012\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"POD_NAME": "payments-api-1a2b3c4d", "POD_NAMESPACE": "payments", "SERVICE_ACCOUNT": "api",
		"INSTANCE_IP": "10.0.0.7", "TRUST_DOMAIN": "example.org", "ISTIO_META_CLUSTER_ID": "nomad-east",
		"ISTIO_META_NETWORK": "vm-net", "ISTIO_META_NOMAD_ALLOC_ID": "1a2b3c4d-0000", "ISTIO_META_NOMAD_JOB_ID": "payments",
		"ISTIO_META_NOMAD_GROUP": "api", "ISTIO_META_NOMAD_DATACENTER": "dc1", "ISTIO_META_NOMAD_NODE_NAME": "host-1",
		"CANONICAL_SERVICE": "payments", "CANONICAL_REVISION": "v2", "ISTIO_META_WORKLOAD_NAME": "payments",
		"PROXY_CONFIG": "discoveryAddress: istiod:15012\n", "JWT_POLICY": "third-party-jwt",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if !strings.Contains(env["ISTIO_METAJSON_LABELS"], `"service.istio.io/canonical-name":"payments"`) ||
		!strings.Contains(env["ISTIO_METAJSON_LABELS"], `"app":"payments"`) {
		t.Errorf("labels: %s", env["ISTIO_METAJSON_LABELS"])
	}
	if _, ok := env["CA_ADDR"]; ok {
		t.Errorf("an unset CA address must be left to pilot-agent's default, got %q", env["CA_ADDR"])
	}
}

func TestEnvList_OnlyNomadPassthroughAndProxyVariables(t *testing.T) {
	task := map[string]string{
		"NOMAD_ALLOC_ID": "a", "POD_NAME": "user", "ISTIO_META_X": "y", "LD_PRELOAD": "/tmp/evil.so",
		"ISTIO_BOOTSTRAP_OVERRIDE": "/tmp/b.yaml", "CA_ADDR": "evil:15012",
	}
	got := strings.Join(EnvList(task, []string{"ISTIO_META_"}, map[string]string{"POD_NAME": "driver"}), ",")
	want := "ISTIO_META_X=y,NOMAD_ALLOC_ID=a,PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,POD_NAME=driver"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestReadInTaskDir_StaysInsideTheTaskDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "root-cert.pem"), []byte("PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadInTaskDir(dir, "root_cert_path", "secrets/root-cert.pem"); err != nil || string(data) != "PEM" {
		t.Fatalf("got %q, %v", data, err)
	}
	outside := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(outside, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "secrets", "escape.pem")); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"/etc/hostname", "../x", "secrets/../../x", "secrets/escape.pem", ""} {
		if _, err := ReadInTaskDir(dir, "root_cert_path", rel); err == nil || !strings.Contains(err.Error(), "root_cert_path") {
			t.Errorf("%q: got %v, want a refusal naming the field", rel, err)
		}
	}
}

func TestArgs(t *testing.T) {
	got := strings.Join(Args("debug", "/var/lib/istio/envoy/envoy_bootstrap_tmpl.json"), " ")
	if got != "proxy sidecar --proxyLogLevel=debug --templateFile=/var/lib/istio/envoy/envoy_bootstrap_tmpl.json" {
		t.Fatalf("got %q", got)
	}
}

func TestLayoutDirs_ProxyOwnsItsDirectoriesAndRootOwnsTheRest(t *testing.T) {
	dirs := Layout{UID: 1337, GID: 1337}.dirs()
	seen := map[string]dirSpec{}
	for i, d := range dirs {
		for _, p := range parents(d.name) {
			if _, ok := seen[p]; !ok {
				t.Fatalf("%s (#%d) comes before its parent %s", d.name, i, p)
			}
		}
		seen[d.name] = d
	}
	for name, want := range map[string]int{
		"var/run/secrets": 1337, "var/run/secrets/istio": 1337, "etc/istio/proxy": 1337,
		"var": 0, "var/run": 0, "etc/istio": 0, "etc/istio/pod": 0, "etc/istio/config": 0,
	} {
		if d, ok := seen[name]; !ok || d.uid != want {
			t.Errorf("%s: owner %d (present %v), want %d", name, d.uid, ok, want)
		}
	}
}

// Prepare owns the sidecar's task dir and its tree through descriptors that follow no link: a link planted
// where a directory of the tree belongs is replaced, and nothing outside the task dir is touched.
func TestPrepare_ReplacesPlantedLinksAndLocksTheTaskDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to hand directories to the proxy user")
	}
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "var/run"), 0o777); err != nil {
		t.Fatal(err)
	}
	// What a proxy user could leave behind for the next start: its secrets dir pointing out of the task dir.
	if err := os.Symlink(outside, filepath.Join(dir, "var/run/secrets")); err != nil {
		t.Fatal(err)
	}
	if err := (Layout{Dir: dir, UID: 1337, GID: 1337, RootCert: []byte("PEM")}).Prepare(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dir, "var/run/secrets"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("var/run/secrets is %v (%v), want a real directory", fi, err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("Prepare wrote outside the task dir: %v", entries)
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() == 0o750 {
		t.Fatalf("Prepare changed a directory outside the task dir")
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o755 {
		t.Fatalf("task dir mode %s, want 0755 (no one else may rename its entries)", fi.Mode().Perm())
	}
}

// What the driver owns stays the driver's, set or left empty: a job's env (through the passthrough) never
// fills a variable the driver left out so that pilot-agent's default applies.
func TestEnvList_OwnedVariablesAreNeverTheJobs(t *testing.T) {
	env, err := Environment(Workload{PodName: "p", Namespace: "n", ServiceAccount: "s"}, Mesh{TrustDomain: "cluster.local"},
		NomadMeta{AllocID: "a"}, "{}")
	if err != nil {
		t.Fatal(err)
	}
	task := map[string]string{
		"ISTIO_META_NETWORK": "evil", "ISTIO_META_MESH_ID": "evil", "ISTIO_META_CLUSTER_ID": "evil",
		"ISTIO_META_DNS_CAPTURE": "true", "ISTIO_META_INTERCEPTION_MODE": "TPROXY", "ISTIO_META_NOMAD_NODE_ID": "evil",
		"ISTIO_METAJSON_X": `{"CLUSTER_ID":"evil"}`, "ISTIO_META_CERT_SIGNER": "evil", "CA_ADDR": "evil:15012",
		"EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true", "LD_PRELOAD": "/tmp/x.so", "SSL_CERT_FILE": "/tmp/ca.pem",
		"ISTIO_META_HTTP10": "1",
	}
	// An operator's broad prefixes still do not reach the owned names.
	got := EnvList(task, []string{"ISTIO_", "CA_", "EXIT_", "LD_", "SSL_"}, env)
	for _, kv := range got {
		name, value, _ := strings.Cut(kv, "=")
		if task[name] != "" && task[name] == value && name != "ISTIO_META_HTTP10" {
			t.Errorf("the job set %s", kv)
		}
	}
	if !slices.Contains(got, "ISTIO_META_HTTP10=1") {
		t.Errorf("a passthrough variable the driver does not own must pass: %v", got)
	}
	for k := range env {
		if !OwnedVariable(k) {
			t.Errorf("the driver sets %s but does not own it", k)
		}
	}
}
