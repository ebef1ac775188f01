# TestHostMode_MissingStaticPortsFailsClearly: a host-mode meshed group that forgot to reserve the proxy's capture
# ports (15001, 15006) as static ports. The scheduler places it (nothing collides), and the driver must refuse to
# start the sidecar, saying what to add, before it touches the host's netfilter rules.

variable "testapp_path" {
  type = string
}

job "host-mode-no-static-ports" {
  datacenters = ["*"]
  type        = "service"

  group "app" {
    network {
      mode = "host"

      # Only the app's port: the proxy's ports are missing.
      port "http" {}
    }

    # One attempt: the refusal is final, and the scenario reads the first allocation's events.
    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
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

      config {
        # No istiod in this test: no bootstrap token, so no workload certificate (the start requires one otherwise).
        token_path = ""
        # Would be safe if it ever got installed: nothing uses this range.
        include_outbound_ip_ranges = ["10.214.0.0/24"]
        include_inbound_ports      = ["${NOMAD_PORT_http}"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }

    task "app" {
      driver = "raw_exec"

      config {
        command = var.testapp_path
        args    = ["serve", "-addr", "127.0.0.1:${NOMAD_PORT_http}"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
