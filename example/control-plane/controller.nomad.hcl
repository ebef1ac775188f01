# The istio-sidecar controller: gives every meshed group its identity (a TokenRequest token for its Istio
# namespace and service account, with the mesh root) in the Variable only that group reads,
# nomad/jobs/<job>/<group>. Its credentials come from its own Variable, which bootstrap writes:
#
#   nomad var put -namespace istio-system nomad/jobs/istio-sidecar-controller \
#     nomad_token=<SecretID> apiserver_ca_cert=@apiserver-ca.pem client_cert=@controller.pem \
#     client_key=@controller-key.pem root_cert=@root-cert.pem
#   nomad job run -var controller_command=/usr/local/bin/istio-sidecar-controller controller.nomad.hcl
#
# nomad_token is a Nomad ACL token with the controller's policy (README "The controller"); the client
# certificate is the API-server identity istio-sidecar:controller of rbac/controller.yaml.

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "driver" {
  description = "exec (chroot, var.user) or raw_exec"
  type        = string
  default     = "exec"
}

variable "controller_command" {
  description = "istio-sidecar-controller (go build ./cmd/istio-sidecar-controller); inside the chroot under exec"
  type        = string
  default     = "/usr/local/bin/istio-sidecar-controller"
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

variable "apiserver_name" {
  description = "The name the API server's serving certificate carries (the kubeconfig's tls-server-name)"
  type        = string
  default     = "kube-apiserver.service.nomad"
}

variable "nomad_addr" {
  description = <<-EOT
    Nomad's HTTP API; by default the local agent's on its node address. (Nomad 1.6.3's api package cannot
    dial the task API socket, unix://.) With TLS, an https:// address and the CLI's NOMAD_CACERT in env.
  EOT
  type        = string
  default     = "http://$${attr.unique.network.ip-address}:4646"
}

variable "token_ttl" {
  description = "Lifetime of each group's token (the API server's minimum is 10m)"
  type        = string
  default     = "1h"
}

variable "refresh_before" {
  description = "Replace a token this long before it expires (up to token_ttl); empty: a third of token_ttl"
  type        = string
  default     = ""
}

variable "namespace_policy" {
  description = "JSON {\"<nomad ns>\": [\"<istio ns>\", ...]}; empty: each Nomad namespace may claim its own name only"
  type        = string
  default     = ""
}

job "istio-sidecar-controller" {
  namespace   = "istio-system"
  datacenters = var.datacenters
  type        = "service"

  group "controller" {
    # One writer: two would race on the same Variables (check-and-set keeps them correct, not quiet).
    count = 1

    # Stateless (its state is the Variables it wrote): after a few quick failures, let Nomad place it again.
    # Tokens already written stay valid for their TTL meanwhile.
    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "fail"
    }

    task "controller" {
      driver = var.driver
      user   = var.user

      config {
        command = var.controller_command
        args = concat([
          "run",
          "-kubeconfig=${NOMAD_SECRETS_DIR}/kubeconfig",
          "-nomad-token-file=${NOMAD_SECRETS_DIR}/nomad-token",
          "-root-cert=${NOMAD_SECRETS_DIR}/root-cert.pem",
          "-token-ttl=${var.token_ttl}",
          # istiod's address from its Nomad service (below), for the groups' Variables: their templates cannot
          # read a service of istio-system.
          "-discovery-address=${ISTIOD_ADDR}",
          ], var.refresh_before == "" ? [] : ["-refresh-before=${var.refresh_before}"],
        var.namespace_policy == "" ? [] : ["-namespace-policy=${NOMAD_TASK_DIR}/namespace-policy.json"])
      }

      env {
        NOMAD_ADDR = var.nomad_addr
      }

      # istiod's address, from its Nomad service in this namespace; a move restarts the controller, which writes
      # the new address into every group's Variable. Empty until istiod is registered.
      template {
        destination = "local/istiod.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          ISTIOD_ADDR={{ with nomadService "istiod" }}{{ with index . 0 }}{{ .Address }}:{{ .Port }}{{ end }}{{ end }}
        EOT
      }

      template {
        destination = "local/namespace-policy.json"
        change_mode = "restart"
        data        = var.namespace_policy == "" ? "{}" : var.namespace_policy
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
          - name: istio-sidecar-controller
            user:
              client-certificate: client.pem
              client-key: client-key.pem
          contexts:
          - name: mesh
            context: {cluster: mesh, user: istio-sidecar-controller}
          current-context: mesh
        EOT
      }
      template {
        destination = "secrets/nomad-token"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istio-sidecar-controller\" }}{{ .nomad_token }}{{ end }}"
      }
      template {
        destination = "secrets/apiserver-ca.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istio-sidecar-controller\" }}{{ .apiserver_ca_cert }}{{ end }}"
      }
      template {
        destination = "secrets/client.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istio-sidecar-controller\" }}{{ .client_cert }}{{ end }}"
      }
      template {
        destination = "secrets/client-key.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istio-sidecar-controller\" }}{{ .client_key }}{{ end }}"
      }
      template {
        destination = "secrets/root-cert.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/istio-sidecar-controller\" }}{{ .root_cert }}{{ end }}"
      }

      # SIGTERM ends the loop between two API calls; nothing is left half-written (check-and-set).
      kill_timeout = "30s"

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
