package session

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// Mode is a monitor session's mode; the supervisor's DTMF 4, 5 and 6
// switch between them.
type Mode uint8

// The monitor modes.
const (
	Listen  Mode = iota + 1 // the supervisor hears both sides; nobody hears it
	Whisper                 // the agent hears the supervisor, the customer does not
	Barge                   // both sides hear the supervisor
)

// modes holds each mode's name, its in-session DTMF digit (Asterisk's
// ChanSpy d option uses the same digits) and the right it needs.
var modes = [...]struct {
	name, digit string
	action      enforce.Action
}{
	Listen:  {"listen", "4", enforce.MonitorListen},
	Whisper: {"whisper", "5", enforce.MonitorWhisper},
	Barge:   {"barge", "6", enforce.MonitorBarge},
}

// valid reports whether m is one of the modes.
func (m Mode) valid() bool { return m >= Listen && int(m) < len(modes) }

// ParseMode parses listen, whisper or barge.
func ParseMode(s string) (Mode, bool) {
	for m := Listen; m.valid(); m++ {
		if modes[m].name == s {
			return m, true
		}
	}
	return 0, false
}

// ModeForDigit maps the in-session DTMF digits 4, 5 and 6 to modes.
func ModeForDigit(d string) (Mode, bool) {
	for m := Listen; m.valid(); m++ {
		if modes[m].digit == d {
			return m, true
		}
	}
	return 0, false
}

func (m Mode) String() string {
	if !m.valid() {
		return "invalid"
	}
	return modes[m].name
}

// Action is the right a mode needs.
func (m Mode) Action() enforce.Action {
	if !m.valid() {
		return 0
	}
	return modes[m].action
}

// Eavesdropper is what a monitor session needs from a PBX. Asterisk
// implements it with a mixing bridge holding the supervisor and a snoop
// channel on the target; FreeSWITCH with eavesdrop on the supervisor's
// leg.
type Eavesdropper interface {
	// Eavesdrop connects the supervisor's channel to the target channel's
	// call in mode m; muted, the supervisor hears nothing of the call from
	// the first frame (Tap.Mute). On error it leaves nothing behind of what
	// it set up (the supervisor's channel stays).
	Eavesdrop(ctx context.Context, supervisor, target string, m Mode, muted bool) (Tap, error)
	// Play plays media to channel without waiting for it to end.
	Play(ctx context.Context, channel, media string) error
	// Hangup hangs channel up; a channel already gone is not an error.
	Hangup(ctx context.Context, channel string) error
}

// Tap is one supervisor eavesdropping on one call.
type Tap interface {
	// SetMode changes what the supervisor hears and who hears it (ARI: a
	// new snoop, bridged before the old one goes; ESL: sendevent to the
	// eavesdrop). On error the tap stays in its previous mode.
	SetMode(ctx context.Context, m Mode) error
	// Mute stops (on) or restores the call's audio to the supervisor, in
	// every mode and across mode changes; what the supervisor says still
	// reaches whom its mode lets hear it. Muting a muted tap, or unmuting
	// an unmuted one, is not an error. On error the tap stays as it was.
	Mute(ctx context.Context, on bool) error
	// Close ends the eavesdrop; the supervisor's channel stays.
	Close(ctx context.Context) error
}

// Decider decides mode m again for a running session: the audit entry of
// the decision and its outcome (the adapter resolves the requester and the
// target's call afresh).
type Decider func(ctx context.Context, m Mode) (Entry, Outcome)

// Monitor is one monitor session: a supervisor allowed to eavesdrop on a
// target's call, in one mode at a time.
type Monitor struct {
	pbx     Eavesdropper
	audit   *Audit
	sup     string
	target  string
	refusal string // media played to the supervisor on a refused switch
	mode    Mode

	// tapMu serialises the tap's calls: a recording's pause mutes it from
	// another goroutine than its adapter's (mute.go).
	tapMu sync.Mutex
	tap   Tap
	muted bool // the tap is muted (the target's recording is paused)
	cut   bool // the tap was closed because it could not be muted
	ended bool

	id      string    // the session's id, on its audit records
	reg     *Registry // nil: not registered
	h       *handle   // the registry's handle, nil without a registry
	entry   Entry     // the current mode's allowing entry, for the end record
	allowed Outcome   // the current mode's allow
	started time.Time
	limit   *deadline // the allowing grants' max_duration (limits.go)
}

