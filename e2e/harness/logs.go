package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// AllocDir returns the allocation's directory on the client: <data_dir>/alloc/<allocID>.
func (a *Agent) AllocDir(allocID string) string {
	return filepath.Join(a.DataDir, "alloc", allocID)
}

// TaskLogs returns what the task wrote to stream ("stdout" or "stderr") so far, across rotated files. It reads the
// log files in the alloc dir rather than AllocFS().Logs: they are there even while the agent is stopped (the
// recovery scenario) and reading them cannot block on a streaming API.
func (a *Agent) TaskLogs(t T, allocID, task, stream string) string {
	t.Helper()
	out, err := readTaskLogs(a.AllocDir(allocID), task, stream)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// readTaskLogs concatenates <allocDir>/alloc/logs/<task>.<stream>.<n> in rotation order (n ascending).
func readTaskLogs(allocDir, task, stream string) (string, error) {
	dir := filepath.Join(allocDir, "alloc", "logs")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("reading logs of task %s: %w", task, err)
	}
	prefix := task + "." + stream + "."
	var indexes []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil {
			indexes = append(indexes, n)
		}
	}
	sort.Ints(indexes)
	var b strings.Builder
	for _, n := range indexes {
		data, err := os.ReadFile(filepath.Join(dir, prefix+strconv.Itoa(n)))
		if err != nil {
			return "", fmt.Errorf("reading %s log of task %s: %w", stream, task, err)
		}
		b.Write(data)
	}
	return b.String(), nil
}
