# BenchmarkSidecar's baseline: the same groups as bench-meshed.hcl, with the same pilot-agent run by plain
# raw_exec, as a job author would without the driver: no interception rules, and StartTask returns once the
# process is launched, without waiting for the proxy. The task lays out pilot-agent's working tree (what the
# driver does in Go), then becomes the proxy user and execs pilot-agent. The benchmark sets the task's env to
# the environment the driver gave pilot-agent in the same run.

variable "count" {
  type        = number
  default     = 1
  description = "How many groups start at once on the node."
}

variable "pilot_agent" {
  type        = string
  description = "Path of the pilot-agent binary the driver runs."
}

variable "bootstrap_template" {
  type        = string
  description = "Path of Istio's envoy_bootstrap_tmpl.json."
}

variable "root_cert" {
  type        = string
  description = "Path of the mesh root certificate on the host."
}

job "bench-raw-exec" {
  datacenters = ["*"]
  type        = "service"

  group "plain" {
    count = var.count

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

    task "sidecar" {
      driver = "raw_exec"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      config {
        command = "/bin/sh"
        args = ["-c", <<-EOT
          set -e
          mkdir -p etc/istio/proxy var/run/secrets/istio var/lib/istio/data etc/certs
          cp "$3" var/run/secrets/istio/root-cert.pem
          chown -R 1337:1337 etc var
          exec setpriv --reuid=1337 --regid=1337 --clear-groups "$1" proxy sidecar --proxyLogLevel=warning --templateFile="$2"
          EOT
          , "sh", var.pilot_agent, var.bootstrap_template, var.root_cert]
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
