package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Audience is the one istiod's CA requires of a sidecar's token.
const Audience = "istio-ca"

// Token is a minted token and what it is bound to.
type Token struct {
	JWT                       string
	Expires                   time.Time
	Namespace, ServiceAccount string
	// Secret and SecretUID are the bound Secret: deleting it revokes the token.
	Secret    string
	SecretUID types.UID
}

// Annotations on a group's Secret, so that an operator reading the API server can tell whose it is.
const (
	AnnotationNomadNamespace = "istio-sidecar.io/nomad-namespace"
	AnnotationNomadGroup     = "istio-sidecar.io/nomad-group"
)

// SecretName is the bound Secret's name for a Nomad group: a hash, since the same job and group names may
// come from several Nomad namespaces into one Istio namespace.
func SecretName(nomadNamespace, job, group string) string {
	sum := sha256.Sum256([]byte(nomadNamespace + "\x00" + job + "\x00" + group))
	return "istio-sidecar-" + hex.EncodeToString(sum[:10])
}

// Group is what a token is minted for.
type Group struct {
	NomadNamespace, Job, Group string
	Namespace, ServiceAccount  string
}

// Mint requests a token for g valid for ttl, bound to g's Secret. prev, when it is a token of the same service
// account, names the Secret to keep using; a Secret that is gone or was replaced is made afresh.
func (c *Client) Mint(ctx context.Context, g Group, ttl time.Duration, prev *Token) (Token, error) {
	name := SecretName(g.NomadNamespace, g.Job, g.Group)
	if prev != nil && prev.Namespace == g.Namespace && prev.Secret == name && prev.SecretUID != "" {
		tok, err := c.request(ctx, g, ttl, name, prev.SecretUID)
		if err == nil || !(apierrors.IsNotFound(err) || apierrors.IsConflict(err)) {
			return tok, err
		}
	}
	uid, err := c.freshSecret(ctx, g, name)
	if err != nil {
		return Token{}, err
	}
	return c.request(ctx, g, ttl, name, uid)
}

func (c *Client) request(ctx context.Context, g Group, ttl time.Duration, secret string, uid types.UID) (Token, error) {
	secs := int64(ttl / time.Second)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{Audience},
		ExpirationSeconds: &secs,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: secret, UID: uid},
	}}
	got, err := c.Kube.CoreV1().ServiceAccounts(g.Namespace).CreateToken(ctx, g.ServiceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return Token{}, fmt.Errorf("token for %s/%s: %w", g.Namespace, g.ServiceAccount, err)
	}
	// The expiry is the JWT's own exp: the API server fills status.expirationTimestamp separately, and the two
	// can differ by a second.
	claims, err := Parse(got.Status.Token)
	if err != nil {
		return Token{}, fmt.Errorf("token for %s/%s: %w", g.Namespace, g.ServiceAccount, err)
	}
	return Token{JWT: got.Status.Token, Expires: claims.Expires, Namespace: g.Namespace,
		ServiceAccount: g.ServiceAccount, Secret: secret, SecretUID: uid}, nil
}

// freshSecret creates g's Secret; one left from before (whose UID the controller no longer knows) is replaced,
// which revokes whatever was bound to it.
func (c *Client) freshSecret(ctx context.Context, g Group, name string) (types.UID, error) {
	obj := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: g.Namespace,
		Labels:      map[string]string{ManagedByLabel: ManagedBy},
		Annotations: map[string]string{AnnotationNomadNamespace: g.NomadNamespace, AnnotationNomadGroup: g.Job + "/" + g.Group}},
		Type: corev1.SecretTypeOpaque}
	secrets := c.Kube.CoreV1().Secrets(g.Namespace)
	got, err := secrets.Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// The name is this group's alone and the admission policy lets the controller delete only Secrets it
		// labelled, so the one in the way is this group's from before.
		if err = c.Revoke(ctx, g.Namespace, name, ""); err == nil {
			got, err = secrets.Create(ctx, obj, metav1.CreateOptions{})
		}
	}
	if err != nil {
		return "", fmt.Errorf("secret %s/%s: %w", g.Namespace, name, err)
	}
	return got.UID, nil
}

// Revoke deletes a token's bound Secret: the API server refuses the token from then on. With uid set, only the
// Secret of that UID is deleted, never one that replaced it; empty uid is for a Secret the controller just
// found in its own way.
func (c *Client) Revoke(ctx context.Context, ns, secret string, uid types.UID) error {
	opts := metav1.DeleteOptions{}
	if uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	err := c.Kube.CoreV1().Secrets(ns).Delete(ctx, secret, opts)
	if apierrors.IsConflict(err) {
		return nil // another Secret of that name: the one the token was bound to is gone already
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("revoking: deleting secret %s/%s: %w", ns, secret, err)
	}
	return nil
}

// Parse reads back what a token claims to be bound to and when it expires. The claims are not verified (the
// signature is the API server's business) and a Variable's author may forge them: a caller trusts them only
// for the group the Secret's name is derived from (see Token.BoundTo).
func Parse(jwt string) (Token, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return Token{}, fmt.Errorf("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Token{}, fmt.Errorf("JWT payload: %w", err)
	}
	var c struct {
		Exp  int64 `json:"exp"`
		Kube struct {
			Namespace      string `json:"namespace"`
			ServiceAccount struct {
				Name string `json:"name"`
			} `json:"serviceaccount"`
			Secret struct {
				Name string    `json:"name"`
				UID  types.UID `json:"uid"`
			} `json:"secret"`
		} `json:"kubernetes.io"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return Token{}, fmt.Errorf("JWT claims: %w", err)
	}
	return Token{JWT: jwt, Expires: time.Unix(c.Exp, 0), Namespace: c.Kube.Namespace,
		ServiceAccount: c.Kube.ServiceAccount.Name, Secret: c.Kube.Secret.Name, SecretUID: c.Kube.Secret.UID}, nil
}

// BoundTo reports whether t names the Secret the controller makes for the Nomad group, with a UID. A token read
// back from a Variable is used (kept, revoked) only then: the name is derived from the group, so forged claims
// can at most name that group's own Secret.
func (t Token) BoundTo(nomadNamespace, job, group string) bool {
	return t.Secret == SecretName(nomadNamespace, job, group) && t.SecretUID != ""
}
