//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/nomad/api"
	"k8s.io/client-go/dynamic"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
	"github.com/istio-sidecar/istio-sidecar/internal/controlplane"
)

const (
	// benchServices is the catalog's size: Nomad services with no sidecar, each a ServiceEntry.
	benchServices      = 200
	benchServicePrefix = "bench-svc-"
	benchCatalogJob    = "bench-services"
	// benchMeshedGroups is how many meshed groups the identity side gives a token to (a job never placed).
	benchMeshedGroups = 200
	benchIdentityJob  = "bench-identity"
	syncTimeout       = 5 * time.Minute
)

// regBench is what the parts of BenchmarkRegistration share.
type regBench struct {
	b      *testing.B
	cp     *controlplane.ControlPlane
	agent  *harness.Agent
	dyn    dynamic.Interface
	nodeIP netip.Addr
	ses    *objectWatch // the catalog's ServiceEntries
	// variablesAt is when every group of the identity job was first seen with its Variable.
	variablesAt time.Time
}

// BenchmarkRegistration measures the controller's registration at a catalog of benchServices Nomad services,
// on a real agent, API server and istiod (internal/controlplane, istiod on this node's address so that the
// sidecars reach it) and `istio-sidecar-controller run` as a process of its own. Figures are printed, never
// asserted:
//
//   - full sync: the controller started → every ServiceEntry of the catalog in the API server (watched), and
//     → every one of benchMeshedGroups meshed groups (a job the scheduler never places) holding its Variable with
//     a token (Nomad polled);
//   - RSS of the controller and of istiod (pilot-discovery) with both synced;
//   - endpoint propagation: a fresh allocation of meshed job B, its proxy ready (probed from outside every
//     20 ms) → its node address and mapped port among the endpoints of B's cluster in the config dump of
//     meshed job A's proxy (polled every propagationPoll), p50 and p95 over propagationRounds allocations;
//   - re-sync after a restart: the controller stopped, the catalog deregistered meanwhile, restarted → every
//     ServiceEntry of the catalog gone.
//
// Nothing else in the run registers services, so there is no baseline to divide by. `make bench` runs it with
// -benchtime 1x; it runs once whatever b.N is.
func BenchmarkRegistration(b *testing.B) {
	r := startRegBench(b)
	r.registerIdentityJob()
	inCatalog := r.registerCatalog()
	ctrl, st := r.fullSync()
	ctrlRSS := procMem(b, ctrl.cmd.Process.Pid).RSS
	istiodMem := procMem(b, r.cp.IstiodPID())
	prop := r.propagation()
	resync := r.restartSync(ctrl)

	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(os.Stdout, "\nistio-sidecar registration bench: Nomad %s, %d Nomad services, controller -check-interval %s\n",
		harness.NomadVersion, benchServices, controllerCheckInterval)
	fmt.Fprintf(w, "catalog job registered → %d services in Nomad's catalog (s)\t%.1f\t\n", benchServices, inCatalog.Seconds())
	fmt.Fprintf(w, "controller started → first ServiceEntry (s)\t%.2f\t\n", st.firstSE.Seconds())
	fmt.Fprintf(w, "controller started → all %d ServiceEntries (registration's full sync, s)\t%.2f\t\n", benchServices, st.allSEs.Seconds())
	fmt.Fprintf(w, "controller started → all %d group Variables with a token (identity's full sync, s)\t%.2f\t\n", benchMeshedGroups, st.allVariables.Seconds())
	fmt.Fprintf(w, "controller RSS, catalog synced (MiB)\t%.1f\t\n", mib(ctrlRSS))
	fmt.Fprintf(w, "istiod (pilot-discovery) RSS, catalog synced (MiB)\t%.1f\t\n", mib(istiodMem.RSS))
	fmt.Fprintf(w, "B's proxy ready → B's endpoint in A's config dump, p50 of %d (ms)\t%.0f\t\n", len(prop.samples), prop.p50)
	fmt.Fprintf(w, "B's proxy ready → B's endpoint in A's config dump, p95 of %d (ms)\t%.0f\t\n", len(prop.samples), prop.p95)
	fmt.Fprintf(w, "  one read of A's config dump, median (ms)\t%.0f\t\n", prop.readMS)
	fmt.Fprintf(w, "controller restarted, catalog deregistered meanwhile → all ServiceEntries gone (s)\t%.2f\t\n", resync.Seconds())
	w.Flush()
	fmt.Print(`
How to read it: one host clock. The ServiceEntries are followed with the API server's watch; "ready" is this
benchmark's probe of B's /healthz/ready on 15021 inside B's namespace; an endpoint counts once a read of A's
config_dump?include_eds that has it has returned, so a sample includes up to one poll and one read. B has no
Nomad check: the path measured is Nomad's event → the controller's read of Nomad → WorkloadEntry → istiod → EDS.

`)
	b.ReportMetric(st.allSEs.Seconds(), "s/registration-full-sync")
	b.ReportMetric(st.allVariables.Seconds(), "s/identity-full-sync")
	b.ReportMetric(mib(ctrlRSS), "MiB/controller")
	b.ReportMetric(mib(istiodMem.RSS), "MiB/pilot-discovery")
	b.ReportMetric(prop.p50, "ms/propagation-p50")
	b.ReportMetric(prop.p95, "ms/propagation-p95")
	b.ReportMetric(resync.Seconds(), "s/restart-resync")
}

