package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/istio-sidecar/istio-sidecar/internal/controlplane"
	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// The sidecar's namespace hangs off the host by a veth pair in a subnet of its own; istiod's xDS/CA port listens
// on the host's end.
const (
	cpHostAddr  = "10.212.0.1"
	cpSidecarIP = "10.212.0.2"
	meshSA      = "web"
)

// istiodSidecar is pilot-agent with the stand-in as its Envoy, against a real istiod.
type istiodSidecar struct {
	cp       *controlplane.ControlPlane
	ns       string // the Istio (Kubernetes) namespace
	netns    string // the sidecar's network namespace
	client   *http.Client
	agentLog string
	connLog  string
}

// TestStandinAgainstIstiod runs the stand-in under the real pilot-agent against a real istiod (etcd,
// kube-apiserver with Istio's CRDs, istiod with its CA) and reads what it was given as a test of Envoy would.
func TestStandinAgainstIstiod(t *testing.T) {
	agent := os.Getenv(envPilotAgent)
	if agent == "" {
		testenv.SkipOrFail(t, "set %s to a pilot-agent binary (build/pilot-agent.sh builds one)", envPilotAgent)
	}
	requireRoot(t, "ip", "iptables", "go")
	bins := controlplane.BinariesFromEnv(t)
	standin := buildStandin(t)
	netns := testenv.NewNetns(t, "standin-cp")
	netns.LinkToHost(t, cpHostAddr+"/30", cpSidecarIP+"/30")
	cp := controlplane.Start(t, bins, controlplane.Options{IstiodIP: netip.MustParseAddr(cpHostAddr), DeferIstiod: true})
	s := &istiodSidecar{cp: cp, ns: "standin-" + randomHex(t), netns: netns.Name,
		client: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dialContextIn(netns.Name), DisableKeepAlives: true}}}
	work := t.TempDir()
	s.agentLog = filepath.Join(work, "pilot-agent.log")
	s.connLog = filepath.Join(work, "connections.jsonl")
	s.layout(t, work)
	cmd := s.startAgent(t, netns.Name, agent, standin, work)
	defer func() {
		if t.Failed() {
			logText, _ := os.ReadFile(s.agentLog)
			t.Logf("pilot-agent and stand-in output:\n%s", logText)
		}
	}()

	t.Run("not ready before istiod's first CDS and LDS", s.testNotReadyWithoutIstiod)
	cp.StartIstiod(t)
	t.Run("ready after istiod's CDS and LDS", s.testReadyAfterIstiod)
	t.Run("certificate over SDS verifies against the mesh root", s.testCertificate)
	t.Run("a ServiceEntry and WorkloadEntry become an EDS endpoint", s.testServiceEntryEndpoint)
	t.Run("a captured connection to a ServiceEntry's VIP is routed to its endpoint", s.testRoutedToEndpoint)
	// Every typed config istiod and pilot-agent gave is one the stand-in prints in full.
	if missing := testResolver.Missing(); len(missing) > 0 {
		t.Errorf("typed configs config_dump printed as @type only (register them in xds/types.go): %v", missing)
	}
	t.Run("SIGTERM to pilot-agent drains and stops the stand-in", func(t *testing.T) {
		testSIGTERMLeavesNoStandin(t, cmd, standin, s.agentLog)
	})
}

func randomHex(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// layout is the sidecar's working tree: the token of its service account (audience istio-ca), the mesh root,
// Istio's bootstrap template.
func (s *istiodSidecar) layout(t *testing.T, work string) {
	token := s.cp.ServiceAccountToken(t, s.ns, meshSA)
	layoutAgentDir(t, work, s.cp.RootCert)
	writeFile(t, filepath.Join(work, "var/run/secrets/tokens/istio-token"), []byte(token))
}

func (s *istiodSidecar) startAgent(t *testing.T, ns, agent, standin, work string) *exec.Cmd {
	return runAgent(t, ns, agent, work, s.agentLog,
		"PROXY_CONFIG=binaryPath: "+standin+"\nconfigPath: "+filepath.Join(work, "etc/istio/proxy")+
			"\ndiscoveryAddress: "+s.cp.Istiod.String()+"\nterminationDrainDuration: 1s\n",
		"POD_NAME=web-0", "POD_NAMESPACE="+s.ns, "SERVICE_ACCOUNT="+meshSA, "INSTANCE_IP="+cpSidecarIP,
		"TRUST_DOMAIN="+s.cp.TrustDomain, "ISTIO_META_CLUSTER_ID="+s.cp.ClusterID, "ISTIOD_SAN="+s.cp.IstiodSAN,
		"JWT_POLICY=third-party-jwt", `ISTIO_METAJSON_LABELS={"app":"web"}`,
		envConnectionLog+"="+s.connLog, envControlPlane+"="+controlPlaneXDS)
}

// testNotReadyWithoutIstiod: the stand-in is up and asking, but with no CDS or LDS pilot-agent says not ready.
func (s *istiodSidecar) testNotReadyWithoutIstiod(t *testing.T) {
	waitFor(t, 30*time.Second, "stand-in INITIALIZING", func() error {
		return get200(s.client, "http://127.0.0.1:15000/stats?usedonly", "server.state: 3\n")
	})
	stats, err := getBody(s.client, "http://127.0.0.1:15000/stats?usedonly&filter="+url.QueryEscape(updateStatsRegex))
	if err != nil || strings.Contains(string(stats), "update_success") {
		t.Errorf("update stats before istiod = %q, %v; want none", stats, err)
	}
	resp, err := s.client.Get("http://127.0.0.1:15020/healthz/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("pilot-agent /healthz/ready = 200 before istiod sent anything")
	}
}

func (s *istiodSidecar) testReadyAfterIstiod(t *testing.T) {
	waitFor(t, 90*time.Second, "/healthz/ready through pilot-agent", func() error {
		return get200(s.client, "http://127.0.0.1:15020/healthz/ready", "")
	})
	stats := statsOf(t, s.client, updateStatsRegex)
	if stats["cluster_manager.cds.update_success"] == 0 || stats["listener_manager.lds.update_success"] == 0 {
		t.Errorf("ready with update stats %v", stats)
	}
	dump, err := fetchConfigDump(s.client, "127.0.0.1:15000")
	if err != nil {
		t.Fatal(err)
	}
	clusters := dynamicClusterNames(dump)
	for _, want := range []string{"BlackHoleCluster", "PassthroughCluster", "InboundPassthroughCluster"} {
		if !clusters[want] {
			t.Errorf("clusters from istiod lack %s: %v", want, clusters)
		}
	}
	listeners := dynamicListenerNames(dump)
	for _, want := range []string{"virtualOutbound", "virtualInbound"} {
		if !listeners[want] {
			t.Errorf("listeners from istiod lack %s: %v", want, listeners)
		}
	}
	// LDS brought virtualOutbound, so 15001 is open: a direct connection is logged and closed.
	if c, err := dialIn(s.netns, "127.0.0.1:15001"); err != nil {
		t.Errorf("15001 after LDS: %v", err)
	} else {
		c.Close()
	}
}

func statsOf(t *testing.T, c *http.Client, filter string) map[string]uint64 {
	t.Helper()
	body, err := getBody(c, "http://127.0.0.1:15000/stats?usedonly&filter="+url.QueryEscape(filter))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		var name string
		var v uint64
		if _, err := fmt.Sscanf(strings.Replace(line, ":", " ", 1), "%s %d", &name, &v); err == nil {
			out[name] = v
		}
	}
	return out
}
