package session

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/callwarden/callwarden/enforce"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakePBX is a PBX as the core sees it: it records every call and fails
// the ones a test asks it to.
type fakePBX struct {
	mu        sync.Mutex
	calls     []string
	failEaves error
	failMode  error
	failMute  error
	failStart error
}

func (f *fakePBX) log(s string) { f.mu.Lock(); f.calls = append(f.calls, s); f.mu.Unlock() }

func (f *fakePBX) did(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c == s {
			return true
		}
	}
	return false
}

func (f *fakePBX) Eavesdrop(_ context.Context, sup, target string, m Mode, muted bool) (Tap, error) {
	if f.failEaves != nil {
		return nil, f.failEaves
	}
	what := "eavesdrop " + sup + " " + target + " " + m.String()
	if muted {
		what += " muted"
	}
	f.log(what)
	return &fakeTap{f: f, mode: m}, nil
}
func (f *fakePBX) Play(_ context.Context, ch, media string) error {
	f.log("play " + ch + " " + media)
	return nil
}
func (f *fakePBX) Hangup(_ context.Context, ch string) error { f.log("hangup " + ch); return nil }

func (f *fakePBX) StartRecording(_ context.Context, target, id, name string) (string, error) {
	if f.failStart != nil {
		return "", f.failStart
	}
	f.log("record " + target + " " + name)
	return "leg-" + id, nil
}
func (f *fakePBX) PauseRecording(_ context.Context, r enforce.Recording) error {
	f.log("pause " + r.Name)
	return nil
}
func (f *fakePBX) ResumeRecording(_ context.Context, r enforce.Recording) error {
	f.log("resume " + r.Name)
	return nil
}
func (f *fakePBX) StopRecording(_ context.Context, r enforce.Recording) error {
	f.log("stop " + r.Name)
	return nil
}

type fakeTap struct {
	f    *fakePBX
	mode Mode
}

func (t *fakeTap) SetMode(_ context.Context, m Mode) error {
	if t.f.failMode != nil {
		return t.f.failMode
	}
	t.mode = m
	t.f.log("mode " + m.String())
	return nil
}
func (t *fakeTap) Mute(_ context.Context, on bool) error {
	if t.f.failMute != nil {
		return t.f.failMute
	}
	if on {
		t.f.log("mute")
	} else {
		t.f.log("unmute")
	}
	return nil
}
func (t *fakeTap) Close(context.Context) error { t.f.log("close"); return nil }

// failing is the lock of an in-memory fake and the error its writes
// return instead, when it is set.
type failing struct {
	mu   sync.Mutex
	fail error
}

// write runs do under the lock unless the fake is set to fail.
func (f *failing) write(do func()) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	do()
	return nil
}

type memAudit struct {
	failing
	recs []enforce.AuditRecord
}

func (m *memAudit) Audit(_ context.Context, r enforce.AuditRecord) error {
	return m.write(func() { m.recs = append(m.recs, r) })
}

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func newAudit(log enforce.Auditor) *Audit {
	return &Audit{Log: log, Source: "testpbx", PBX: "pbx1", Now: func() time.Time { return t0 }}
}

func allow() Outcome { return Decided(enforce.Decision{Allow: true}) }

// startListen starts a listen session of alice on a fresh fake PBX,
// audited in a fresh memAudit.
func startListen(t *testing.T) (*fakePBX, *memAudit, *Monitor) {
	t.Helper()
	pbx, log := &fakePBX{}, &memAudit{}
	m, err := StartMonitor(context.Background(), pbx, newAudit(log), MonitorSpec{
		Supervisor: "sup", Target: "agent", Mode: Listen,
		Entry: Entry{User: "alice", Action: enforce.MonitorListen}, Allowed: allow(), RefusalSound: "no",
	})
	if err != nil {
		t.Fatalf("StartMonitor: %v", err)
	}
	return pbx, log, m
}

