package enforce_test

import (
	"slices"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// impactPolicy has two supervisors of queue sales and an agent on it.
func impactPolicy() enforce.Policy {
	monitor := enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorBarge, enforce.RecordingPause, enforce.RecordingPlayback)
	return enforce.Policy{
		Profiles: []enforce.Profile{{Name: "supervisor", Grants: []enforce.Grant{
			{Actions: monitor, Scopes: scopes(assigned, none, none, none)},
			{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{"supervisor"}, Scopes: scopes(assigned, none, none, none)},
		}}},
		Users: []enforce.User{
			{ID: "alice", Profile: "supervisor", Queues: []string{"sales"}},
			{ID: "sam", Profile: "supervisor", Queues: []string{"sales"}},
			{ID: "dave", Queues: []string{"sales"}},
		},
	}
}

// revoked returns p with user id's profile and queues taken away, as
// `users revoke` does.
func revoked(p enforce.Policy, id string) enforce.Policy {
	p.Users = slices.Clone(p.Users)
	for i := range p.Users {
		if p.Users[i].ID == id {
			p.Users[i].Profile, p.Users[i].Queues = "", nil
		}
	}
	return p
}

func TestReplayAuditOfARevokedSupervisor(t *testing.T) {
	t0 := mustTime(t, "2026-11-23T09:00:00Z")
	rec := func(min int, user, action, queue, decision, reason string) enforce.AuditRecord {
		return enforce.AuditRecord{Time: t0.Add(time.Duration(min) * time.Minute), Source: "asterisk", User: user,
			Action: action, Target: "dave", Queue: queue, Decision: decision, Reason: reason}
	}
	recs := []enforce.AuditRecord{
		rec(0, "alice", "monitor.listen", "sales", "allow", "granted"),
		rec(1, "alice", "monitor.listen", "hr", "deny", "out_of_scope"),
		rec(2, "sam", "monitor.listen", "sales", "allow", "granted"),
		rec(3, "alice", "monitor.barge", "sales", "allow", "granted"),
		rec(4, "alice", "monitor.listen", "sales", "deny", "target_not_in_call"),
		rec(5, "alice", "monitor.barge", "sales", "deny", "store_unavailable"),
	}
	result := rec(0, "alice", "monitor.listen", "sales", "allow", "granted")
	result.Outcome = enforce.OutcomeEnforced
	watchdog := rec(6, "", "monitor.listen", "", "deny", "no_allow_decision")
	watchdog.Source = "watchdog"
	oldPause := rec(7, "alice", "recording.pause", "sales", "allow", "granted")
	pause := oldPause
	pause.Time, pause.RecordedAt = pause.Time.Add(time.Minute), t0.Add(-time.Hour)
	assign := enforce.AuditRecord{Time: t0.Add(9 * time.Minute), Source: "http", User: "alice", Action: "profile.assign",
		Decision: "allow", Reason: "granted", AssignProfile: "supervisor", AssignQueues: []string{"sales"}}
	adminAssign := enforce.AuditRecord{Time: t0, Source: "admin", User: "alice", Action: "profile.assign", Target: "bob",
		Decision: "allow", Reason: "granted"}
	// A what-if check asked on the 23rd about the 1st, before sam existed
	// in the audited policy: decided again at its own instant.
	whatIf := rec(10, "sam", "monitor.listen", "sales", "deny", "unknown_user")
	whatIf.Source, whatIf.At = "http", mustTime(t, "2026-11-01T00:00:00Z")
	recs = append(recs, result, watchdog, oldPause, pause, assign, adminAssign, whatIf)

	cur := MustSnapshot(t, impactPolicy())
	next := MustSnapshot(t, revoked(impactPolicy(), "alice"))
	im := enforce.ReplayAudit(cur, next, recs)

	var changed []time.Time
	for _, c := range im.Changes {
		if c.Record.User != "alice" || c.Before.Decision != "allow" || c.After.Decision != "deny" || c.After.Reason != "no_profile" {
			t.Errorf("change %+v: want one of alice's allows turned no_profile", c)
		}
		changed = append(changed, c.Record.Time)
	}
	want := []time.Time{recs[0].Time, recs[3].Time, pause.Time, assign.Time}
	if !slices.Equal(changed, want) {
		t.Errorf("changed records at %v, want exactly alice's previously allowed requests at %v", changed, want)
	}
	wantCounts := []enforce.ImpactCount{
		{User: "alice", Action: "monitor.barge", AllowToDeny: 1},
		{User: "alice", Action: "monitor.listen", AllowToDeny: 1},
		{User: "alice", Action: "profile.assign", AllowToDeny: 1},
		{User: "alice", Action: "recording.pause", AllowToDeny: 1},
	}
	if !slices.Equal(im.Counts, wantCounts) {
		t.Errorf("counts = %+v, want %+v", im.Counts, wantCounts)
	}
	wantSkipped := map[string]int{
		enforce.SkipResult: 1, enforce.SkipWatchdog: 1, enforce.SkipNotPolicy: 2,
		enforce.SkipNoRecordedAt: 1, enforce.SkipNoAssign: 1,
	}
	if len(im.Skipped) != len(wantSkipped) {
		t.Errorf("skipped = %v, want %v", im.Skipped, wantSkipped)
	}
	for why, n := range wantSkipped {
		if im.Skipped[why] != n {
			t.Errorf("skipped[%s] = %d, want %d (all: %v)", why, im.Skipped[why], n, im.Skipped)
		}
	}
	// alice ×4 replayable plus the out-of-scope one, sam, the what-if.
	if im.Replayed != 7 {
		t.Errorf("replayed %d records, want 7", im.Replayed)
	}
	// The what-if record says deny (sam unknown then); the current policy
	// allows it: it drifted, and the change does not touch it.
	if im.Drifted != 1 {
		t.Errorf("drifted = %d, want 1 (the what-if)", im.Drifted)
	}
}

