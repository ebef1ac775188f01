# TestRegistration: a meshed group (bridge mode, every inbound port captured) whose Nomad check reaches the app
# through pilot-agent's status port; /healthz answers 503 while the file unhealthy exists in the allocation's
# shared directory. The controller makes each healthy allocation a WorkloadEntry of reg-web.

variable "testapp_path" {
  type = string
}

job "reg-web" {
  datacenters = ["*"]
  type        = "service"

  group "app" {
    network {
      mode = "bridge"
      port "http" { to = 8080 }
      port "istio-status" { to = 15020 }
    }

    service {
      provider = "nomad"
      name     = "reg-web"
      tags     = ["protocol=http"]
      port     = "http"

      check {
        type     = "http"
        port     = "istio-status"
        path     = "/app-health/server/readyz"
        interval = "1s"
        timeout  = "1s"
      }
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
          {{- with nomadVar (printf "nomad/jobs/%s" (env "NOMAD_JOB_ID")) }}{{ .root_cert }}{{ end }}
        EOT
      }

      config {
        # Registration needs no identity: this scenario runs no controller identity side for the group.
        token_path = ""
        labels = {
          version = "v1"
        }
        include_inbound_ports = ["*"]
        app_prober {
          name = "server"
          path = "/healthz"
          port = 8080
        }
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }

    task "server" {
      driver = "raw_exec"

      config {
        command = var.testapp_path
        args    = ["serve", "-addr", "0.0.0.0:8080", "-unhealthy-if", "${NOMAD_ALLOC_DIR}/unhealthy"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
