# TestRegistration: a Nomad service with no sidecar, on the host's network: the controller makes it a
# ServiceEntry whose endpoint is its registration, reached in plaintext.

variable "testapp_path" {
  type = string
}

job "reg-plain" {
  datacenters = ["*"]
  type        = "service"

  group "plain" {
    network {
      port "http" {}
    }

    service {
      provider = "nomad"
      name     = "reg-plain"
      port     = "http"
    }

    task "server" {
      driver = "raw_exec"

      config {
        command = var.testapp_path
        args    = ["serve", "-addr", "${NOMAD_ADDR_http}"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
