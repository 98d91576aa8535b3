package session

import (
	"context"
	"math"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// Requester is the channel that asked (the supervisor's phone): its name
// and caller id go into every record, so even an unknown caller (no user)
// can be traced back to a phone.
type Requester struct {
	Channel      string // empty when unknown: no "requested from" detail
	Name         string
	CallerNumber string // unmasked; masked per the decision's profile
}

// Entry is what an audit record says beside the outcome.
type Entry struct {
	User      string
	Action    enforce.Action
	Target    string
	Queue     string
	Caller    string // unmasked; masked per the requester's profile
	Channels  []string
	Detail    string
	Requester Requester
	// Session is the live monitor session's id, on every record of its
	// life after the eavesdrop ran.
	Session string
	// Duration, when set, is what the record lasts for: a recording's
	// length on its stop, a pause's on its resume (ChangeDuration).
	Duration time.Duration
	// RecordedAt is when the recording acted on was made (stop, pause,
	// resume, playback): the request's recording age, recorded so the
	// decision can be replayed against another policy.
	RecordedAt time.Time
	// Recording is the catalogued recording a playback is about, for its
	// access history (AuditRecord.Recording).
	Recording string
}

// seconds is d in seconds to the millisecond, as records carry durations.
func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// Audit builds and writes the audit records of one PBX adapter.
type Audit struct {
	// Log receives the records.
	Log enforce.Auditor
	// Source names the adapter in decision records (e.g. "asterisk");
	// watchdog and orphan records say "watchdog".
	Source string
	// PBX names the PBX instance (e.g. "asterisk", "pbx1").
	PBX string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Timeout bounds one write (default 2s).
	Timeout time.Duration
	// Failed, when set, is called for every record that could not be
	// written (a metric).
	Failed func()
}

// AskedBy names the adapter as the asker of its decisions:
// "<source>:<pbx>".
func (a *Audit) AskedBy() string { return a.Source + ":" + a.PBX }

func (a *Audit) now() time.Time {
	if a.Now == nil {
		return time.Now().UTC()
	}
	return a.Now().UTC()
}

// Record is the audit record of outcome o for e.
func (a *Audit) Record(e Entry, o Outcome) enforce.AuditRecord {
	mask := o.Decision.MaskDigits
	detail := e.Detail
	if e.Requester.Channel != "" {
		detail = JoinDetail(detail, "requested from "+e.Requester.Name+" caller id "+
			orNone(enforce.Mask(e.Requester.CallerNumber, mask)))
	}
	return enforce.AuditRecord{
		Time:       a.now(),
		Source:     a.Source,
		User:       e.User,
		Action:     ActionName(e.Action),
		Target:     e.Target,
		Queue:      e.Queue,
		Decision:   o.Verdict(),
		Reason:     o.Reason,
		Profile:    o.Decision.Profile,
		Caller:     enforce.Mask(e.Caller, mask),
		PBX:        a.PBX,
		Channels:   e.Channels,
		Detail:     detail,
		AskedBy:    a.AskedBy(),
		Session:    e.Session,
		Duration:   seconds(max(e.Duration, 0)),
		RecordedAt: e.RecordedAt,
		Recording:  e.Recording,
	}
}

// Decision writes the audit record of outcome o for e and returns the
// outcome to enforce, with the write's error. An allow whose audit cannot
// be written becomes a deny (audit_unavailable): nothing is enforced off
// the record.
func (a *Audit) Decision(ctx context.Context, e Entry, o Outcome) (Outcome, error) {
	err := a.Write(ctx, a.Record(e, o))
	if err != nil && o.Allow {
		o = Outcome{Reason: ReasonAuditFailed, Decision: o.Decision}
		o.Decision.Allow = false
	}
	return o, err
}

// Result writes a second record for an allow o that was audited
// (Decision) and then enforced: its Outcome is enforce.OutcomeEnforced
// when failure is nil, else enforce.OutcomeFailed with the failure in
// Detail. It returns the record and the write's error.
//
// The decision record is written before enforcement and stays the one
// that gates it (an allow that cannot be audited is never enforced); this
// record only completes it, so that an allow the PBX then refused does not
// read as a session that happened. A failure to write it does not undo an
// enforced allow that is already on record.
func (a *Audit) Result(ctx context.Context, e Entry, o Outcome, failure error) (enforce.AuditRecord, error) {
	rec := a.resultRecord(e, o, failure)
	return rec, a.Write(ctx, rec)
}

// resultRecord is the record Result writes.
func (a *Audit) resultRecord(e Entry, o Outcome, failure error) enforce.AuditRecord {
	rec := a.Record(e, o)
	rec.Outcome = enforce.OutcomeEnforced
	if failure != nil {
		rec.Outcome = enforce.OutcomeFailed
		rec.Detail = JoinDetail("failed after allow: "+failure.Error(), rec.Detail)
	}
	return rec
}

// WatchdogEntry is what the record of a bypass or an orphan the watchdog
// ended says.
type WatchdogEntry struct {
	User, Target string
	Action       enforce.Action
	Reason       string // ReasonNoDecision or ReasonOrphaned
	Caller       string // unmasked
	MaskDigits   int
	Channels     []string
	Detail       string
	// Outcome is set for an orphan: enforce.OutcomeEnforced, or
	// OutcomeFailed when Failure is not nil.
	Outcome string
	Failure error
}

// Watchdog is the record (Source "watchdog", decision deny) of a bypass
// or an orphan.
func (a *Audit) Watchdog(w WatchdogEntry) enforce.AuditRecord {
	rec := enforce.AuditRecord{
		Time:     a.now(),
		Source:   "watchdog",
		User:     w.User,
		Action:   ActionName(w.Action),
		Target:   w.Target,
		Decision: "deny",
		Reason:   w.Reason,
		Caller:   enforce.Mask(w.Caller, w.MaskDigits),
		PBX:      a.PBX,
		Channels: w.Channels,
		Detail:   w.Detail,
		AskedBy:  a.AskedBy(),
		Outcome:  w.Outcome,
	}
	if w.Failure != nil {
		rec.Outcome = enforce.OutcomeFailed
		rec.Detail = JoinDetail(rec.Detail, "failed: "+w.Failure.Error())
	}
	return rec
}

// LeaseTakeover builds the record of a daemon's watchdog starting to act
// (reason watchdog_lease; detail says why): not a decision on anyone's
// request, so it allows and names no action.
func (a *Audit) LeaseTakeover(detail string) enforce.AuditRecord {
	rec := a.Watchdog(WatchdogEntry{Reason: ReasonWatchdogLease, Detail: detail})
	rec.Decision, rec.Action = "allow", ""
	return rec
}

// Write writes rec within Timeout, even after ctx ended (a shutdown still
// leaves a trail), and reports a failure to Failed.
func (a *Audit) Write(ctx context.Context, rec enforce.AuditRecord) error {
	d := a.Timeout
	if d <= 0 {
		d = 2 * time.Second
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	if err := a.Log.Audit(actx, rec); err != nil {
		if a.Failed != nil {
			a.Failed()
		}
		return err
	}
	return nil
}

// JoinDetail joins the non-empty parts with "; ".
func JoinDetail(parts ...string) string {
	out := ""
	for _, p := range parts {
		switch {
		case p == "":
		case out == "":
			out = p
		default:
			out += "; " + p
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// OrNone is s, or "(none)" when s is empty.
func OrNone(s string) string { return orNone(s) }

// ActionName is the action's name, "invalid" for the zero action.
func ActionName(a enforce.Action) string {
	if a.Valid() {
		return a.String()
	}
	return "invalid"
}
