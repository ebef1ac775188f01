# TestHarness_RawExecSmoke: proves the harness without the plugin. A raw_exec batch task writes a message to
# stdout and its allocation ID to stderr, then exits 0.

variable "message" {
  type        = string
  description = "What the task prints on stdout; the test looks for it in the task's log."
}

job "raw-exec-smoke" {
  datacenters = ["*"]
  type        = "batch"

  group "smoke" {
    # One attempt only: a failure must reach the test, not be hidden by a retry.
    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "hello" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo \"$MESSAGE\"; echo \"alloc $NOMAD_ALLOC_ID\" >&2"]
      }

      env {
        MESSAGE = var.message
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
