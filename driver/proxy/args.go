package proxy

// Args is pilot-agent's argv after the binary: always the sidecar role. Concurrency goes through ProxyConfig
// (the --concurrency flag is legacy and logs a warning); the bootstrap template is named by flag so it can
// stay where the operator installed it.
func Args(logLevel, bootstrapTemplate string) []string {
	args := []string{"proxy", "sidecar"}
	if logLevel != "" {
		args = append(args, "--proxyLogLevel="+logLevel)
	}
	if bootstrapTemplate != "" {
		args = append(args, "--templateFile="+bootstrapTemplate)
	}
	return args
}

// EnvoyLogLevels are the levels Envoy accepts for --proxyLogLevel.
var EnvoyLogLevels = []string{"trace", "debug", "info", "warning", "error", "critical", "off"}
