package session

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// limited is an allow by a grant with the given limits.
func limited(maxDuration, maxPause time.Duration) Outcome {
	return Decided(enforce.Decision{Allow: true, Profile: "sup", MaxDuration: maxDuration, MaxPause: maxPause})
}

func startLimited(t *testing.T, o Outcome) (*fakePBX, *memAudit, *Monitor) {
	t.Helper()
	pbx, log := &fakePBX{}, &memAudit{}
	m, err := StartMonitor(context.Background(), pbx, newAudit(log), MonitorSpec{
		Supervisor: "sup", Target: "agent", Mode: Listen,
		Entry: Entry{User: "alice", Action: enforce.MonitorListen}, Allowed: o,
	})
	if err != nil {
		t.Fatalf("StartMonitor: %v", err)
	}
	return pbx, log, m
}

func expiresWithin(m *Monitor, d time.Duration) bool {
	select {
	case <-m.Expired():
		return true
	case <-time.After(d):
		return false
	}
}

// waitFor polls cond (a fake's state, written by a timer's goroutine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (m *memAudit) find(cause string) (enforce.AuditRecord, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.recs {
		if r.Cause == cause {
			return r, true
		}
	}
	return enforce.AuditRecord{}, false
}

func TestMonitorMaxDuration(t *testing.T) {
	t.Run("a session allowed under max_duration expires after it and ends audited", func(t *testing.T) {
		pbx, log, m := startLimited(t, limited(30*time.Millisecond, 0))
		if !expiresWithin(m, time.Second) {
			t.Fatal("the session did not expire")
		}
		if err := m.End(context.Background(), enforce.CauseMaxDuration); err != nil || !pbx.did("close") || !pbx.did("hangup sup") {
			t.Fatalf("End: %v, calls %v: want the eavesdrop closed and the supervisor released", err, pbx.calls)
		}
		r := log.recs[len(log.recs)-1]
		if r.Outcome != enforce.OutcomeEnded || r.Cause != enforce.CauseMaxDuration || !strings.Contains(r.Detail, "max_duration 30ms reached") {
			t.Errorf("end record %+v", r)
		}
	})
	t.Run("a session without a limit never expires", func(t *testing.T) {
		_, _, m := startLimited(t, allow())
		if expiresWithin(m, 50*time.Millisecond) {
			t.Error("a session without max_duration expired")
		}
		_ = m.End(context.Background(), enforce.CauseRequesterHangup)
	})
	t.Run("a session ended first cancels its timer", func(t *testing.T) {
		_, _, m := startLimited(t, limited(40*time.Millisecond, 0))
		_ = m.End(context.Background(), enforce.CauseRequesterHangup)
		if expiresWithin(m, 100*time.Millisecond) {
			t.Error("an ended session's max_duration still fired")
		}
	})
	t.Run("a switch allowed by a grant with a closer limit brings the end closer, never further", func(t *testing.T) {
		_, _, m := startLimited(t, limited(time.Hour, 0))
		m.Switch(context.Background(), Barge, func(context.Context, Mode) (Entry, Outcome) {
			return Entry{User: "alice", Action: enforce.MonitorBarge}, limited(30*time.Millisecond, 0)
		})
		if !expiresWithin(m, time.Second) {
			t.Fatal("the barge grant's shorter max_duration did not apply")
		}
		_ = m.End(context.Background(), enforce.CauseMaxDuration)

		_, _, m2 := startLimited(t, limited(30*time.Millisecond, 0))
		m2.Switch(context.Background(), Barge, func(context.Context, Mode) (Entry, Outcome) {
			return Entry{User: "alice", Action: enforce.MonitorBarge}, allow()
		})
		if !expiresWithin(m2, time.Second) {
			t.Fatal("a switch allowed by a grant without a limit lifted the session's max_duration")
		}
		_ = m2.End(context.Background(), enforce.CauseMaxDuration)
	})
}

