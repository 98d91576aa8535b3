package freeswitch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// Several daemons on one FreeSWITCH (Options.Shared) share one watchdog,
// as on Asterisk: each writes every allowance it gives to the shared
// store, and only the holder of the PBX's watchdog lease judges what
// starts, honouring its own allowances first, then any daemon's. While
// passive, a watchdog remembers the guarded applications it sees start,
// so that taking the lease over judges the ones still running that no
// allowance covered.

// leaseDefaults checks and completes the lease options.
func leaseDefaults(o *Options) error {
	if o.Instance == "" {
		if o.Instance = o.Sessions.Instance(); o.Instance == "" {
			var b [4]byte
			_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
			o.Instance = "freeswitch-" + hex.EncodeToString(b[:])
		}
	}
	return session.LeaseDefaults(&o.LeaseTTL, &o.LeaseRenew)
}

// leaseName is the watchdog lease of this FreeSWITCH, shared by every
// daemon naming the same PBX.
func (a *Adapter) leaseName() string { return "watchdog:freeswitch:" + a.o.PBX }

// WatchdogActive reports whether this daemon's watchdog acts now: always
// without a shared store, else while it holds the watchdog lease.
func (a *Adapter) WatchdogActive() bool { return a.active.Load() }

func (a *Adapter) setActive(on bool) {
	a.active.Store(on)
	if on {
		a.m.leaseHeld.Set(1)
	} else {
		a.m.leaseHeld.Set(0)
	}
}

// runLease takes and renews the watchdog lease until ctx ends
// (session.WatchdogLease), then releases it.
func (a *Adapter) runLease(ctx context.Context) {
	if a.o.Shared == nil || a.o.Watchdog == session.WatchdogOff {
		return
	}
	l := &session.WatchdogLease{Store: a.o.Shared, Name: a.leaseName(), Instance: a.o.Instance,
		TTL: a.o.LeaseTTL, Renew: a.o.LeaseRenew, Timeout: a.o.Timeout, Now: a.o.Now, Log: a.log,
		Active: a.active.Load, SetActive: a.setActive, TakeOver: a.takeOver}
	l.Run(ctx)
}

// takeOver makes the watchdog act, audits it, and judges the guarded
// applications seen starting while it was passive that are still running
// (watchdog.sweep): a bypass started during the move of the lease is
// still caught.
func (a *Adapter) takeOver(_ context.Context, detail string) {
	a.setActive(true)
	a.m.takeovers.Inc()
	a.log.Warn("watchdog active", zap.String("detail", detail))
	rec := a.audit.LeaseTakeover(detail)
	a.wd.spawn(func(ctx context.Context) {
		if err := a.audit.Write(ctx, rec); err != nil {
			a.log.Error("audit write failed", zap.String("kind", "watchdog lease"), zap.Error(err))
		}
	})
	a.wd.sweep()
}

// pendingApp is a guarded application a passive watchdog saw start.
type pendingApp struct {
	ev      Event
	kind    string
	actions []enforce.Action
	what    string
	stop    func(context.Context) error
	seen    time.Time
}