// MonitorSpec is an allowed monitor request.
type MonitorSpec struct {
	Supervisor, Target string // channel ids
	Mode               Mode
	Entry              Entry   // the allowing decision's audit entry
	Allowed            Outcome // the allow, as audited (Audit.Decision)
	RefusalSound       string  // played to the supervisor when a switch is refused
	// Registry lists the session while it runs; nil registers nothing.
	Registry *Registry
	// Downgrades says the adapter applies the downgrades a re-decision
	// asks for (Redecided, ApplyRedecision); without it such a session is
	// ended instead.
	Downgrades bool
}

// NewSessionID is a new monitor session id. An adapter that takes it
// before auditing an allowed monitor request (Entry.Session) has the
// decision record carry the id its session's records will, so that one
// session's audit reads from its decision to its end.
func NewSessionID() string { return randomID("ms-") }

// StartMonitor enforces an allow: it eavesdrops in spec.Mode, muted while
// the recording of the target's call is paused (mute.go), registers the
// session (spec.Registry) and writes the result record (enforced, or
// failed with the PBX's error and cause enforce.CauseSetupFailed); both
// carry the session's id (spec.Entry.Session, else a new one). A registry that cannot be written does not stop
// the session: the result record says so. On error nothing was set up;
// the caller then tells the supervisor (pbx_error) and hangs it up.
func StartMonitor(ctx context.Context, pbx Eavesdropper, audit *Audit, spec MonitorSpec) (*Monitor, error) {
	if spec.Entry.Session == "" {
		spec.Entry.Session = NewSessionID()
	}
	muted := spec.Registry.paused(spec.Entry.Target)
	tap, err := pbx.Eavesdrop(ctx, spec.Supervisor, spec.Target, spec.Mode, muted)
	if err != nil {
		err = fmt.Errorf("eavesdrop: %w", err)
		rec := audit.resultRecord(spec.Entry, spec.Allowed, err)
		rec.Cause = enforce.CauseSetupFailed
		_ = audit.Write(ctx, rec)
		if spec.Registry != nil {
			spec.Registry.m.ends.WithLabelValues(enforce.CauseSetupFailed).Inc()
		}
		return nil, err
	}
	s := &Monitor{pbx: pbx, audit: audit, sup: spec.Supervisor, target: spec.Target,
		refusal: spec.RefusalSound, tap: tap, muted: muted, mode: spec.Mode,
		id: spec.Entry.Session, reg: spec.Registry, entry: spec.Entry, allowed: spec.Allowed, started: audit.now()}
	var regErr error
	if s.reg != nil {
		s.started = s.reg.now()
		s.h, regErr = s.reg.add(ctx, s.liveRecord(spec), spec.Downgrades, s.mute)
		s.reg.started(ctx, s.h)
	}
	s.limit = newDeadline()
	s.limit.tighten(spec.Allowed.Decision.MaxDuration)
	rec := audit.resultRecord(spec.Entry, spec.Allowed, nil)
	if regErr != nil {
		rec.Detail = JoinDetail(rec.Detail, "not listed as live: "+regErr.Error())
	}
	_ = audit.Write(ctx, rec)
	return s, nil
}

// liveRecord is the registry's record of the session just started.
func (s *Monitor) liveRecord(spec MonitorSpec) enforce.LiveSession {
	e := spec.Entry
	ch := e.Requester.Name
	if ch == "" {
		ch = spec.Supervisor
	}
	return enforce.LiveSession{
		ID: s.id, User: e.User, Channel: ch, ChannelID: spec.Supervisor, Target: e.Target, TargetChannel: spec.Target,
		Queue: e.Queue, Caller: e.Caller, Mode: s.mode.String(),
		Modes:   []enforce.ModeChange{{Mode: s.mode.String(), At: s.started}},
		Profile: spec.Allowed.Decision.Profile, Grant: spec.Allowed.Decision.Grant,
		PBX: s.audit.PBX, Instance: s.reg.Instance(), StartedAt: s.started, UpdatedAt: s.started,
	}
}

// ID is the session's id (its records' Session, the registry's key).
func (s *Monitor) ID() string { return s.id }

// Mode is the session's current mode.
func (s *Monitor) Mode() Mode { return s.mode }

// Done is closed when someone asked, through the registry, to end the
// session (Registry.End), or a re-decision denied it (redecide.go); its
// adapter then ends it with cause EndCause. Without a registry it is
// never closed.
func (s *Monitor) Done() <-chan struct{} {
	if s.h == nil {
		return nil
	}
	return s.h.done
}

