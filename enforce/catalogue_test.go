package enforce_test

import (
	"slices"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

func TestRecordingReachNamesTheIndexesAGrantCanAllow(t *testing.T) {
	grant := func(a enforce.Action, dim enforce.Dimension, kind enforce.ScopeKind, vals ...string) enforce.Grant {
		g := enforce.Grant{Actions: enforce.NewActionSet(a)}
		g.Scopes[dim] = enforce.Scope{Kind: kind, Values: vals}
		return g
	}
	p := enforce.Policy{
		Profiles: []enforce.Profile{
			{Name: "teacher", Grants: []enforce.Grant{grant(enforce.RecordingPlayback, enforce.DimQueues, enforce.ScopeAssigned)}},
			{Name: "coach", Grants: []enforce.Grant{
				grant(enforce.RecordingPlayback, enforce.DimAgents, enforce.ScopeList, "a1", "a2"),
				grant(enforce.RecordingPlayback, enforce.DimQueues, enforce.ScopeList, "sales"),
				grant(enforce.RecordingExport, enforce.DimQueues, enforce.ScopeAll),
			}},
			{Name: "agent", Grants: []enforce.Grant{grant(enforce.RecordingPlayback, enforce.DimAgents, enforce.ScopeSelf)}},
			{Name: "team-lead", Grants: []enforce.Grant{grant(enforce.RecordingPlayback, enforce.DimTeams, enforce.ScopeList, "team-a")}},
		},
		Users: []enforce.User{
			{ID: "bob", Profile: "teacher", Queues: []string{"sales", "support"}},
			{ID: "cleo", Profile: "coach"},
			{ID: "agent7", Profile: "agent"},
			{ID: "tess", Profile: "team-lead"},
			{ID: "dave"},
		},
	}
	snap, err := enforce.NewSnapshot(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, user string
		want       []enforce.RecordingIndex
		all        bool
	}{
		{"assigned queues name the user's queues", "bob", []enforce.RecordingIndex{{Queue: "sales"}, {Queue: "support"}}, false},
		{"listed agents and queues, other actions ignored", "cleo", []enforce.RecordingIndex{{Agent: "a1"}, {Agent: "a2"}, {Queue: "sales"}}, false},
		{"self names the user's own recordings", "agent7", []enforce.RecordingIndex{{Agent: "agent7"}}, false},
		{"a grant naming neither queues nor agents needs every recording", "tess", nil, true},
		{"no profile reaches nothing", "dave", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, all := snap.RecordingReach(tc.user, enforce.RecordingPlayback)
			if all != tc.all || !slices.Equal(got, tc.want) {
				t.Errorf("RecordingReach = %v, %v; want %v, %v", got, all, tc.want, tc.all)
			}
		})
	}
}

func TestCatalogueKeysSortAsRecordingsStart(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	early, _ := enforce.CatalogueKey(&enforce.Recording{ID: "900000000000", StartedAt: t0})
	late, _ := enforce.CatalogueKey(&enforce.Recording{ID: "100000000000", StartedAt: t0.Add(time.Millisecond)})
	if !(early < late) || !(enforce.CatalogueBound(t0) <= early) || !(early < enforce.CatalogueBound(t0.Add(time.Millisecond))) {
		t.Errorf("keys %q, %q do not sort by start time within their bounds", early, late)
	}
	if _, ok := enforce.CatalogueKey(&enforce.Recording{ID: "1"}); ok {
		t.Error("a recording without a start time has a key")
	}
	for _, bad := range []string{"", "12:x", "0000000000001", "000000000000a:1", "0000000000001:a b"} {
		if _, err := enforce.ParseCatalogueKey(bad); err == nil {
			t.Errorf("ParseCatalogueKey(%q) accepted", bad)
		}
	}
	if k, err := enforce.ParseCatalogueKey(early); err != nil || k != early {
		t.Errorf("ParseCatalogueKey(%q) = %q, %v", early, k, err)
	}
}

func TestRecordingDurationLeavesPausesOut(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	rec := enforce.Recording{StartedAt: t0, StoppedAt: t0.Add(10 * time.Minute),
		Pauses: []enforce.Pause{{At: t0.Add(time.Minute), ResumedAt: t0.Add(3 * time.Minute)}}}
	if d := rec.Duration(t0.Add(time.Hour)); d != 8*time.Minute {
		t.Errorf("Duration = %s, want 8m", d)
	}
	rec.StoppedAt, rec.Pauses = time.Time{}, append(rec.Pauses, enforce.Pause{At: t0.Add(5 * time.Minute)})
	if d := rec.Duration(t0.Add(6 * time.Minute)); d != 3*time.Minute {
		t.Errorf("Duration of a paused recording in progress = %s, want 3m", d)
	}
}
