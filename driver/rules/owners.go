package rules

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// maxIncludedOwnerGroups bounds the include list. All included groups go into one rule with one owner match
// each, and iptables-restore takes at most 255 words per line: with our comment, 48 groups fit. Istio checks
// for at most 64, but its own restore fails from 50 groups (testdata/istio/refuse-groups-50.refused).
const maxIncludedOwnerGroups = 48

// noID is (uid_t)-1, which the kernel reserves for "no ID" and iptables refuses as an owner.
const noID = math.MaxUint32

// groupName is a portable group name (letters, digits, '.', '_', '-', at most 32 bytes). A value of digits
// only is a GID instead.
var groupName = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}$`)

// OwnerGroupNames lists, once each, the group names (not GIDs) that spec's owner-group filters use: the edge
// resolves them into Env.GroupIDs on the host before Parse. Values that are neither are left to Parse to refuse.
func OwnerGroupNames(spec Spec) []string {
	var names []string
	for _, v := range append(append([]string(nil), spec.IncludeOutboundOwnerGroups...), spec.ExcludeOutboundOwnerGroups...) {
		if !isDigits(v) && groupName.MatchString(v) {
			names = append(names, v)
		}
	}
	return dedupe(names)
}

// parseOwnerGroups reads Istio's owner-group filter: with the include list absent or "*", the excluded
// groups bypass capture (except is true); otherwise only the included groups are captured. Istio ignores an
// exclude list next to an include list (testdata/istio/groups-both.v4.save); it is refused here instead.
func parseOwnerGroups(spec Spec, ids map[string]uint32) (except bool, gids []uint32, err error) {
	const inField, exField = "include_outbound_owner_groups", "exclude_outbound_owner_groups"
	in, ex := spec.IncludeOutboundOwnerGroups, spec.ExcludeOutboundOwnerGroups
	all := in == nil
	if !all {
		if all, err = wildcard(inField, in); err != nil {
			return false, nil, err
		}
	}
	if !all {
		if len(ex) > 0 {
			return false, nil, fieldErr(exField, -1, strings.Join(ex, ","), `only applies when `+inField+` is "*"`, nil)
		}
		if len(in) > maxIncludedOwnerGroups {
			return false, nil, fieldErr(inField, -1, fmt.Sprintf("%d groups", len(in)), fmt.Sprintf(
				"exceeds %d groups, the most one iptables rule can match (Istio allows 64; its own run fails from 50)",
				maxIncludedOwnerGroups), nil)
		}
		gids, err = parseGIDs(inField, in, ids)
		return false, gids, err
	}
	if err := checkLen(exField, ex); err != nil {
		return false, nil, err
	}
	gids, err = parseGIDs(exField, ex, ids)
	return true, gids, err
}

func parseGIDs(field string, vals []string, ids map[string]uint32) ([]uint32, error) {
	var out []uint32
	for i, v := range vals {
		gid, reason := parseGID(v, ids)
		if reason != "" {
			return nil, fieldErr(field, i, v, reason, nil)
		}
		out = append(out, gid)
	}
	return dedupe(out), nil
}

// parseGID reads a decimal GID or a group name resolved in ids; reason says why v is neither.
func parseGID(v string, ids map[string]uint32) (uint32, string) {
	switch {
	case v == "":
		return 0, "is empty"
	case isDigits(v):
		if len(v) > 1 && v[0] == '0' {
			// iptables reads a leading zero as octal ("0202" is GID 130: testdata/istio/groups-octal.v4.save).
			return 0, "has a leading zero: write the GID in decimal without one"
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == noID {
			return 0, fmt.Sprintf("is not a GID (0-%d)", uint32(noID-1))
		}
		return uint32(n), ""
	case !groupName.MatchString(v):
		return 0, "is not a group name or GID"
	}
	gid, ok := ids[v]
	if !ok {
		return 0, "is not a group on this host"
	}
	return gid, ""
}

func isDigits(v string) bool {
	for _, r := range v {
		if r < '0' || r > '9' {
			return false
		}
	}
	return v != ""
}

// parseLoopbackCIDR applies Istio's ValidateIPv4LoopbackCidr: a CIDR (not a bare address) of IPv4 loopback
// addresses with a mask of 8 to 32 bits. Host bits are cleared, as iptables does.
func parseLoopbackCIDR(field, v string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, fieldErr(field, -1, v, "is not a CIDR", nil)
	}
	if reason := loopbackProblem(p); reason != "" {
		return netip.Prefix{}, fieldErr(field, -1, v, reason, nil)
	}
	return p.Masked(), nil
}

func loopbackProblem(p netip.Prefix) string {
	if !p.IsValid() || !p.Addr().Is4() || !p.Addr().IsLoopback() {
		return "is not an IPv4 loopback CIDR (within 127.0.0.0/8)"
	}
	if p.Bits() < 8 {
		return "has a mask outside 8-32 bits"
	}
	return ""
}

// checkIDs refuses an empty list of the proxy's IDs and the one ID iptables cannot match.
func checkIDs(field string, ids []uint32) error {
	if len(ids) == 0 {
		return fieldErr(field, -1, "", "must list at least one ID", nil)
	}
	for i, id := range ids {
		if id == noID {
			return fieldErr(field, i, strconv.FormatUint(uint64(id), 10), "is (uid_t)-1, which is no ID", nil)
		}
	}
	return nil
}
