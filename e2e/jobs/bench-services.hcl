# BenchmarkRegistration: `services` Nomad services with no sidecar, all registered by one raw_exec allocation on
# the host's network (one port they share). The controller makes each a ServiceEntry with that registration as
# its plaintext endpoint: the catalog its full sync reads, at the size the benchmark asks for.

variable "services" {
  type        = number
  default     = 200
  description = "How many Nomad services (bench-svc-000, bench-svc-001, …) the allocation registers."
}

job "bench-services" {
  datacenters = ["*"]
  type        = "service"

  group "catalog" {
    network {
      port "http" {}
    }

    dynamic "service" {
      for_each = range(var.services)
      content {
        provider = "nomad"
        name     = format("bench-svc-%03d", service.value)
        port     = "http"
      }
    }

    task "sleep" {
      driver = "raw_exec"

      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }

      resources {
        cpu    = 10
        memory = 16
      }
    }
  }
}
