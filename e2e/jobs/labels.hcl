# TestTaskConfig_LabelsMapAccepted: the sidecar's labels map (the workload's labels in the mesh, such as app and
# version, which Istio's routing selects on), written as an HCL2 map the way users write every map.

variable "testapp_path" {
  type = string
}

job "labels" {
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
        canonical_service = "labels"
        labels = {
          app     = "labels"
          version = "v1"
        }
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
