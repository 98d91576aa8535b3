package enforce_test

import (
	"slices"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

// TestWhoCanOnAPatchedSnapshot: the index reads a patched snapshot's
// users (a base and a delta) as Decide does: a revoked supervisor is gone,
// an added one is found.
func TestWhoCanOnAPatchedSnapshot(t *testing.T) {
	cur := impactPolicy()
	base := MustSnapshot(t, cur)
	next := revoked(cur, "alice")
	next.Users = append(next.Users, enforce.User{ID: "zoe", Profile: "supervisor", Queues: []string{"sales"}})
	patched, err := base.Patch(enforce.PatchOf(cur, next), 2)
	if err != nil {
		t.Fatal(err)
	}
	now := mustTime(t, "2026-11-23T09:00:00Z")
	for _, tc := range []struct {
		snap *enforce.Snapshot
		want []string
	}{{base, []string{"alice", "sam"}}, {patched, []string{"sam", "zoe"}}} {
		got, err := enforce.NewAccessIndex(tc.snap).WhoCan(enforce.Request{Action: enforce.MonitorListen, Queue: "sales", Agent: "dave"}, now)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range got {
			ids = append(ids, a.User)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("generation %d: who-can = %v, want %v", tc.snap.Generation(), ids, tc.want)
		}
	}
}

func TestWhoCanWithoutASnapshotFindsNoOne(t *testing.T) {
	got, err := enforce.NewAccessIndex(nil).WhoCan(enforce.Request{Action: enforce.MonitorListen, Queue: "sales"}, mustTime(t, "2026-11-23T09:00:00Z"))
	if err != nil || len(got) != 0 {
		t.Errorf("who-can without a snapshot = %v, %v; want no one", got, err)
	}
	if r := enforce.RightsOf(nil, "alice", mustTime(t, "2026-11-23T09:00:00Z")); r.Reason != "store_unavailable" {
		t.Errorf("rights without a snapshot: reason %q, want store_unavailable", r.Reason)
	}
}
