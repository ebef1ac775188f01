package main

import (
	_ "github.com/coreos/go-iptables/iptables"
	_ "github.com/hashicorp/go-hclog"
	_ "github.com/hashicorp/go-plugin"
	_ "github.com/hashicorp/nomad/drivers/shared/executor"
	_ "github.com/hashicorp/nomad/plugins"
	_ "github.com/hashicorp/nomad/plugins/drivers/testutils"
	_ "github.com/hashicorp/nomad/helper/testlog"
	_ "github.com/containernetworking/plugins/pkg/ns"
	_ "github.com/hashicorp/hcl/v2/hclsimple"
)

func main() {}
