# TestCluster_NodesReachEachOther: a bridge-mode group on one node of the cluster, its port mapped on the node.

variable "testapp_path" {
  type = string
}

variable "node" {
  type = string
}

job "cluster-web" {
  datacenters = ["*"]
  type        = "service"

  constraint {
    attribute = "${node.unique.name}"
    value     = var.node
  }

  group "web" {
    network {
      mode = "bridge"
      port "http" { to = 8080 }
    }

    service {
      provider = "nomad"
      name     = "cluster-web"
      port     = "http"
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
