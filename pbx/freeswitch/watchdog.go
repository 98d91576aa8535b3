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

	mu   sync.Mutex
	seen map[string]time.Time // decided: eavesdrop target or channel|file

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newWatchdog(w *watchdog) *watchdog {
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.seen = make(map[string]time.Time)
	return w
}

// allow lets channel's next guarded application for action through, once,
// within session.AllowanceTTL.
func (w *watchdog) allow(channel string, action enforce.Action) {
	w.allowances.Allow(channel, action)
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
		if w.allowances.Consume(uuid, enforce.MonitorListen) || w.allowances.Consume(uuid, enforce.MonitorWhisper) ||
			w.allowances.Consume(uuid, enforce.MonitorBarge) {
			return
		}
		w.bypass(ev, kindEavesdrop, enforce.MonitorListen, "eavesdrop("+target+")", func(ctx context.Context) error {
			_, err := w.act(ctx, "uuid_kill", uuid)
			return err
		})
	case "MEDIA_BUG_START":
		switch fn := ev.Get("Media-Bug-Function"); fn {
		case "eavesdrop":
			if w.mark("eavesdrop|" + uuid) {
				return
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
	case "CHANNEL_HANGUP_COMPLETE":
		w.allowances.Forget(uuid)
	}
}

// record handles a recording's start: RECORD_START and the session_record
// media bug both announce it; the first decides.
func (w *watchdog) record(ev Event, uuid, path string) {
	if w.mark("record|" + uuid + "|" + path) {
		return
	}
	if w.allowances.Consume(uuid, enforce.RecordingStart) {
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
	w.bypass(ev, kindRecord, enforce.RecordingStart, "recording "+path, func(ctx context.Context) error {
		_, err := w.act(ctx, "uuid_record", uuid, "stop", which)
		return err
	})
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
