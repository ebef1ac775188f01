package driver

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// EncodeTaskConfigHCL takes the body of a jobspec's config block and encodes it into cfg the way Nomad does
// (HCL2 attributes to a map, the map through the driver's schema with its defaults, then msgpack), so that
// the operator CLI and the tests see exactly what StartTask will see.
func EncodeTaskConfigHCL(body string, cfg *drivers.TaskConfig) error {
	file, diags := hclsyntax.ParseConfig([]byte(body), "config", hcl.InitialPos)
	if diags.HasErrors() {
		return fmt.Errorf("parsing the config block: %s", diags.Error())
	}
	attrs, diags := file.Body.JustAttributes()
	if diags.HasErrors() {
		return fmt.Errorf("parsing the config block: %s", diags.Error())
	}
	values := map[string]cty.Value{}
	for name, a := range attrs {
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			return fmt.Errorf("config block: %s: %s", name, diags.Error())
		}
		values[name] = v
	}
	obj := cty.ObjectVal(values)
	raw, err := ctyjson.Marshal(obj, obj.Type())
	if err != nil {
		return fmt.Errorf("config block: %w", err)
	}
	var flat map[string]any
	if err := json.Unmarshal(raw, &flat); err != nil {
		return fmt.Errorf("config block: %w", err)
	}
	// Nomad's jobspec parser hands an object value on as a list holding that object (HCL1's block form), which
	// is why map-valued keys are declared list(map(string)) and decoded with hclutils.MapStrStr.
	for k, v := range flat {
		if m, ok := v.(map[string]any); ok {
			flat[k] = []any{m}
		}
	}
	spec, diags := hclspecutils.Convert(taskConfigSpec)
	if diags.HasErrors() {
		return fmt.Errorf("the task config schema: %s", diags.Error())
	}
	val, diags, errs := hclutils.ParseHclInterface(flat, spec, nil)
	if diags.HasErrors() {
		return fmt.Errorf("config block: %w", errors.Join(errs...))
	}
	return cfg.EncodeDriverConfig(val)
}
