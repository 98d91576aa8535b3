package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
)

// fakeProber says what runs in the test's PBX: the ids in runs; err when
// the PBX cannot answer.
type fakeProber struct {
	runs map[string]bool
	err  error
}

func (p *fakeProber) SessionRuns(_ context.Context, s enforce.LiveSession) (bool, error) {
	return p.runs[s.ID], p.err
}

func (p *fakeProber) RecordingRuns(_ context.Context, rec enforce.Recording) (bool, error) {
	return p.runs[rec.ID], p.err
}

// convergeFixture is a registry of daemon "d2" (the one restarted) over a
// memory store holding what daemon "d1" (dead: no heartbeat) and "live"
// (beating) left on pbx1.
type convergeFixture struct {
	store *memory.Sessions
	recs  *memory.Recordings
	log   *memAudit
	pbx   *fakePBX
	probe *fakeProber
	r     *Registry
	rs    *Recordings
}

func newConvergeFixture(t *testing.T) *convergeFixture {
	t.Helper()
	f := &convergeFixture{store: memory.NewSessions(), recs: memory.NewRecordings(), log: &memAudit{}, pbx: &fakePBX{},
		probe: &fakeProber{runs: map[string]bool{}}}
	r, err := NewRegistry(RegistryOptions{Store: f.store, Recordings: f.recs, Instance: "d2", Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	audit := newAudit(f.log)
	f.rs = &Recordings{Store: f.recs, PBX: "pbx1", Audit: audit, Instance: "d2", Now: func() time.Time { return t0 }}
	r.Claim(Claimant{PBX: "pbx1", Probe: f.probe, Audit: audit, Recordings: f.rs, Timers: f.pbx})
	mustOK(t, f.store.Beat(context.Background(), "live", time.Minute))
	t.Cleanup(func() { f.rs.cancelLimits("r-runs") })
	return f
}

func (f *convergeFixture) session(t *testing.T, id, owner, pbx string) {
	t.Helper()
	mustOK(t, f.store.PutSession(context.Background(), enforce.LiveSession{ID: id, User: "alice", Channel: "PJSIP/1001-01",
		Target: "carol", TargetChannel: "agent-ch", Queue: "sales", Caller: "5550100", Mode: "whisper", Profile: "supervisor",
		PBX: pbx, Instance: owner, StartedAt: t0.Add(-time.Minute), UpdatedAt: t0.Add(-time.Minute)}))
}

func (f *convergeFixture) recording(t *testing.T, rec enforce.Recording) {
	t.Helper()
	rec.Name, rec.PBX, rec.Target, rec.StartedBy, rec.Channel = "callwarden-"+rec.ID, "pbx1", "carol", "alice", "snoop-"+rec.ID
	if rec.State == "" {
		rec.State = enforce.RecordingActive
	}
	if rec.StartedAt.IsZero() {
		rec.StartedAt = t0.Add(-time.Minute)
	}
	mustOK(t, f.recs.SaveRecording(context.Background(), rec))
}

func (f *convergeFixture) ids(t *testing.T) []string {
	t.Helper()
	live, err := f.store.LiveSessions(context.Background())
	mustOK(t, err)
	var out []string
	for _, s := range live {
		out = append(out, s.ID)
	}
	return out
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestConvergeSettlesWhatADeadDaemonLeft(t *testing.T) {
	ctx := context.Background()
	t.Run("a dead daemon's session the PBX no longer runs is audited ended and unlisted", func(t *testing.T) {
		f := newConvergeFixture(t)
		f.session(t, "gone", "d1", "pbx1")
		f.session(t, "runs", "d1", "pbx1")
		f.session(t, "beating", "live", "pbx1")
		f.session(t, "elsewhere", "d1", "pbx9") // a PBX this daemon does not see
		f.probe.runs["runs"] = true
		mustOK(t, f.r.Converge(ctx))
		if got := f.ids(t); !sameSet(got, "runs", "beating", "elsewhere") {
			t.Fatalf("listed %v, want runs, beating and elsewhere (gone ended)", got)
		}
		if len(f.log.recs) != 1 {
			t.Fatalf("audit records %+v, want one end", f.log.recs)
		}
		a := f.log.recs[0]
		if a.Session != "gone" || a.Outcome != enforce.OutcomeEnded || a.Cause != enforce.CauseDaemonRestart ||
			a.Duration != 60 || a.User != "alice" || a.Action != "monitor.whisper" || a.Target != "carol" || a.Caller != "" {
			t.Errorf("end record %+v: want alice's whisper ended by daemon_restart after 60s, without the unmasked caller", a)
		}
	})
	t.Run("a PBX that cannot answer or an audit that cannot be written leaves the session listed", func(t *testing.T) {
		f := newConvergeFixture(t)
		f.session(t, "gone", "d1", "pbx1")
		f.probe.err = errors.New("ARI down")
		mustOK(t, f.r.Converge(ctx))
		f.probe.err = nil
		f.log.fail = errors.New("audit down")
		mustOK(t, f.r.Converge(ctx))
		if got := f.ids(t); len(got) != 1 {
			t.Fatalf("listed %v, want the session kept until its end is audited", got)
		}
		f.log.fail = nil
		mustOK(t, f.r.Converge(ctx))
		if got := f.ids(t); len(got) != 0 || len(f.log.recs) != 1 {
			t.Fatalf("listed %v, records %+v: want it ended and audited once", got, f.log.recs)
		}
	})
	t.Run("a dead daemon's recording the PBX no longer records is stopped and audited", func(t *testing.T) {
		f := newConvergeFixture(t)
		f.recording(t, enforce.Recording{ID: "r-gone", Instance: "d1", State: enforce.RecordingPaused,
			Pauses: []enforce.Pause{{By: "alice", At: t0.Add(-30 * time.Second)}}})
		f.recording(t, enforce.Recording{ID: "r-nobody"}) // saved before recordings named their daemon
		f.recording(t, enforce.Recording{ID: "r-beating", Instance: "live"})
		mustOK(t, f.r.Converge(ctx))
		for _, id := range []string{"r-gone", "r-nobody"} {
			got, _ := f.recs.Recording(ctx, id)
			if got.State != enforce.RecordingStopped || got.StoppedBy != ByRestart || !got.StoppedAt.Equal(t0) {
				t.Errorf("%s = %+v, want stopped by %s at the time it was found", id, got, ByRestart)
			}
		}
		if got, _ := f.recs.Recording(ctx, "r-gone"); got.Pauses[0].ResumedAt.IsZero() {
			t.Errorf("the open pause was left open: %+v", got.Pauses)
		}
		if got, _ := f.recs.Recording(ctx, "r-beating"); got.State != enforce.RecordingActive {
			t.Errorf("a live daemon's recording was changed: %+v", got)
		}
		if len(f.log.recs) != 2 || f.log.recs[0].Cause != enforce.CauseDaemonRestart || f.log.recs[0].Action != "recording.stop" ||
			f.log.recs[0].Duration != 60 || f.log.recs[0].User != ByRestart {
			t.Errorf("audit records %+v, want two stops by daemon_restart", f.log.recs)
		}
		if len(f.pbx.calls) != 0 {
			t.Errorf("the PBX was asked %v for a recording it no longer has", f.pbx.calls)
		}
	})
	t.Run("a dead daemon's recording the PBX still records is re-attached with its limit", func(t *testing.T) {
		f := newConvergeFixture(t)
		// Its max_duration passed while no daemon watched: the re-armed
		// limit stops it at once.
		f.recording(t, enforce.Recording{ID: "r-runs", Instance: "d1", Until: t0.Add(-time.Second)})
		f.probe.runs["r-runs"] = true
		f.rs.Now = time.Now // the timer reads the recording on the real clock
		mustOK(t, f.r.Converge(ctx))
		waitFor(t, "the re-armed max_duration", func() bool { _, ok := f.log.find(enforce.CauseMaxDuration); return ok })
		f.log.mu.Lock()
		first := f.log.recs[0]
		f.log.mu.Unlock()
		if first.Reason != ReasonReattached || first.Outcome != enforce.OutcomeEnforced {
			t.Fatalf("first audit record %+v, want the re-attachment", first)
		}
		got, _ := f.recs.Recording(ctx, "r-runs")
		if got.Instance != "d2" || got.State != enforce.RecordingStopped || got.StoppedBy != ByMaxDuration || !f.pbx.did("stop callwarden-r-runs") {
			t.Errorf("recording %+v, calls %v: want it owned by d2 and stopped by its max_duration", got, f.pbx.calls)
		}
	})
	t.Run("a re-attached recording's end in the PBX is followed by its new daemon", func(t *testing.T) {
		f := newConvergeFixture(t)
		f.recording(t, enforce.Recording{ID: "r-runs", Instance: "d1"})
		f.probe.runs["r-runs"] = true
		mustOK(t, f.r.Converge(ctx))
		mustOK(t, f.r.Converge(ctx)) // its own now: nothing more
		if n := len(f.log.recs); n != 1 {
			t.Errorf("%d audit records, want the re-attachment once: %+v", n, f.log.recs)
		}
		id, ok := f.rs.Live("callwarden-r-runs")
		if !ok || id != "r-runs" {
			t.Fatalf("Live = %q, %v: the PBX's end of the recording would be ignored", id, ok)
		}
	})
}

func sameSet(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	for _, w := range want {
		if !seen[w] {
			return false
		}
	}
	return true
}

func TestRunBeatsAndConverges(t *testing.T) {
	f := newConvergeFixture(t)
	f.session(t, "gone", "d1", "pbx1")
	r, err := NewRegistry(RegistryOptions{Store: f.store, Instance: "d3", HeartbeatTTL: 60 * time.Millisecond, PollInterval: 5 * time.Millisecond})
	mustOK(t, err)
	r.Claim(Claimant{PBX: "pbx1", Probe: f.probe, Audit: newAudit(f.log), Recordings: f.rs, Timers: f.pbx})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the dead daemon's session ended", func() bool { return len(f.ids(t)) == 0 })
	time.Sleep(150 * time.Millisecond) // longer than the ttl: alive only if it beats again
	alive, err := f.store.Alive(context.Background(), []string{"d3"})
	if err != nil || !alive["d3"] {
		t.Errorf("Alive = %v, %v: a running registry's heartbeat expired", alive, err)
	}
}
