package session

import (
	"sync"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// AllowanceTTL bounds how long after an allowing check the dialplan may
// start the guarded application.
const AllowanceTTL = time.Minute

// maxAllowances is the size past which expired allowances are swept.
const maxAllowances = 1024

// Allowances is the watchdog's bookkeeping: which channel an allowing
// check let run which action (the guarded application the adapter maps to
// it: ChanSpy, MixMonitor, eavesdrop, record_session), until when. Each
// allowance lets one application through once. The zero value is ready;
// it is safe for concurrent use.
type Allowances struct {
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu   sync.Mutex
	byCh map[string][]allowance
}

type allowance struct {
	action enforce.Action
	until  time.Time
}

func (a *Allowances) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

// Allow records that channel was allowed action by a check, for
// AllowanceTTL.
func (a *Allowances) Allow(channel string, action enforce.Action) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.byCh == nil {
		a.byCh = make(map[string][]allowance)
	}
	if len(a.byCh) >= maxAllowances {
		// Entries leave when their channel ends (Forget); one missed while
		// disconnected must not stay forever.
		for id, list := range a.byCh {
			if len(list) == 0 || !now.Before(list[len(list)-1].until) {
				delete(a.byCh, id)
			}
		}
	}
	a.byCh[channel] = append(a.byCh[channel], allowance{action: action, until: now.Add(AllowanceTTL)})
}

// Consume reports whether channel holds an unexpired allowance for action,
// and uses it up.
func (a *Allowances) Consume(channel string, action enforce.Action) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	list := a.byCh[channel]
	now := a.now()
	for i, al := range list {
		if al.action == action && now.Before(al.until) {
			a.byCh[channel] = append(list[:i:i], list[i+1:]...)
			return true
		}
	}
	return false
}

// Forget drops what channel was allowed (it ended).
func (a *Allowances) Forget(channel string) {
	a.mu.Lock()
	delete(a.byCh, channel)
	a.mu.Unlock()
}
