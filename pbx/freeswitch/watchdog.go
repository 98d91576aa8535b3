package freeswitch

import (
	"context"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// WatchdogMode says what the watchdog does with a bypass it catches: the
// modes are session's (as asterisk.watchdog). Enforce hangs up the
// eavesdropper, stops the recording and audits the bypass.
type WatchdogMode = session.WatchdogMode

// Watchdog kinds: the metric's kind label.
const (
	kindEavesdrop    = "eavesdrop"
	kindRecord       = "record"
	kindEavesdropBug = "eavesdrop_bug" // a media bug no eavesdrop application explains (userspy, three_way)
)

// attributeWindow is how long after a spy leg's eavesdrop the target's
// media bug is explained by it.
const attributeWindow = 5 * time.Second

// maxSeen bounds the watchdog's memory of what it already decided; past
// it, entries older than attributeWindow are swept.
const maxSeen = 4096

// watchdog catches an eavesdrop or a recording that the dialplan or
// another ESL client started without an allowing decision of callwarden.
// It is fed the inbound events in Event-Sequence order.
type watchdog struct {
	mode       WatchdogMode
	allowances session.Allowances
	now        func() time.Time
	// act runs api commands (uuid_kill, uuid_record); audit writes the
	// record; count counts the bypass.
	act   func(ctx context.Context, cmd string, args ...string) (string, error)
	audit *session.Audit
	count func(kind string, mode WatchdogMode)
	snap  func() *enforce.Snapshot
	log   *zap.Logger

	// shared, when its Store is set, holds every daemon's allowances
	// (Options.Shared): what this daemon allows is written there too, and
	// what it does not cover itself is looked up there before it is
	// stopped. acting reports whether this watchdog judges now (it holds
	// the lease; nil: always).
	shared session.SharedAllowances
	acting func() bool

	mu      sync.Mutex
	seen    map[string]time.Time  // decided: eavesdrop target or channel|file
	pending map[string]pendingApp // seen starting while passive: channel|eavesdrop, channel|record|file

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newWatchdog(w *watchdog) *watchdog {
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.seen = make(map[string]time.Time)
	w.pending = make(map[string]pendingApp)
	return w
}

// monitorActions are the actions whose allowance lets an eavesdrop
// through.
var monitorActions = []enforce.Action{enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge}

// allow lets channel's next guarded application for action through, once,
// within session.AllowanceTTL; with a shared store, whichever daemon
// watches (the write is bounded by session.ShareTimeout; a failure is
// logged, and another daemon's watchdog then stops the application: fail
// closed).
func (w *watchdog) allow(channel string, action enforce.Action) {
	w.allowances.Allow(channel, action)
	if w.shared.Store == nil {
		return
	}
	if err := w.shared.Put(w.ctx, channel, action); err != nil {
		w.log.Warn("cannot share the allowance; the watchdog of another daemon will stop the application",
			zap.String("channel", channel), zap.String("action", action.String()), zap.Error(err))
	}
}

// unallow withdraws an allowance whose application did not start.
func (w *watchdog) unallow(channel string, action enforce.Action) {
	w.allowances.Consume(channel, action)
	if w.shared.Store != nil {
		w.spawn(func(ctx context.Context) { _, _ = w.shared.Take(ctx, channel, action) })
	}
}

// spawn runs f in the background until stop.
func (w *watchdog) spawn(f func(ctx context.Context)) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		f(w.ctx)
	}()
}

// passive reports whether another daemon holds the lease: this watchdog
// then judges nothing.
func (w *watchdog) passive() bool { return w.acting != nil && !w.acting() }

