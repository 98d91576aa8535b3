package asterisk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// ReasonWatchdogLease is the reason of the audit record written when a
// daemon's watchdog starts acting: it took the watchdog lease of its PBX
// (the holder stopped renewing it), or acts without it (the store cannot
// be reached).
const ReasonWatchdogLease = session.ReasonWatchdogLease

// pendingApp is a guarded application a passive watchdog saw start.
type pendingApp struct {
	kind   string
	action enforce.Action
	data   string
	seen   time.Time
}

// leaseName is the watchdog lease of this adapter's PBX, shared by every
// daemon naming the same PBX.
func (a *Adapter) leaseName() string { return "watchdog:asterisk:" + a.o.PBX }

// defaultInstance names this daemon as a lease holder when Options do
// not: the session registry's instance, else the application and a random
// suffix.
func defaultInstance(o Options) string {
	if id := o.Sessions.Instance(); id != "" {
		return id
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
	return o.App + "-" + hex.EncodeToString(b[:])
}

// watching reports whether this adapter's watchdog acts on bypasses now:
// its mode is not off and it holds the watchdog lease (always, without a
// shared store).
func (a *Adapter) watching() bool {
	return a.o.Watchdog != WatchdogOff && a.active.Load()
}

// runLease takes and renews the watchdog lease until ctx ends
// (session.WatchdogLease), then releases it.
func (a *Adapter) runLease(ctx context.Context) {
	if a.o.Shared == nil || a.o.Watchdog == WatchdogOff {
		return
	}
	l := &session.WatchdogLease{Store: a.o.Shared, Name: a.leaseName(), Instance: a.o.Instance,
		Describe: " (application " + a.o.App + ")", TTL: a.o.LeaseTTL, Renew: a.o.LeaseRenew, Timeout: a.o.Timeout,
		Now: a.o.Now, Log: a.log, Active: a.active.Load, SetActive: a.setActive, TakeOver: a.takeOver}
	l.Run(ctx)
}

func (a *Adapter) setActive(on bool) {
	a.active.Store(on)
	if on {
		a.m.leaseHeld.Set(1)
	} else {
		a.m.leaseHeld.Set(0)
	}
}

// takeOver makes the watchdog act, audits it, and judges what started
// while it was passive (sweepBypasses): a bypass started during the move
// of the lease is still caught.
func (a *Adapter) takeOver(ctx context.Context, detail string) {
	a.setActive(true)
	a.m.leaseTakeovers.Inc()
	a.log.Warn("watchdog active", zap.String("detail", detail))
	rec := a.audit.LeaseTakeover(detail)
	a.spawn(ctx, func(ctx context.Context) {
		cctx, cancel := a.cleanupCtx(ctx)
		defer cancel()
		if err := a.audit.Write(cctx, rec); err != nil {
			a.log.Error("audit write failed", zap.String("kind", "watchdog lease"), zap.Error(err))
		}
	})
	a.spawn(ctx, a.sweepBypasses)
}

// notePending remembers a guarded application a passive watchdog saw
// start, for a take-over to judge.
func (a *Adapter) notePending(channel, kind string, action enforce.Action, data string) {
	now := a.o.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, p := range a.pending {
		if now.Sub(p.seen) > session.PendingKeep {
			delete(a.pending, id)
		}
	}
	a.pending[channel] = pendingApp{kind: kind, action: action, data: data, seen: now}
}

// sweepBypasses, run when the watchdog starts acting, lists the PBX's
// channels and catches the foreign snoops running and the guarded
// applications started while it was passive that no allowance covers
// (none left to take, none the previous holder took). A listing failure
// leaves nothing judged: it is logged, and what starts from now on is
// caught as usual.
func (a *Adapter) sweepBypasses(ctx context.Context) {
	a.mu.Lock()
	pending := a.pending
	a.pending = make(map[string]pendingApp)
	a.mu.Unlock()
	if !a.connected.Load() {
		return
	}
	cctx, cancel := a.cleanupCtx(ctx)
	defer cancel()
	chans, err := a.rest.listChannels(cctx)
	if err != nil {
		a.log.Error("watchdog taking over: cannot list channels; what started during the move is not judged", zap.Error(err))
		return
	}
	now := a.o.Now()
	for _, c := range chans {
		// A request a dead holder's application took as it died.
		a.watchSibling(ctx, c.ID, c.Dialplan.AppName, c.Dialplan.AppData)
		if isSnoop(c.Name) && !a.callwardens(c.ID) {
			a.watchSnoop(ctx, c.data(), "found running when the watchdog started acting")
			continue
		}
		p, ok := pending[c.ID]
		if !ok || now.Sub(p.seen) > session.PendingKeep {
			continue
		}
		if kind, action, ok := guardedApp(c.Dialplan.AppName, c.Dialplan.AppData); !ok || kind != p.kind || action != p.action {
			continue // it moved on: what it runs now was seen (or is not guarded)
		}
		a.judge(ctx, p.kind, p.action, c.data(), p.data, true)
	}
}

// judge lets a guarded application through when an allowance covers it,
// else catches it as a bypass. The local allowances (this daemon's checks)
// come first; then, with a shared store, one of any daemon's, and on a
// take-over (late) one the previous holder already used. A store error
// fails closed: the application is caught.
func (a *Adapter) judge(ctx context.Context, kind string, action enforce.Action, ch ari.ChannelData, data string, late bool) {
	if a.allowances.Consume(ch.ID, action) {
		if a.o.Shared != nil {
			a.spawn(ctx, func(ctx context.Context) { _, _ = a.shared().Take(ctx, ch.ID, action) })
		}
		return
	}
	if a.o.Shared == nil {
		a.bypass(ctx, kind, action, ch, kind+"("+data+")")
		return
	}
	a.spawn(ctx, func(ctx context.Context) {
		ok, err := a.shared().Covers(ctx, ch.ID, late, action)
		if err != nil {
			a.log.Warn("watchdog: cannot read the shared allowances; failing closed", zap.String("channel", ch.ID), zap.Error(err))
		}
		if !ok {
			a.bypass(ctx, kind, action, ch, kind+"("+data+")")
		}
	})
}

// shared is the allowances of every daemon of this PBX (Options.Shared,
// which must be set).
func (a *Adapter) shared() session.SharedAllowances {
	return session.SharedAllowances{Store: a.o.Shared, Timeout: a.o.Timeout}
}

// shareAllowance writes a check's allowance to the shared store, so that
// whichever daemon watches honours it. A failure is logged: the watchdog
// then hangs the application up (fail closed).
func (a *Adapter) shareAllowance(ctx context.Context, channel string, action enforce.Action, log *zap.Logger) {
	if a.o.Shared == nil {
		return
	}
	// Bounded well below Timeout: the check's answer waits for it.
	if err := a.shared().Put(ctx, channel, action); err != nil {
		log.Warn("cannot share the check's allowance; the watchdog of another daemon will hang the application up", zap.Error(err))
	}
}
