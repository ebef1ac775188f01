# istiod (Istio's pilot-discovery), unmodified, with Istio's API server as its config store, found through the
# kube-apiserver job's Nomad service, and a plugged-in CA: an intermediate whose root key never enters Nomad.
#
#   istio-sidecar-controller bootstrap -dir ~/mesh -crds crd-all.gen.yaml   # Variable nomad/jobs/istiod@istio-system
#   nomad job run -var istiod_command=/usr/local/bin/pilot-discovery istiod.nomad.hcl
#
# Sidecars find it through the Nomad service "istiod" (an address, no DNS name): they dial the service's
# address and check istiod's certificate for var.istiod_host (pilot-agent's ISTIOD_SAN).

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "driver" {
  description = "exec (chroot, var.user) or raw_exec"
  type        = string
  default     = "exec"
}

variable "istiod_command" {
  description = "pilot-discovery (built by build/istiod.sh); inside the chroot under exec"
  type        = string
  default     = "/usr/local/bin/pilot-discovery"
}

variable "user" {
  type    = string
  default = "nobody"
}

variable "uid" {
  description = "var.user's UID: the templates give it its secrets"
  type        = number
  default     = 65534
}

variable "istiod_host" {
  description = "Extra name on istiod's serving certificate (ISTIOD_CUSTOM_HOST), which sidecars verify"
  type        = string
  default     = "istiod.service.nomad"
}

variable "apiserver_name" {
  description = "The name the API server's serving certificate carries (the kubeconfig's tls-server-name)"
  type        = string
  default     = "kube-apiserver.service.nomad"
}

variable "cluster_id" {
  type    = string
  default = "nomad"
}

variable "trust_domain" {
  type    = string
  default = "cluster.local"
}

job "istiod" {
  namespace   = "istio-system"
  datacenters = var.datacenters
  type        = "service"

  group "istiod" {
    count = 1

    network {
      port "grpc" { static = 15012 }
      port "http" { static = 8080 }
      port "monitoring" { static = 15014 }
    }

    # Stateless: after a few quick failures, let Nomad place it again. Sidecars keep their config and
    # certificates meanwhile and reconnect.
    restart {
      attempts = 3
      interval = "5m"
      delay    = "5s"
      mode     = "fail"
    }

    service {
      provider = "nomad"
      name     = "istiod"
      port     = "grpc"

      check {
        type     = "http"
        port     = "http"
        path     = "/ready"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "istiod" {
      driver = var.driver
      user   = var.user

      config {
        command = var.istiod_command
        args = [
          "discovery",
          "--kubeconfig=${NOMAD_SECRETS_DIR}/kubeconfig",
          "--meshConfig=${NOMAD_TASK_DIR}/mesh.yaml",
          "--clusterID=${var.cluster_id}",
          # 15010 is plaintext xDS with no authentication: off.
          "--grpcAddr=",
          "--secureGRPCAddr=${NOMAD_ADDR_grpc}",
          # /ready for Nomad's check; debug endpoints are off (ENABLE_DEBUG_ON_HTTP).
          "--httpAddr=${NOMAD_ADDR_http}",
          # Webhooks: nothing calls them here. Kept on loopback rather than folded into the plain HTTP port.
          "--httpsAddr=127.0.0.1:15017",
          "--monitoringAddr=${NOMAD_ADDR_monitoring}",
        ]
      }

      env {
        # Stable per allocation index, so a restarted istiod takes its leader-election locks back at once.
        POD_NAME             = "istiod-${NOMAD_ALLOC_INDEX}"
        POD_NAMESPACE        = "istio-system"
        REVISION             = "default"
        ROOT_CA_DIR          = "${NOMAD_SECRETS_DIR}/cacerts"
        ISTIOD_CUSTOM_HOST   = var.istiod_host
        ENABLE_DEBUG_ON_HTTP = "false"
      }

      template {
        destination = "local/mesh.yaml"
        change_mode = "restart"
        data        = <<-EOT
          trustDomain: ${var.trust_domain}
        EOT
      }

      # Relative paths in a kubeconfig are relative to the file: the credentials sit beside it.
      template {
        destination = "secrets/kubeconfig"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = <<-EOT
          apiVersion: v1
          kind: Config
          clusters:
          - name: mesh
            cluster:
              server: https://{{ with nomadService "kube-apiserver" }}{{ with index . 0 }}{{ .Address }}:{{ .Port }}{{ end }}{{ end }}
              certificate-authority: apiserver-ca.pem
              tls-server-name: ${var.apiserver_name}
          users:
          - name: istiod
            user:
              client-certificate: client.pem
              client-key: client-key.pem
          contexts:
          - name: mesh
            context: {cluster: mesh, user: istiod}
          current-context: mesh
        EOT
      }
      template {
        destination = "secrets/apiserver-ca.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istiod\" }}{{ .apiserver_ca_cert }}{{ end }}"
      }
      template {
        destination = "secrets/client.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istiod\" }}{{ .client_cert }}{{ end }}"
      }
      template {
        destination = "secrets/client-key.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istiod\" }}{{ .client_key }}{{ end }}"
      }

      # The plugged-in CA (Istio's cacerts layout). istiod watches ROOT_CA_DIR, but the four files are
      # rendered one by one: a restart never sees a certificate beside another's key.
      template {
        destination = "secrets/cacerts/ca-cert.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istiod\" }}{{ .ca_cert }}{{ end }}"
      }
      template {
        destination = "secrets/cacerts/ca-key.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istiod\" }}{{ .ca_key }}{{ end }}"
      }
      template {
        destination = "secrets/cacerts/cert-chain.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istiod\" }}{{ .cert_chain }}{{ end }}"
      }
      template {
        destination = "secrets/cacerts/root-cert.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istiod\" }}{{ .root_cert }}{{ end }}"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 1000
        memory = 512
      }
    }
  }
}