// judge lets the guarded application p (on the event's channel) through
// when an allowance covers it, else catches it as a bypass. This
// daemon's own allowances come first; then, with a shared store, any
// daemon's. A store error fails closed: the application is stopped. A
// passive watchdog (another daemon holds the lease) only notes it under
// key, for a take-over to judge (sweep).
func (w *watchdog) judge(ev Event, key string, p pendingApp, late bool) {
	uuid := ev.Get("Unique-ID")
	if w.passive() {
		p.ev, p.seen = ev, w.now()
		w.note(key, p)
		return
	}
	for _, action := range p.actions {
		if w.allowances.Consume(uuid, action) {
			if w.shared.Store != nil {
				w.spawn(func(ctx context.Context) { _, _ = w.shared.Take(ctx, uuid, action) })
			}
			return
		}
	}
	if w.shared.Store == nil {
		w.bypass(ev, p.kind, p.actions[0], p.what, p.stop)
		return
	}
	w.spawn(func(ctx context.Context) {
		ok, err := w.shared.Covers(ctx, uuid, late, p.actions...)
		if err != nil {
			w.log.Warn("watchdog: cannot read the shared allowances; failing closed", zap.String("channel", uuid), zap.Error(err))
		}
		if ok || late && w.gone(ctx, uuid) {
			return
		}
		w.bypass(ev, p.kind, p.actions[0], p.what, p.stop)
	})
}

// gone reports whether FreeSWITCH says channel uuid no longer exists: a
// take-over judges what it saw start while passive, and the previous
// holder may have hung it up already, its hang-up not yet seen here (the
// inbound events are held up to the reordering window); judging it again
// would audit it twice. Any other answer, or none, is not gone: the
// application is judged (fail closed).
func (w *watchdog) gone(ctx context.Context, uuid string) bool {
	out, err := w.act(ctx, "uuid_exists", uuid)
	return err == nil && strings.TrimSpace(out) == "false"
}

// note remembers p, seen while passive, under key; entries older than
// session.PendingKeep are swept.
func (w *watchdog) note(key string, p pendingApp) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, old := range w.pending {
		if p.seen.Sub(old.seen) > session.PendingKeep {
			delete(w.pending, k)
		}
	}
	w.pending[key] = p
}

// unpend forgets the pending applications under key, or, with prefix, of
// every key starting with it: the application ended.
func (w *watchdog) unpend(key string, prefix bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.pending {
		if k == key || prefix && strings.HasPrefix(k, key) {
			delete(w.pending, k)
		}
	}
}

// sweep judges, on a take-over, the applications seen starting while
// passive within session.PendingKeep that have not ended since.
func (w *watchdog) sweep() {
	w.mu.Lock()
	pending := w.pending
	w.pending = make(map[string]pendingApp)
	w.mu.Unlock()
	now := w.now()
	for key, p := range pending {
		if now.Sub(p.seen) <= session.PendingKeep {
			w.judge(p.ev, key, p, true)
		}
	}
}

// stop cancels the commands in flight and waits for them.
func (w *watchdog) stop() {
	w.cancel()
	w.wg.Wait()
}

// mark records key as decided; it reports whether it was already.
func (w *watchdog) mark(key string) (already bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if t, ok := w.seen[key]; ok && now.Sub(t) < attributeWindow {
		return true
	}
	if len(w.seen) >= maxSeen {
		for k, t := range w.seen {
			if now.Sub(t) >= attributeWindow {
				delete(w.seen, k)
			}
		}
	}
	w.seen[key] = now
	return false
}

