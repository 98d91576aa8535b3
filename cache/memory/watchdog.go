package memory

import (
	"context"
	"sync"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// Watchdog is an in-process enforce.WatchdogStore: the lease and the
// allowances of the daemons sharing this value (tests; a daemon serving a
// profiles file runs alone and needs none).
type Watchdog struct {
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu     sync.Mutex
	leases map[string]lease
	allows map[allowKey][]time.Time // expiry of each allowance
	used   map[allowKey]time.Time   // until when a use is remembered
}

type lease struct {
	holder string
	until  time.Time
}

type allowKey struct {
	channel string
	action  enforce.Action
}

// NewWatchdog returns a store with no lease and no allowance.
func NewWatchdog() *Watchdog {
	return &Watchdog{leases: make(map[string]lease), allows: make(map[allowKey][]time.Time), used: make(map[allowKey]time.Time)}
}

func (w *Watchdog) now() time.Time {
	if w.Now == nil {
		return time.Now()
	}
	return w.Now()
}

// AcquireLease implements enforce.WatchdogStore.
func (w *Watchdog) AcquireLease(_ context.Context, name, holder string, ttl time.Duration) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if l, ok := w.leases[name]; ok && l.holder != holder && now.Before(l.until) {
		return l.holder, nil
	}
	w.leases[name] = lease{holder: holder, until: now.Add(ttl)}
	return holder, nil
}

// ReleaseLease implements enforce.WatchdogStore.
func (w *Watchdog) ReleaseLease(_ context.Context, name, holder string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if l, ok := w.leases[name]; ok && l.holder == holder {
		delete(w.leases, name)
	}
	return nil
}

// PutAllowance implements enforce.WatchdogStore.
func (w *Watchdog) PutAllowance(_ context.Context, channel string, action enforce.Action, ttl time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	k := allowKey{channel, action}
	// Like the Redis store, one expiry for the key: a new put extends
	// the ones before it.
	list := w.allows[k][:0]
	for range w.allows[k] {
		list = append(list, now.Add(ttl))
	}
	w.allows[k] = append(list, now.Add(ttl))
	return nil
}

// TakeAllowance implements enforce.WatchdogStore.
func (w *Watchdog) TakeAllowance(_ context.Context, channel string, action enforce.Action, keep time.Duration) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := allowKey{channel, action}
	list := w.allows[k]
	now := w.now()
	if len(list) == 0 || !now.Before(list[0]) {
		delete(w.allows, k)
		return false, nil
	}
	if len(list) == 1 {
		delete(w.allows, k)
	} else {
		w.allows[k] = list[1:]
	}
	w.used[k] = now.Add(keep)
	return true, nil
}

// AllowanceUsed implements enforce.WatchdogStore.
func (w *Watchdog) AllowanceUsed(_ context.Context, channel string, action enforce.Action) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := allowKey{channel, action}
	until, ok := w.used[k]
	if ok && !w.now().Before(until) {
		delete(w.used, k)
		return false, nil
	}
	return ok, nil
}
