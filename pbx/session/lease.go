package session

import (
	"context"
	"errors"
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
