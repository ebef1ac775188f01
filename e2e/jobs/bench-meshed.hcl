# BenchmarkSidecar: `count` bridge-mode groups, each an istio-sidecar prestart sidecar (the proxy) and a raw_exec
# app that only sleeps. The root certificate comes from the plugin's root_cert_path, so nothing but the driver's
# own work and the proxy's start-up sits between Nomad's prestart hooks and the app.

variable "count" {
  type        = number
  default     = 1
  description = "How many meshed groups start at once on the node."
}

job "bench-meshed" {
  datacenters = ["*"]
  type        = "service"

  group "mesh" {
    count = var.count

    network {
      mode = "bridge"
    }

    # A failure is a figure for the benchmark, never retried behind its back.
    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "sidecar" {
      driver = "istio-sidecar"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      config {
        # No istiod in this test: no bootstrap token, so no workload certificate (the start requires one otherwise).
        token_path = ""
        # Short drain: samples run one after another and each waits for the previous one to stop.
        drain_duration = "1s"
      }

      kill_timeout = "5s"

      resources {
        cpu    = 50
        memory = 64
      }
    }

    task "app" {
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
