# TestMeshAcrossNodes: meshed service B (bridge mode, every inbound port captured), pinned to one node. Its
# identity is the group's Variable nomad/jobs/mesh-b/app, which the identity controller writes; its Nomad check
# reaches the app through pilot-agent's status port (app_prober), and /healthz answers 503 while the file
# unhealthy exists in the allocation's shared directory. The stand-in Envoy logs every captured connection to
# connections.jsonl in that directory.

variable "testapp_path" {
  type = string
}

variable "node" {
  type        = string
  description = "The node (its unique name) B runs on."
}

variable "count" {
  type    = number
  default = 1
}

job "mesh-b" {
  datacenters = ["*"]
  type        = "service"

  constraint {
    attribute = "${node.unique.name}"
    value     = var.node
  }

  group "app" {
    count = var.count

    # A deployment is done once the new allocations' checks have passed for a second: the scenario scales B
    # up and down, which Nomad allows only between deployments.
    update {
      min_healthy_time = "1s"
    }

    network {
      mode = "bridge"
      port "http" { to = 8080 }
      port "istio-status" { to = 15020 }
    }

    service {
      provider = "nomad"
      name     = "mesh-b"
      tags     = ["protocol=http"]
      port     = "http"

      check {
        type     = "http"
        port     = "istio-status"
        path     = "/app-health/server/readyz"
        interval = "1s"
        timeout  = "1s"
      }
    }

    task "istio-proxy" {
      driver = "istio-sidecar"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      template {
        destination = "secrets/root-cert.pem"
        perms       = "0400"
        change_mode = "restart"
        data        = <<-EOT
          {{- with nomadVar (printf "nomad/jobs/%s/%s" (env "NOMAD_JOB_ID") (env "NOMAD_GROUP_NAME")) }}{{ .root_cert }}{{ end }}
        EOT
      }

      template {
        destination = "secrets/istio-token"
        perms       = "0400"
        change_mode = "noop"
        data        = <<-EOT
          {{- with nomadVar (printf "nomad/jobs/%s/%s" (env "NOMAD_JOB_ID") (env "NOMAD_GROUP_NAME")) }}{{ .istio_token }}{{ end }}
        EOT
      }

      template {
        destination = "secrets/istiod.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{- with nomadVar (printf "nomad/jobs/%s/%s" (env "NOMAD_JOB_ID") (env "NOMAD_GROUP_NAME")) }}ISTIOD_ADDR={{ .discovery_address }}{{ end }}
        EOT
      }

      config {
        namespace          = "default"
        service_account    = "mesh-b"
        canonical_service  = "mesh-b"
        canonical_revision = "v1"
        labels = {
          app     = "mesh-b"
          version = "v1"
        }
        drain_duration        = "1s"
        include_inbound_ports = ["*"]
        discovery_address     = "${ISTIOD_ADDR}"
        app_prober {
          name = "server"
          path = "/healthz"
          port = 8080
        }
      }

      env {
        STANDIN_ENVOY_CONNECTION_LOG = "${NOMAD_ALLOC_DIR}/connections.jsonl"
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }

    task "server" {
      driver = "raw_exec"

      config {
        command = var.testapp_path
        args    = ["serve", "-addr", "0.0.0.0:8080", "-unhealthy-if", "${NOMAD_ALLOC_DIR}/unhealthy"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