// EndedBy is who asked to end the session, once Done is closed.
func (s *Monitor) EndedBy() string {
	if s.h == nil {
		return ""
	}
	select {
	case <-s.h.done:
		return s.h.by
	default:
		return ""
	}
}

// SwitchResult says what a mode switch did.
type SwitchResult struct {
	Outcome Outcome // the audited decision
	Err     error   // the PBX's error when an allowed switch could not be done
}

// Switch decides mode m again (decide) and, on allow, changes the tap and
// the registry's record (mode and time of the change). A refused switch,
// or one the PBX could not do, leaves the session as it was; a refusal
// plays the refusal sound to the supervisor. Switching to the current
// mode does nothing.
func (s *Monitor) Switch(ctx context.Context, m Mode, decide Decider) SwitchResult {
	if m == s.mode {
		return SwitchResult{Outcome: Outcome{Allow: true}}
	}
	entry, o := decide(ctx, m)
	entry.Detail = "switch from " + s.mode.String() + " to " + m.String()
	entry.Session = s.id
	o, _ = s.audit.Decision(ctx, entry, o)
	if !o.Allow {
		err := s.pbx.Play(ctx, s.sup, s.refusal)
		return SwitchResult{Outcome: o, Err: err}
	}
	err := s.setMode(ctx, m)
	if err != nil {
		_, _ = s.audit.Result(ctx, entry, o, err)
		return SwitchResult{Outcome: o, Err: err}
	}
	s.mode = m
	rec := s.audit.resultRecord(entry, o, nil)
	if s.reg != nil {
		if rerr := s.reg.switched(ctx, s.h, m.String(), s.reg.now()); rerr != nil {
			rec.Detail = JoinDetail(rec.Detail, "registry not updated: "+rerr.Error())
		}
	}
	_ = s.audit.Write(ctx, rec)
	entry.Detail = ""
	s.entry, s.allowed = entry, o
	s.limit.tighten(o.Decision.MaxDuration)
	return SwitchResult{Outcome: o}
}

// End ends the session for cause (enforce.Cause*): the eavesdrop goes
// and, unless the requester hung up, the supervisor is hung up, never left
// waiting. It removes the session from the registry and writes the record
// of the end (outcome "ended", the cause, the duration in seconds). A
// second End does nothing.
func (s *Monitor) End(ctx context.Context, cause string) error {
	s.tapMu.Lock()
	if s.ended {
		s.tapMu.Unlock()
		return nil
	}
	s.ended = true
	var err error
	if !s.cut {
		err = s.tap.Close(ctx)
	}
	s.tapMu.Unlock()
	s.limit.stop()
	s.notice(ctx, cause)
	if cause != enforce.CauseRequesterHangup {
		if herr := s.pbx.Hangup(ctx, s.sup); herr != nil && err == nil {
			err = herr
		}
	}
	var d time.Duration
	if s.reg != nil {
		d = s.reg.remove(ctx, s.h, cause)
	} else {
		d = s.audit.now().Sub(s.started)
	}
	entry := s.entry
	entry.Queue = s.queue()
	rec := s.audit.Record(entry, s.allowed)
	rec.Outcome, rec.Cause = enforce.OutcomeEnded, cause
	rec.Duration = seconds(d)
	why := "session ended: " + cause
	if by := s.EndedBy(); by != "" && cause == enforce.CauseAdministrator {
		why = "session ended by administrator " + by
	}
	if l := s.limit.inForce(); l > 0 && cause == enforce.CauseMaxDuration {
		why = "session ended: max_duration " + l.String() + " reached"
	}
	if err != nil {
		why = JoinDetail(why, "cleanup: "+err.Error())
	}
	rec.Detail = JoinDetail(why, rec.Detail)
	_ = s.audit.Write(ctx, rec)
	return err
}

// WatchdogMode says what an adapter's watchdog does with a bypass it
// catches (a listen, whisper, barge or recording no decision allowed).
type WatchdogMode string

// The watchdog modes, as the adapters' watchdog settings spell them.
const (
	// WatchdogEnforce ends the bypass (each adapter says how) and audits it.
	WatchdogEnforce WatchdogMode = "enforce"
	// WatchdogReportOnly only audits (and counts) the bypass.
	WatchdogReportOnly WatchdogMode = "report-only"
	// WatchdogOff does not watch.
	WatchdogOff WatchdogMode = "off"
)
