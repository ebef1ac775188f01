package driver

import (
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/helper/testlog"
)

func testLogger(t *testing.T) hclog.Logger { return testlog.HCLogger(t) }
