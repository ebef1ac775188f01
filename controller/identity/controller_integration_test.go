package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/istio-sidecar/istio-sidecar/controller/bootstrap"
	"github.com/istio-sidecar/istio-sidecar/controller/identity/apiserver"
	"github.com/istio-sidecar/istio-sidecar/controller/identity/variables"
	"github.com/istio-sidecar/istio-sidecar/internal/controlplane"
	"github.com/istio-sidecar/istio-sidecar/internal/nomadtest"
)

const testTTL = 10 * time.Minute

// testDiscoveryAddress stands for istiod's address, which the controller's job renders from istiod's service.
const testDiscoveryAddress = "192.0.2.12:15012"

// env is a real API server (with the project's RBAC, as the controller's own identity) and a real Nomad server
// with ACLs, and the controller running between them with the policy above.
type env struct {
	cp    *controlplane.ControlPlane
	nomad *nomadtest.Agent
	admin kubernetes.Interface
	// token is the Nomad client with the controller's policy.
	token *api.Client
}

func kubeClient(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	k, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func startEnv(t *testing.T) *env {
	cp := controlplane.Start(t, controlplane.BinariesFromEnv(t), controlplane.Options{DeferIstiod: true})
	e := &env{cp: cp, nomad: nomadtest.Start(t), admin: kubeClient(t, cp.AdminKubeconfig)}
	for _, ns := range []string{"team-a", "team-b", "legacy", "istio-system"} {
		e.nomad.Namespace(t, ns)
	}
	e.token = e.nomad.Client(t, "istio-sidecar-controller", bootstrap.ControllerPolicy)
	return e
}

// startController runs the controller until the returned function (or the test's end) stops it.
func (e *env) startController(t *testing.T, refreshBefore time.Duration) (stop func()) {
	c, err := New(Config{Nomad: e.token, Kube: kubeClient(t, e.cp.ControllerKubeconfig), RootCert: string(e.cp.RootCert),
		DiscoveryAddress: testDiscoveryAddress, TTL: testTTL, RefreshBefore: refreshBefore, Resync: 10 * time.Minute, // longer than the test: events must do it
		Log: hclog.New(&hclog.LoggerOptions{Name: "controller", Output: testWriter{t}, Level: hclog.Info})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.Run(ctx) }()
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return stop
}

// testWriter sends the controller's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// meshedJob is a service job whose group has an istio-sidecar task; nothing runs it (the server has no client),
// which the controller does not need.
func meshedJob(ns, id, group string, config map[string]interface{}) *api.Job {
	j := api.NewServiceJob(id, id, "global", 50)
	j.Namespace = &ns
	j.Datacenters = []string{"dc1"}
	tg := api.NewTaskGroup(group, 1)
	tg.AddTask(api.NewTask("app", "exec").SetConfig("command", "/bin/true"))
	sidecar := api.NewTask("istio-proxy", "istio-sidecar")
	sidecar.Config = config
	tg.AddTask(sidecar)
	j.AddTaskGroup(tg)
	return j
}

func (e *env) register(t *testing.T, j *api.Job) {
	t.Helper()
	if _, _, err := e.nomad.Management.Jobs().Register(j, &api.WriteOptions{Namespace: *j.Namespace}); err != nil {
		t.Fatalf("registering %s: %v", *j.ID, err)
	}
}

// variable waits until the group's Variable satisfies cond and returns its items.
func (e *env) variable(t *testing.T, ns, path, what string, cond func(items map[string]string) error) map[string]string {
	t.Helper()
	var items map[string]string
	nomadtest.Eventually(t, time.Minute, what, func() error {
		v, _, err := e.nomad.Management.Variables().Peek(path, &api.QueryOptions{Namespace: ns})
		if err != nil {
			return err
		}
		if v == nil {
			items = nil
		} else {
			items = v.Items
		}
		return cond(items)
	})
	return items
}

func present(items map[string]string) error {
	if items == nil {
		return fmt.Errorf("no variable")
	}
	return nil
}

// review asks the API server, as the operator, what it makes of a token for istiod's CA.
func (e *env) review(t *testing.T, token string) authenticationv1.TokenReviewStatus {
	t.Helper()
	tr, err := e.admin.AuthenticationV1().TokenReviews().Create(context.Background(), &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{"istio-ca"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token review: %v", err)
	}
	return tr.Status
}

// claims decodes a JWT's payload without trusting it (the API server's review does that).
func claims(t *testing.T, jwt string) (sub string, aud []string, iat, exp int64) {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Sub string   `json:"sub"`
		Aud []string `json:"aud"`
		Iat int64    `json:"iat"`
		Exp int64    `json:"exp"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.Sub, c.Aud, c.Iat, c.Exp
}

func (e *env) serviceAccount(ns, sa string) error {
	_, err := e.admin.CoreV1().ServiceAccounts(ns).Get(context.Background(), sa, metav1.GetOptions{})
	return err
}

func gone(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("still there (%v)", err)
}

// TestController runs the controller with its real credentials against real servers: a group gets a token for
// its service account, a group outside the policy gets a reason, tokens are replaced before they expire, and a
// stopped job's Variable, token and service account go.
func TestController(t *testing.T) {
	// Refresh 3 s after minting: rotation is observed within the test.
	e := startEnv(t)
	e.startController(t, testTTL-3*time.Second)

	e.register(t, meshedJob("team-a", "web", "frontend", map[string]interface{}{"service_account": "web"}))
	e.register(t, meshedJob("team-b", "rogue", "g", map[string]interface{}{"namespace": "team-a", "service_account": "rogue"}))

	items := e.variable(t, "team-a", "nomad/jobs/web/frontend", "web's token", func(items map[string]string) error {
		if items[variables.KeyToken] == "" {
			return fmt.Errorf("no token: %v", items)
		}
		return nil
	})
	first := checkToken(t, e, items, "team-a", "web")

	refused := e.variable(t, "team-b", "nomad/jobs/rogue/g", "rogue's refusal", present)
	if r := refused[variables.KeyRefused]; !strings.Contains(r, `"team-b"`) || !strings.Contains(r, `"team-a"`) ||
		!strings.Contains(r, "-namespace-policy") {
		t.Errorf("refused = %q, want the Nomad namespace, the claimed Istio namespace and the way to allow it", r)
	}
	if tok, ok := refused[variables.KeyToken]; ok {
		t.Errorf("the refused group got a token: %q", tok)
	}
	if err := e.serviceAccount("team-a", "rogue"); !apierrors.IsNotFound(err) {
		t.Errorf("service account team-a/rogue for the refused group: %v, want not found", err)
	}

	t.Run("refresh", func(t *testing.T) {
		items := e.variable(t, "team-a", "nomad/jobs/web/frontend", "a new token", func(items map[string]string) error {
			if items[variables.KeyToken] == first || items[variables.KeyToken] == "" {
				return fmt.Errorf("still the first token")
			}
			return nil
		})
		checkToken(t, e, items, "team-a", "web")
	})

	t.Run("stop", func(t *testing.T) {
		last := e.variable(t, "team-a", "nomad/jobs/web/frontend", "web's token", present)[variables.KeyToken]
		if _, _, err := e.nomad.Management.Jobs().Deregister("web", false, &api.WriteOptions{Namespace: "team-a"}); err != nil {
			t.Fatal(err)
		}
		e.variable(t, "team-a", "nomad/jobs/web/frontend", "web's variable removed", func(items map[string]string) error {
			if items != nil {
				return fmt.Errorf("still there")
			}
			return nil
		})
		// The API server caches a successful authentication for 10 s.
		nomadtest.Eventually(t, time.Minute, "the stopped group's token revoked", func() error {
			if st := e.review(t, last); st.Authenticated {
				return fmt.Errorf("still authenticated as %s", st.User.Username)
			}
			return nil
		})
		nomadtest.Eventually(t, time.Minute, "service account team-a/web deleted", func() error { return gone(e.serviceAccount("team-a", "web")) })
		if _, err := e.admin.CoreV1().Namespaces().Get(context.Background(), "team-a", metav1.GetOptions{}); err != nil {
			t.Errorf("namespace team-a: %v (namespaces are never deleted)", err)
		}
	})

	t.Run("purge refused", func(t *testing.T) {
		if _, _, err := e.nomad.Management.Jobs().Deregister("rogue", true, &api.WriteOptions{Namespace: "team-b"}); err != nil {
			t.Fatal(err)
		}
		e.variable(t, "team-b", "nomad/jobs/rogue/g", "rogue's variable removed", func(items map[string]string) error {
			if items != nil {
				return fmt.Errorf("still there")
			}
			return nil
		})
	})
}

// checkToken asserts what the Variable says and what the API server says of its token; it returns the token.
func checkToken(t *testing.T, e *env, items map[string]string, ns, sa string) string {
	t.Helper()
	tok := items[variables.KeyToken]
	want := "system:serviceaccount:" + ns + ":" + sa
	sub, aud, iat, exp := claims(t, tok)
	if sub != want || len(aud) != 1 || aud[0] != apiserver.Audience {
		t.Errorf("claims: sub %q aud %q, want %q [istio-ca]", sub, aud, want)
	}
	if life := time.Duration(exp-iat) * time.Second; life <= 0 || life > testTTL {
		t.Errorf("token lifetime %s, want within %s", life, testTTL)
	}
	if got := items[variables.KeyExpires]; got != time.Unix(exp, 0).UTC().Format(time.RFC3339) {
		t.Errorf("expires = %q, token exp %d", got, exp)
	}
	if items[variables.KeyRootCert] != string(e.cp.RootCert) {
		t.Errorf("root_cert is not the mesh root")
	}
	if got := items[variables.KeyDiscoveryAddress]; got != testDiscoveryAddress {
		t.Errorf("discovery_address = %q, want istiod's %q", got, testDiscoveryAddress)
	}
	if items[variables.KeyNamespace] != ns || items[variables.KeyServiceAccount] != sa || items[variables.KeyRefused] != "" {
		t.Errorf("variable = %v", items)
	}
	if st := e.review(t, tok); !st.Authenticated || st.User.Username != want {
		t.Errorf("token review: %+v, want authenticated as %s", st, want)
	}
	ns0, err := e.admin.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil || ns0.Labels[apiserver.MeshLabel] != "true" {
		t.Errorf("namespace %s: %v, labels %v", ns, err, ns0.GetLabels())
	}
	return tok
}
