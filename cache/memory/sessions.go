package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// Sessions is an in-process enforce.SessionStore for a single daemon
// serving a profiles file: its sessions are its own, lost on restart.
type Sessions struct {
	mu    sync.RWMutex
	byID  map[string]enforce.LiveSession
	beats map[string]time.Time // instance -> when its last Beat expires
	ends  map[string]enforce.EndedSession
	endq  []string // ids of ends, in the order written, for pruning
}

// NewSessions returns an empty registry.
func NewSessions() *Sessions {
	return &Sessions{byID: make(map[string]enforce.LiveSession), beats: make(map[string]time.Time),
		ends: make(map[string]enforce.EndedSession)}
}

// PutSession implements enforce.SessionStore; an end already requested
// for s.ID is kept.
func (m *Sessions) PutSession(_ context.Context, s enforce.LiveSession) error {
	if s.ID == "" {
		return fmt.Errorf("put session: empty id")
	}
	s.Modes = slices.Clone(s.Modes)
	m.mu.Lock()
	if old, ok := m.byID[s.ID]; ok && old.EndRequestedBy != "" {
		s.EndRequestedBy = old.EndRequestedBy
	}
	m.byID[s.ID] = s
	m.mu.Unlock()
	return nil
}

// EndSession implements enforce.SessionStore. The ends kept are those of
// the last enforce.SessionEndKeep before the newest one (the store has no
// clock of its own), pruned oldest first as ends are written.
func (m *Sessions) EndSession(_ context.Context, e enforce.EndedSession) error {
	m.mu.Lock()
	delete(m.byID, e.ID)
	m.ends[e.ID] = e
	m.endq = append(m.endq, e.ID)
	// Ends come about in time order: the oldest are first in the queue.
	cut := e.At.Add(-enforce.SessionEndKeep)
	for len(m.endq) > 0 {
		old, ok := m.ends[m.endq[0]]
		if ok && !old.At.Before(cut) {
			break
		}
		if ok {
			delete(m.ends, m.endq[0])
		}
		m.endq = m.endq[1:]
	}
	m.mu.Unlock()
	return nil
}

// SessionEnds implements enforce.SessionStore.
func (m *Sessions) SessionEnds(_ context.Context, ids []string) (map[string]enforce.EndedSession, error) {
	out := make(map[string]enforce.EndedSession, len(ids))
	m.mu.RLock()
	for _, id := range ids {
		if e, ok := m.ends[id]; ok {
			out[id] = e
		}
	}
	m.mu.RUnlock()
	return out, nil
}

// LiveSessions implements enforce.SessionStore.
func (m *Sessions) LiveSessions(context.Context) ([]enforce.LiveSession, error) {
	m.mu.RLock()
	out := make([]enforce.LiveSession, 0, len(m.byID))
	for _, s := range m.byID {
		s.Modes = slices.Clone(s.Modes)
		out = append(out, s)
	}
	m.mu.RUnlock()
	enforce.SortSessions(out)
	return out, nil
}

// Session implements enforce.SessionStore.
func (m *Sessions) Session(_ context.Context, id string) (enforce.LiveSession, error) {
	m.mu.RLock()
	s, ok := m.byID[id]
	m.mu.RUnlock()
	if !ok {
		return enforce.LiveSession{}, fmt.Errorf("session %s: %w", id, enforce.ErrNotFound)
	}
	s.Modes = slices.Clone(s.Modes)
	return s, nil
}

// RequestSessionEnd implements enforce.SessionStore.
func (m *Sessions) RequestSessionEnd(_ context.Context, id, by string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.byID[id]
	if !ok {
		return fmt.Errorf("session %s: %w", id, enforce.ErrNotFound)
	}
	s.EndRequestedBy = by
	m.byID[id] = s
	return nil
}

// ActiveRecordings implements enforce.ActiveRecordingLister.
func (m *Recordings) ActiveRecordings(context.Context) ([]enforce.Recording, error) {
	m.mu.RLock()
	var out []enforce.Recording
	for _, r := range m.byID {
		if r.State != enforce.RecordingStopped {
			r.Pauses = append([]enforce.Pause(nil), r.Pauses...)
			out = append(out, r)
		}
	}
	m.mu.RUnlock()
	enforce.SortRecordings(out)
	return out, nil
}

// Beat implements enforce.SessionStore.
func (m *Sessions) Beat(_ context.Context, instance string, ttl time.Duration) error {
	if instance == "" || ttl <= 0 {
		return fmt.Errorf("beat: want an instance and a positive ttl")
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, until := range m.beats { // forget the dead, so beats stays small
		if !now.Before(until) {
			delete(m.beats, id)
		}
	}
	m.beats[instance] = now.Add(ttl)
	return nil
}

// Alive implements enforce.SessionStore.
func (m *Sessions) Alive(_ context.Context, instances []string) (map[string]bool, error) {
	now := time.Now()
	out := make(map[string]bool, len(instances))
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, id := range instances {
		if until, ok := m.beats[id]; ok && now.Before(until) {
			out[id] = true
		}
	}
	return out, nil
}
