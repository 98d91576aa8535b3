package asterisk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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

// pendingKeep is how long a guarded application seen starting while this
// watchdog was passive is remembered: a watchdog taking the lease judges
// the ones still running. The previous holder judged what started longer
// ago (it renewed the lease at most LeaseTTL before it expired).
const pendingKeep = 5 * time.Second

// usedKeep is how long the shared store remembers that an allowance was
// taken (enforce.WatchdogStore.AllowanceUsed): more than pendingKeep, so
// that a new holder tells an application the dead one let through.
const usedKeep = time.Minute

// shareTimeout bounds the write of a check's allowance to the shared
// store, which the check's answer waits for.
const shareTimeout = 250 * time.Millisecond

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

// runLease takes and renews the watchdog lease until ctx ends, then
// releases it so that a sibling takes it at its next try. Holding, it
// renews every LeaseRenew; passive, it tries twice as often, so a lease
// left to expire moves within LeaseTTL + LeaseRenew/2.
func (a *Adapter) runLease(ctx context.Context) {
	if a.o.Shared == nil || a.o.Watchdog == WatchdogOff {
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
			a.takeOver(ctx, "the store holding the watchdog lease cannot be reached ("+err.Error()+"); watching without it, as every daemon that cannot reach it does")
		}
	case cur == a.o.Instance:
		a.leaseSeen = now
		if !a.active.Load() {
			prev := "nobody held it"
			if a.leaseHolder != "" {
				prev = "the previous holder, " + a.leaseHolder + ", stopped renewing it"
			}
			a.takeOver(ctx, "watchdog lease "+a.leaseName()+" taken by "+a.o.Instance+" (application "+a.o.App+"): "+prev)
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
	rec := a.audit.Watchdog(session.WatchdogEntry{Reason: ReasonWatchdogLease, Detail: detail})
	rec.Decision, rec.Action = "allow", ""
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
		if now.Sub(p.seen) > pendingKeep {
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
		if isSnoop(c.Name) && !a.callwardens(c.ID) {
			a.watchSnoop(ctx, c.data(), "found running when the watchdog started acting")
			continue
		}
		p, ok := pending[c.ID]
		if !ok || now.Sub(p.seen) > pendingKeep {
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
			a.spawn(ctx, func(ctx context.Context) { _, _ = a.takeShared(ctx, ch.ID, action) })
		}
		return
	}
	if a.o.Shared == nil {
		a.bypass(ctx, kind, action, ch, kind+"("+data+")")
		return
	}
	a.spawn(ctx, func(ctx context.Context) {
		ok, err := a.takeShared(ctx, ch.ID, action)
		if err == nil && !ok && late {
			cctx, cancel := context.WithTimeout(ctx, a.o.Timeout)
			ok, err = a.o.Shared.AllowanceUsed(cctx, ch.ID, action)
			cancel()
		}
		if err != nil {
			a.log.Warn("watchdog: cannot read the shared allowances; failing closed", zap.String("channel", ch.ID), zap.Error(err))
		}
		if !ok {
			a.bypass(ctx, kind, action, ch, kind+"("+data+")")
		}
	})
}

// takeShared uses up a shared allowance of channel for action.
func (a *Adapter) takeShared(ctx context.Context, channel string, action enforce.Action) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, a.o.Timeout)
	defer cancel()
	return a.o.Shared.TakeAllowance(cctx, channel, action, usedKeep)
}

// shareAllowance writes a check's allowance to the shared store, so that
// whichever daemon watches honours it. A failure is logged: the watchdog
// then hangs the application up (fail closed).
func (a *Adapter) shareAllowance(ctx context.Context, channel string, action enforce.Action, log *zap.Logger) {
	if a.o.Shared == nil {
		return
	}
	// Bounded well below Timeout: the check's answer waits for it.
	cctx, cancel := context.WithTimeout(ctx, min(a.o.Timeout, shareTimeout))
	defer cancel()
	if err := a.o.Shared.PutAllowance(cctx, channel, action, session.AllowanceTTL); err != nil {
		log.Warn("cannot share the check's allowance; the watchdog of another daemon will hang the application up", zap.Error(err))
	}
}
