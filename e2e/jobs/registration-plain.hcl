# TestRegistration: a Nomad service with no sidecar, on the host's network: the controller makes it a
# ServiceEntry whose endpoint is its registration, reached in plaintext. Its second service claims an address of
# the job's choosing, a bridge namespace's (where another group's sidecar could be): never registered.

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

    service {
      provider = "nomad"
      name     = "reg-forged"
      port     = "http"
      address  = "172.26.64.250"
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
