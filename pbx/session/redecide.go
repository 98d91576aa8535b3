package session

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwarden/callwarden/enforce"
)

// A live session is decided again, with the request recorded at its start
// (requester, the current mode's action, the target agent and the call's
// queue), whenever the policy changes (Registry.Redecide, called with
// every snapshot the loader installs) and when the allowing grant stops
// being valid on its own (enforce.Snapshot.ValidUntil: a valid_until or the
// end of the weekly window; one timer per session, re-armed after each
// decision). Still allowed: nothing happens and nothing is audited. The
// current mode denied but a lesser one allowed (barge, whisper, listen):
// the session drops to the highest allowed lesser mode, on its adapter's
// goroutine (Monitor.Redecided, Monitor.ApplyRedecision), audited with
// the cause; an adapter that cannot do that (MonitorSpec.Downgrades
// unset) has the session ended instead. Denied entirely: the session is
// ended like an administrator's end (Monitor.Done), with the cause
// (Monitor.EndCause), and the supervisor hears the refusal sound first.
//
// Only an actual deny ends a session: a snapshot the loader could not
// load is never installed, so a store blip re-decides nothing. A timer
// that fires while the loader withholds its snapshot (the store
// unreachable past the staleness bound) decides with none, and the
// session ends with cause store_unavailable: fail closed.

// pending is a downgrade the registry decided, for the adapter to apply.
type pending struct {
	mode  Mode
	cause string
	d     enforce.Decision
}

// redecideMetrics counts re-decisions by outcome and cause.
type redecideMetrics struct {
	vec     *prometheus.CounterVec
	allowed prometheus.Counter // the hot path, resolved once
}

func newRedecideMetrics() redecideMetrics {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callwarden_session_redecisions_total",
		Help: "Live monitor sessions decided again, by outcome (allowed, downgraded, ended) and cause."},
		[]string{"outcome", "cause"})
	return redecideMetrics{vec: v, allowed: v.WithLabelValues("allowed", "none")}
}

// redecideCause is the cause of a session ended or downgraded by deny
// reason r.
func redecideCause(r enforce.Reason) string {
	switch r {
	case enforce.ReasonProtectedTarget:
		return enforce.CauseProtectedTarget
	case enforce.ReasonOutsideWindow:
		return enforce.CauseWindowClosed
	case enforce.ReasonUnknownUser, enforce.ReasonNoProfile, enforce.ReasonActionNotGranted, enforce.ReasonOutOfScope:
		return enforce.CauseRevoked
	}
	return r.String()
}

// redecided reports whether a re-decision asked for the session's end
// (the supervisor then hears the refusal). h.cause is written before done
// is closed, so it is read only once done is.
func (h *handle) redecided() bool { return isClosed(h.done) && h.cause != "" }

// watch records what h is decided again with; r.mu is held.
func (h *handle) watch(rec enforce.LiveSession, downgrades bool) {
	h.mode, _ = ParseMode(rec.Mode)
	h.req = enforce.Request{User: rec.User, Agent: rec.Target, Queue: rec.Queue}
	h.downgrades = downgrades
	h.redo = make(chan struct{}, 1)
}

// policy is the snapshot timers decide from.
func (r *Registry) policy() *enforce.Snapshot {
	if r.o.Policy == nil {
		return nil
	}
	return r.o.Policy()
}

