package cache

import (
	"context"
	"sync"

	"github.com/callwarden/callwarden/enforce"
)

// MemoryRecordings is an in-process enforce.RecordingStore for a single
// daemon serving a profiles file. Its content is lost on restart.
type MemoryRecordings struct {
	mu   sync.RWMutex
	byID map[string]enforce.Recording
}

// NewMemoryRecordings returns an empty store.
func NewMemoryRecordings() *MemoryRecordings {
	return &MemoryRecordings{byID: make(map[string]enforce.Recording)}
}

// SaveRecording implements enforce.RecordingStore.
func (m *MemoryRecordings) SaveRecording(_ context.Context, r enforce.Recording) error {
	r.Pauses = append([]enforce.Pause(nil), r.Pauses...)
	m.mu.Lock()
	m.byID[r.ID] = r
	m.mu.Unlock()
	return nil
}

// Recording implements enforce.RecordingStore.
func (m *MemoryRecordings) Recording(_ context.Context, id string) (enforce.Recording, error) {
	m.mu.RLock()
	r, ok := m.byID[id]
	m.mu.RUnlock()
	if !ok {
		return enforce.Recording{}, enforce.ErrNotFound
	}
	r.Pauses = append([]enforce.Pause(nil), r.Pauses...)
	return r, nil
}

// ActiveRecording implements enforce.RecordingStore.
func (m *MemoryRecordings) ActiveRecording(_ context.Context, target string) (enforce.Recording, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var best enforce.Recording
	found := false
	for _, r := range m.byID {
		if r.Target == target && r.State != enforce.RecordingStopped && (!found || r.StartedAt.After(best.StartedAt)) {
			best, found = r, true
		}
	}
	if !found {
		return enforce.Recording{}, enforce.ErrNotFound
	}
	best.Pauses = append([]enforce.Pause(nil), best.Pauses...)
	return best, nil
}
