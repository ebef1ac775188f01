package main

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

const (
	cpNamespace    = "istio-system" // the control plane's Nomad namespace (example/control-plane/)
	istiodGRPCPort = "15012"        // istiod's static xDS and CA port
	certTimeout    = 2 * time.Minute
)

// controlPlane is what the demo keeps of its control plane: the guide's settings and environment, and where
// the operator's material went.
type controlPlane struct {
	bins       harness.ControlPlaneBins
	controller string
	nodeIP     string
	dir        string // the mesh directory (root key, admin kubeconfig) and etcd's data, removed at the end
	etcdData   string
}

// prepareControlPlane finds the control plane's binaries and this node's address, and makes the directories
// the agent and the bootstrap need, before the agent starts (etcd's host volume is in its client config).
func (d *demo) prepareControlPlane() {
	t := d.t
	cp := &d.cp
	cp.bins = harness.ControlPlaneBinaries(t)
	cp.controller = harness.ControllerBin(t)
	var err error
	if cp.nodeIP, err = harness.DefaultRouteIP(); err != nil {
		t.Fatalf("%v", err)
	}
	if cp.dir, err = os.MkdirTemp("", "istio-sidecar-demo-mesh-"); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(cp.dir); err != nil {
			t.Errorf("removing %s: %v", cp.dir, err)
		}
	})
	if cp.etcdData, err = harness.EtcdDataDir(cp.dir); err != nil {
		t.Fatalf("%v", err)
	}
}

// startControlPlane runs example/control-plane.md's blocks as the operator would, up to its meshed job, which
// the demo runs itself: bootstrap, etcd and the API server, bootstrap again, istiod and the controller.
func (d *demo) startControlPlane() {
	step("The control plane as Nomad jobs (the blocks of %s, as the e2e suite runs them)", harness.GuideFile)
	t, cp := d.t, &d.cp
	env := harness.GuideEnv(d.agent, map[string]string{
		"ETCD":            cp.bins.Etcd,
		"KUBE_APISERVER":  cp.bins.KubeAPIServer,
		"PILOT_DISCOVERY": cp.bins.PilotDiscovery,
		"CONTROLLER":      cp.controller,
		"TESTAPP":         d.bins.testapp,
		"MESH_DIR":        filepath.Join(cp.dir, "mesh"),
		"NODE_IP":         cp.nodeIP,
		"DRIVER":          "raw_exec",
	})
	blocks := harness.GuideBlocks(t)
	for _, b := range blocks[1:] {
		if strings.Contains(b.Body, exampleFile) {
			break
		}
		harness.RunGuideBlock(t, blocks[0], b, env)
	}
	say("etcd, kube-apiserver, istiod and istio-sidecar-controller run in Nomad namespace %s:", cpNamespace)
	say("NOMAD_ADDR=%s NOMAD_TOKEN=%s %s job status -namespace %s", d.agent.Addr, d.agent.ManagementToken,
		d.bins.nomad, cpNamespace)
}

// showIdentity shows the identity the meshed app's sidecar got: the workload certificate its proxy holds,
// issued by istiod, checked against the mesh root the bootstrap made, and what the controller wrote for it.
func (d *demo) showIdentity() {
	step("The meshed app's identity: its proxy's workload certificate, from istiod")
	t, id := d.t, d.meshed.ID
	root := d.meshRoot()
	var leaf *x509.Certificate
	d.agent.Wait(t, certTimeout, "the sidecar's workload certificate from istiod", func() (bool, string) {
		chain, err := harness.ProxyCertChain(id)
		if err == nil {
			leaf, err = harness.VerifyChain(chain, root)
		}
		return err == nil, fmt.Sprint(err)
	})
	for _, u := range leaf.URIs {
		say("identity:  %s", u)
	}
	say("issuer:    %s (istiod's CA, under the mesh root %q)", leaf.Issuer, root.Subject.CommonName)
	say("valid:     %s until %s (serial %x)", leaf.NotBefore.UTC().Format(time.RFC3339),
		leaf.NotAfter.UTC().Format(time.RFC3339), leaf.SerialNumber)
	path := "nomad/jobs/" + d.meshJob + "/" + *d.meshGroup
	v, _, err := d.agent.Client.Variables().Read(path, nil)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	say("the controller gave it Istio namespace %q, service account %q, a token until %s (nomad var get %s)",
		v.Items["namespace"], v.Items["service_account"], v.Items["expires"], path)
	say("as Envoy holds it: ip netns exec %s curl -s http://127.0.0.1:15000/certs", id)
}

// meshRoot is the mesh root certificate as the bootstrap gave it to istiod (its Variable's root_cert).
func (d *demo) meshRoot() *x509.Certificate {
	v, _, err := d.agent.Client.Variables().Read("nomad/jobs/istiod", &api.QueryOptions{Namespace: cpNamespace})
	if err != nil {
		d.t.Fatalf("reading istiod's Variable: %v", err)
	}
	certs, err := harness.ParsePEMCerts([]byte(v.Items["root_cert"]))
	if err != nil || len(certs) != 1 {
		d.t.Fatalf("istiod's Variable root_cert: %d certificates, %v", len(certs), err)
	}
	return certs[0]
}

// discoveryAddress is where sidecars find istiod when their Variable names none: this node, istiod's port.
func (cp *controlPlane) discoveryAddress() string { return net.JoinHostPort(cp.nodeIP, istiodGRPCPort) }
