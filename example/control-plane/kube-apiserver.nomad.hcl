# Istio's API server: Kubernetes' kube-apiserver as a config store only (no kubelet, scheduler or
# controller-manager), storing in the etcd job, found through its Nomad service.
#
#   istio-sidecar-controller bootstrap -dir ~/mesh -crds crd-all.gen.yaml   # Variable nomad/jobs/kube-apiserver@istio-system
#   nomad job run -var kube_apiserver_command=/usr/local/bin/kube-apiserver kube-apiserver.nomad.hcl

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "driver" {
  description = "exec (chroot, var.user) or raw_exec"
  type        = string
  default     = "exec"
}

variable "kube_apiserver_command" {
  description = "kube-apiserver (built by build/kube-apiserver.sh); inside the chroot under exec"
  type        = string
  default     = "/usr/local/bin/kube-apiserver"
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

variable "service_account_issuer" {
  description = "iss of the tokens it mints; also the first API audience"
  type        = string
  default     = "https://kube-apiserver.service.nomad"
}

job "kube-apiserver" {
  namespace   = "istio-system"
  datacenters = var.datacenters
  type        = "service"

  group "kube-apiserver" {
    count = 1

    network {
      port "https" { static = 6443 }
    }

    # Stateless: after a few quick failures, let Nomad place it again (elsewhere if need be).
    restart {
      attempts = 3
      interval = "5m"
      delay    = "5s"
      mode     = "fail"
    }

    service {
      provider = "nomad"
      name     = "kube-apiserver"
      port     = "https"

      # A TCP check: Nomad's own checks verify https against the system roots only and cannot skip
      # verification, and the API server serves nothing over plain HTTP. /readyz, which anonymous requests may
      # reach (local/authentication.yaml), is what a Consul check or a load balancer should probe.
      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "kube-apiserver" {
      driver = var.driver
      user   = var.user

      config {
        command = var.kube_apiserver_command
        args = [
          "--etcd-servers=${ETCD_SERVERS}",
          "--etcd-cafile=${NOMAD_SECRETS_DIR}/etcd-ca.pem",
          "--etcd-certfile=${NOMAD_SECRETS_DIR}/etcd-client.pem",
          "--etcd-keyfile=${NOMAD_SECRETS_DIR}/etcd-client-key.pem",
          "--bind-address=${NOMAD_IP_https}",
          "--advertise-address=${NOMAD_IP_https}",
          "--secure-port=${NOMAD_PORT_https}",
          "--tls-cert-file=${NOMAD_SECRETS_DIR}/serving.pem",
          "--tls-private-key-file=${NOMAD_SECRETS_DIR}/serving-key.pem",
          # Clients (the bootstrap's admin, istiod, the controller) authenticate with certificates of this CA.
          "--client-ca-file=${NOMAD_SECRETS_DIR}/client-ca.pem",
          "--authentication-config=${NOMAD_TASK_DIR}/authentication.yaml",
          "--authorization-mode=RBAC",
          "--service-account-issuer=${var.service_account_issuer}",
          "--service-account-key-file=${NOMAD_SECRETS_DIR}/sa.pub",
          "--service-account-signing-key-file=${NOMAD_SECRETS_DIR}/sa.key",
          # istiod's CA reviews each sidecar's token for the audience istio-ca.
          "--api-audiences=${var.service_account_issuer},istio-ca",
          # Required by the API server, unused here: no Service gets traffic from it.
          "--service-cluster-ip-range=10.96.0.0/16",
          # No in-cluster clients: do not publish this address as the kubernetes Service's endpoint.
          "--endpoint-reconciler-type=none",
        ]
      }

      # The etcd members, through etcd's Nomad service. Empty until etcd registers: the API server then exits
      # and is restarted, and the template restarts it again when the members change.
      template {
        destination = "local/etcd.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          ETCD_SERVERS={{ range $i, $s := nomadService "etcd" }}{{ if $i }},{{ end }}https://{{ .Address }}:{{ .Port }}{{ end }}
        EOT
      }

      template {
        destination = "local/authentication.yaml"
        change_mode = "restart"
        data        = <<-EOT
          apiVersion: apiserver.config.k8s.io/v1
          kind: AuthenticationConfiguration
          anonymous:
            enabled: true
            conditions:
            - path: /livez
            - path: /readyz
            - path: /healthz
        EOT
      }

      template {
        destination = "secrets/etcd-ca.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/kube-apiserver\" }}{{ .etcd_ca_cert }}{{ end }}"
      }
      template {
        destination = "secrets/etcd-client.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/kube-apiserver\" }}{{ .etcd_client_cert }}{{ end }}"
      }
      template {
        destination = "secrets/etcd-client-key.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/kube-apiserver\" }}{{ .etcd_client_key }}{{ end }}"
      }
      template {
        destination = "secrets/serving.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/kube-apiserver\" }}{{ .serving_cert }}{{ end }}"
      }
      template {
        destination = "secrets/serving-key.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/kube-apiserver\" }}{{ .serving_key }}{{ end }}"
      }
      template {
        destination = "secrets/client-ca.pem"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/kube-apiserver\" }}{{ .client_ca_cert }}{{ end }}"
      }
      template {
        destination = "secrets/sa.key"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/kube-apiserver\" }}{{ .sa_signing_key }}{{ end }}"
      }
      template {
        destination = "secrets/sa.pub"
        perms       = "0400"
        uid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/kube-apiserver\" }}{{ .sa_public_key }}{{ end }}"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