// Redecide decides every live session this process enforces again
// against snap, a snapshot just installed (cache.LoaderOptions.OnInstall):
// one decision per session, timers re-armed only where their instant
// moved. A nil registry or snapshot does nothing: a snapshot is only
// withheld, never installed as nil.
func (r *Registry) Redecide(snap *enforce.Snapshot) {
	if r == nil || snap == nil {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.live {
		r.redecideLocked(h, snap, now)
	}
}

// expire is h's timer number armed: its allow's validity ended. A timer
// stopped or replaced after it fired finds another number and does
// nothing.
func (r *Registry) expire(h *handle, armed uint64) {
	snap := r.policy()
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if h.gone || h.armed != armed {
		return
	}
	h.timer, h.until = nil, time.Time{}
	r.redecideLocked(h, snap, now)
}

// TargetMoved tells the registry that the call on the target channel
// (a PBX channel id, MonitorSpec.Target) is now in queue, as its adapter
// saw it move: every session on that channel takes the new queue, in its
// re-decisions and in its record in the store, and is decided again at
// once from the current policy. One whose mode the new queue no longer
// allows is downgraded or ended like on a policy change, with cause
// enforce.CauseQueueMoved (enforce.CauseProtectedTarget when the new
// queue is protected). A queue it already has changes nothing. Without a
// Policy only the queue is recorded.
func (r *Registry) TargetMoved(ctx context.Context, channel, queue string) {
	if r == nil {
		return
	}
	snap := r.policy()
	now := r.now()
	var recs []enforce.LiveSession
	r.mu.Lock()
	for _, h := range r.live {
		if h.rec.TargetChannel != channel || h.req.Queue == queue || h.redo == nil {
			continue
		}
		h.req.Queue, h.rec.Queue, h.rec.UpdatedAt = queue, queue, now
		if r.o.Policy != nil {
			r.redecideAs(h, snap, now, enforce.CauseQueueMoved)
		}
		if h.cause == "" && !isClosed(h.done) { // an ending session leaves the list anyway
			rec := h.rec
			rec.Modes = append([]enforce.ModeChange(nil), rec.Modes...)
			recs = append(recs, rec)
		}
	}
	r.mu.Unlock()
	for _, rec := range recs {
		_ = r.put(ctx, rec) // logged and counted by put; the session goes on
	}
}

// redecideLocked decides h again; r.mu is held.
func (r *Registry) redecideLocked(h *handle, snap *enforce.Snapshot, now time.Time) {
	r.redecideAs(h, snap, now, "")
}

// redecideAs decides h again; a deny that would be revoked is said as
// because instead when set (what changed was the call, not the policy).
// r.mu is held.
func (r *Registry) redecideAs(h *handle, snap *enforce.Snapshot, now time.Time, because string) {
	if h.redo == nil || h.cause != "" || isClosed(h.done) {
		return // not watched, or already ending
	}
	req := h.req
	req.Action = h.mode.Action()
	d := enforce.Decide(snap, &req, now)
	if d.Allow {
		r.arm(h, snap.ValidUntil(&req, d, now), now)
		r.rm.allowed.Inc()
		return
	}
	cause := redecideCause(d.Reason)
	if because != "" && cause == enforce.CauseRevoked {
		cause = because
	}
	for m := h.mode - 1; m >= Listen && h.downgrades; m-- {
		req.Action = m.Action()
		ld := enforce.Decide(snap, &req, now)
		if !ld.Allow {
			continue
		}
		h.pend = &pending{mode: m, cause: cause, d: ld}
		select {
		case h.redo <- struct{}{}:
		default:
		}
		r.arm(h, snap.ValidUntil(&req, ld, now), now)
		r.rm.vec.WithLabelValues("downgraded", cause).Inc()
		return
	}
	r.stopTimer(h)
	r.rm.vec.WithLabelValues("ended", cause).Inc()
	h.end(cause)
}

// arm sets h's timer to fire at until (zero: none); r.mu is held.
func (r *Registry) arm(h *handle, until, now time.Time) {
	if until.Equal(h.until) && (h.timer != nil || until.IsZero()) {
		return
	}
	r.stopTimer(h)
	if until.IsZero() {
		return
	}
	h.until = until
	armed := h.armed
	h.timer = time.AfterFunc(until.Sub(now), func() { r.expire(h, armed) })
}

// stopTimer stops h's timer; r.mu is held.
func (r *Registry) stopTimer(h *handle) {
	if h.timer != nil {
		h.timer.Stop()
	}
	h.timer, h.until = nil, time.Time{}
	h.armed++
}

// end asks h's adapter to end the session for cause, unless someone asked
// first.
func (h *handle) end(cause string) {
	h.once.Do(func() {
		h.cause = cause
		close(h.done)
	})
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// EndCause is why the session is to end once Done is closed: the cause of
// a re-decision that denied it (enforce.CauseRevoked, CauseWindowClosed,
// CauseProtectedTarget or the engine's reason), else
// enforce.CauseAdministrator. Empty while Done is open.
func (s *Monitor) EndCause() string {
	if s.h == nil || !isClosed(s.h.done) {
		return ""
	}
	if s.h.cause != "" {
		return s.h.cause
	}
	return enforce.CauseAdministrator
}

// Redecided receives when a re-decision asks the session to drop to a
// lesser mode; the adapter then calls ApplyRedecision on the goroutine
// that drives the session. Nil (never ready) without a registry.
func (s *Monitor) Redecided() <-chan struct{} {
	if s.h == nil {
		return nil
	}
	return s.h.redo
}

// ApplyRedecision drops the session to the lesser mode a re-decision
// allowed, if it still runs in a higher one: the tap's mode, the
// registry's record and an audit record of the downgrade with its cause.
// A tap that cannot change mode has the session ended with that cause
// (fail closed: the denied mode must not go on).
func (s *Monitor) ApplyRedecision(ctx context.Context) SwitchResult {
	if s.reg == nil || s.isEnded() {
		return SwitchResult{}
	}
	s.reg.mu.Lock()
	p := s.h.pend
	s.h.pend = nil
	s.reg.mu.Unlock()
	if p == nil || p.mode >= s.mode {
		return SwitchResult{Outcome: s.allowed}
	}
	entry := s.entry
	entry.Action, entry.Queue = p.mode.Action(), s.queue()
	entry.Session = s.id
	o := Decided(p.d)
	if err := s.setMode(ctx, p.mode); err != nil {
		s.reg.mu.Lock()
		s.reg.stopTimer(s.h)
		s.h.end(p.cause)
		s.reg.mu.Unlock()
		return SwitchResult{Outcome: o, Err: err}
	}
	from := s.mode
	s.mode = p.mode
	rec := s.audit.resultRecord(entry, o, nil)
	rec.Cause = p.cause
	rec.Detail = JoinDetail("re-decided: "+from.String()+" no longer allowed ("+p.cause+"), down to "+p.mode.String(), rec.Detail)
	if err := s.reg.switched(ctx, s.h, p.mode.String(), s.reg.now()); err != nil {
		rec.Detail = JoinDetail(rec.Detail, "registry not updated: "+err.Error())
	}
	_ = s.audit.Write(ctx, rec)
	s.entry, s.allowed = entry, o
	return SwitchResult{Outcome: o}
}

// queue is the call's queue as the session is decided with: the start's,
// or the one its call moved to (Registry.TargetMoved).
func (s *Monitor) queue() string {
	if s.reg == nil || s.h == nil {
		return s.entry.Queue
	}
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	return s.h.req.Queue
}

// notice plays the refusal sound to a supervisor whose session a
// re-decision ends, and leaves it the registry's Notice to hear it before
// the hang-up.
func (s *Monitor) notice(ctx context.Context, cause string) {
	if s.h == nil || !s.h.redecided() || cause != s.h.cause || s.refusal == "" {
		return
	}
	if err := s.pbx.Play(ctx, s.sup, s.refusal); err != nil {
		return
	}
	t := time.NewTimer(s.reg.o.Notice)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
