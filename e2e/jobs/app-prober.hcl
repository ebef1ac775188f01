# TestAppProber_NomadCheckFollowsTheAppThroughTheAgent: a meshed group whose Nomad service check reaches the app
# through pilot-agent's status port (app_prober), with every inbound port captured. The app's /healthz answers
# 503 while the file unhealthy exists in the allocation's shared directory.

variable "testapp_path" {
  type = string
}

job "app-prober" {
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
      name     = "app-prober"
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
        # No istiod in this scenario: the proxy runs without a workload certificate.
        token_path            = ""
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
