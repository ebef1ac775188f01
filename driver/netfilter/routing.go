package netfilter

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/istio-sidecar/istio-sidecar/driver/istio"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// Policy routing for TPROXY mode
//
// TPROXY only marks a packet and attaches it to Envoy's transparent socket; the packet still has to be routed
// locally although its destination is not a local address. Istio (tools/common/tproxy) adds, per family, the
// equivalent of
//
//	ip rule add fwmark <mark> lookup 133
//	ip route add local default dev lo table 133
//
// in the pod's namespace. We add the same, with the `ip` command run inside the allocation's namespace like
// iptables (argv only), after the iptables rules and only for a family whose ruleset holds a TPROXY target.
//
// `ip rule` has no comments, so the rule cannot carry our tag. The driver owns a rule of exactly the shape
// above (fwmark M with the full mask, lookup 133, no other selector) when M is the --tproxy-mark of a TPROXY
// rule tagged with its alloc ID; it owns the route in table 133 while one of its rules looks it up. That ties
// routing to the tagged iptables rules, so routing is always removed before the rules naming its mark
// (Cleanup, or a ruleset switching away from TPROXY): a crash in between leaves the mark findable next time.

// Routing describes one family's TPROXY policy routing in an apply Report.
type Routing struct {
	Mark    uint32
	Table   uint32
	Changed bool // something was added (false: already in place)
	Removed bool // the ruleset no longer uses TPROXY here: our rule (and route) were removed
}

// String reads e.g. "policy routing: fwmark 1337 → table 133 added".
func (r Routing) String() string {
	state := "already in place"
	switch {
	case r.Removed:
		state = "removed"
	case r.Changed:
		state = "added"
	}
	return fmt.Sprintf("policy routing: fwmark %d → table %d %s", r.Mark, r.Table, state)
}

// ipRule is one `ip -j rule show` entry; only the fields our shape has are decoded, the rest are counted.
type ipRule struct {
	Priority uint32 `json:"priority"`
	Src      string `json:"src"`
	FWMark   string `json:"fwmark"`
	FWMask   string `json:"fwmask"`
	Table    string `json:"table"`
	extra    bool   // any other selector or action: never ours
}

func (r *ipRule) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	type plain ipRule
	if err := json.Unmarshal(b, (*plain)(r)); err != nil {
		return err
	}
	for k := range m {
		switch k {
		case "priority", "src", "fwmark", "fwmask", "table":
		default:
			r.extra = true
		}
	}
	return nil
}

// looksUp133 is any rule sending packets to table 133, ours or not.
func (r ipRule) looksUp133() bool { return r.Table == strconv.Itoa(istio.TProxyRouteTable) }

// ours reports whether r is exactly the rule we add for mark.
func (r ipRule) ours(mark uint32) bool {
	return r.looksUp133() && !r.extra && r.Src == "all" && r.FWMark == hexMark(mark) &&
		(r.FWMask == "" || r.FWMask == "0xffffffff")
}

type ipRoute struct {
	Type  string `json:"type"`
	Dst   string `json:"dst"`
	Dev   string `json:"dev"`
	Table string `json:"table"`
}

func (r ipRoute) ours() bool {
	return r.Table == strconv.Itoa(istio.TProxyRouteTable) && r.Type == "local" && r.Dst == "default" && r.Dev == "lo"
}

func hexMark(m uint32) string { return "0x" + strconv.FormatUint(uint64(m), 16) }

func famFlag(f rules.Family) string {
	if f == rules.IPv6 {
		return "-6"
	}
	return "-4"
}

// routingState is one family's rules and table-133 route as `ip` shows them.
type routingState struct {
	rules []ipRule
	route bool
}

func readRouting(ctx context.Context, nsPath string, f rules.Family) (routingState, error) {
	st, err := readRules(ctx, nsPath, f)
	if err != nil {
		return st, err
	}
	// "table all": asking for table 133 alone fails while the table does not exist yet.
	out, err := run(ctx, nsPath, "", "ip", "-j", famFlag(f), "route", "show", "table", "all")
	if err != nil {
		return st, fmt.Errorf("%s policy routing: %w", f, err)
	}
	var routes []ipRoute
	if err := decodeJSON(out, &routes); err != nil {
		return st, fmt.Errorf("%s policy routing: ip route show: %w", f, err)
	}
	for _, r := range routes {
		st.route = st.route || r.ours()
	}
	return st, nil
}

