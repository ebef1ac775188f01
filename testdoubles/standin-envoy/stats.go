package main

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

type statKind int

const (
	counter statKind = iota
	gauge
)

// stat is one Envoy counter or gauge. used mirrors Envoy's "used" flag: set on the first write, even of 0,
// which is what /stats?usedonly filters on. pilot-agent's probes always ask for usedonly.
type stat struct {
	kind  statKind
	value atomic.Uint64
	used  atomic.Bool
}

func (s *stat) add(n int64)  { s.value.Add(uint64(n)); s.used.Store(true) }
func (s *stat) set(v uint64) { s.value.Store(v); s.used.Store(true) }

type statStore struct {
	mu    sync.Mutex
	stats map[string]*stat
}

func newStatStore() *statStore { return &statStore{stats: map[string]*stat{}} }

func (s *statStore) get(name string, kind statKind) *stat {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.stats[name]
	if !ok {
		st = &stat{kind: kind}
		s.stats[name] = st
	}
	return st
}

func (s *statStore) counter(name string) *stat { return s.get(name, counter) }
func (s *statStore) gauge(name string) *stat   { return s.get(name, gauge) }

type statValue struct {
	name  string
	kind  statKind
	value uint64
}

// snapshot returns the stats sorted by name, filtered as Envoy's /stats does: usedonly drops stats never
// written, filter is an RE2 pattern searched anywhere in the name (pilot-agent anchors its own with ^).
func (s *statStore) snapshot(usedOnly bool, filter *regexp.Regexp) []statValue {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]statValue, 0, len(s.stats))
	for name, st := range s.stats {
		if usedOnly && !st.used.Load() {
			continue
		}
		if filter != nil && !filter.MatchString(name) {
			continue
		}
		out = append(out, statValue{name: name, kind: st.kind, value: st.value.Load()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// renderText writes Envoy's plain /stats format, "name: value" per line, which pilot-agent's
// pilot/cmd/pilot-agent/status/util/stats.go splits on ":" and parses as uint64.
func renderText(w io.Writer, stats []statValue) error {
	var b strings.Builder
	for _, s := range stats {
		fmt.Fprintf(&b, "%s: %d\n", s.name, s.value)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func renderJSON(w io.Writer, stats []statValue) error {
	type entry struct {
		Name  string `json:"name"`
		Value uint64 `json:"value"`
	}
	doc := struct {
		Stats []entry `json:"stats"`
	}{Stats: []entry{}}
	for _, s := range stats {
		doc.Stats = append(doc.Stats, entry{s.name, s.value})
	}
	return json.NewEncoder(w).Encode(doc)
}

// listenerStat splits "listener.<address>.<rest>" the way Envoy's default tag extractor does, so the
// Prometheus output carries envoy_listener_address as a label rather than in the metric name.
var listenerStat = regexp.MustCompile(`^listener\.((?:[0-9._]+|\[[0-9a-fA-F:]*\]_[0-9]+|admin))\.(.+)$`)

var promInvalid = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// renderPrometheus writes the text exposition format. pilot-agent concatenates it into its merged
// :15020/stats/prometheus, so it must be valid on its own: one TYPE line per metric name, samples grouped.
func renderPrometheus(w io.Writer, stats []statValue) error {
	type sample struct{ labels, value string }
	type family struct {
		kind    statKind
		samples []sample
	}
	families := map[string]*family{}
	var names []string
	for _, s := range stats {
		name, labels := s.name, "{}"
		if m := listenerStat.FindStringSubmatch(s.name); m != nil {
			name, labels = "listener."+m[2], fmt.Sprintf(`{envoy_listener_address=%q}`, m[1])
		}
		name = "envoy_" + promInvalid.ReplaceAllString(name, "_")
		f, ok := families[name]
		if !ok {
			f = &family{kind: s.kind}
			families[name] = f
			names = append(names, name)
		}
		f.samples = append(f.samples, sample{labels, fmt.Sprint(s.value)})
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		f := families[name]
		kind := "counter"
		if f.kind == gauge {
			kind = "gauge"
		}
		fmt.Fprintf(&b, "# TYPE %s %s\n", name, kind)
		for _, s := range f.samples {
			fmt.Fprintf(&b, "%s%s %s\n", name, s.labels, s.value)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