func TestRecordingLimits(t *testing.T) {
	ctx := context.Background()
	newRecs := func() (*fakePBX, *memRecordings, *memAudit, *Recordings) {
		pbx, store, log := &fakePBX{}, &memRecordings{}, &memAudit{}
		reg, err := NewRegistry(RegistryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return pbx, store, log, &Recordings{Store: store, Audit: newAudit(log), Now: func() time.Time { return t0 }, Sessions: reg}
	}
	t.Run("a recording started under max_duration is stopped after it and audited", func(t *testing.T) {
		pbx, store, log, r := newRecs()
		d := limited(30*time.Millisecond, 0).Decision
		rec, _ := r.Start(ctx, pbx, "alice", "bob", CallInfo{Channel: "agent1", Queue: "sales"}, d)
		if saved, _ := store.Recording(ctx, rec.ID); !saved.Until.Equal(t0.Add(30 * time.Millisecond)) {
			t.Errorf("stored deadline %v, want the start plus max_duration (a restarted daemon re-arms it)", saved.Until)
		}
		r.Limit(pbx, rec, RecStart, d)
		waitFor(t, "the max_duration record", func() bool { _, ok := log.find(enforce.CauseMaxDuration); return ok })
		got, _ := store.Recording(ctx, rec.ID)
		if got.State != enforce.RecordingStopped || got.StoppedBy != ByMaxDuration || !pbx.did("stop "+rec.Name) {
			t.Errorf("recording %+v, calls %v", got, pbx.calls)
		}
		a, _ := log.find(enforce.CauseMaxDuration)
		if a.User != ByMaxDuration || a.Action != "recording.stop" || a.Outcome != enforce.OutcomeEnforced || a.Duration != 0.03 || a.Target != "bob" || a.Profile != "sup" {
			t.Errorf("audit record %+v", a)
		}
		if n := sample(r.Sessions.m.limits.WithLabelValues("stop", enforce.CauseMaxDuration, "ok")); n != 1 {
			t.Errorf("callwarden_recording_limit_actions_total{stop,max_duration,ok} = %v, want 1", n)
		}
	})
	t.Run("a forgotten pause is resumed after max_pause and audited", func(t *testing.T) {
		pbx, store, log, r := newRecs()
		rec, _ := r.Start(ctx, pbx, "alice", "bob", CallInfo{Channel: "agent1"}, enforce.Decision{})
		d := limited(0, 30*time.Millisecond).Decision
		rec, _ = r.Change(ctx, pbx, "bob", rec, RecPause, d)
		if saved, _ := store.Recording(ctx, rec.ID); !saved.Pauses[0].Until.Equal(t0.Add(30 * time.Millisecond)) {
			t.Errorf("stored pause deadline %v, want the pause plus max_pause", saved.Pauses[0].Until)
		}
		r.Limit(pbx, rec, RecPause, d)
		waitFor(t, "the max_pause record", func() bool { _, ok := log.find(enforce.CauseMaxPause); return ok })
		got, _ := store.Recording(ctx, rec.ID)
		if got.State != enforce.RecordingActive || got.Pauses[0].ResumedBy != ByMaxPause || !pbx.did("resume "+rec.Name) {
			t.Errorf("recording %+v, calls %v", got, pbx.calls)
		}
		if a, _ := log.find(enforce.CauseMaxPause); a.User != ByMaxPause || a.Action != "recording.resume" || a.Outcome != enforce.OutcomeEnforced {
			t.Errorf("audit record %+v", a)
		}
		if n := sample(r.Sessions.m.limits.WithLabelValues("resume", enforce.CauseMaxPause, "ok")); n != 1 {
			t.Errorf("callwarden_recording_limit_actions_total{resume,max_pause,ok} = %v, want 1", n)
		}
	})
	t.Run("a stop, a resume or the PBX's end first cancels the timers", func(t *testing.T) {
		pbx, store, log, r := newRecs()
		rec, _ := r.Start(ctx, pbx, "alice", "bob", CallInfo{Channel: "agent1"}, enforce.Decision{})
		r.Limit(pbx, rec, RecStart, limited(40*time.Millisecond, 0).Decision)
		rec, _ = r.Change(ctx, pbx, "bob", rec, RecPause, enforce.Decision{})
		r.Limit(pbx, rec, RecPause, limited(0, 40*time.Millisecond).Decision)
		rec, _ = r.Change(ctx, pbx, "bob", rec, RecResume, enforce.Decision{})
		rec, _ = r.Change(ctx, pbx, "alice", rec, RecStop, enforce.Decision{})

		rec2, _ := r.Start(ctx, pbx, "alice", "carol", CallInfo{Channel: "agent2"}, enforce.Decision{})
		r.Limit(pbx, rec2, RecStart, limited(40*time.Millisecond, 0).Decision)
		if err := r.Ended(ctx, rec2.ID, "testpbx:finished"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(120 * time.Millisecond)
		if _, ok := log.find(enforce.CauseMaxDuration); ok {
			t.Error("a stopped recording's max_duration fired")
		}
		if _, ok := log.find(enforce.CauseMaxPause); ok {
			t.Error("a resumed pause's max_pause fired")
		}
		got, _ := store.Recording(ctx, rec.ID)
		got2, _ := store.Recording(ctx, rec2.ID)
		if got.StoppedBy != "alice" || got.Pauses[0].ResumedBy != "bob" || got2.StoppedBy != "testpbx:finished" {
			t.Errorf("recordings %+v %+v", got, got2)
		}
		r.mu.Lock()
		n := len(r.limits)
		r.mu.Unlock()
		if n != 0 {
			t.Errorf("%d recordings still have armed limits", n)
		}
	})
	t.Run("a grant without limits arms nothing", func(t *testing.T) {
		pbx, _, _, r := newRecs()
		rec, _ := r.Start(ctx, pbx, "alice", "bob", CallInfo{Channel: "agent1"}, enforce.Decision{})
		r.Limit(pbx, rec, RecStart, allow().Decision)
		if len(r.limits) != 0 {
			t.Error("a limit was armed without max_duration")
		}
	})
}