// startRegBench starts the control plane (istiod on this node's address, which every bridge-mode namespace
// routes to through Nomad's bridge) and an ACL-enabled agent whose plugin points the stand-in Envoy at it.
func startRegBench(b *testing.B) *regBench {
	b.Helper()
	harness.RequireBridgeNetworking(b)
	nodeIP, err := netip.ParseAddr(defaultRouteIP(b))
	if err != nil {
		b.Fatal(err)
	}
	cp := controlplane.Start(b, controlplane.BinariesFromEnv(b), controlplane.Options{IstiodIP: nodeIP})
	cp.Kubectl(b, "", "label", "namespace", "default", "istio-sidecar.io/mesh=true")
	opts := pluginOptions(b)
	opts.Name, opts.ACL, opts.LogLevel = "reg", true, "INFO"
	opts.PluginConfig["envoy_path"] = harness.XDSStandinBin(b)
	opts.PluginConfig["discovery_address"] = cp.Istiod.String()
	opts.PluginConfig["istiod_san"] = cp.IstiodSAN
	opts.PluginConfig["cluster_id"] = cp.ClusterID
	agent := harness.Start(b, opts)
	agent.WaitDriver(b, harness.PluginName, true)
	_, dyn := dynamicClient(b, cp.AdminKubeconfig)
	return &regBench{b: b, cp: cp, agent: agent, dyn: dyn, nodeIP: nodeIP,
		ses: watchObjects(b, dyn, "ServiceEntry", benchServicePrefix)}
}

