package driver

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

// An evaluator of iptables-restore payloads, independent of the rules package's model: it reads the payload
// text as the kernel would get it and says whether a packet to a port can reach a capture target. What it
// cannot decide from the port and the protocol (addresses, owners, marks, interfaces, conntrack) it takes
// both ways, so "cannot be captured" holds for every packet to that port.

type payloadRule struct {
	chain, target string
	conds         []string
}

// payloadTables parses "*table ... COMMIT" blocks into each table's chains and their rules in order.
func payloadTables(t testing.TB, payload string) map[string]map[string][]payloadRule {
	t.Helper()
	out := map[string]map[string][]payloadRule{}
	var cur map[string][]payloadRule
	for _, line := range strings.Split(payload, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			cur = map[string][]payloadRule{}
			out[line[1:]] = cur
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			r := payloadRule{chain: f[1]}
			for i := 2; i < len(f); i++ {
				if f[i] == "-j" && i+1 < len(f) {
					r.target = f[i+1]
					break
				}
				r.conds = append(r.conds, f[i])
			}
			cur[r.chain] = append(cur[r.chain], r)
		}
	}
	return out
}

// verdict of a rule's conditions for the packet: matches, cannot match, or cannot tell.
type verdict int

const (
	never verdict = iota
	always
	maybe
)

// matchPort decides a rule's conditions for a packet of proto to port.
func matchPort(conds []string, proto string, port uint16) verdict {
	v := always
	for i := 0; i < len(conds); i++ {
		neg := conds[i] == "!"
		if neg {
			i++
		}
		if i+1 >= len(conds) {
			break
		}
		flag, arg := conds[i], conds[i+1]
		hit, known := false, true
		switch flag {
		case "-p":
			hit = arg == proto
		case "--dport":
			n, _ := strconv.Atoi(arg)
			hit = n == int(port)
		case "--dports":
			hit = strings.Contains(","+arg+",", ","+strconv.Itoa(int(port))+",")
		case "-m":
			hit = arg == proto || (arg != "tcp" && arg != "udp") // -m tcp on a UDP packet never matches
		case "--comment":
			hit = true
		default:
			known = false
		}
		i++
		switch {
		case !known:
			v = maybe
		case hit == neg:
			return never
		}
	}
	return v
}

// capturePath returns how a packet of proto to port, entering table's chain, can reach a capture target, or "".
func capturePath(tables map[string]map[string][]payloadRule, table, chain, proto string, port uint16) string {
	var walk func(chain string, depth int) (path string, returns bool)
	walk = func(chain string, depth int) (string, bool) {
		if depth > 16 {
			return fmt.Sprintf("%s: jumps nest too deep", chain), false
		}
		for i, r := range tables[table][chain] {
			v := matchPort(r.conds, proto, port)
			if v == never {
				continue
			}
			here := fmt.Sprintf("%s/%s[%d]", table, chain, i+1)
			switch r.target {
			case "REDIRECT", "TPROXY", "DNAT":
				return here + " -j " + r.target, false
			case "RETURN", "ACCEPT", "DROP":
				if v == always {
					return "", true
				}
			case "MARK", "CONNMARK", "CT":
			default:
				if path, _ := walk(r.target, depth+1); path != "" {
					return here + " -> " + path, false
				}
			}
		}
		return "", true
	}
	path, _ := walk(chain, 0)
	return path
}

// assertPortsNeverCaptured fails if any packet to one of ports, in or out, TCP or UDP, can be captured.
func assertPortsNeverCaptured(t testing.TB, payload string, ports []uint16) {
	t.Helper()
	tables := payloadTables(t, payload)
	for _, port := range ports {
		for _, proto := range []string{"tcp", "udp"} {
			for _, start := range [][2]string{{"nat", "PREROUTING"}, {"nat", "OUTPUT"}, {"mangle", "PREROUTING"}, {"mangle", "OUTPUT"}} {
				if path := capturePath(tables, start[0], start[1], proto, port); path != "" {
					t.Fatalf("%s port %d can be captured: %s\n%s", proto, port, path, payload)
				}
			}
		}
	}
}

// The evaluator itself: it finds the capture of a port a payload captures, and none where the port returns
// first.
func TestCapturePath_FindsWhatIsCaptured(t *testing.T) {
	rs, err := OperatorRuleset(`include_inbound_ports = ["8080"]`, OperatorOptions{AllocID: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	tables := payloadTables(t, rs.Payload(rules.IPv4))
	if path := capturePath(tables, "nat", "PREROUTING", "tcp", 8080); !strings.Contains(path, "REDIRECT") {
		t.Errorf("inbound 8080 not found captured: %q", path)
	}
	if path := capturePath(tables, "nat", "PREROUTING", "tcp", 22); path != "" {
		t.Errorf("inbound 22 found captured: %q", path)
	}
	if path := capturePath(tables, "nat", "OUTPUT", "tcp", 22); !strings.Contains(path, "REDIRECT") {
		t.Errorf("group mode's outbound 22 not found captured: %q", path)
	}
	host, err := OperatorRuleset(``, OperatorOptions{AllocID: "a1", Host: true})
	if err != nil {
		t.Fatal(err)
	}
	assertPortsNeverCaptured(t, host.Payload(rules.IPv4), []uint16{22, 4646, 4647, 8500})
}
