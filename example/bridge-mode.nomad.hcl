# A meshed group in bridge networking mode: the group gets its own network namespace, and the istio-sidecar
# task runs Istio's pilot-agent (which starts Envoy) inside it, after installing Istio's iptables interception
# there. The rules exist only in the group's namespace: the host's traffic, and every other group's, is untouched,
# so any number of bridge-mode meshed groups can share a node.
#
# The group's identity (mesh root certificate, bootstrap token, istiod's address) is the Nomad Variable
# nomad/jobs/meshed-app-bridge/app, which the istio-sidecar-controller writes once the job is registered and
# which only this group's tasks may read with their workload identity (example/control-plane.md). Then:
#
#   nomad job run -var testapp_path=/usr/local/bin/testapp example/bridge-mode.nomad.hcl
#
# Without the controller, write it yourself (what `istioctl x workload entry configure` makes for a VM):
#
#   nomad var put nomad/jobs/meshed-app-bridge/app root_cert=@root-cert.pem istio_token=@istio-token \
#     discovery_address=10.0.0.5:15012
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

variable "app_driver" {
  type        = string
  description = <<-EOT
    The app tasks' driver. Any driver that joins the group's network namespace is intercepted: raw_exec, exec,
    docker, java. With exec the binary must be inside the task's chroot (the client's chroot_env).
  EOT
  default     = "raw_exec"
}

variable "call_target" {
  type        = string
  description = <<-EOT
    HOST:PORT the client calls, through the mesh. The default is this node as the group sees it: the gateway of
    Nomad's bridge (bridge_network_subnet 172.26.64.0/20), where something on the host may listen on 8080.
  EOT
  default     = "172.26.64.1:8080"
}

variable "call_every" {
  type        = string
  description = "Interval between the client's calls."
  default     = "1s"
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
  description = <<-EOT
    Extra environment for pilot-agent, which passes its environment on to Envoy: proxy metadata such as
    ISTIO_META_REQUESTED_NETWORK_VIEW, or PILOT_* agent settings.
  EOT
  default     = {}
}

job "meshed-app-bridge" {
  datacenters = var.datacenters
  type        = "service"

  group "app" {
    network {
      mode = "bridge"

      # The app's listener. Mesh peers reach it at this node's address and the mapped host port; Nomad's
      # portmap sends it into the namespace on 8080, where the interception's PREROUTING rule redirects it to
      # Envoy's inbound listener on 15006 (ISTIO_INBOUND -> ISTIO_IN_REDIRECT). 15006 itself needs no mapping:
      # nothing outside the namespace connects to it. Envoy then hands the connection to the app on 8080.
      port "http" {
        to = 8080
      }

      # Optional: the agent's merged Prometheus metrics and health (15020 and 15021 are never captured).
      port "istio-status" {
        to = 15020
      }
    }

    task "istio-proxy" {
      driver = "istio-sidecar"

      # The proxy starts before the app and runs beside it. The driver's StartTask returns only once Envoy is
      # ready, so the app's first connection already goes through Envoy, never to a closed 15001.
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
        # The workload's identity in the mesh, as a Kubernetes pod would have it (the VM's WorkloadGroup).
        namespace          = "default"
        service_account    = "meshed-app"
        canonical_service  = "meshed-app"
        canonical_revision = "v1"
        # Workload labels (ISTIO_METAJSON_LABELS), which Istio's policies and telemetry select on.
        labels = {
          app     = "meshed-app"
          version = "v1"
        }

        # Envoy's log level and how long it drains on stop.
        log_level      = var.log_level
        drain_duration = var.drain_duration

        # The app starts only once the proxy is ready (the default; Istio's holdApplicationUntilProxyStarts).
        hold_application_until_proxy_starts = true
        readiness_timeout                   = "60s"

        # Interception, as Istio's traffic.sidecar.istio.io annotations: capture every inbound port and all
        # outbound traffic (the defaults, shown here to be changed).
        include_inbound_ports      = ["*"]
        include_outbound_ip_ranges = ["*"]
        # exclude_outbound_ip_ranges = ["169.254.169.254/32"] # e.g. a cloud metadata service
        # dns_capture                = true                    # resolve mesh names through pilot-agent's DNS proxy

        # istiod's address as the controller found it (above); the rest of the control plane's settings come from
        # the client's plugin config.
        discovery_address = "${ISTIOD_ADDR}"
        # proxy_config = <<-EOT
        #   tracing:
        #     sampling: 10
        # EOT
      }

      env = var.proxy_env

      # Envoy dying is a proxy failure: restart it quickly. The app keeps its interception rules meanwhile, so
      # its connections fail (connection refused on 15001) rather than leave the mesh.
      restart {
        attempts = 5
        interval = "5m"
        delay    = var.proxy_restart_delay
        mode     = "fail"
      }

      # pilot-agent drains Envoy for drain_duration on SIGTERM, then stops it.
      kill_timeout = "15s"

      resources {
        cpu    = 200
        memory = 128
      }
    }

    # The app: answers mesh traffic on 8080 ...
    task "server" {
      driver = var.app_driver

      config {
        command = var.testapp_path
        args    = ["serve", "-addr", "0.0.0.0:8080"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }

    # ... and calls another service through the mesh: the interception sends the connection to Envoy's
    # outbound listener on 15001, which forwards it to its original destination.
    task "client" {
      driver = var.app_driver

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