// readRules reads the family's policy rules only (one `ip` run), enough to see whether table 133 is used.
func readRules(ctx context.Context, nsPath string, f rules.Family) (routingState, error) {
	var st routingState
	out, err := run(ctx, nsPath, "", "ip", "-j", famFlag(f), "rule", "show")
	if err != nil {
		return st, fmt.Errorf("%s policy routing: %w", f, err)
	}
	if err := decodeJSON(out, &st.rules); err != nil {
		return st, fmt.Errorf("%s policy routing: ip rule show: %w", f, err)
	}
	return st, nil
}

// decodeJSON decodes ip's JSON list; an empty output (nothing to list) is an empty list.
func decodeJSON(out string, v any) error {
	if strings.TrimSpace(out) == "" {
		return nil
	}
	return json.Unmarshal([]byte(out), v)
}

// find returns our rule for mark, if present.
func (st routingState) find(mark uint32) (ipRule, bool) {
	for _, r := range st.rules {
		if r.ours(mark) {
			return r, true
		}
	}
	return ipRule{}, false
}

// othersLookUp133 reports whether a rule other than ours for the given marks still uses table 133.
func (st routingState) othersLookUp133(marks ...uint32) bool {
	for _, r := range st.rules {
		if !r.looksUp133() {
			continue
		}
		mine := false
		for _, m := range marks {
			mine = mine || r.ours(m)
		}
		if !mine {
			return true
		}
	}
	return false
}

func ipArgv(f rules.Family, args ...string) []string {
	return append([]string{"ip", famFlag(f)}, args...)
}

func ruleArgv(f rules.Family, verb string, mark uint32) []string {
	return ipArgv(f, "rule", verb, "fwmark", hexMark(mark), "lookup", strconv.Itoa(istio.TProxyRouteTable))
}

func routeArgv(f rules.Family, verb string) []string {
	return ipArgv(f, "route", verb, "local", "default", "dev", "lo", "table", strconv.Itoa(istio.TProxyRouteTable))
}

// addRouting installs the route, then the rule (the rule is what makes packets use the route), skipping what
// is present. It returns whether it added anything and how to remove exactly that.
func addRouting(ctx context.Context, nsPath string, f rules.Family, mark uint32) (bool, undoFunc, error) {
	st, err := readRouting(ctx, nsPath, f)
	if err != nil {
		return false, nil, err
	}
	var undo undoStack
	revert := func(ctx context.Context) error {
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](ctx); err != nil {
				return err
			}
		}
		return nil
	}
	if !st.route {
		if _, err := run(ctx, nsPath, "", routeArgv(f, "add")...); err != nil {
			return false, nil, fmt.Errorf("%s policy routing: %w", f, err)
		}
		undo.push(func(ctx context.Context) error { _, err := run(ctx, nsPath, "", routeArgv(f, "del")...); return err })
	}
	if _, ok := st.find(mark); !ok {
		if _, err := run(ctx, nsPath, "", ruleArgv(f, "add", mark)...); err != nil {
			uctx, cancel := undoContext(ctx)
			defer cancel()
			return false, nil, fmt.Errorf("%s policy routing: %w (undo: %v)", f, err, revert(uctx))
		}
		undo.push(func(ctx context.Context) error { return delRule(ctx, nsPath, f, mark) })
	}
	return len(undo) > 0, revert, nil
}