func TestReplayAuditOfAnUnchangedPolicyChangesNothing(t *testing.T) {
	snap := MustSnapshot(t, impactPolicy())
	recs := []enforce.AuditRecord{{Time: mustTime(t, "2026-11-23T09:00:00Z"), Source: "http", User: "alice",
		Action: "monitor.listen", Target: "dave", Queue: "sales", Decision: "allow", Reason: "granted"}}
	im := enforce.ReplayAudit(snap, snap, recs)
	if im.Replayed != 1 || len(im.Changes) != 0 || len(im.Counts) != 0 || im.Drifted != 0 {
		t.Errorf("impact of no change = %+v, want one record replayed and nothing changed", im)
	}
}

func TestReplayRequestUsesTheRecordedRequest(t *testing.T) {
	rec := enforce.AuditRecord{Time: mustTime(t, "2026-11-23T09:00:00Z"), Source: "asterisk", User: "alice",
		Action: "recording.playback", Target: "dave", Queue: "sales", Team: "t", Site: "s",
		RecordedAt: mustTime(t, "2026-11-20T09:00:00Z"), Decision: "deny", Reason: "recording_too_old"}
	req, at, skip := rec.ReplayRequest()
	want := enforce.Request{User: "alice", Action: enforce.RecordingPlayback, Agent: "dave", Queue: "sales", Team: "t", Site: "s",
		RecordedAt: rec.RecordedAt}
	if skip != "" || !at.Equal(rec.Time) || req.User != want.User || req.Action != want.Action || req.Agent != want.Agent ||
		req.Queue != want.Queue || req.Team != want.Team || req.Site != want.Site || !req.RecordedAt.Equal(want.RecordedAt) {
		t.Errorf("ReplayRequest = %+v at %s (skip %q), want %+v at %s", req, at, skip, want, rec.Time)
	}
}