// registerCatalog runs the catalog job and waits until Nomad lists every one of its services.
func (r *regBench) registerCatalog() time.Duration {
	b := r.b
	job := r.agent.ParseJobVars(b, "bench-services.hcl", "", harness.Vars{"services": benchServices})
	start := time.Now()
	r.agent.Register(b, job)
	err := harness.Poll(syncTimeout, benchReadyPoll, fmt.Sprintf("%d services in Nomad's catalog", benchServices), func() (bool, string) {
		n, err := r.catalogSize()
		return err == nil && n == benchServices, fmt.Sprintf("%d (%v)", n, err)
	})
	if err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// catalogSize is how many of the catalog's services Nomad lists.
func (r *regBench) catalogSize() (int, error) {
	lists, _, err := r.agent.Client.Services().List(&api.QueryOptions{Namespace: "*"})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range lists {
		for _, s := range l.Services {
			if strings.HasPrefix(s.ServiceName, benchServicePrefix) {
				n++
			}
		}
	}
	return n, nil
}

// syncTimes are the full sync's figures, from the controller's start.
type syncTimes struct {
	firstSE, allSEs, allVariables time.Duration
}

// fullSync starts the controller and returns it with the times to the catalog's first and last ServiceEntry
// and to the last group Variable of the identity job.
func (r *regBench) fullSync() (*controllerProc, syncTimes) {
	b := r.b
	if n := r.ses.count(); n != 0 {
		b.Fatalf("%d ServiceEntries of the catalog before the controller started", n)
	}
	first := r.ses.when(func(n int) bool { return n > 0 })
	all := r.ses.when(func(n int) bool { return n == benchServices })
	ctrl := startControllerProc(b, r.cp, r.agent, 1)
	vars := r.watchVariables(ctrl.started)
	var st syncTimes
	st.firstSE = r.waitCount(first, "the catalog's first ServiceEntry").Sub(ctrl.started)
	st.allSEs = r.waitCount(all, fmt.Sprintf("all %d ServiceEntries of the catalog", benchServices)).Sub(ctrl.started)
	if err := <-vars; err != nil {
		b.Fatal(err)
	}
	st.allVariables = r.variablesAt.Sub(ctrl.started)
	return ctrl, st
}

// registerIdentityJob registers the job whose benchMeshedGroups meshed groups the identity side serves.
func (r *regBench) registerIdentityJob() {
	job := r.agent.ParseJobVars(r.b, "bench-identity.hcl", "", harness.Vars{"groups": benchMeshedGroups})
	r.agent.Register(r.b, job)
}

// watchVariables polls Nomad (every benchReadyPoll) from the controller's start until every group of the
// identity job has its Variable, and records when it first saw them all.
func (r *regBench) watchVariables(since time.Time) <-chan error {
	done := make(chan error, 1)
	prefix := "nomad/jobs/" + benchIdentityJob + "/"
	go func() {
		done <- harness.Poll(syncTimeout, benchReadyPoll, fmt.Sprintf("%d group Variables", benchMeshedGroups), func() (bool, string) {
			vs, _, err := r.agent.Client.Variables().PrefixList(prefix, nil)
			if err != nil || len(vs) < benchMeshedGroups {
				return false, fmt.Sprintf("%d Variables (%v)", len(vs), err)
			}
			r.variablesAt = time.Now()
			return true, ""
		})
	}()
	return done
}

// restartSync stops the controller, deregisters the catalog while it is down, and starts it again: the time
// from the new start until every ServiceEntry of the catalog is gone.
func (r *regBench) restartSync(ctrl *controllerProc) time.Duration {
	b := r.b
	ctrl.stop()
	r.agent.StopJob(b, benchCatalogJob)
	err := harness.Poll(syncTimeout, benchReadyPoll, "the catalog deregistered from Nomad", func() (bool, string) {
		n, err := r.catalogSize()
		return err == nil && n == 0, fmt.Sprintf("%d (%v)", n, err)
	})
	if err != nil {
		b.Fatal(err)
	}
	if n := r.ses.count(); n != benchServices {
		b.Fatalf("%d ServiceEntries of the catalog while the controller was down, want %d", n, benchServices)
	}
	gone := r.ses.when(func(n int) bool { return n == 0 })
	again := startControllerProc(b, r.cp, r.agent, 2)
	return r.waitCount(gone, "every ServiceEntry of the catalog removed").Sub(again.started)
}

func (r *regBench) waitCount(ch <-chan time.Time, what string) time.Time {
	select {
	case at := <-ch:
		return at
	case <-time.After(syncTimeout):
		r.b.Fatalf("waiting %v for %s: %d ServiceEntries of the catalog", syncTimeout, what, r.ses.count())
		return time.Time{}
	}
}
