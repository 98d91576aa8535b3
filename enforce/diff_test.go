package enforce_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

func TestDiffPolicies(t *testing.T) {
	base := func() enforce.Policy { return designPolicy(t) }
	tests := []struct {
		name   string
		change func(p *enforce.Policy)
		want   enforce.PolicyDiff
	}{
		{"identical policies differ in nothing", func(*enforce.Policy) {}, enforce.PolicyDiff{}},
		{"added profile and user are listed", func(p *enforce.Policy) {
			p.Profiles = append(p.Profiles, enforce.Profile{Name: "zz-new"})
			p.Users = append(p.Users, enforce.User{ID: "zz-user", Profile: "zz-new"})
		}, enforce.PolicyDiff{AddedProfiles: []string{"zz-new"}, AddedUsers: []string{"zz-user"}}},
		{"removed entries are listed", func(p *enforce.Policy) {
			p.Users = p.Users[1:]
		}, enforce.PolicyDiff{RemovedUsers: []string{designPolicy(t).Users[0].ID}}},
		{"a changed grant scope changes the profile", func(p *enforce.Policy) {
			p.Profiles[0].Grants[0].Scopes[enforce.DimQueues] = enforce.Scope{Kind: enforce.ScopeAll}
		}, enforce.PolicyDiff{ChangedProfiles: []string{designPolicy(t).Profiles[0].Name}}},
		{"a changed user queue list changes the user", func(p *enforce.Policy) {
			p.Users[0].Queues = append(p.Users[0].Queues, "extra")
		}, enforce.PolicyDiff{ChangedUsers: []string{designPolicy(t).Users[0].ID}}},
		{"a changed validity instant changes the user", func(p *enforce.Policy) {
			p.Users[0].ValidUntil = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		}, enforce.PolicyDiff{ChangedUsers: []string{designPolicy(t).Users[0].ID}}},
		{"the same instant in another zone is no change", func(p *enforce.Policy) {
			for i := range p.Users {
				if !p.Users[i].ValidFrom.IsZero() {
					p.Users[i].ValidFrom = p.Users[i].ValidFrom.In(mustLoc(t, "Asia/Tokyo"))
				}
			}
		}, enforce.PolicyDiff{}},
		{"reordered entries are no change", func(p *enforce.Policy) {
			p.Users[0], p.Users[1] = p.Users[1], p.Users[0]
			p.Profiles[0], p.Profiles[1] = p.Profiles[1], p.Profiles[0]
			p.Protected.Users = append([]string{"zzz"}, p.Protected.Users...)
			p.Protected.Users = p.Protected.Users[1:]
		}, enforce.PolicyDiff{}},
		{"a new protected queue is reported", func(p *enforce.Policy) {
			p.Protected.Queues = append(p.Protected.Queues, "board")
		}, enforce.PolicyDiff{ProtectedChanged: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, new := base(), base()
			tt.change(&new)
			got := enforce.DiffPolicies(old, new)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DiffPolicies = %+v, want %+v", got, tt.want)
			}
			if got.Empty() != reflect.DeepEqual(tt.want, enforce.PolicyDiff{}) {
				t.Fatalf("Empty() = %v for %+v", got.Empty(), got)
			}
		})
	}
	t.Run("lists are sorted by name", func(t *testing.T) {
		var p enforce.Policy
		for _, n := range []string{"c", "a", "b"} {
			p.Profiles = append(p.Profiles, enforce.Profile{Name: n})
			p.Users = append(p.Users, enforce.User{ID: n})
		}
		d := enforce.DiffPolicies(enforce.Policy{}, p)
		want := []string{"a", "b", "c"}
		if !reflect.DeepEqual(d.AddedProfiles, want) || !reflect.DeepEqual(d.AddedUsers, want) {
			t.Fatalf("diff = %+v, want sorted a b c", d)
		}
		back := enforce.DiffPolicies(p, enforce.Policy{})
		if !reflect.DeepEqual(back.RemovedProfiles, want) || !reflect.DeepEqual(back.RemovedUsers, want) {
			t.Fatalf("reverse diff = %+v, want sorted a b c", back)
		}
	})
	t.Run("weekly hours compare time zones by name", func(t *testing.T) {
		a := enforce.Profile{Name: "p", Grants: []enforce.Grant{{Actions: enforce.NewActionSet(enforce.MonitorListen),
			Hours: &enforce.Weekly{Days: [7]bool{1: true}, From: 60, To: 120, Location: mustLoc(t, "Europe/Paris")}}}}
		b := a
		b.Grants = []enforce.Grant{a.Grants[0]}
		h := *a.Grants[0].Hours
		h.Location = mustLoc(t, "Europe/Paris") // another *Location, same zone
		b.Grants[0].Hours = &h
		if !enforce.ProfilesEqual(a, b) {
			t.Fatal("same zone loaded twice compares unequal")
		}
		h2 := h
		h2.Location = mustLoc(t, "America/New_York")
		b.Grants[0].Hours = &h2
		if enforce.ProfilesEqual(a, b) {
			t.Fatal("different zones compare equal")
		}
	})
}
