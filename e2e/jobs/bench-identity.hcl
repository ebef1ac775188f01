# BenchmarkRegistration: `groups` meshed groups the scheduler can never place (no node matches the
# constraint), so that the controller's identity side has that many groups to give a token and a Variable
# (nomad/jobs/bench-identity/g-000, …) while nothing runs: the identity side works from jobs, not allocations.

variable "groups" {
  type        = number
  default     = 200
  description = "How many meshed groups the job has."
}

job "bench-identity" {
  datacenters = ["*"]
  type        = "service"

  constraint {
    attribute = "${node.unique.name}"
    value     = "no-such-node"
  }

  dynamic "group" {
    for_each = range(var.groups)
    labels   = [format("g-%03d", group.value)]
    content {
      task "istio-proxy" {
        driver = "istio-sidecar"

        config {
          namespace       = "default"
          service_account = "bench-identity"
        }

        resources {
          cpu    = 10
          memory = 16
        }
      }
    }
  }
}