func TestMonitorLifeCycle(t *testing.T) {
	t.Run("an allow is eavesdropped in its mode and audited enforced", func(t *testing.T) {
		pbx, log, m := startListen(t)
		if !pbx.did("eavesdrop sup agent listen") || m.Mode() != Listen {
			t.Fatalf("calls %v, mode %s", pbx.calls, m.Mode())
		}
		if len(log.recs) != 1 || log.recs[0].Outcome != enforce.OutcomeEnforced || log.recs[0].AskedBy != "testpbx:pbx1" {
			t.Errorf("records %+v, want one enforced result asked by testpbx:pbx1", log.recs)
		}
	})
	t.Run("an allow the PBX cannot eavesdrop is audited failed", func(t *testing.T) {
		pbx, log := &fakePBX{failEaves: errors.New("no such channel")}, &memAudit{}
		_, err := StartMonitor(context.Background(), pbx, newAudit(log), MonitorSpec{Supervisor: "sup", Target: "agent", Mode: Listen, Allowed: allow()})
		if err == nil || len(log.recs) != 1 || log.recs[0].Outcome != enforce.OutcomeFailed || !strings.Contains(log.recs[0].Detail, "no such channel") {
			t.Errorf("err %v, records %+v: want a failed result saying why", err, log.recs)
		}
	})
	t.Run("an allowed switch changes the mode", func(t *testing.T) {
		pbx, log, m := startListen(t)
		r := m.Switch(context.Background(), Barge, func(context.Context, Mode) (Entry, Outcome) {
			return Entry{User: "alice", Action: enforce.MonitorBarge}, allow()
		})
		if !r.Outcome.Allow || r.Err != nil || m.Mode() != Barge || !pbx.did("mode barge") {
			t.Errorf("switch %+v, mode %s, calls %v", r, m.Mode(), pbx.calls)
		}
		if n := len(log.recs); n != 3 || !strings.Contains(log.recs[1].Detail, "switch from listen to barge") {
			t.Errorf("records %+v, want the switch decision and its result", log.recs)
		}
	})
	t.Run("a refused switch leaves the session as it was and plays the refusal", func(t *testing.T) {
		pbx, _, m := startListen(t)
		r := m.Switch(context.Background(), Barge, func(context.Context, Mode) (Entry, Outcome) {
			return Entry{User: "alice"}, Decided(enforce.Deny(enforce.ReasonOutOfScope))
		})
		if r.Outcome.Allow || m.Mode() != Listen || pbx.did("mode barge") || !pbx.did("play sup no") {
			t.Errorf("switch %+v, mode %s, calls %v", r, m.Mode(), pbx.calls)
		}
	})
	t.Run("a switch the PBX cannot do stays in the current mode", func(t *testing.T) {
		pbx, log, m := startListen(t)
		pbx.failMode = errors.New("snoop failed")
		r := m.Switch(context.Background(), Whisper, func(context.Context, Mode) (Entry, Outcome) { return Entry{}, allow() })
		if r.Err == nil || m.Mode() != Listen || log.recs[len(log.recs)-1].Outcome != enforce.OutcomeFailed {
			t.Errorf("switch %+v, mode %s, records %+v", r, m.Mode(), log.recs)
		}
	})
	t.Run("a switch whose audit fails is refused audit_unavailable", func(t *testing.T) {
		_, log, m := startListen(t)
		log.fail = errors.New("redis down")
		r := m.Switch(context.Background(), Barge, func(context.Context, Mode) (Entry, Outcome) { return Entry{}, allow() })
		if r.Outcome.Allow || r.Outcome.Reason != ReasonAuditFailed || m.Mode() != Listen {
			t.Errorf("switch %+v, mode %s", r, m.Mode())
		}
	})
	t.Run("ending on the target's side hangs the supervisor up", func(t *testing.T) {
		pbx, _, m := startListen(t)
		if err := m.End(context.Background(), enforce.CauseTargetHangup); err != nil || !pbx.did("close") || !pbx.did("hangup sup") {
			t.Errorf("End: %v, calls %v", err, pbx.calls)
		}
		pbx2, _, m2 := startListen(t)
		_ = m2.End(context.Background(), enforce.CauseRequesterHangup)
		if pbx2.did("hangup sup") {
			t.Error("a supervisor who hung up himself was hung up again")
		}
	})
}

func TestAuditRecordsMaskTheCallerAndNameThePhone(t *testing.T) {
	a := newAudit(&memAudit{})
	o := Decided(enforce.Decision{Allow: true, MaskDigits: 4, Profile: "supervisor"})
	r := a.Record(Entry{User: "alice", Action: enforce.MonitorListen, Caller: "5550100",
		Requester: Requester{Channel: "c1", Name: "PJSIP/1001-01", CallerNumber: "1001"}}, o)
	if r.Caller != enforce.Mask("5550100", 4) || r.Caller == "5550100" || r.Profile != "supervisor" || r.Decision != "allow" {
		t.Errorf("record %+v: want the caller masked", r)
	}
	if !strings.Contains(r.Detail, "PJSIP/1001-01") || r.PBX != "pbx1" || r.Source != "testpbx" {
		t.Errorf("record %+v: want the phone, PBX and source named", r)
	}
	w := a.Watchdog(WatchdogEntry{Action: enforce.MonitorListen, Reason: ReasonOrphaned, Outcome: enforce.OutcomeEnforced, Failure: errors.New("busy")})
	if w.Source != "watchdog" || w.Decision != "deny" || w.Outcome != enforce.OutcomeFailed || !strings.Contains(w.Detail, "failed: busy") {
		t.Errorf("watchdog record %+v", w)
	}
}

// memRecordings is an in-memory enforce.RecordingStore.
type memRecordings struct {
	failing
	recs map[string]enforce.Recording
}

func (m *memRecordings) SaveRecording(_ context.Context, r enforce.Recording) error {
	return m.write(func() {
		if m.recs == nil {
			m.recs = map[string]enforce.Recording{}
		}
		m.recs[r.ID] = r
	})
}

func (m *memRecordings) Recording(_ context.Context, id string) (enforce.Recording, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[id]
	if !ok {
		return r, enforce.ErrNotFound
	}
	return r, nil
}

func (m *memRecordings) ActiveRecording(_ context.Context, target string) (enforce.Recording, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.recs {
		if r.Target == target && r.State != enforce.RecordingStopped {
			return r, nil
		}
	}
	return enforce.Recording{}, enforce.ErrNotFound
}

func (m *memRecordings) ActiveRecordings(_ context.Context) ([]enforce.Recording, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []enforce.Recording
	for _, r := range m.recs {
		if r.State != enforce.RecordingStopped {
			out = append(out, r)
		}
	}
	return out, nil
}
