package rules

// ownerGroups narrows outbound capture by the sending process's group (Istio's handleCaptureByOwnerGroup): a
// RETURN for each excluded group, or one RETURN for a process in none of the included groups. It follows the
// proxy's own rules and precedes DNS capture, as in Istio, so a process the filter leaves out keeps its DNS
// out of capture too. With every group captured (the default) it adds nothing.
func (b *builder) ownerGroups() {
	c := b.cfg
	if c.groupsExcept {
		for _, gid := range c.groups {
			b.add(tableNat, rule{Chain: chainIstioOutput, Matches: []match{ownerMatch{GID: true, ID: gid}}, Target: returnVerdict})
		}
		return
	}
	var inNone []match
	for _, gid := range c.groups {
		inNone = append(inNone, ownerMatch{GID: true, Negate: true, ID: gid})
	}
	b.add(tableNat, rule{Chain: chainIstioOutput, Matches: inNone, Target: returnVerdict})
}
