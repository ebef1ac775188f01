package driver

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// lastLogLine returns the last line pilot-agent wrote to stderr (its errors, and Envoy's), as logmon rotated
// it into <alloc>/logs/<task>.stderr.<n>, so that a start that fails because the proxy died says why in
// `nomad alloc status` rather than only with an exit code. Best effort: "" when there is nothing to read.
func lastLogLine(cfg *drivers.TaskConfig) string {
	dir := cfg.TaskDir().LogDir
	matches, _ := filepath.Glob(filepath.Join(dir, cfg.Name+".stderr.*"))
	newest, index := "", -1
	for _, m := range matches {
		if n, err := strconv.Atoi(strings.TrimPrefix(filepath.Ext(m), ".")); err == nil && n > index {
			newest, index = m, n
		}
	}
	if newest == "" {
		return ""
	}
	f, err := os.Open(newest)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 4096
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		_, _ = f.Seek(-tail, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
