package freeswitch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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

// pendingKeep is how long a guarded application seen starting while this
// watchdog was passive is remembered for a take-over to judge; usedKeep
// how long the store remembers an allowance was taken, so that a new
// holder lets through what the previous one let through.
const (
	pendingKeep = 5 * time.Second
	usedKeep    = time.Minute
)

// shareTimeout bounds the write of an allowance to the shared store: the
// check's answer, or the application's start, waits for it.
const shareTimeout = 250 * time.Millisecond

// leaseDefaults checks and completes the lease options.
func leaseDefaults(o *Options) error {
	if o.Instance == "" {
		if o.Instance = o.Sessions.Instance(); o.Instance == "" {
			var b [4]byte
			_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
			o.Instance = "freeswitch-" + hex.EncodeToString(b[:])
		}
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 1500 * time.Millisecond
	}
	if o.LeaseRenew <= 0 {
		o.LeaseRenew = 500 * time.Millisecond
	}
	if o.LeaseRenew >= o.LeaseTTL {
		return fmt.Errorf("LeaseRenew %s must be shorter than LeaseTTL %s", o.LeaseRenew, o.LeaseTTL)
	}
	return nil
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

// runLease takes and renews the watchdog lease until ctx ends, then
// releases it so that another daemon takes it at its next try. Holding,
// it renews every LeaseRenew; passive, it tries twice as often, so a
// lease left to expire moves within LeaseTTL + LeaseRenew/2.
func (a *Adapter) runLease(ctx context.Context) {
	if a.o.Shared == nil || a.o.Watchdog == session.WatchdogOff {
		return
	}
	defer func() {
		if !a.active.Load() {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.o.Timeout)
		defer cancel()
		if err := a.o.Shared.ReleaseLease(cctx, a.leaseName(), a.o.Instance); err != nil {
			a.log.Warn("cannot release the watchdog lease; it expires by itself", zap.Error(err))
		}
		a.setActive(false)
	}()
	for {
		a.renewLease(ctx)
		every := a.o.LeaseRenew
		if !a.active.Load() {
			every /= 2
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// renewLease makes one attempt to take or renew the lease and switches
// the watchdog between passive and active accordingly. While the store
// cannot be reached, a holder goes on acting, and a passive watchdog
// starts acting once the lease it last saw has had time to expire: with
// nobody known to watch, every daemon watches (fail closed).
func (a *Adapter) renewLease(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, min(a.o.Timeout, a.o.LeaseTTL))
	cur, err := a.o.Shared.AcquireLease(cctx, a.leaseName(), a.o.Instance, a.o.LeaseTTL)
	cancel()
	now := a.o.Now()
	switch {
	case err != nil:
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return
		}
		a.log.Warn("cannot take or renew the watchdog lease", zap.Error(err))
		if !a.active.Load() && now.Sub(a.leaseSeen) >= a.o.LeaseTTL {
			a.takeOver("the store holding the watchdog lease cannot be reached (" + err.Error() + "); watching without it, as every daemon that cannot reach it does")
		}
	case cur == a.o.Instance:
		a.leaseSeen = now
		if !a.active.Load() {
			prev := "nobody held it"
			if a.leaseHolder != "" {
				prev = "the previous holder, " + a.leaseHolder + ", stopped renewing it"
			}
			a.takeOver("watchdog lease " + a.leaseName() + " taken by " + a.o.Instance + ": " + prev)
		}
		a.leaseHolder = cur
	default:
		a.leaseSeen = now
		if a.active.Load() || a.leaseHolder != cur {
			a.log.Info("watchdog passive: another daemon holds the lease", zap.String("holder", cur))
		}
		a.leaseHolder = cur
		a.setActive(false)
	}
}

// takeOver makes the watchdog act, audits it, and judges the guarded
// applications seen starting while it was passive that are still running
// (watchdog.sweep): a bypass started during the move of the lease is
// still caught.
func (a *Adapter) takeOver(detail string) {
	a.setActive(true)
	a.m.takeovers.Inc()
	a.log.Warn("watchdog active", zap.String("detail", detail))
	rec := a.audit.Watchdog(session.WatchdogEntry{Reason: session.ReasonWatchdogLease, Detail: detail})
	rec.Decision, rec.Action = "allow", ""
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
