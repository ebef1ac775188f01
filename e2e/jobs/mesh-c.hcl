# TestMeshAcrossNodes: a plain Nomad service C (no sidecar, the host's network), pinned to one node. The
# registration makes it a ServiceEntry whose endpoint is its registration, which meshed clients call in
# plaintext.

variable "testapp_path" {
  type = string
}

variable "node" {
  type        = string
  description = "The node (its unique name) C runs on."
}

job "mesh-c" {
  datacenters = ["*"]
  type        = "service"

  constraint {
    attribute = "${node.unique.name}"
    value     = var.node
  }

  group "plain" {
    network {
      port "http" {}
    }

    service {
      provider = "nomad"
      name     = "mesh-c"
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
