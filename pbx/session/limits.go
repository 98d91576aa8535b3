package session

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// Who a limit's timer acts as, in the recording's metadata (StoppedBy,
// ResumedBy) and on its audit record (User).
const (
	ByMaxDuration = "callwarden:" + enforce.CauseMaxDuration
	ByMaxPause    = "callwarden:" + enforce.CauseMaxPause
)

// limitTimeout bounds the PBX and store calls a limit's timer makes: it
// runs off any request, so nothing else gives it a deadline.
const limitTimeout = 10 * time.Second

// deadline is a monitor session's max_duration: expired is closed when it
// passes (time.AfterFunc, no polling). A later decision can only bring it
// closer (tighten), never push it back. It counts on the real clock from
// the session's start, whatever clock the audit records use (a test's or
// a replay's), as its timer does.
type deadline struct {
	mu      sync.Mutex
	start   time.Time // the real time the session started
	timer   *time.Timer
	limit   time.Duration // the limit in force, from the session's start
	expired chan struct{}
	once    sync.Once
}

func newDeadline() *deadline { return &deadline{start: time.Now(), expired: make(chan struct{})} }

// tighten arms the deadline at limit after the session's start, unless one
// already in force is as close; limit <= 0 sets none.
func (d *deadline) tighten(limit time.Duration) {
	if limit <= 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.limit > 0 && d.limit <= limit {
		return
	}
	d.limit = limit
	if d.timer != nil {
		d.timer.Stop()
	}
	d.timer = time.AfterFunc(max(limit-time.Since(d.start), 0), func() { d.once.Do(func() { close(d.expired) }) })
}

// stop cancels the timer (the session ended first).
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
}

// inForce returns the limit armed, zero when none.
func (d *deadline) inForce() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.limit
}

// recLimit is an armed limit of one recording.
type recLimit struct {
	timer *time.Timer
	op    RecordOp // RecStop (max_duration) or RecResume (max_pause)
	limit time.Duration
	pause int // for RecResume: the index of the pause it ends
}

// Limit arms the limit of the grant that allowed op on rec (d, the
// allowing decision), once op succeeded: after a start, d.MaxDuration
// stops the recording (stopped by ByMaxDuration); after a pause,
// d.MaxPause resumes it (resumed by ByMaxPause). The timer does what a
// user would (Change through pbx) and writes an audit record (cause
// max_duration or max_pause, Duration the limit) when r.Audit is set. A
// stop, a resume or the PBX's end of the recording cancels what no longer
// applies. Other operations, or no limit, arm nothing.
func (r *Recordings) Limit(pbx Recorder, rec enforce.Recording, op RecordOp, d enforce.Decision) {
	var l recLimit
	switch {
	case op == RecStart && d.MaxDuration > 0:
		l = recLimit{op: RecStop, limit: d.MaxDuration}
	case op == RecPause && d.MaxPause > 0 && rec.State == enforce.RecordingPaused:
		l = recLimit{op: RecResume, limit: d.MaxPause, pause: len(rec.Pauses) - 1}
	default:
		return
	}
	r.arm(pbx, rec.ID, l, l.limit, d)
}

// arm runs limit l of recording id after delay (its limit, or what is
// left of it for a recording re-attached after a restart), replacing the
// timer armed for the same operation.
func (r *Recordings) arm(pbx Recorder, id string, l recLimit, delay time.Duration, d enforce.Decision) {
	r.mu.Lock()
	defer r.mu.Unlock()
	armed := l // the timer's own copy: l.timer is written below
	l.timer = time.AfterFunc(max(delay, 0), func() { r.fire(pbx, id, armed, d) })
	if r.limits == nil {
		r.limits = make(map[string][]recLimit)
	}
	r.limits[id] = append(r.dropLimitsLocked(id, l.op), l)
}

// cancelLimits stops rec id's timers for the given operations (all of
// them when none is given): what they would do has been done.
func (r *Recordings) cancelLimits(id string, ops ...RecordOp) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(ops) == 0 {
		ops = []RecordOp{RecStop, RecResume}
	}
	for _, op := range ops {
		if keep := r.dropLimitsLocked(id, op); len(keep) > 0 {
			r.limits[id] = keep
		} else {
			delete(r.limits, id)
		}
	}
}

// dropLimitsLocked stops id's timer for op and returns the others.
func (r *Recordings) dropLimitsLocked(id string, op RecordOp) []recLimit {
	var keep []recLimit
	for _, l := range r.limits[id] {
		if l.op == op {
			l.timer.Stop()
			continue
		}
		keep = append(keep, l)
	}
	return keep
}

// fire runs limit l of recording id: unless a user (or the PBX) did it
// first, it stops or resumes the recording and audits it.
func (r *Recordings) fire(pbx Recorder, id string, l recLimit, d enforce.Decision) {
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	r.cancelLimits(id, l.op)
	rec, err := r.Store.Recording(ctx, id)
	if err != nil {
		r.auditLimit(ctx, enforce.Recording{ID: id}, l, d, fmt.Errorf("read recording: %w", err))
		return
	}
	switch {
	case rec.State == enforce.RecordingStopped:
		return
	case l.op == RecResume && (rec.State != enforce.RecordingPaused || len(rec.Pauses)-1 != l.pause):
		return // resumed (and maybe paused again) meanwhile
	}
	by := ByMaxDuration
	if l.op == RecResume {
		by = ByMaxPause
	}
	rec, err = r.Change(ctx, pbx, by, rec, l.op, d)
	cause := enforce.CauseMaxDuration
	if l.op == RecResume {
		cause = enforce.CauseMaxPause
	}
	r.Sessions.countLimit(l.op, cause, err != nil)
	r.auditLimit(ctx, rec, l, d, err)
}

// auditLimit writes the record of a limit's stop or resume of rec.
func (r *Recordings) auditLimit(ctx context.Context, rec enforce.Recording, l recLimit, d enforce.Decision, failure error) {
	if r.Audit == nil {
		return
	}
	cause, by, what := enforce.CauseMaxDuration, ByMaxDuration, "stopped"
	if l.op == RecResume {
		cause, by, what = enforce.CauseMaxPause, ByMaxPause, "resumed"
	}
	e := Entry{User: by, Action: l.op.Action(), Target: rec.Target, Queue: rec.Queue, Caller: rec.Caller,
		Detail: fmt.Sprintf("recording %s %s after %s %s", rec.ID, what, cause, l.limit)}
	if rec.Channel != "" {
		e.Channels = []string{rec.Channel}
	}
	o := Outcome{Allow: true, Reason: cause, Decision: d}
	out := r.Audit.resultRecord(e, o, failure)
	out.Cause = cause
	out.Duration = seconds(l.limit)
	_ = r.Audit.Write(ctx, out)
}

// Expired is closed when the session's max_duration passes: the limit of
// the grant that allowed it, or a closer one of a grant that allowed a
// later mode switch. Its adapter then ends it with cause
// enforce.CauseMaxDuration, as it does on an administrator's end. Without
// a limit it is never closed.
func (s *Monitor) Expired() <-chan struct{} { return s.limit.expired }
