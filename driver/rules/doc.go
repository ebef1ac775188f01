// Package rules is the pure core of traffic interception: it checks a job's interception options (Spec) against
// the plugin's Defaults and what the edge found in the namespace (Env), builds the Istio-compatible ruleset
// (Build) and renders each family's iptables-restore payloads (FamilyRules' Payload, FreshPayload and
// ReplacePayload; CleanupPayload, RevertPayload). It also parses iptables-save output (ParseSave) to find what
// an allocation owns by its tag (Present), and compares it with a family's rules (Diff). No I/O, no exec, no
// Nomad. The rule model behind the ruleset (tables, chains, rules, matches, targets) is this package's own.
//
// Every rule carries the comment "istio-sidecar:alloc=<allocID>" (TagPrefix). Rules are rendered in the exact
// form iptables-save prints them (same for the nf_tables and legacy backends), so a saved rule can be
// compared with ours byte for byte and deleted by its saved text.
package rules
