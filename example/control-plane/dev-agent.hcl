# A single-node Nomad agent (server and client) to try the control-plane jobs on one machine.
#
#   mkdir -p /var/lib/etcd && chown nobody: /var/lib/etcd && chmod 0700 /var/lib/etcd
#   nomad agent -config example/control-plane/dev-agent.hcl
#   nomad acl bootstrap     # then export NOMAD_TOKEN=<its secret ID>
#
# ACLs are on: without them any job's template can read any Variable, and nomad/jobs/<job> protects nothing.

data_dir = "/var/lib/nomad-dev"

server {
  enabled          = true
  bootstrap_expect = 1
}

acl {
  enabled = true
}

client {
  enabled = true

  # etcd's data: a member is placed only where its volume is.
  host_volume "etcd-data" {
    path      = "/var/lib/etcd"
    read_only = false
  }
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}
