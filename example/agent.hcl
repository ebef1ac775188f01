# A Nomad client with the istio-sidecar plugin. Copy bin/istio-sidecar into plugin_dir (the file name must be
# istio-sidecar, the same as the plugin block's label).
#
#   nomad agent -dev -config example/agent.hcl

plugin_dir = "/opt/nomad/plugins"

client {
  # Bridge-mode groups need Debian's CNI plugins (apt-get install containernetworking-plugins).
  cni_path = "/usr/lib/cni"
}

plugin "istio-sidecar" {
  config {
    # Where Istio's binaries are. Istio's VM packages install them here.
    pilot_agent_path        = "/usr/local/bin/pilot-agent"
    envoy_path              = "/usr/local/bin/envoy"
    bootstrap_template_path = "/var/lib/istio/envoy/envoy_bootstrap_tmpl.json"

    # The proxy's user and group. Interception tells the proxy's own traffic apart by these IDs, so the
    # proxy never runs as root. The user must exist (useradd --system --uid 1337 istio-proxy).
    proxy_uid = 1337
    proxy_gid = 1337
    # More IDs treated as the proxy's (the rest of Istio's -u/-g lists): local agents whose traffic bypasses
    # the mesh. Only here, never in a jobspec: an ID a job could add would escape the mesh.
    # extra_proxy_uids = [2000]
    # extra_proxy_gids = [2000]

    # The mesh this host belongs to: the values of istioctl's cluster.env / mesh.yaml for a VM.
    discovery_address = "istiod.istio-system.svc:15012" # ProxyConfig.discoveryAddress
    # ca_address      = "istiod.istio-system.svc:15012" # CA_ADDR; defaults to the discovery address
    trust_domain      = "cluster.local"                  # TRUST_DOMAIN
    cluster_id        = "Kubernetes"                     # ISTIO_META_CLUSTER_ID
    # mesh_id         = "mesh1"                          # ISTIO_META_MESH_ID
    # network         = "vm-network"                     # ISTIO_META_NETWORK

    # Fleet-wide ProxyConfig (YAML), like MeshConfig.defaultConfig. A job's proxy_config overrides it field by
    # field, within the allow-list the README gives. The driver owns binaryPath, configPath, customConfigFile,
    # proxyBootstrapTemplatePath, proxyAdminPort and statusPort.
    # proxy_config = <<-EOT
    #   tracing:
    #     sampling: 1.0
    # EOT

    # The mesh root certificate for every job on this host, used when a job does not template its own into
    # secrets/root-cert.pem.
    # root_cert_path = "/etc/certs/root-cert.pem"

    # How long StartTask waits for the proxy to be ready before it fails (and the restart policy retries).
    readiness_timeout = "60s"

    # Run pilot-agent without a Nomad cgroup (the process group is still killed as a whole).
    no_cgroups = false
  }
}
