package netfilter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// Istio's IPv6 inbound passthrough address
//
// Envoy hands inbound connections on to the app from 127.0.0.6 (IPv4) or ::6 (IPv6), sources the rules let
// through (`-A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN`), so that the proxy's own connection to the app is not
// captured again. IPv4's 127.0.0.0/8 is all local; IPv6 has only ::1, so wherever it captures IPv6 Istio adds
// the equivalent of `ip -6 addr add ::6/128 dev lo` (tools/common/tproxy, configureIPv6Addresses). Without it
// Envoy cannot bind its inbound passthrough cluster to ::6 and IPv6 inbound traffic never reaches the app.
//
// We add the same address with the nodad flag. Duplicate address detection never runs on loopback, so the flag
// changes nothing there; it marks the address as ours, as an address has no comment to carry our tag. Cleanup
// removes ::6 only when it carries the flag and our IPv6 rules are being removed, first, as routing.go does for
// the same reason: a crash in between leaves the tagged rules that lead back to it. An ::6 put there by an
// operator or by Istio itself (no flag) is never removed.

// Passthrough6 is the address, in `ip` notation.
const Passthrough6 = "::6/128"

// ipAddrInfo is one address of `ip -j addr show`.
type ipAddrInfo struct {
	Family    string `json:"family"`
	Local     string `json:"local"`
	PrefixLen int    `json:"prefixlen"`
	NoDAD     bool   `json:"nodad"`
}

// passthrough6State reads lo in the namespace: whether ::6/128 is there, and whether it is ours.
func passthrough6State(ctx context.Context, nsPath string) (present, ours bool, err error) {
	out, err := run(ctx, nsPath, "", "ip", "-j", "-6", "addr", "show", "dev", "lo")
	if err != nil {
		return false, false, fmt.Errorf("reading lo's IPv6 addresses: %w", err)
	}
	var links []struct {
		AddrInfo []ipAddrInfo `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return false, false, fmt.Errorf("reading lo's IPv6 addresses: %w", err)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			// Any prefix length binds ::6; only our own /128 with the flag is ours to remove.
			if a.Family == "inet6" && a.Local == "::6" {
				return true, a.NoDAD && a.PrefixLen == 128, nil
			}
		}
	}
	return false, false, nil
}

// addPassthrough6 puts ::6/128 on lo unless it is there, and says whether it added it.
func addPassthrough6(ctx context.Context, nsPath string) (added bool, err error) {
	if !haveIP() {
		return false, fmt.Errorf("%w: iproute2's ip is needed to add %s to lo for IPv6 interception", ErrMissingSupport, Passthrough6)
	}
	present, _, err := passthrough6State(ctx, nsPath)
	if err != nil || present {
		return false, err
	}
	if _, err := run(ctx, nsPath, "", "ip", "-6", "addr", "add", Passthrough6, "dev", "lo", "nodad"); err != nil {
		if present, _, rerr := passthrough6State(ctx, nsPath); rerr == nil && present {
			return false, nil // added by someone else in between
		}
		return false, fmt.Errorf("adding %s to lo: %w", Passthrough6, err)
	}
	return true, nil
}

// removePassthrough6 removes ::6/128 from lo if it is ours, and says whether it did.
func removePassthrough6(ctx context.Context, nsPath string) (bool, error) {
	if !haveIP() {
		return false, nil
	}
	_, ours, err := passthrough6State(ctx, nsPath)
	if err != nil || !ours {
		return false, err
	}
	if _, err := run(ctx, nsPath, "", "ip", "-6", "addr", "del", Passthrough6, "dev", "lo"); err != nil {
		if present, _, rerr := passthrough6State(ctx, nsPath); rerr == nil && !present {
			return false, nil // gone in between
		}
		return false, fmt.Errorf("removing %s from lo: %w", Passthrough6, err)
	}
	return true, nil
}

// withPassthrough6 completes the IPv6 family of freshly applied reports with ::6 on lo. If that fails, undo
// takes back what was just applied, so Apply stays all or nothing.
func withPassthrough6(ctx context.Context, nsPath string, reports []Report, undo func() error) ([]Report, error) {
	for i := range reports {
		if reports[i].Family != rules.IPv6 {
			continue
		}
		added, err := addPassthrough6(ctx, nsPath)
		if err != nil {
			if uerr := undo(); uerr != nil {
				err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
			}
			return nil, err
		}
		reports[i].Passthrough6Added = added
	}
	return reports, nil
}
