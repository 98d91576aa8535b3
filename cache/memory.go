package cache

import (
	"context"
	"fmt"
	"slices"
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

// Memory is a writable, in-process enforce.PolicyStore with the same
// semantics as Redis: validation before writing, compare-and-set on the
// generation, a diff of what changed, entries returned sorted, and change
// notifications (Watch) for Loaders. It backs tests and the contract
// suite; its content is lost on restart.
type Memory struct {
	mu     sync.Mutex
	policy enforce.Policy
	gen    uint64
	subs   map[chan uint64]struct{}
}

// NewMemory returns an empty store at generation 0.
func NewMemory() *Memory {
	return &Memory{subs: make(map[chan uint64]struct{})}
}

// Policy implements enforce.PolicyStore. The returned policy is a copy the
// caller may keep and modify.
func (m *Memory) Policy(_ context.Context) (enforce.Policy, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return clonePolicy(m.policy), m.gen, nil
}

// ApplyPolicy implements enforce.PolicyStore. An apply that changes nothing
// keeps the generation and notifies nobody. Errors: ErrInvalidPolicy,
// enforce.ErrConflict.
func (m *Memory) ApplyPolicy(_ context.Context, p enforce.Policy, ifGeneration uint64) (uint64, enforce.PolicyDiff, error) {
	n, _, err := normalize(p)
	if err != nil {
		return 0, enforce.PolicyDiff{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ifGeneration != 0 && ifGeneration != m.gen {
		return m.gen, enforce.PolicyDiff{}, fmt.Errorf("apply on generation %d, store is at %d: %w", ifGeneration, m.gen, enforce.ErrConflict)
	}
	diff := enforce.DiffPolicies(m.policy, n)
	if diff.Empty() {
		return m.gen, diff, nil
	}
	m.policy = n
	m.gen++
	for ch := range m.subs {
		notify(ch, m.gen)
	}
	return m.gen, diff, nil
}

// Generation returns the current generation (LoaderOptions.Generation).
func (m *Memory) Generation(_ context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen, nil
}

// Watch returns a channel that receives the new generation after each
// apply that changed something (LoaderOptions.Watch). Notifications
// coalesce: a slow reader gets the latest generation. The channel is
// closed when ctx is done.
func (m *Memory) Watch(ctx context.Context) (<-chan uint64, error) {
	ch := make(chan uint64, 1)
	m.mu.Lock()
	m.subs[ch] = struct{}{}
	m.mu.Unlock()
	context.AfterFunc(ctx, func() {
		m.mu.Lock()
		delete(m.subs, ch)
		close(ch)
		m.mu.Unlock()
	})
	return ch, nil
}

// notify sends gen on ch (capacity 1), replacing an unread older value.
// Callers serialise sends to ch.
func notify(ch chan uint64, gen uint64) {
	select {
	case old := <-ch:
		gen = max(gen, old)
	default:
	}
	ch <- gen
}

// clonePolicy deep-copies p so a store's copy is never shared with a
// caller.
func clonePolicy(p enforce.Policy) enforce.Policy {
	c := enforce.Policy{
		Profiles:  make([]enforce.Profile, len(p.Profiles)),
		Users:     make([]enforce.User, len(p.Users)),
		Protected: enforce.Protected{Users: slices.Clone(p.Protected.Users), Queues: slices.Clone(p.Protected.Queues)},
	}
	for i, pr := range p.Profiles {
		pr.Grants = slices.Clone(pr.Grants)
		for gi := range pr.Grants {
			g := &pr.Grants[gi]
			g.Profiles = slices.Clone(g.Profiles)
			for d := range g.Scopes {
				g.Scopes[d].Values = slices.Clone(g.Scopes[d].Values)
			}
			if g.Hours != nil {
				h := *g.Hours
				g.Hours = &h
			}
		}
		c.Profiles[i] = pr
	}
	for i, u := range p.Users {
		u.Queues, u.Teams, u.Agents, u.Sites = slices.Clone(u.Queues), slices.Clone(u.Teams), slices.Clone(u.Agents), slices.Clone(u.Sites)
		u.Identities = slices.Clone(u.Identities)
		c.Users[i] = u
	}
	return c
}
