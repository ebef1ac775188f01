# TestLongTaskName_ProxyStarts: a sidecar task with a long (34 characters), legitimate name. pilot-agent binds
# unix sockets under the task directory; their paths must fit in 107 bytes (sun_path) on any real data_dir.

variable "testapp_path" {
  type = string
}

job "long-task-name" {
  datacenters = ["*"]
  type        = "service"

  group "app" {
    network {
      mode = "bridge"
    }

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "istio-proxy-payments-api-v2-canary" {
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
        canonical_service = "payments-api"
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
        args    = ["serve", "-addr", "127.0.0.1:8080"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
