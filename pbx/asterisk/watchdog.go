package asterisk

import (
	"context"
	"strings"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
)

// allowance is what a check allowed a channel to do next in its dialplan.
type allowance struct {
	action enforce.Action
	until  time.Time
}

// allowanceTTL bounds how long after an allowing check the dialplan may
// start the guarded application.
const allowanceTTL = time.Minute

// allow records that channelID was allowed action by a check.
func (a *Adapter) allow(channelID string, action enforce.Action) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if len(a.allowances) >= maxAllowances {
		// Entries leave on ChannelDestroyed; one missed while disconnected
		// must not stay forever.
		for id, list := range a.allowances {
			if len(list) == 0 || !now.Before(list[len(list)-1].until) {
				delete(a.allowances, id)
			}
		}
	}
	a.allowances[channelID] = append(a.allowances[channelID], allowance{action: action, until: now.Add(allowanceTTL)})
}

// maxAllowances is the size past which expired allowances are swept.
const maxAllowances = 1024

// consumeAllowance reports whether channelID holds an unexpired allowance
// for action, and uses it up.
func (a *Adapter) consumeAllowance(channelID string, action enforce.Action) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	list := a.allowances[channelID]
	now := time.Now()
	for i, al := range list {
		if al.action == action && now.Before(al.until) {
			a.allowances[channelID] = append(list[:i:i], list[i+1:]...)
			return true
		}
	}
	return false
}

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
// check on the same channel.
func (a *Adapter) watchDialplan(ctx context.Context, e *ari.ChannelDialplan) {
	if a.o.Watchdog == WatchdogOff {
		return
	}
	kind, action, ok := guardedApp(e.DialplanApp, e.DialplanAppData)
	if !ok || a.consumeAllowance(e.Channel.ID, action) {
		return
	}
	a.bypass(ctx, kind, action, e.Channel, kind+"("+e.DialplanAppData+")")
}

// watchSnoop catches a snoop channel callwarden did not create.
func (a *Adapter) watchSnoop(ctx context.Context, ch ari.ChannelData, how string) {
	if a.o.Watchdog == WatchdogOff {
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
		rec := enforce.AuditRecord{
			Time:     a.o.Now().UTC(),
			Source:   "watchdog",
			User:     user,
			Action:   action.String(),
			Decision: "deny",
			Reason:   reasonNoDecision,
			Caller:   enforce.Mask(callerNumber(ch), mask),
			PBX:      a.o.PBX,
			Channels: []string{ch.ID},
			Detail:   verdict + detail + "; channel " + ch.Name,
			AskedBy:  a.askedBy(),
		}
		if err := a.writeAudit(cctx, rec); err != nil {
			a.log.Error("audit write failed", zap.String("kind", kind), zap.Error(err))
		}
	})
}
