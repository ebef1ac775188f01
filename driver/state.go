package driver

import (
	"sync"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
)

// TaskState is what the driver persists in the task handle so that a restarted plugin can recover the task.
type TaskState struct {
	ReattachConfig *pstructs.ReattachConfig
	TaskConfig     *drivers.TaskConfig
	// Config is the decoded jobspec block: a recovered TaskConfig has lost its raw form.
	Config TaskConfig
	// Interception is what the allocation's ruleset was built from, so a recovered task checks the same one.
	Interception interceptionInputs
	NetnsPath    string
	Pid          int
	StartedAt    time.Time
}

// taskStore holds the running tasks' handles by task ID.
type taskStore struct {
	mu    sync.RWMutex
	store map[string]*taskHandle
}

func newTaskStore() *taskStore { return &taskStore{store: map[string]*taskHandle{}} }

func (ts *taskStore) Set(id string, h *taskHandle) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.store[id] = h
}

func (ts *taskStore) Get(id string) (*taskHandle, bool) {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	h, ok := ts.store[id]
	return h, ok
}

func (ts *taskStore) Delete(id string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.store, id)
}
