# A job whose template names another group's Variable (var.target): with ACLs on, its workload identity may not
# read it, so the template blocks and the task never starts. Nothing of the Variable is rendered.

variable "target" {
  type = string
}

job "snoop-token" {
  type = "service"

  group "snoop" {
    task "snoop" {
      driver = "raw_exec"

      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }

      template {
        destination = "secrets/stolen"
        data        = "{{ with nomadVar \"${var.target}\" }}{{ .istio_token }}{{ end }}"
      }

      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
