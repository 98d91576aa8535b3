package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

func TestRecordingRules(t *testing.T) {
	ctx := context.Background()
	now := t0
	clock := func() time.Time { return now }
	t.Run("start records, saves who started it and knows it live", func(t *testing.T) {
		pbx, store := &fakePBX{}, &memRecordings{}
		r := &Recordings{Store: store, PBX: "pbx1", Now: clock}
		rec, err := r.Start(ctx, pbx, "alice", "bob", CallInfo{Channel: "agent1", Queue: "sales", Caller: "5550100"}, enforce.Decision{})
		if err != nil || len(rec.ID) != 12 || rec.Name != "callwarden-"+rec.ID || rec.Channel != "leg-"+rec.ID {
			t.Fatalf("Start: %+v, %v", rec, err)
		}
		if got, _, _ := r.Active(ctx, "bob"); got.StartedBy != "alice" || got.Queue != "sales" || got.PBX != "pbx1" {
			t.Errorf("active recording %+v", got)
		}
		if id, ok := r.Live(rec.Name); !ok || id != rec.ID {
			t.Errorf("Live(%s) = %s %v", rec.Name, id, ok)
		}
	})
	t.Run("a recording whose metadata cannot be saved is stopped", func(t *testing.T) {
		pbx, store := &fakePBX{}, &memRecordings{failing: failing{fail: errors.New("redis down")}}
		r := &Recordings{Store: store, Now: clock}
		if _, err := r.Start(ctx, pbx, "alice", "bob", CallInfo{Channel: "agent1"}, enforce.Decision{}); err == nil || len(pbx.calls) != 2 || pbx.calls[1][:5] != "stop " {
			t.Errorf("Start: %v, calls %v: want the recording stopped", err, pbx.calls)
		}
	})
	t.Run("toggle pauses, resumes, and stop closes an open pause", func(t *testing.T) {
		pbx, store := &fakePBX{}, &memRecordings{}
		r := &Recordings{Store: store, Now: clock}
		rec, _ := r.Start(ctx, pbx, "alice", "bob", CallInfo{Channel: "agent1"}, enforce.Decision{})
		if op := RecToggle.Resolve(rec); op != RecPause {
			t.Fatalf("toggle on an active recording is %s", op)
		}
		rec, _ = r.Change(ctx, pbx, "bob", rec, RecPause, enforce.Decision{})
		if op := RecToggle.Resolve(rec); op != RecResume || rec.State != enforce.RecordingPaused || rec.Pauses[0].By != "bob" {
			t.Fatalf("after pause: %+v, toggle %s", rec, op)
		}
		now = now.Add(time.Minute)
		rec, _ = r.Change(ctx, pbx, "alice", rec, RecStop, enforce.Decision{})
		if rec.State != enforce.RecordingStopped || rec.StoppedBy != "alice" || rec.Pauses[0].ResumedBy != "alice" || !rec.Pauses[0].ResumedAt.Equal(now) {
			t.Errorf("after stop: %+v", rec)
		}
		if _, ok, _ := r.Active(ctx, "bob"); ok {
			t.Error("a stopped recording is still active")
		}
		// The PBX reports the end of the recording alice stopped: it is not
		// taken for the PBX ending it, whatever the order of the two.
		if id, ok := r.Live(rec.Name); ok {
			t.Errorf("a recording a user stopped is still live (%s): the PBX's end event would overwrite who stopped it", id)
		}
	})
	t.Run("the PBX ending a recording marks it stopped unless a user did", func(t *testing.T) {
		pbx, store := &fakePBX{}, &memRecordings{}
		r := &Recordings{Store: store, Now: clock}
		rec, _ := r.Start(ctx, pbx, "alice", "bob", CallInfo{Channel: "agent1"}, enforce.Decision{})
		if err := r.Ended(ctx, rec.ID, "testpbx:finished"); err != nil {
			t.Fatal(err)
		}
		got, _ := store.Recording(ctx, rec.ID)
		if got.State != enforce.RecordingStopped || got.StoppedBy != "testpbx:finished" {
			t.Errorf("ended recording %+v", got)
		}
	})
	t.Run("one recording per target", func(t *testing.T) {
		if o := StartOutcome(enforce.Decision{Allow: true}, true); o.Allow || o.Reason != ReasonAlreadyRecording {
			t.Errorf("second start: %+v", o)
		}
		if o := StartOutcome(enforce.Decision{Allow: true}, false); !o.Allow {
			t.Errorf("first start: %+v", o)
		}
	})
}

func TestChangeDurationIsWhatTheChangeClosed(t *testing.T) {
	start := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	rec := enforce.Recording{StartedAt: start}
	Paused(&rec, "alice", start.Add(10*time.Second))
	if got := ChangeDuration(rec, RecPause); got != 0 {
		t.Errorf("a pause closes nothing, got %s", got)
	}
	Resumed(&rec, "alice", start.Add(25*time.Second))
	if got := ChangeDuration(rec, RecResume); got != 15*time.Second {
		t.Errorf("resume: %s, want the pause's 15s", got)
	}
	Stopped(&rec, "bob", start.Add(time.Minute))
	if got := ChangeDuration(rec, RecStop); got != time.Minute {
		t.Errorf("stop: %s, want the recording's 1m0s", got)
	}
	a := &Audit{}
	if r := a.Record(Entry{Duration: 1500 * time.Millisecond}, Outcome{}); r.Duration != 1.5 {
		t.Errorf("record duration %v, want 1.5 (seconds)", r.Duration)
	}
}
