package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/callwarden/callwarden/cache/internal/wire"
	"github.com/callwarden/callwarden/enforce"
)

// Recordings is an in-process enforce.RecordingStore for a single
// daemon serving a profiles file. Its content is lost on restart.
type Recordings struct {
	mu   sync.RWMutex
	byID map[string]enforce.Recording
	// index holds each catalogue index's keys (enforce.CatalogueKey),
	// sorted ascending.
	index map[enforce.RecordingIndex][]string
}

var _ enforce.RecordingCatalogue = (*Recordings)(nil)

// NewRecordings returns an empty store.
func NewRecordings() *Recordings {
	return &Recordings{byID: make(map[string]enforce.Recording), index: make(map[enforce.RecordingIndex][]string)}
}

// SaveRecording implements enforce.RecordingStore.
func (m *Recordings) SaveRecording(_ context.Context, r enforce.Recording) error {
	if r.ID == "" {
		return fmt.Errorf("save recording: empty id")
	}
	r.Pauses = append([]enforce.Pause(nil), r.Pauses...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.byID[r.ID]; ok {
		m.unindex(&old)
	}
	m.byID[r.ID] = r
	if key, ok := enforce.CatalogueKey(&r); ok {
		for _, ix := range indexesOf(&r) {
			keys := m.index[ix]
			i, found := slices.BinarySearch(keys, key)
			if !found {
				m.index[ix] = slices.Insert(keys, i, key)
			}
		}
	}
	return nil
}

// indexesOf lists the catalogue indexes r belongs to.
func indexesOf(r *enforce.Recording) []enforce.RecordingIndex {
	ixs := []enforce.RecordingIndex{{}}
	if r.Target != "" {
		ixs = append(ixs, enforce.RecordingIndex{Agent: r.Target})
	}
	if r.Queue != "" {
		ixs = append(ixs, enforce.RecordingIndex{Queue: r.Queue})
	}
	return ixs
}

// unindex removes r from its indexes; m.mu is held.
func (m *Recordings) unindex(r *enforce.Recording) {
	key, ok := enforce.CatalogueKey(r)
	if !ok {
		return
	}
	for _, ix := range indexesOf(r) {
		keys := m.index[ix]
		if i, found := slices.BinarySearch(keys, key); found {
			keys = slices.Delete(keys, i, i+1)
			if len(keys) == 0 {
				delete(m.index, ix)
			} else {
				m.index[ix] = keys
			}
		}
	}
}

// ListRecordings implements enforce.RecordingCatalogue.
func (m *Recordings) ListRecordings(_ context.Context, q enforce.RecordingQuery) ([]enforce.Recording, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("list recordings: limit %d, want a positive one", q.Limit)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	keys := m.index[q.Index]
	// [lo, hi) is the window of keys From and To allow.
	lo, hi := 0, len(keys)
	if !q.From.IsZero() {
		lo, _ = slices.BinarySearch(keys, enforce.CatalogueBound(q.From))
	}
	if !q.To.IsZero() {
		hi, _ = slices.BinarySearch(keys, enforce.CatalogueBound(q.To))
	}
	if q.After != "" {
		i, found := slices.BinarySearch(keys, q.After)
		if q.Oldest {
			if found {
				i++
			}
			lo = max(lo, i)
		} else {
			hi = min(hi, i)
		}
	}
	var out []enforce.Recording
	for n := 0; n < q.Limit && lo < hi; n++ {
		var key string
		if q.Oldest {
			key, lo = keys[lo], lo+1
		} else {
			hi--
			key = keys[hi]
		}
		_, id, _ := strings.Cut(key, ":")
		r := m.byID[id]
		r.Pauses = append([]enforce.Pause(nil), r.Pauses...)
		out = append(out, r)
	}
	return out, nil
}

// DeleteRecording implements enforce.RecordingCatalogue.
func (m *Recordings) DeleteRecording(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.byID[id]
	if !ok {
		return fmt.Errorf("recording %s: %w", id, enforce.ErrNotFound)
	}
	m.unindex(&r)
	delete(m.byID, id)
	return nil
}

// Recording implements enforce.RecordingStore.
func (m *Recordings) Recording(_ context.Context, id string) (enforce.Recording, error) {
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
func (m *Recordings) ActiveRecording(_ context.Context, target string) (enforce.Recording, error) {
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

// Store is a writable, in-process enforce.PolicyStore with the same
// semantics as Redis: validation before writing, compare-and-set on the
// generation, a diff of what changed, entries returned sorted, and change
// notifications (Watch) for Loaders. It backs tests and the contract
// suite; its content is lost on restart.
type Store struct {
	mu     sync.Mutex
	policy enforce.Policy
	gen    uint64
	subs   map[chan uint64]struct{}
	// epoch and log mirror Redis' epoch and change log (enforce.ChangeSource).
	epoch string
	log   []wire.ChangeEntry
}

var (
	_ enforce.ChangeSource = (*Store)(nil)
	_ enforce.PatchStore   = (*Store)(nil)
)

// NewStore returns an empty store at generation 0.
func NewStore() *Store {
	return &Store{subs: make(map[chan uint64]struct{})}
}

// Policy implements enforce.PolicyStore. The returned policy is a copy the
// caller may keep and modify.
func (m *Store) Policy(_ context.Context) (enforce.Policy, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.policy.Clone(), m.gen, nil
}

// ApplyPolicy implements enforce.PolicyStore with the semantics of
// Redis.ApplyPolicy. An apply that changes nothing keeps the generation and
// notifies nobody. Errors: enforce.ErrInvalidPolicy, enforce.ErrConflict.
func (m *Store) ApplyPolicy(_ context.Context, p enforce.Policy, pre enforce.Precondition) (uint64, enforce.PolicyDiff, error) {
	n, _, err := wire.Normalize(p)
	if err != nil {
		return 0, enforce.PolicyDiff{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := pre.Check(m.gen); err != nil {
		return m.gen, enforce.PolicyDiff{}, err
	}
	diff := enforce.DiffPolicies(m.policy, n)
	if diff.Empty() {
		return m.gen, diff, nil
	}
	m.policy = n
	m.committed(diff)
	return m.gen, diff, nil
}

// Writable implements enforce.PolicyStore: a Store store is always
// writable.
func (m *Store) Writable() error { return nil }

// committed bumps the generation after a change, logs it and notifies.
// m.mu is held.
func (m *Store) committed(diff enforce.PolicyDiff) {
	if m.epoch == "" {
		m.epoch = wire.NewEpoch()
	}
	m.gen++
	m.log = append(m.log, wire.NewChangeEntry(m.gen, diff))
	if len(m.log) > wire.ChangelogKeep {
		m.log = slices.Delete(m.log, 0, len(m.log)-wire.ChangelogKeep)
	}
	for ch := range m.subs {
		wire.Notify(ch, m.gen)
	}
}

// PolicyVersion implements enforce.ChangeSource.
func (m *Store) PolicyVersion(_ context.Context) (enforce.Policy, enforce.Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.policy.Clone(), enforce.Version{Epoch: m.epoch, Gen: m.gen}, nil
}

// Changes implements enforce.ChangeSource, with the same change log rules as
// Redis.
func (m *Store) Changes(_ context.Context, since enforce.Version) (enforce.PolicyPatch, enforce.Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := enforce.Version{Epoch: m.epoch, Gen: m.gen}
	gap := fmt.Errorf("changes since generation %d (store at %d): %w", since.Gen, m.gen, enforce.ErrChangelogGap)
	if since.Epoch != m.epoch || since.Gen > m.gen {
		return enforce.PolicyPatch{}, v, gap
	}
	if since.Gen == m.gen {
		return enforce.PolicyPatch{}, v, nil
	}
	i := slices.IndexFunc(m.log, func(e wire.ChangeEntry) bool { return e.Gen == since.Gen+1 })
	if i < 0 || uint64(len(m.log)-i) != m.gen-since.Gen {
		return enforce.PolicyPatch{}, v, gap
	}
	profiles, users := map[string]bool{}, map[string]bool{}
	var patch enforce.PolicyPatch
	for _, e := range m.log[i:] {
		if e.Full {
			return enforce.PolicyPatch{}, v, gap
		}
		for _, n := range e.Profiles {
			profiles[n] = true
		}
		for _, n := range e.Users {
			users[n] = true
		}
		if e.Protected {
			prot := m.policy.Protected
			patch.Protected = &prot
		}
	}
	cur := m.policy.Clone()
	for _, pr := range cur.Profiles {
		if profiles[pr.Name] {
			patch.Profiles = append(patch.Profiles, pr)
			delete(profiles, pr.Name)
		}
	}
	for _, u := range cur.Users {
		if users[u.ID] {
			patch.Users = append(patch.Users, u)
			delete(users, u.ID)
		}
	}
	patch.RemovedProfiles = slices.Sorted(maps.Keys(profiles))
	patch.RemovedUsers = slices.Sorted(maps.Keys(users))
	return patch, v, nil
}

// ApplyPatch implements enforce.PatchStore, with the semantics of Redis.ApplyPatch.
func (m *Store) ApplyPatch(_ context.Context, base *enforce.Snapshot, p enforce.PolicyPatch) (uint64, enforce.PolicyDiff, error) {
	_, diff, eff, err := wire.PreparePatch(base, p)
	if err != nil {
		return 0, enforce.PolicyDiff{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != base.Generation() || m.epoch != base.Origin() {
		return m.gen, enforce.PolicyDiff{}, fmt.Errorf("change based on generation %d, store is at %d: %w", base.Generation(), m.gen, enforce.ErrConflict)
	}
	if diff.Empty() {
		return m.gen, diff, nil
	}
	next := eff.Apply(m.policy)
	next.Sort()
	m.policy = next.Clone()
	m.committed(diff)
	return m.gen, diff, nil
}

// Generation returns the current generation (LoaderOptions.Generation).
func (m *Store) Generation(_ context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen, nil
}

// Watch returns a channel that receives the new generation after each
// apply that changed something (LoaderOptions.Watch). Notifications
// coalesce: a slow reader gets the latest generation. The channel is
// closed when ctx is done.
func (m *Store) Watch(ctx context.Context) (<-chan uint64, error) {
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