// onEvent looks at one event for a bypass.
func (w *watchdog) onEvent(ev Event) {
	if w.mode == session.WatchdogOff {
		return
	}
	uuid := ev.Get("Unique-ID")
	if uuid == "" {
		return
	}
	switch ev.Name {
	case "CHANNEL_EXECUTE":
		if !strings.EqualFold(ev.Get("Application"), "eavesdrop") {
			return
		}
		// The spy leg runs eavesdrop: whatever follows on the target is
		// explained by it.
		target := ev.Get("Application-Data")
		w.mark("eavesdrop|" + target)
		w.judge(ev, uuid+"|eavesdrop", pendingApp{kind: kindEavesdrop, actions: monitorActions, what: "eavesdrop(" + target + ")",
			stop: func(ctx context.Context) error {
				_, err := w.act(ctx, "uuid_kill", uuid)
				return err
			}}, false)
	case "CHANNEL_EXECUTE_COMPLETE":
		if strings.EqualFold(ev.Get("Application"), "eavesdrop") {
			w.unpend(uuid+"|eavesdrop", false)
		}
	case "MEDIA_BUG_START":
		switch fn := ev.Get("Media-Bug-Function"); fn {
		case "eavesdrop":
			if w.mark("eavesdrop|"+uuid) || w.passive() {
				return // explained, or the lease's holder reports it
			}
			// No spy leg ran the eavesdrop application (userspy,
			// three_way, or an event lost): the spy is not known, so
			// it is reported, never the monitored call hung up.
			w.bypass(ev, kindEavesdropBug, enforce.MonitorListen, "eavesdrop media bug without an eavesdrop application", nil)
		case "session_record":
			w.record(ev, uuid, ev.Get("Media-Bug-Target"))
		}
	case "RECORD_START":
		w.record(ev, uuid, ev.Get("Record-File-Path"))
	case "RECORD_STOP":
		w.unpend(uuid+"|record|"+ev.Get("Record-File-Path"), false)
	case "CHANNEL_HANGUP_COMPLETE":
		w.allowances.Forget(uuid)
		w.unpend(uuid+"|", true)
	}
}

// record handles a recording's start: RECORD_START and the session_record
// media bug both announce it; the first decides.
func (w *watchdog) record(ev Event, uuid, path string) {
	if w.mark("record|" + uuid + "|" + path) {
		return
	}
	// Only this recording is stopped, not the call: the customer's call
	// goes on. A path FreeSWITCH would split (a space), one that cannot
	// be sent (a control character) or none stops every recording of the
	// channel.
	which := path
	if which == "" || strings.ContainsAny(which, " \t") || checkValue("path", which) != nil {
		which = "all"
	}
	w.judge(ev, uuid+"|record|"+path, pendingApp{kind: kindRecord, actions: []enforce.Action{enforce.RecordingStart}, what: "recording " + path,
		stop: func(ctx context.Context) error {
			_, err := w.act(ctx, "uuid_record", uuid, "stop", which)
			return err
		}}, false)
}

// bypass counts the bypass, enforces it at once (stop, when not nil and
// the mode is enforce) and then audits it; the stop is not delayed by the
// audit write.
func (w *watchdog) bypass(ev Event, kind string, action enforce.Action, what string, stop func(context.Context) error) {
	uuid, name := ev.Get("Unique-ID"), ev.Get("Channel-Name")
	caller := ev.Get("Caller-Caller-ID-Number")
	mode := w.mode
	w.count(kind, mode)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		verdict := "reported (report-only): "
		var err error
		switch {
		case mode == session.WatchdogEnforce && stop != nil:
			err = stop(w.ctx)
			verdict = "stopped: "
			if kind == kindEavesdrop {
				verdict = "hung up: "
			}
			if err != nil {
				verdict = "stop failed (" + err.Error() + "): "
			}
		case mode == session.WatchdogEnforce:
			verdict = "reported (spy unknown): "
		}
		var user string
		var mask int
		if snap := w.snap(); snap != nil {
			user = resolveRequester(snap, channel{name: name, number: caller, username: ev.Get("Caller-Username"),
				fromUser: ev.Get("variable_sip_from_user"), fromHost: ev.Get("variable_sip_from_host")})
			if p, ok := snap.ProfileOf(user); ok {
				mask = p.MaskDigits
			}
		}
		w.log.Warn("watchdog: bypass caught", zap.String("kind", kind), zap.String("channel", uuid),
			zap.String("name", name), zap.String("user", user), zap.String("mode", string(mode)), zap.Error(err))
		rec := w.audit.Watchdog(session.WatchdogEntry{
			User:       user,
			Action:     action,
			Reason:     session.ReasonNoDecision,
			Caller:     caller,
			MaskDigits: mask,
			Channels:   []string{uuid},
			Detail:     verdict + what + "; channel " + name,
		})
		if err := w.audit.Write(context.WithoutCancel(w.ctx), rec); err != nil {
			w.log.Error("audit write failed", zap.String("kind", kind), zap.Error(err))
		}
	}()
}
