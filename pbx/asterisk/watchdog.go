package asterisk

import (
	"context"
	"strings"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// guardedApp maps a dialplan application to the action it performs:
// ChanSpy/ExtenSpy with B barge, with w or W whisper, with d barge too (its
// DTMF 4/5/6 switch modes unchecked), else listen; MixMonitor records.
// ok is false for every other application.
func guardedApp(app, data string) (kind string, action enforce.Action, ok bool) {
	switch strings.ToLower(app) {
	case "chanspy", "extenspy":
		kind = app
	case "mixmonitor":
		return "MixMonitor", enforce.RecordingStart, true
	default:
		return "", 0, false
	}
	var opts string
	if i := strings.IndexByte(data, ','); i >= 0 {
		opts = stripParens(data[i+1:])
	}
	switch {
	case strings.ContainsAny(opts, "Bd"):
		return kind, enforce.MonitorBarge, true
	case strings.ContainsAny(opts, "wW"):
		return kind, enforce.MonitorWhisper, true
	}
	return kind, enforce.MonitorListen, true
}

// stripParens drops option arguments, e.g. "qEg(agent2001)" -> "qEg".
func stripParens(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// watchDialplan catches a guarded application started without an allowing
// check on the same channel (of any daemon sharing the store). A passive
// watchdog (another daemon holds the lease) only remembers it, for a
// take-over to judge.
func (a *Adapter) watchDialplan(ctx context.Context, e *ari.ChannelDialplan) {
	if a.o.Watchdog == WatchdogOff {
		return
	}
	kind, action, ok := guardedApp(e.DialplanApp, e.DialplanAppData)
	if !ok {
		return
	}
	if !a.active.Load() {
		a.notePending(e.Channel.ID, kind, action, e.DialplanAppData)
		return
	}
	a.judge(ctx, kind, action, e.Channel, e.DialplanAppData, false)
}

// watchSnoop catches a snoop channel callwarden did not create. A passive
// watchdog lets it be: a take-over lists and catches the ones running.
func (a *Adapter) watchSnoop(ctx context.Context, ch ari.ChannelData, how string) {
	if !a.watching() {
		return
	}
	a.bypass(ctx, "snoop", enforce.MonitorListen, ch, "snoop channel "+ch.Name+" "+how)
}

// bypass enforces (hangs up at once) and audits a bypass. The hangup is
// not delayed by the audit write.
func (a *Adapter) bypass(ctx context.Context, kind string, action enforce.Action, ch ari.ChannelData, detail string) {
	a.mu.Lock()
	_, seen := a.caught[ch.ID]
	a.caught[ch.ID] = struct{}{}
	a.mu.Unlock()
	if seen {
		return // a foreign snoop is seen when created and again entering Stasis
	}
	mode := a.o.Watchdog
	a.m.watchdog.WithLabelValues(kind, string(mode)).Inc()
	a.spawn(ctx, func(ctx context.Context) {
		cctx, cancel := a.cleanupCtx(ctx)
		defer cancel()
		verdict := "reported (report-only): "
		if mode == WatchdogEnforce {
			verdict = "hung up: "
			a.hangupQuiet(cctx, ch.ID)
		}
		var user string
		var mask int
		if snap := a.snapshot(); snap != nil {
			user = resolveChannelUser(snap, ch, true)
			if p, ok := snap.ProfileOf(user); ok {
				mask = p.MaskDigits
			}
		}
		a.log.Warn("watchdog: bypass caught", zap.String("kind", kind), zap.String("channel", ch.ID),
			zap.String("name", ch.Name), zap.String("user", user), zap.String("mode", string(mode)))
		rec := a.audit.Watchdog(session.WatchdogEntry{
			User:       user,
			Action:     action,
			Reason:     session.ReasonNoDecision,
			Caller:     callerNumber(ch),
			MaskDigits: mask,
			Channels:   []string{ch.ID},
			Detail:     verdict + detail + "; channel " + ch.Name,
		})
		if err := a.audit.Write(cctx, rec); err != nil {
			a.log.Error("audit write failed", zap.String("kind", kind), zap.Error(err))
		}
	})
}
