# BenchmarkRegistration: a meshed bridge-mode group serving `service` on 8080, its identity (root certificate,
# bootstrap token) from the Variable the controller writes, istiod from the plugin's discovery_address. Job A
# runs it once and watches, through its proxy's config dump, B's allocations become endpoints of B's cluster.
# No Nomad check: an allocation is an endpoint once its sidecar runs, so what is measured is the path from
# Nomad's event to A's proxy, not the controller's check poll (-check-interval).

variable "testapp_path" {
  type = string
}

variable "service" {
  type        = string
  description = "The Nomad service the group registers, and the mesh service it becomes."
}

job "bench-endpoint" {
  datacenters = ["*"]
  type        = "service"

  group "app" {
    network {
      mode = "bridge"
      port "http" { to = 8080 }
    }

    service {
      provider = "nomad"
      name     = var.service
      port     = "http"
    }

    # A failure is for the benchmark to report, never retried behind its back.
    restart {
      attempts = 0
      mode     = "fail"
    }

    task "istio-proxy" {
      driver = "istio-sidecar"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      template {
        destination = "secrets/root-cert.pem"
        perms       = "0400"
        data        = <<-EOT
          {{- with nomadVar (printf "nomad/jobs/%s/%s" (env "NOMAD_JOB_ID") (env "NOMAD_GROUP_NAME")) }}{{ .root_cert }}{{ end }}
        EOT
      }

      template {
        destination = "secrets/istio-token"
        perms       = "0400"
        change_mode = "noop"
        data        = <<-EOT
          {{- with nomadVar (printf "nomad/jobs/%s/%s" (env "NOMAD_JOB_ID") (env "NOMAD_GROUP_NAME")) }}{{ .istio_token }}{{ end }}
        EOT
      }

      config {
        namespace       = "default"
        service_account = var.service
        labels = {
          app = var.service
        }
        include_inbound_ports = ["*"]
        # Short drain: each round's old allocation stops while the new one starts.
        drain_duration = "1s"
      }

      kill_timeout = "5s"

      resources {
        cpu    = 100
        memory = 64
      }
    }

    task "server" {
      driver = "raw_exec"

      config {
        command = var.testapp_path
        args    = ["serve", "-addr", "0.0.0.0:8080"]
      }

      resources {
        cpu    = 20
        memory = 32
      }
    }
  }
}
