package enforce

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestUserRecordsGiveBackTheUser: a snapshot keeps each user as a record
// (its id, profile, names and identities in one string) and rebuilds the
// User from it for Snapshot.User, Policy and the access review. Whatever
// the names hold (long, non-ASCII, bytes a separator would have been),
// and whatever the user has (a validity window, more names than its index
// slot holds, none at all), the User comes back as it went in.
func TestUserRecordsGiveBackTheUser(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	long := strings.Repeat("q", 200) // lengths over 127 take two bytes
	many := make([]string, 40)       // more than inlineIDs: spilled
	for i := range many {
		many[i] = "queue-" + strings.Repeat("x", i)
	}
	p := Policy{
		Profiles: []Profile{{Name: "supervisor", Grants: []Grant{{
			Actions: NewActionSet(MonitorListen), Scopes: [numDimensions]Scope{{Kind: ScopeAssigned}}}}}},
		Users: []User{
			{ID: "alice", Profile: "supervisor", Queues: []string{"sales", long, "ventes-été"},
				Teams: []string{"t1"}, Agents: []string{"bob"}, Sites: []string{"paris"},
				Identities: []string{"PJSIP/1001", "1001", "alice@pbx.example"}},
			{ID: "bob", Identities: []string{"PJSIP/2001"}},
			{ID: "carol", Profile: "supervisor", Queues: many,
				ValidFrom:  time.Date(2026, 1, 1, 8, 0, 0, 0, paris),
				ValidUntil: time.Date(2027, 1, 1, 8, 0, 0, 0, paris)},
			{ID: "dave"},
			{ID: "d" + strings.Repeat("é", 100), Profile: "supervisor", Sites: []string{"s"}},
		},
	}
	s, err := NewSnapshot(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range p.Users {
		got, ok := s.User(want.ID)
		if !ok {
			t.Fatalf("User(%q): not found", want.ID)
		}
		if !UsersEqual(got, want) || got.ValidFrom != want.ValidFrom || got.ValidUntil != want.ValidUntil {
			t.Errorf("User(%q) =\n %+v\nwant\n %+v", want.ID, got, want)
		}
		for _, ident := range want.Identities {
			if owner, ok := s.ResolveIdentity(ident); !ok || owner != want.ID {
				t.Errorf("ResolveIdentity(%q) = %q, %v; want %q", ident, owner, ok, want.ID)
			}
		}
	}
	if got := s.Policy().Users; !slices.EqualFunc(got, p.Users, UsersEqual) {
		t.Errorf("Policy().Users =\n %+v\nwant\n %+v", got, p.Users)
	}
	// A patched user is packed on its own, and reads back the same.
	bob := User{ID: "bob", Profile: "supervisor", Queues: []string{long}, Identities: []string{"PJSIP/2002"}}
	next, err := s.Patch(PolicyPatch{Users: []User{bob}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := next.User("bob"); !reflect.DeepEqual(got, bob) {
		t.Errorf("patched User(bob) = %+v, want %+v", got, bob)
	}
	if _, ok := next.ResolveIdentity("PJSIP/2001"); ok {
		t.Error("bob's old identity still resolves after the patch")
	}
}
