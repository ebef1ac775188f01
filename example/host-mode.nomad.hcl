# A meshed group in host networking mode, like an Istio VM workload: the app and the proxy share the host's
# network namespace, and the istio-sidecar task installs Istio's iptables interception in the HOST namespace.
# The rules then concern every process on the host, not only this group's, so:
#
#   * Only one host-mode meshed group can run per host. The group reserves the proxy's fixed ports as static
#     ports, so the scheduler itself never places a second one on the node (it reports a port collision); the
#     driver refuses a host-mode group without these reservations, and holds a host lock besides.
#   * Capture only what belongs to the mesh: the outbound IP ranges of the mesh's services and the app's own
#     inbound ports. The driver never captures SSH, Nomad, Consul or Vault ports (plugin host_exclude_ports),
#     nor loopback, nor the proxy's own traffic.
#   * Prefer bridge mode (bridge-mode.nomad.hcl) wherever the app does not need the host's network.
#
# The group's identity is the Nomad Variable nomad/jobs/meshed-app-host/app, written by the
# istio-sidecar-controller (see bridge-mode.nomad.hcl and example/control-plane.md):
#
#   nomad job run -var testapp_path=/usr/local/bin/testapp example/host-mode.nomad.hcl
#
# The e2e suite runs this file as it is, with its own values for the variables below.

variable "datacenters" {
  type        = list(string)
  description = "Where the job may run."
  default     = ["*"]
}

variable "testapp_path" {
  type        = string
  description = "The workload's binary: testdoubles/testapp (go build -o /usr/local/bin/testapp ./testdoubles/testapp)."
  default     = "/usr/local/bin/testapp"
}

variable "app_port" {
  type        = number
  description = "The app's port on the host; inbound traffic to it is captured."
  default     = 8080
}

variable "call_target" {
  type        = string
  description = "HOST:PORT the client calls; through the mesh when its address is in include_outbound_ip_ranges."
  default     = "127.0.0.1:8080"
}

variable "call_every" {
  type        = string
  description = "Interval between the client's calls."
  default     = "1s"
}

variable "include_outbound_ip_ranges" {
  type        = list(string)
  description = <<-EOT
    Destinations whose outbound traffic goes through Envoy: the mesh's service and pod CIDRs (here a
    Kubernetes cluster's default service range). ["*"] captures everything not excluded, which on a host
    also means its package mirrors, NTP and monitoring.
  EOT
  default     = ["10.96.0.0/12"]
}

variable "log_level" {
  type        = string
  description = "Envoy's log level (trace, debug, info, warning, error, critical, off)."
  default     = "warning"
}

variable "drain_duration" {
  type        = string
  description = "How long Envoy drains on stop before pilot-agent kills it (ProxyConfig.terminationDrainDuration)."
  default     = "5s"
}

variable "proxy_restart_delay" {
  type        = string
  description = "How long Nomad waits before restarting a proxy that died."
  default     = "5s"
}

variable "proxy_env" {
  type        = map(string)
  description = "Extra environment for pilot-agent, which passes its environment on to Envoy."
  default     = {}
}

