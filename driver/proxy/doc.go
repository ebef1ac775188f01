// Package proxy knows how Istio's pilot-agent wants to be run: its working tree, argv, environment and
// ProxyConfig (pure functions of a validated config), and how to talk to it once it runs (readiness, drain),
// from the host or from inside an allocation's network namespace. It imports nothing from Nomad's client.
package proxy
