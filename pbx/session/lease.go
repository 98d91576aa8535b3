package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
)

// WatchdogLease keeps one daemon's hold on its PBX's watchdog lease
// (enforce.WatchdogStore), so that of several daemons on one PBX one
// watchdog acts at a time. Both adapters run it the same way: holding,
// it renews every Renew; passive, it tries twice as often, so a lease
// left to expire moves within TTL + Renew/2. While the store cannot be
// reached, a holder goes on acting, and a passive daemon starts acting
// once the lease it last saw has had time to expire: with nobody known
// to watch, every daemon watches (fail closed).
type WatchdogLease struct {
	Store enforce.WatchdogStore
	// Name is the lease (e.g. watchdog:asterisk:pbx1); Instance this
	// daemon as its holder; Describe what the take-over's detail adds
	// after the instance (e.g. " (application callwarden-b)").
	Name, Instance, Describe string
	// TTL is the lease's life, Renew how often a holder renews it;
	// Timeout bounds one store call (together with TTL).
	TTL, Renew, Timeout time.Duration
	Now                 func() time.Time
	Log                 *zap.Logger
	// Active reports whether the watchdog acts; SetActive switches it.
	// TakeOver makes it act and says why (the adapter audits it and
	// judges what started meanwhile).
	Active    func() bool
	SetActive func(bool)
	TakeOver  func(ctx context.Context, detail string)

	// seen and holder are the lease's last answer (when, who): Run's
	// goroutine's alone.
	seen   time.Time
	holder string
}

// Run takes and renews the lease until ctx ends, then releases it so that
// another daemon takes it at its next try.
func (l *WatchdogLease) Run(ctx context.Context) {
	defer func() {
		if !l.Active() {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.Timeout)
		defer cancel()
		if err := l.Store.ReleaseLease(cctx, l.Name, l.Instance); err != nil {
			l.Log.Warn("cannot release the watchdog lease; it expires by itself", zap.Error(err))
		}
		l.SetActive(false)
	}()
	for {
		l.renew(ctx)
		every := l.Renew
		if !l.Active() {
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

// renew makes one attempt to take or renew the lease and switches the
// watchdog between passive and active accordingly.
func (l *WatchdogLease) renew(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, min(l.Timeout, l.TTL))
	cur, err := l.Store.AcquireLease(cctx, l.Name, l.Instance, l.TTL)
	cancel()
	now := l.Now()
	switch {
	case err != nil:
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return
		}
		l.Log.Warn("cannot take or renew the watchdog lease", zap.Error(err))
		if !l.Active() && now.Sub(l.seen) >= l.TTL {
			l.TakeOver(ctx, "the store holding the watchdog lease cannot be reached ("+err.Error()+"); watching without it, as every daemon that cannot reach it does")
		}
	case cur == l.Instance:
		l.seen = now
		if !l.Active() {
			prev := "nobody held it"
			if l.holder != "" {
				prev = "the previous holder, " + l.holder + ", stopped renewing it"
			}
			l.TakeOver(ctx, "watchdog lease "+l.Name+" taken by "+l.Instance+l.Describe+": "+prev)
		}
		l.holder = cur
	default:
		l.seen = now
		if l.Active() || l.holder != cur {
			l.Log.Info("watchdog passive: another daemon holds the lease", zap.String("holder", cur))
		}
		l.holder = cur
		l.SetActive(false)
	}
}

// Several daemons on one PBX share their watchdog allowances in the
// store that holds the lease, so that the holder honours any daemon's.
const (
	// PendingKeep is how long a guarded application seen starting while a
	// watchdog was passive is remembered: a watchdog taking the lease
	// judges the ones still running. The previous holder judged what
	// started longer ago (it renewed the lease at most a TTL before it
	// expired).
	PendingKeep = 5 * time.Second
	// UsedKeep is how long the shared store remembers that an allowance
	// was taken (enforce.WatchdogStore.AllowanceUsed): more than
	// PendingKeep, so that a new holder tells an application the dead one
	// let through.
	UsedKeep = time.Minute
	// ShareTimeout bounds the write of an allowance to the shared store,
	// which a check's answer (or the start of the daemon's own
	// application) waits for.
	ShareTimeout = 250 * time.Millisecond
)

// LeaseDefaults completes a watchdog lease's timing (TTL 1.5 s, renewed
// every 500 ms) and checks that it is renewed before it expires.
func LeaseDefaults(ttl, renew *time.Duration) error {
	if *ttl <= 0 {
		*ttl = 1500 * time.Millisecond
	}
	if *renew <= 0 {
		*renew = 500 * time.Millisecond
	}
	if *renew >= *ttl {
		return fmt.Errorf("LeaseRenew %s must be shorter than LeaseTTL %s", *renew, *ttl)
	}
	return nil
}

// SharedAllowances are the allowances of a PBX's daemons in their shared
// store; Timeout bounds one store call.
type SharedAllowances struct {
	Store   enforce.WatchdogStore
	Timeout time.Duration
}

// Put records an allowance of channel for action, for AllowanceTTL,
// within ShareTimeout (less when Timeout is shorter).
func (s SharedAllowances) Put(ctx context.Context, channel string, action enforce.Action) error {
	cctx, cancel := context.WithTimeout(ctx, min(s.Timeout, ShareTimeout))
	defer cancel()
	return s.Store.PutAllowance(cctx, channel, action, AllowanceTTL)
}

// Take uses up an allowance of channel for action.
func (s SharedAllowances) Take(ctx context.Context, channel string, action enforce.Action) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	return s.Store.TakeAllowance(cctx, channel, action, UsedKeep)
}

// Covers reports whether an allowance of channel for one of actions covers
// an application: one left to take (taken now), or, late (a take-over
// judging what started before it), one the previous holder took. An
// error is returned as soon as the store fails: the caller fails closed.
func (s SharedAllowances) Covers(ctx context.Context, channel string, late bool, actions ...enforce.Action) (bool, error) {
	for _, action := range actions {
		if ok, err := s.Take(ctx, channel, action); ok || err != nil {
			return ok, err
		}
	}
	if !late {
		return false, nil
	}
	for _, action := range actions {
		cctx, cancel := context.WithTimeout(ctx, s.Timeout)
		ok, err := s.Store.AllowanceUsed(cctx, channel, action)
		cancel()
		if ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}
