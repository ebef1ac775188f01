# TestMeshAcrossNodes: meshed service A (bridge mode), pinned to one node, with DNS capture: its client resolves
# call_target (B's mesh name) through pilot-agent's DNS proxy and calls it every second; the stand-in Envoy logs
# the captured connections to connections.jsonl in the allocation's shared directory. Its identity is the
# group's Variable nomad/jobs/mesh-a/app, which the identity controller writes.

variable "testapp_path" {
  type = string
}

variable "node" {
  type        = string
  description = "The node (its unique name) A runs on."
}

variable "call_target" {
  type        = string
  description = "HOST:PORT the client calls: B's name in the mesh."
}

job "mesh-a" {
  datacenters = ["*"]
  type        = "service"

  constraint {
    attribute = "${node.unique.name}"
    value     = var.node
  }

  group "app" {
    network {
      mode = "bridge"
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
        service_account    = "mesh-a"
        canonical_service  = "mesh-a"
        canonical_revision = "v1"
        labels = {
          app     = "mesh-a"
          version = "v1"
        }
        drain_duration    = "1s"
        discovery_address = "${ISTIOD_ADDR}"
        # The app's DNS goes to pilot-agent's DNS proxy (15053), which answers mesh names from istiod's name table.
        dns_capture = true
      }

      env {
        STANDIN_ENVOY_CONNECTION_LOG = "${NOMAD_ALLOC_DIR}/connections.jsonl"
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }

    task "client" {
      driver = "raw_exec"

      config {
        command = var.testapp_path
        args    = ["call", "-target", var.call_target, "-every", "1s"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
