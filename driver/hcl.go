package driver

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	ctymsgpack "github.com/zclconf/go-cty/cty/msgpack"
)

// EncodeTaskConfigHCL takes the body of a jobspec's config block and encodes it into cfg the way Nomad does
// (HCL2 attributes to a map, the map through the driver's schema with its defaults, then msgpack), so that
// the operator CLI and the tests see exactly what StartTask will see.
func EncodeTaskConfigHCL(body string, cfg *drivers.TaskConfig) error {
	val, err := decodeHCLBody(body, "config block", taskConfigSpec)
	if err != nil {
		return err
	}
	return cfg.EncodeDriverConfig(val)
}

// pluginConfigHCL takes the body of a client's plugin "istio-sidecar" { config { ... } } block and decodes it
// as the Nomad agent hands it to SetConfig: through the plugin's schema and its defaults, then msgpack.
func pluginConfigHCL(body string) (Config, error) {
	val, err := decodeHCLBody(body, "plugin config", configSpec)
	if err != nil {
		return Config{}, err
	}
	data, err := ctymsgpack.Marshal(val, val.Type())
	if err != nil {
		return Config{}, fmt.Errorf("plugin config: %w", err)
	}
	return decodePluginConfig(data)
}

// decodePluginConfig decodes the msgpack plugin config Nomad sends over the plugin's defaults.
func decodePluginConfig(data []byte) (Config, error) {
	c := defaultConfig()
	if len(data) != 0 {
		if err := base.MsgPackDecode(data, &c); err != nil {
			return c, fmt.Errorf("decoding the %s plugin config: %w", PluginName, err)
		}
	}
	return c, nil
}

// decodeHCLBody parses an HCL body and decodes it through spec as Nomad does: to a map first, where an
// object value or a block becomes a list holding that object (HCL1's block form, which is how Nomad's
// parsers hand them on), then through the schema with its defaults.
func decodeHCLBody(src, what string, schema *hclspec.Spec) (cty.Value, error) {
	file, diags := hclsyntax.ParseConfig([]byte(src), what, hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("parsing the %s: %s", what, diags.Error())
	}
	flat, err := bodyMap(file.Body.(*hclsyntax.Body), what)
	if err != nil {
		return cty.NilVal, err
	}
	spec, diags := hclspecutils.Convert(schema)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("the %s schema: %s", what, diags.Error())
	}
	val, diags, errs := hclutils.ParseHclInterface(flat, spec, nil)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("%s: %w", what, errors.Join(errs...))
	}
	return val, nil
}

// bodyMap turns a body's attributes and unlabelled blocks into the map Nomad's decoding starts from.
func bodyMap(body *hclsyntax.Body, what string) (map[string]any, error) {
	values := map[string]cty.Value{}
	for name, a := range body.Attributes {
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			return nil, fmt.Errorf("%s: %s: %s", what, name, diags.Error())
		}
		values[name] = v
	}
	obj := cty.ObjectVal(values)
	raw, err := ctyjson.Marshal(obj, obj.Type())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var flat map[string]any
	if err := json.Unmarshal(raw, &flat); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// Map-valued keys are declared list(map(string)) and decoded with hclutils.MapStrStr for this reason.
	for k, v := range flat {
		if m, ok := v.(map[string]any); ok {
			flat[k] = []any{m}
		}
	}
	for _, b := range body.Blocks {
		if len(b.Labels) > 0 {
			return nil, fmt.Errorf("%s: block %q takes no labels", what, b.Type)
		}
		inner, err := bodyMap(b.Body, what+": "+b.Type)
		if err != nil {
			return nil, err
		}
		list, _ := flat[b.Type].([]any)
		flat[b.Type] = append(list, inner)
	}
	return flat, nil
}