job "meshed-app-host" {
  datacenters = var.datacenters
  type        = "service"

  group "app" {
    network {
      mode = "host"

      # The proxy's fixed ports. Reserving them as static ports makes the scheduler account for them: a second
      # host-mode meshed group on this node would collide on them, so it is never placed here (Nomad reports
      # "reserved port collision"). The driver requires at least 15001 and 15006, the capture ports.
      port "istio-outbound" {
        static = 15001 # Envoy's outbound capture listener (ISTIO_REDIRECT)
      }
      port "istio-inbound" {
        static = 15006 # Envoy's inbound capture listener (ISTIO_IN_REDIRECT)
      }
      port "istio-status" {
        static = 15020 # pilot-agent: health and merged Prometheus metrics
      }
      port "istio-health" {
        static = 15021 # Envoy's health listener (/healthz/ready)
      }
      port "envoy-prom" {
        static = 15090 # Envoy's Prometheus stats
      }

      # The app's own port. Mesh peers connect to it; the interception hands those connections to Envoy's
      # inbound listener first.
      port "http" {
        static = var.app_port
      }
    }

    task "istio-proxy" {
      driver = "istio-sidecar"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      # The group's identity, from its Nomad Variable nomad/jobs/<job>/<group>: written only by the
      # istio-sidecar-controller (example/control-plane.md), readable only by this group's tasks. Until it exists
      # the templates block, so the proxy does not start. A child of a periodic or parameterized job reads its
      # parent's (NOMAD_JOB_PARENT_ID): Nomad's workload identity names the parent job, and the controller writes
      # the parent's. The mesh root certificate (verifies istiod and peers):
      template {
        destination = "secrets/root-cert.pem"
        perms       = "0400"
        change_mode = "restart"
        data        = <<-EOT
          {{- with nomadVar (printf "nomad/jobs/%s/%s" (or (env "NOMAD_JOB_PARENT_ID") (env "NOMAD_JOB_ID")) (env "NOMAD_GROUP_NAME")) }}{{ .root_cert }}{{ end }}
        EOT
      }

      # The bootstrap token (TokenRequest JWT, audience istio-ca) that proves the group's identity to istiod's CA.
      # A rotated token is re-read by pilot-agent on its next certificate request: no restart needed.
      template {
        destination = "secrets/istio-token"
        perms       = "0400"
        change_mode = "noop"
        data        = <<-EOT
          {{- with nomadVar (printf "nomad/jobs/%s/%s" (or (env "NOMAD_JOB_PARENT_ID") (env "NOMAD_JOB_ID")) (env "NOMAD_GROUP_NAME")) }}{{ .istio_token }}{{ end }}
        EOT
      }

      # Why the controller gave this group no token (its namespace policy): the driver then fails the start and
      # quotes it, in the task's events.
      template {
        destination = "secrets/istio-refused"
        perms       = "0400"
        change_mode = "noop"
        data        = <<-EOT
          {{- with nomadVar (printf "nomad/jobs/%s/%s" (or (env "NOMAD_JOB_PARENT_ID") (env "NOMAD_JOB_ID")) (env "NOMAD_GROUP_NAME")) }}{{ .refused }}{{ end }}
        EOT
      }

      # istiod's address, from its Nomad service in istio-system. A template cannot read another namespace's
      # services (Nomad 1.6), so the controller copies it into the Variable; empty: the plugin's discovery_address.
      template {
        destination = "secrets/istiod.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{- with nomadVar (printf "nomad/jobs/%s/%s" (or (env "NOMAD_JOB_PARENT_ID") (env "NOMAD_JOB_ID")) (env "NOMAD_GROUP_NAME")) }}ISTIOD_ADDR={{ .discovery_address }}{{ end }}
        EOT
      }

      config {
        # The VM workload's identity in the mesh (its WorkloadGroup).
        namespace          = "default"
        service_account    = "meshed-app"
        canonical_service  = "meshed-app"
        canonical_revision = "v1"
        # Workload labels (ISTIO_METAJSON_LABELS), which Istio's policies and telemetry select on.
        labels = {
          app     = "meshed-app"
          version = "v1"
        }
        # instance_ip     = "192.0.2.10" # the address peers reach this host at; default: the first port's host IP
        # istiod's address as the controller found it (above).
        discovery_address = "${ISTIOD_ADDR}"

        log_level      = var.log_level
        drain_duration = var.drain_duration

        # Capture narrowly on a host: only the app's port inbound, only the mesh's ranges outbound.
        include_inbound_ports      = ["${var.app_port}"]
        include_outbound_ip_ranges = var.include_outbound_ip_ranges
        # exclude_outbound_ports   = ["5432"] # e.g. a database the mesh does not front
      }

      env = var.proxy_env

      # While Envoy is down its rules stay, so the app's mesh traffic fails instead of leaving the mesh; nothing
      # else on the host is affected (the excluded ports, loopback and uncaptured ranges go on as before).
      restart {
        attempts = 5
        interval = "5m"
        delay    = var.proxy_restart_delay
        mode     = "fail"
      }

      kill_timeout = "15s"

      resources {
        cpu    = 200
        memory = 128
      }
    }

    task "server" {
      driver = "raw_exec"

      config {
        command = var.testapp_path
        args    = ["serve", "-addr", "0.0.0.0:${NOMAD_PORT_http}"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }

    task "client" {
      driver = "raw_exec"

      config {
        command = var.testapp_path
        args    = ["call", "-target", var.call_target, "-every", var.call_every]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
