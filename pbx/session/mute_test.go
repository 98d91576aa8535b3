package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// pciRig is a registry, the recordings that tell it of their pauses, and
// a way to start sessions each on a fake PBX of its own.
type pciRig struct {
	t    *testing.T
	reg  *Registry
	recs *Recordings
	rpbx *fakePBX // the recorder
}

func newPCIRig(t *testing.T) *pciRig {
	t.Helper()
	reg, err := NewRegistry(RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &pciRig{t: t, reg: reg, recs: &Recordings{Store: &memRecordings{}, Sessions: reg}, rpbx: &fakePBX{}}
}

// listen starts alice listening to target's call on a fake PBX of its own;
// the session ends with the test.
func (r *pciRig) listen(target string) (*fakePBX, *Monitor) {
	r.t.Helper()
	pbx := &fakePBX{}
	m, err := StartMonitor(context.Background(), pbx, newAudit(&memAudit{}), MonitorSpec{
		Supervisor: "sup-" + target, Target: target + "-channel", Mode: Listen, Registry: r.reg,
		Entry: Entry{User: "alice", Action: enforce.MonitorListen, Target: target}, Allowed: allow(),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = m.End(context.Background(), enforce.CauseRequesterHangup) })
	return pbx, m
}

// record starts recording target's call.
func (r *pciRig) record(target string) enforce.Recording {
	r.t.Helper()
	rec, err := r.recs.Start(context.Background(), r.rpbx, "alice", target, CallInfo{Channel: target + "-channel"}, enforce.Decision{Allow: true})
	if err != nil {
		r.t.Fatal(err)
	}
	return rec
}

// change pauses, resumes or stops rec.
func (r *pciRig) change(rec enforce.Recording, op RecordOp) enforce.Recording {
	r.t.Helper()
	rec, err := r.recs.Change(context.Background(), r.rpbx, "bob", rec, op, enforce.Decision{Allow: true})
	if err != nil {
		r.t.Fatal(err)
	}
	return rec
}

func TestPausedRecordingMutesTheLiveSessionsOnItsCall(t *testing.T) {
	t.Run("a pause mutes the sessions on the call, not those on other calls; a resume unmutes them", func(t *testing.T) {
		r := newPCIRig(t)
		pbx1, m1 := r.listen("bob")
		pbx2, m2 := r.listen("bob")
		other, m3 := r.listen("carol")
		rec := r.change(r.record("bob"), RecPause)
		if !m1.Muted() || !m2.Muted() || !pbx1.did("mute") || !pbx2.did("mute") {
			t.Errorf("after the pause: muted %v %v, calls %v %v; want both sessions on bob's call muted", m1.Muted(), m2.Muted(), pbx1.calls, pbx2.calls)
		}
		if m3.Muted() || other.did("mute") {
			t.Errorf("a session on carol's call was muted by the pause of bob's recording: %v", other.calls)
		}
		r.change(rec, RecResume)
		if m1.Muted() || m2.Muted() || !pbx1.did("unmute") || !pbx2.did("unmute") {
			t.Errorf("after the resume: muted %v %v, calls %v %v; want both unmuted", m1.Muted(), m2.Muted(), pbx1.calls, pbx2.calls)
		}
	})
	t.Run("a session started while the recording is paused starts muted; a stop unmutes it", func(t *testing.T) {
		r := newPCIRig(t)
		rec := r.change(r.record("bob"), RecPause)
		pbx, m := r.listen("bob")
		if !m.Muted() || !pbx.did("eavesdrop sup-bob bob-channel listen muted") {
			t.Fatalf("muted %v, calls %v: want the eavesdrop set up muted", m.Muted(), pbx.calls)
		}
		r.change(rec, RecStop)
		if m.Muted() || !pbx.did("unmute") {
			t.Errorf("after the stop: muted %v, calls %v", m.Muted(), pbx.calls)
		}
		if _, later := r.listen("bob"); later.Muted() {
			t.Error("a session started after the stop is muted")
		}
	})
	t.Run("max_pause's resume unmutes the sessions", func(t *testing.T) {
		r := newPCIRig(t)
		_, m := r.listen("bob")
		d := enforce.Decision{Allow: true, MaxPause: 20 * time.Millisecond}
		rec := r.change(r.record("bob"), RecPause)
		r.recs.Limit(r.rpbx, rec, RecPause, d)
		if !m.Muted() {
			t.Fatal("the pause did not mute the session")
		}
		waitFor(t, "max_pause to unmute the session", func() bool { return !m.Muted() })
	})
	t.Run("the PBX ending a paused recording unmutes the sessions", func(t *testing.T) {
		r := newPCIRig(t)
		_, m := r.listen("bob")
		rec := r.change(r.record("bob"), RecPause)
		if err := r.recs.Ended(context.Background(), rec.ID, "testpbx:finished"); err != nil {
			t.Fatal(err)
		}
		if m.Muted() {
			t.Error("the session stays muted after the PBX ended the recording")
		}
	})
	t.Run("a session that cannot be muted is cut off and ended with mute_failed", func(t *testing.T) {
		r := newPCIRig(t)
		pbx, m := r.listen("bob")
		pbx.failMute = errors.New("ari: 500")
		r.change(r.record("bob"), RecPause)
		if !pbx.did("close") {
			t.Errorf("calls %v: want the eavesdrop closed at once", pbx.calls)
		}
		select {
		case <-m.Done():
		default:
			t.Fatal("the session was not asked to end")
		}
		if c := m.EndCause(); c != enforce.CauseMuteFailed {
			t.Errorf("end cause %q, want %s", c, enforce.CauseMuteFailed)
		}
		if r := m.Switch(context.Background(), Barge, func(context.Context, Mode) (Entry, Outcome) { return Entry{}, allow() }); !errors.Is(r.Err, errTapClosed) {
			t.Errorf("a switch of the cut-off session: %v, want %v", r.Err, errTapClosed)
		}
	})
	t.Run("without a registry a pause mutes nothing and fails nothing", func(t *testing.T) {
		recs := &Recordings{Store: &memRecordings{}}
		rec, err := recs.Start(context.Background(), &fakePBX{}, "alice", "bob", CallInfo{Channel: "c"}, enforce.Decision{Allow: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := recs.Change(context.Background(), &fakePBX{}, "bob", rec, RecPause, enforce.Decision{Allow: true}); err != nil {
			t.Errorf("pause: %v", err)
		}
	})
}

// TestAPauseThroughAnotherDaemonMutesThisDaemonsSessions: two daemons share
// the recording store; alice's session on bob's call is held by daemon B,
// the pause and the resume go through daemon A. B's poll (syncPauses)
// mutes and unmutes its session as the store says, and never undoes a
// pause or a resume of its own the store does not hold yet.
func TestAPauseThroughAnotherDaemonMutesThisDaemonsSessions(t *testing.T) {
	ctx := context.Background()
	shared := &memRecordings{}
	a := newPCIRig(t)
	a.recs.Store = shared
	b := newPCIRig(t)
	b.recs.Store = shared
	b.reg.o.Recordings = shared
	pbx, m := b.listen("bob")

	rec := a.change(a.record("bob"), RecPause)
	if m.Muted() {
		t.Fatal("muted before daemon B read the store")
	}
	b.reg.syncPauses(ctx)
	if !m.Muted() || !pbx.did("mute") {
		t.Fatalf("after B's poll: muted %v, calls %v; want the session muted by A's pause", m.Muted(), pbx.calls)
	}
	b.reg.syncPauses(ctx)
	rec = a.change(rec, RecResume)
	b.reg.syncPauses(ctx)
	if m.Muted() {
		t.Fatal("A's resume did not unmute B's session")
	}

	// B's own pause, its save not yet seen in the store, is not undone.
	b.reg.hush(ctx, "bob", rec.ID, time.Now().Add(time.Second), true)
	b.reg.syncPauses(ctx)
	if !m.Muted() {
		t.Error("B's poll undid B's own pause the store does not hold yet")
	}
	// The recording ends through A while paused: B unmutes.
	rec = a.change(a.change(rec, RecPause), RecStop)
	b.reg.syncPauses(ctx)
	if m.Muted() {
		t.Errorf("the session stays muted after the recording stopped through A (%s)", rec.State)
	}
}
