package session

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// testPolicy is alice (profile, valid until) supervising carol on queue
// sales: "full" allows listen, whisper and barge, "listen-only" listen.
type testPolicy struct {
	profile    string
	validUntil time.Time
	protected  bool
}

func (p testPolicy) snapshot(tb testing.TB) *enforce.Snapshot {
	tb.Helper()
	all := enforce.Scope{Kind: enforce.ScopeAll}
	pol := enforce.Policy{
		Profiles: []enforce.Profile{
			{Name: "full", Grants: []enforce.Grant{{Scopes: [4]enforce.Scope{all},
				Actions: enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge)}}},
			{Name: "listen-only", Grants: []enforce.Grant{{Scopes: [4]enforce.Scope{all},
				Actions: enforce.NewActionSet(enforce.MonitorListen)}}},
		},
		Users: []enforce.User{{ID: "alice", Profile: p.profile, ValidUntil: p.validUntil}, {ID: "carol"}},
	}
	if p.protected {
		pol.Protected.Users = []string{"carol"}
	}
	s, err := enforce.NewSnapshot(pol, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// startWatched starts a session of alice on carol's call in mode m, in a
// registry deciding from *cur with the real clock.
func startWatched(tb testing.TB, cur *atomic.Pointer[enforce.Snapshot], m Mode, downgrades bool) (*fakePBX, *memAudit, *Registry, *Monitor) {
	tb.Helper()
	r, err := NewRegistry(RegistryOptions{Policy: cur.Load, Notice: time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	pbx, log := &fakePBX{}, &memAudit{}
	mon, err := StartMonitor(context.Background(), pbx, newAudit(log), MonitorSpec{
		Supervisor: "sup", Target: "agent-ch", Mode: m, Registry: r, Downgrades: downgrades,
		Entry:   Entry{User: "alice", Action: m.Action(), Target: "carol", Queue: "sales"},
		Allowed: Decided(enforce.Decision{Allow: true, Profile: "full"}), RefusalSound: "no",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return pbx, log, r, mon
}

// change installs p as the policy and re-decides r's sessions, as a
// loader's install does.
func change(tb testing.TB, cur *atomic.Pointer[enforce.Snapshot], r *Registry, p testPolicy) {
	tb.Helper()
	next := p.snapshot(tb)
	cur.Store(next)
	r.Redecide(next)
}

func ended(t *testing.T, m *Monitor, within time.Duration) bool {
	t.Helper()
	select {
	case <-m.Done():
		return true
	case <-time.After(within):
		return false
	}
}

// endAsAdapter ends m the way the adapters do on Done, and returns the
// audit record of the end.
func endAsAdapter(t *testing.T, m *Monitor, log *memAudit) enforce.AuditRecord {
	t.Helper()
	if err := m.End(context.Background(), m.EndCause()); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	return log.recs[len(log.recs)-1]
}

func TestLiveSessionsAreDecidedAgain(t *testing.T) {
	var cur atomic.Pointer[enforce.Snapshot]
	t.Run("a revoked user's session ends with cause revoked after the refusal sound", func(t *testing.T) {
		cur.Store(testPolicy{profile: "full"}.snapshot(t))
		pbx, log, r, m := startWatched(t, &cur, Listen, true)
		change(t, &cur, r, testPolicy{profile: ""})
		if !ended(t, m, time.Second) || m.EndCause() != enforce.CauseRevoked {
			t.Fatalf("done %v, cause %q", ended(t, m, 0), m.EndCause())
		}
		rec := endAsAdapter(t, m, log)
		if rec.Outcome != enforce.OutcomeEnded || rec.Cause != enforce.CauseRevoked {
			t.Errorf("end record %+v", rec)
		}
		if !pbx.did("play sup no") || !pbx.did("hangup sup") {
			t.Errorf("calls %v, want the refusal then the hang-up", pbx.calls)
		}
		if got := sample(r.rm.vec.WithLabelValues("ended", enforce.CauseRevoked)); got != 1 {
			t.Errorf("ended/revoked = %v", got)
		}
	})
	t.Run("a session still allowed is left alone and nothing is audited", func(t *testing.T) {
		cur.Store(testPolicy{profile: "full"}.snapshot(t))
		pbx, log, r, m := startWatched(t, &cur, Barge, true)
		n := len(log.recs)
		change(t, &cur, r, testPolicy{profile: "full"})
		if ended(t, m, 20*time.Millisecond) || len(log.recs) != n || len(pbx.calls) != 1 {
			t.Fatalf("records %d→%d, calls %v", n, len(log.recs), pbx.calls)
		}
		_ = m.End(context.Background(), enforce.CauseRequesterHangup)
	})
	t.Run("a whisper whose grant becomes listen-only drops to listen", func(t *testing.T) {
		cur.Store(testPolicy{profile: "full"}.snapshot(t))
		pbx, log, r, m := startWatched(t, &cur, Whisper, true)
		change(t, &cur, r, testPolicy{profile: "listen-only"})
		select {
		case <-m.Redecided():
		case <-time.After(time.Second):
			t.Fatal("no downgrade asked")
		}
		if res := m.ApplyRedecision(context.Background()); res.Err != nil || m.Mode() != Listen {
			t.Fatalf("ApplyRedecision = %+v, mode %s", res, m.Mode())
		}
		rec := log.recs[len(log.recs)-1]
		if !pbx.did("mode listen") || rec.Cause != enforce.CauseRevoked || !strings.Contains(rec.Detail, "whisper no longer allowed") ||
			rec.Action != ActionName(enforce.MonitorListen) {
			t.Errorf("calls %v, record %+v", pbx.calls, rec)
		}
		if live, _ := r.Get(context.Background(), m.ID()); live.Mode != "listen" {
			t.Errorf("registry mode %q", live.Mode)
		}
		if ended(t, m, 20*time.Millisecond) {
			t.Error("a downgraded session ended")
		}
		_ = m.End(context.Background(), enforce.CauseRequesterHangup)
	})
	t.Run("an adapter that cannot downgrade has the session ended", func(t *testing.T) {
		cur.Store(testPolicy{profile: "full"}.snapshot(t))
		_, _, r, m := startWatched(t, &cur, Barge, false)
		change(t, &cur, r, testPolicy{profile: "listen-only"})
		if !ended(t, m, time.Second) || m.EndCause() != enforce.CauseRevoked {
			t.Fatalf("cause %q", m.EndCause())
		}
		_ = m.End(context.Background(), m.EndCause())
	})
	t.Run("a protected target ends the session", func(t *testing.T) {
		cur.Store(testPolicy{profile: "full"}.snapshot(t))
		_, log, r, m := startWatched(t, &cur, Listen, true)
		change(t, &cur, r, testPolicy{profile: "full", protected: true})
		if !ended(t, m, time.Second) {
			t.Fatal("not ended")
		}
		if rec := endAsAdapter(t, m, log); rec.Cause != enforce.CauseProtectedTarget {
			t.Errorf("end record %+v", rec)
		}
	})
	t.Run("a valid_until a moment ahead ends the session by timer", func(t *testing.T) {
		until := time.Now().Add(300 * time.Millisecond)
		cur.Store(testPolicy{profile: "full", validUntil: until}.snapshot(t))
		_, log, _, m := startWatched(t, &cur, Listen, true)
		if ended(t, m, 100*time.Millisecond) {
			t.Fatal("ended before its valid_until")
		}
		if !ended(t, m, 2*time.Second) {
			t.Fatal("not ended by its valid_until")
		}
		if late := time.Since(until); late > time.Second {
			t.Errorf("ended %s after valid_until", late)
		}
		if rec := endAsAdapter(t, m, log); rec.Cause != enforce.CauseWindowClosed {
			t.Errorf("end record %+v", rec)
		}
	})
	t.Run("a policy change that lifts the valid_until disarms the timer", func(t *testing.T) {
		cur.Store(testPolicy{profile: "full", validUntil: time.Now().Add(200 * time.Millisecond)}.snapshot(t))
		_, _, r, m := startWatched(t, &cur, Listen, true)
		change(t, &cur, r, testPolicy{profile: "full"})
		if ended(t, m, 500*time.Millisecond) {
			t.Fatalf("ended (%s) at the valid_until the policy no longer has", m.EndCause())
		}
		_ = m.End(context.Background(), enforce.CauseRequesterHangup)
	})
	t.Run("an administrator's end keeps its cause", func(t *testing.T) {
		cur.Store(testPolicy{profile: "full"}.snapshot(t))
		_, _, r, m := startWatched(t, &cur, Listen, true)
		if err := r.End(context.Background(), m.ID(), "root"); err != nil {
			t.Fatal(err)
		}
		change(t, &cur, r, testPolicy{})
		if m.EndCause() != enforce.CauseAdministrator {
			t.Errorf("cause %q", m.EndCause())
		}
		_ = m.End(context.Background(), m.EndCause())
	})
}

// queuePolicy: alice may barge on sales calls and only listen on support
// calls; billing is out of her scope.
func queuePolicy(tb testing.TB) *enforce.Snapshot {
	tb.Helper()
	queues := func(q ...string) [4]enforce.Scope { return [4]enforce.Scope{{Kind: enforce.ScopeList, Values: q}} }
	s, err := enforce.NewSnapshot(enforce.Policy{
		Profiles: []enforce.Profile{{Name: "queued", Grants: []enforce.Grant{
			{Scopes: queues("sales"), Actions: enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge)},
			{Scopes: queues("sales", "support"), Actions: enforce.NewActionSet(enforce.MonitorListen)},
		}}},
		Users: []enforce.User{{ID: "alice", Profile: "queued"}, {ID: "carol"}},
	}, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestASessionIsDecidedAgainWhenItsCallMovesQueue(t *testing.T) {
	var cur atomic.Pointer[enforce.Snapshot]
	cur.Store(queuePolicy(t))
	ctx := context.Background()
	t.Run("a barge whose call moves to a listen-only queue drops to listen, cause queue_moved", func(t *testing.T) {
		pbx, log, r, m := startWatched(t, &cur, Barge, true)
		r.TargetMoved(ctx, "agent-ch", "support")
		select {
		case <-m.Redecided():
		case <-time.After(time.Second):
			t.Fatal("no downgrade asked")
		}
		if res := m.ApplyRedecision(ctx); res.Err != nil || m.Mode() != Listen {
			t.Fatalf("ApplyRedecision = %+v, mode %s", res, m.Mode())
		}
		rec := log.recs[len(log.recs)-1]
		if !pbx.did("mode listen") || rec.Cause != enforce.CauseQueueMoved || rec.Queue != "support" {
			t.Errorf("calls %v, record %+v", pbx.calls, rec)
		}
		if live, _ := r.Get(ctx, m.ID()); live.Queue != "support" || live.Mode != "listen" {
			t.Errorf("registry record %+v, want support in listen", live)
		}
		if got := sample(r.rm.vec.WithLabelValues("downgraded", enforce.CauseQueueMoved)); got != 1 {
			t.Errorf("downgraded/queue_moved = %v", got)
		}
		_ = m.End(ctx, enforce.CauseRequesterHangup)
	})
	t.Run("a call moved out of the grant's queues ends the session, cause queue_moved", func(t *testing.T) {
		_, log, r, m := startWatched(t, &cur, Listen, true)
		r.TargetMoved(ctx, "agent-ch", "billing")
		if !ended(t, m, time.Second) || m.EndCause() != enforce.CauseQueueMoved {
			t.Fatalf("cause %q", m.EndCause())
		}
		if rec := endAsAdapter(t, m, log); rec.Cause != enforce.CauseQueueMoved || rec.Queue != "billing" {
			t.Errorf("end record %+v", rec)
		}
	})
	t.Run("a move of another channel, or to the same queue, changes nothing", func(t *testing.T) {
		_, log, r, m := startWatched(t, &cur, Barge, true)
		n := len(log.recs)
		r.TargetMoved(ctx, "other-ch", "billing")
		r.TargetMoved(ctx, "agent-ch", "sales")
		if ended(t, m, 20*time.Millisecond) || len(log.recs) != n || m.Mode() != Barge {
			t.Fatalf("ended %v (%s), records %d→%d, mode %s", ended(t, m, 0), m.EndCause(), n, len(log.recs), m.Mode())
		}
		_ = m.End(ctx, enforce.CauseRequesterHangup)
	})
	t.Run("the new queue stays the session's for later re-decisions", func(t *testing.T) {
		_, _, r, m := startWatched(t, &cur, Listen, true)
		r.TargetMoved(ctx, "agent-ch", "support")
		if ended(t, m, 20*time.Millisecond) {
			t.Fatalf("a listen moved to support ended: %s", m.EndCause())
		}
		// A policy installed later decides with support, not sales.
		r.Redecide(queuePolicy(t))
		if ended(t, m, 20*time.Millisecond) {
			t.Fatalf("ended on an unchanged policy: %s", m.EndCause())
		}
		if live, _ := r.Get(ctx, m.ID()); live.Queue != "support" {
			t.Errorf("registry queue %q", live.Queue)
		}
		_ = m.End(ctx, enforce.CauseRequesterHangup)
	})
}