// removeRouting removes our rules for marks, then the route unless another rule still looks it up. It returns
// whether it removed a rule and how to put back what it removed.
func removeRouting(ctx context.Context, nsPath string, f rules.Family, marks []uint32) (bool, undoFunc, error) {
	noop := noUndo
	if len(marks) == 0 || !haveIP() {
		return false, noop, nil // without ip no routing of ours can have been added
	}
	st, err := readRouting(ctx, nsPath, f)
	if err != nil {
		return false, noop, err
	}
	var removed []uint32
	for _, m := range marks {
		r, ok := st.find(m)
		if !ok {
			continue
		}
		if err := delRuleAt(ctx, nsPath, f, m, r.Priority); err != nil {
			return false, noop, fmt.Errorf("%s policy routing: %w", f, err)
		}
		removed = append(removed, m)
	}
	routeGone := false
	if len(removed) > 0 && st.route && !st.othersLookUp133(removed...) {
		if _, err := run(ctx, nsPath, "", routeArgv(f, "del")...); err != nil {
			return false, noop, fmt.Errorf("%s policy routing: %w", f, err)
		}
		routeGone = true
	}
	revert := func(ctx context.Context) error {
		if routeGone {
			if _, err := run(ctx, nsPath, "", routeArgv(f, "add")...); err != nil {
				return err
			}
		}
		for _, m := range removed {
			if _, err := run(ctx, nsPath, "", ruleArgv(f, "add", m)...); err != nil {
				return err
			}
		}
		return nil
	}
	return len(removed) > 0, revert, nil
}

// delRule deletes our rule for mark by its priority too, so that a broader rule sharing mark and table is
// never the one removed.
func delRule(ctx context.Context, nsPath string, f rules.Family, mark uint32) error {
	st, err := readRules(ctx, nsPath, f)
	if err != nil {
		return err
	}
	r, ok := st.find(mark)
	if !ok {
		return nil
	}
	return delRuleAt(ctx, nsPath, f, mark, r.Priority)
}

// delRuleAt deletes our rule for mark at the priority a read just found it at.
func delRuleAt(ctx context.Context, nsPath string, f rules.Family, mark, priority uint32) error {
	argv := ipArgv(f, "rule", "del", "priority", strconv.FormatUint(uint64(priority), 10),
		"fwmark", hexMark(mark), "lookup", strconv.Itoa(istio.TProxyRouteTable))
	_, err := run(ctx, nsPath, "", argv...)
	return err
}

// checkRouting returns a description of what is missing for mark, or "" when rule and route are in place.
func checkRouting(ctx context.Context, nsPath string, f rules.Family, mark uint32) (string, error) {
	st, err := readRouting(ctx, nsPath, f)
	if err != nil {
		return "", err
	}
	var missing []string
	if _, ok := st.find(mark); !ok {
		missing = append(missing, fmt.Sprintf("rule fwmark %d lookup %d", mark, istio.TProxyRouteTable))
	}
	if !st.route {
		missing = append(missing, fmt.Sprintf("route local default dev lo table %d", istio.TProxyRouteTable))
	}
	if len(missing) == 0 {
		return "", nil
	}
	return fmt.Sprintf("%s policy routing missing: %v", f, missing), nil
}

// haveIP reports whether the ip command exists where run looks for it. Without it the driver cannot have
// added policy routing, so REDIRECT rulesets and Cleanup do not need it (a REDIRECT-only host without
// iproute2 still works); a TPROXY ruleset fails on it, naming the missing tool.
func haveIP() bool {
	_, err := lookTool("ip")
	return err == nil
}

// dropStaleRouting removes, before the iptables change, the policy routing our current TPROXY rules name and
// the ruleset no longer wants in that family (a switch to REDIRECT, another mark, a family gone). It returns
// the removed marks per family and pushes how to put them back. A family that neither wants TPROXY nor holds
// a TPROXY rule of ours is not looked at, so a REDIRECT ruleset costs no ip process.
func dropStaleRouting(ctx context.Context, nsPath string, changes []familyChange, undo *undoStack) (map[rules.Family]uint32, error) {
	removed := map[rules.Family]uint32{}
	for _, c := range changes {
		want, tproxy := c.want.TProxyMark()
		var marks []uint32
		for _, m := range c.state.present.TProxyMarks() {
			if !tproxy || m != want {
				marks = append(marks, m)
			}
		}
		if len(marks) == 0 {
			continue
		}
		ok, revert, err := removeRouting(ctx, nsPath, c.family, marks)
		if err != nil {
			return removed, err
		}
		if ok {
			removed[c.family] = marks[0]
			undo.push(revert)
		}
	}
	return removed, nil
}
