# etcd, the storage of Istio's API server: one member for development (see README.md for three).
#
#   istio-sidecar-controller bootstrap -dir ~/mesh -crds crd-all.gen.yaml   # Variable nomad/jobs/etcd@istio-system
#   nomad job run -var etcd_command=/usr/local/bin/etcd etcd.nomad.hcl
#
# The client needs the host volume (its directory owned by var.user, mode 0700):
#   client { host_volume "etcd-data" { path = "/var/lib/etcd" read_only = false } }

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "etcd_command" {
  description = "etcd inside the exec chroot (built by build/etcd.sh)"
  type        = string
  default     = "/usr/local/bin/etcd"
}

variable "user" {
  description = "The user etcd runs as"
  type        = string
  default     = "nobody"
}

variable "uid" {
  description = "That user's UID: the templates give it its secrets"
  type        = number
  default     = 65534
}

job "etcd" {
  namespace   = "istio-system"
  datacenters = var.datacenters
  type        = "service"

  group "etcd" {
    count = 1

    # Static ports: the members' addresses are part of the cluster's identity and of its certificate.
    network {
      port "client" { static = 2379 }
      port "peer" { static = 2380 }
      port "metrics" { static = 2381 }
    }

    # Only a node with this volume can run the member; its data stays there.
    volume "data" {
      type      = "host"
      source    = "etcd-data"
      read_only = false
    }

    # The data lives on this node: keep restarting here rather than failing the allocation.
    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    update {
      max_parallel     = 1
      min_healthy_time = "10s"
      healthy_deadline = "3m"
      auto_revert      = true
    }

    service {
      provider = "nomad"
      name     = "etcd"
      port     = "client"

      # /health on the plain metrics listener: the client port requires a client certificate.
      check {
        type     = "http"
        port     = "metrics"
        path     = "/health"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "etcd" {
      # exec, not raw_exec: raw_exec cannot mount a host volume.
      driver = "exec"
      user   = var.user

      volume_mount {
        volume      = "data"
        destination = "/var/lib/etcd"
      }

      config {
        command = var.etcd_command
        args = [
          "--name=${node.unique.name}",
          "--data-dir=/var/lib/etcd",
          "--listen-client-urls=https://${NOMAD_IP_client}:${NOMAD_PORT_client}",
          "--advertise-client-urls=https://${NOMAD_IP_client}:${NOMAD_PORT_client}",
          "--listen-peer-urls=https://${NOMAD_IP_peer}:${NOMAD_PORT_peer}",
          "--initial-advertise-peer-urls=https://${NOMAD_IP_peer}:${NOMAD_PORT_peer}",
          "--initial-cluster=${node.unique.name}=https://${NOMAD_IP_peer}:${NOMAD_PORT_peer}",
          "--initial-cluster-state=new",
          "--listen-metrics-urls=http://${NOMAD_IP_metrics}:${NOMAD_PORT_metrics}",
          # Clients (the API server) authenticate with a certificate of the etcd CA, which signs nothing else.
          "--client-cert-auth",
          "--trusted-ca-file=${NOMAD_SECRETS_DIR}/ca.pem",
          "--cert-file=${NOMAD_SECRETS_DIR}/server.pem",
          "--key-file=${NOMAD_SECRETS_DIR}/server-key.pem",
          "--peer-client-cert-auth",
          "--peer-trusted-ca-file=${NOMAD_SECRETS_DIR}/ca.pem",
          "--peer-cert-file=${NOMAD_SECRETS_DIR}/server.pem",
          "--peer-key-file=${NOMAD_SECRETS_DIR}/server-key.pem",
        ]
      }

      template {
        destination = "secrets/ca.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/etcd\" }}{{ .ca_cert }}{{ end }}"
      }
      template {
        destination = "secrets/server.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/etcd\" }}{{ .server_cert }}{{ end }}"
      }
      template {
        destination = "secrets/server-key.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/etcd\" }}{{ .server_key }}{{ end }}"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
