package harness

// aclHCL turns Nomad's ACLs on, as a production cluster runs: only then does a task's workload identity confine
// its templates to its own Variables.
const aclHCL = "acl {\n  enabled = true\n}\n"

// bootstrapACL takes the cluster's one bootstrap token, as an operator's `nomad acl bootstrap` would, and gives it
// to the harness's client. The leader may take a moment to accept it after its election.
func (a *Agent) bootstrapACL(t T) {
	t.Helper()
	err := poll(startTimeout, pollInterval, a.exitedErr, "the ACL bootstrap", func() (bool, string) {
		tok, _, err := a.Client.ACLTokens().Bootstrap(nil)
		if err != nil {
			return false, err.Error()
		}
		a.ManagementToken = tok.SecretID
		a.Client.SetSecretID(tok.SecretID)
		return true, ""
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
}

// CLIEnv is what the nomad CLI (and any operator tool using Nomad's api package) needs to reach this agent as
// its operator: the address and, with ACLs on, the management token.
func (a *Agent) CLIEnv() []string {
	env := []string{"NOMAD_ADDR=" + a.Addr}
	if a.ManagementToken != "" {
		env = append(env, "NOMAD_TOKEN="+a.ManagementToken)
	}
	return env
}

// NomadCLI is the agent binary, which is the nomad CLI too.
func (a *Agent) NomadCLI() string { return a.nomad }
