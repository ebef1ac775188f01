# TestFingerprint_PilotAgentMissing: a group with an istio-sidecar prestart sidecar, registered on a node where the
# driver is unhealthy. The scheduler must filter the node ("missing drivers") and block the evaluation.

job "pilot-agent-missing" {
  datacenters = ["*"]
  type        = "service"

  group "app" {
    task "sidecar" {
      driver = "istio-sidecar"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      # Never reaches the plugin: the job is not placed.
      config {
        # No istiod in this test: no bootstrap token, so no workload certificate (the start requires one otherwise).
        token_path = ""
      }

      resources {
        cpu    = 100
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
        cpu    = 50
        memory = 32
      }
    }
  }
}
