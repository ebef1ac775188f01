# make demo: the service the meshed app calls. A plain bridge-mode group (no sidecar) running `testapp serve`
# in its own network namespace; the demo reads its address from the allocation's network status.

variable "testapp_path" {
  type        = string
  description = "The testapp binary (go build -o bin/testapp ./testdoubles/testapp)."
}

job "demo-upstream" {
  datacenters = ["*"]
  type        = "service"

  group "upstream" {
    network {
      mode = "bridge"
    }

    task "server" {
      driver = "raw_exec"

      config {
        command = var.testapp_path
        args    = ["serve", "-addr", "0.0.0.0:8080"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
