package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// Author is who wrote a ProxyConfig layer, which decides what it may set (policy.go).
type Author int

const (
	// Fleet is the plugin config's proxy_config: the operator, trusted with anything but the driver's fields.
	Fleet Author = iota
	// Job is a task config's proxy_config: a job author, held to the allow-list.
	Job
)

// Size bounds, checked before any parsing: YAML's duplicate-key check is quadratic in the number of keys.
const (
	MaxJobProxyConfig   = 32 << 10
	MaxFleetProxyConfig = 64 << 10
	// maxArgStrlen is the kernel's MAX_ARG_STRLEN (32 pages): the longest one environment string
	// ("PROXY_CONFIG=" and the document, with its NUL) that execve accepts.
	maxArgStrlen = 32 * 4096
)

// ProxyConfigLayer is one parsed proxy_config.
type ProxyConfigLayer struct {
	pc *meshconfig.ProxyConfig
}

// ParseProxyConfig checks one author's proxy_config (YAML, in the JSON or the proto spelling of the field
// names, as pilot-agent accepts) and refuses what that author may not set, naming the field. typed maps the
// canonical (proto) name of a field that a typed setting decides to that setting, for the error; a field
// missing there is decided by the author's policy.
func ParseProxyConfig(field string, who Author, doc string, typed map[string]string) (ProxyConfigLayer, error) {
	limit := MaxJobProxyConfig
	if who == Fleet {
		limit = MaxFleetProxyConfig
	}
	if len(doc) > limit {
		return ProxyConfigLayer{}, fmt.Errorf("%s: %d bytes; a proxy_config is at most %d bytes", field, len(doc), limit)
	}
	pc := &meshconfig.ProxyConfig{}
	if strings.TrimSpace(doc) == "" {
		return ProxyConfigLayer{pc: pc}, nil
	}
	js, named, err := toJSON(doc)
	if err != nil {
		return ProxyConfigLayer{}, fmt.Errorf("%s: %w", field, err)
	}
	fields, err := resolveNames(named)
	if err != nil {
		return ProxyConfigLayer{}, fmt.Errorf("%s: %w", field, err)
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, pc); err != nil {
		return ProxyConfigLayer{}, fmt.Errorf("%s: not a ProxyConfig: %w", field, err)
	}
	// Named in the YAML (even with a zero value, which leaves no trace in the message) or populated.
	pc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if _, ok := fields[fd.Name()]; !ok {
			fields[fd.Name()] = string(fd.JSONName())
		}
		return true
	})
	if err := checkFields(who, fields, typed); err != nil {
		return ProxyConfigLayer{}, fmt.Errorf("%s: %w", field, err)
	}
	if err := checkNested(who, pc.ProtoReflect(), ""); err != nil {
		return ProxyConfigLayer{}, fmt.Errorf("%s: %w", field, err)
	}
	return ProxyConfigLayer{pc: pc}, nil
}

// toJSON turns the YAML document into JSON, as pilot-agent does before parsing, and returns the keys at its
// top level as written.
func toJSON(doc string) ([]byte, []string, error) {
	var v any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		return nil, nil, fmt.Errorf("not a YAML mapping of ProxyConfig fields: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, nil, errors.New("not a YAML mapping of ProxyConfig fields")
	}
	js, err := json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("not a YAML mapping of ProxyConfig fields: %w", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return js, keys, nil
}

var proxyConfigFields = (&meshconfig.ProxyConfig{}).ProtoReflect().Descriptor().Fields()

// resolveNames maps each key, in either spelling, to its field's canonical name.
func resolveNames(keys []string) (map[protoreflect.Name]string, error) {
	out := make(map[protoreflect.Name]string, len(keys))
	for _, k := range keys {
		fd := proxyConfigFields.ByJSONName(k)
		if fd == nil {
			fd = proxyConfigFields.ByName(protoreflect.Name(k))
		}
		if fd == nil {
			return nil, fmt.Errorf("unknown ProxyConfig field %q", k)
		}
		if prev, dup := out[fd.Name()]; dup {
			return nil, fmt.Errorf("%s and %s are the same ProxyConfig field (%s)", prev, k, fd.Name())
		}
		out[fd.Name()] = k
	}
	return out, nil
}

// MergeProxyConfig lays the job's layer over the fleet's as pilot-agent lays one ProxyConfig source over
// another (pkg/config/mesh MergeProxyConfig): a field the job sets replaces the fleet's whole, lists and maps
// included, except proxy_headers, whose forwarded_client_cert, request_id, attempt_count, server and
// envoy_debug_headers keep the fleet's where the job's leave them unset. (pilot-agent also merges
// proxy_metadata key by key; a job cannot set it.)
func MergeProxyConfig(fleet, job ProxyConfigLayer) *meshconfig.ProxyConfig {
	out := &meshconfig.ProxyConfig{}
	dst := out.ProtoReflect()
	for _, l := range []ProxyConfigLayer{fleet, job} {
		if l.pc == nil {
			continue
		}
		l.pc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			dst.Set(fd, v)
			return true
		})
	}
	if f, j := fleet.pc.GetProxyHeaders(), job.pc.GetProxyHeaders(); f != nil && j != nil {
		ph := cloneHeaders(j)
		if ph.ForwardedClientCert == meshconfig.ForwardClientCertDetails_UNDEFINED {
			ph.ForwardedClientCert = f.ForwardedClientCert
		}
		ph.RequestId = orDefault(ph.RequestId, f.RequestId)
		ph.AttemptCount = orDefault(ph.AttemptCount, f.AttemptCount)
		ph.Server = orDefault(ph.Server, f.Server)
		ph.EnvoyDebugHeaders = orDefault(ph.EnvoyDebugHeaders, f.EnvoyDebugHeaders)
		out.ProxyHeaders = ph
	}
	return out
}

// Owned are the ProxyConfig fields the driver sets last, whatever the layers say.
type Owned struct {
	BinaryPath, ConfigPath string
	AdminPort, StatusPort  int32
}

// RenderProxyConfig sets the driver's fields and encodes the PROXY_CONFIG document (JSON, which pilot-agent
// reads as the YAML it is), refusing one that execve could not pass.
func RenderProxyConfig(pc *meshconfig.ProxyConfig, owned Owned) (string, error) {
	pc.BinaryPath, pc.ConfigPath = owned.BinaryPath, owned.ConfigPath
	pc.ProxyAdminPort, pc.StatusPort = owned.AdminPort, owned.StatusPort
	pc.CustomConfigFile, pc.ProxyBootstrapTemplatePath = "", ""
	raw, err := protojson.Marshal(pc)
	if err != nil {
		return "", fmt.Errorf("encoding PROXY_CONFIG: %w", err)
	}
	// protojson varies its spacing on purpose; the environment must be the same on every start.
	var doc bytes.Buffer
	if err := json.Compact(&doc, raw); err != nil {
		return "", fmt.Errorf("encoding PROXY_CONFIG: %w", err)
	}
	if n := len("PROXY_CONFIG=") + doc.Len() + 1; n > maxArgStrlen {
		return "", fmt.Errorf("PROXY_CONFIG: the merged proxy_config (plugin's and job's) takes %d bytes as one environment "+
			"variable; the kernel passes at most %d (MAX_ARG_STRLEN)", n, maxArgStrlen)
	}
	return doc.String(), nil
}
