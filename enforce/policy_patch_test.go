package enforce_test

import (
	"slices"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

func TestPatchAlgebra(t *testing.T) {
	base := func() enforce.Policy { return designPolicy(t) }
	for name, change := range map[string]func(p *enforce.Policy){
		"no change": func(*enforce.Policy) {},
		"a profile and a user added": func(p *enforce.Policy) {
			p.Profiles = append(p.Profiles, enforce.Profile{Name: "zz-new"})
			p.Users = append(p.Users, enforce.User{ID: "zz-user", Profile: "zz-new"})
		},
		"a user removed": func(p *enforce.Policy) { p.Users = p.Users[1:] },
		"a user changed": func(p *enforce.Policy) {
			p.Users[0].Queues = append(slices.Clone(p.Users[0].Queues), "extra")
		},
		"the protected lists changed": func(p *enforce.Policy) {
			p.Protected.Queues = append(slices.Clone(p.Protected.Queues), "vip-extra")
		},
	} {
		t.Run(name+": PatchOf(old, new) applied to old is new", func(t *testing.T) {
			old, new := base(), base()
			change(&new)
			pt := enforce.PatchOf(old, new)
			got := pt.Apply(old)
			if d := enforce.DiffPolicies(new, got); !d.Empty() {
				t.Fatalf("Apply(PatchOf) differs from new: %+v (patch %+v)", d, pt)
			}
			if d := enforce.DiffPolicies(base(), old); !d.Empty() {
				t.Fatalf("Apply changed its argument: %+v", d)
			}
			if want := enforce.DiffPolicies(old, new); (pt.Size() == 0) != want.Empty() {
				t.Fatalf("patch of size %d for diff %+v", pt.Size(), want)
			}
		})
		t.Run(name+": a snapshot's PatchDiff says what DiffPolicies says", func(t *testing.T) {
			old, new := base(), base()
			change(&new)
			full := enforce.PatchOf(old, new)
			// Put every entry of new, changed or not: PatchDiff drops the
			// ones that change nothing.
			full.Profiles, full.Users = new.Profiles, new.Users
			d, eff := MustSnapshot(t, old).PatchDiff(full)
			if want := enforce.DiffPolicies(old, new); !equalDiffs(d, want) {
				t.Fatalf("PatchDiff %+v, DiffPolicies %+v", d, want)
			}
			if got := eff.Apply(old); !enforce.DiffPolicies(new, got).Empty() {
				t.Fatalf("the reduced patch does not make new: %+v", enforce.DiffPolicies(new, got))
			}
		})
	}
	t.Run("Apply replaces in place and appends in the patch's order", func(t *testing.T) {
		p := enforce.Policy{Users: []enforce.User{{ID: "a"}, {ID: "b"}, {ID: "c"}}}
		got := enforce.PolicyPatch{Users: []enforce.User{{ID: "z"}, {ID: "b", Profile: "x"}, {ID: "y"}}, RemovedUsers: []string{"a"}}.Apply(p)
		var ids []string
		for _, u := range got.Users {
			ids = append(ids, u.ID+"/"+u.Profile)
		}
		if want := []string{"b/x", "c/", "z/", "y/"}; !slices.Equal(ids, want) {
			t.Fatalf("users %v, want %v", ids, want)
		}
		if p.Users[1].Profile != "" {
			t.Fatal("Apply modified its argument")
		}
	})
}

func equalDiffs(a, b enforce.PolicyDiff) bool {
	return slices.Equal(a.AddedProfiles, b.AddedProfiles) && slices.Equal(a.RemovedProfiles, b.RemovedProfiles) &&
		slices.Equal(a.ChangedProfiles, b.ChangedProfiles) && slices.Equal(a.AddedUsers, b.AddedUsers) &&
		slices.Equal(a.RemovedUsers, b.RemovedUsers) && slices.Equal(a.ChangedUsers, b.ChangedUsers) &&
		a.ProtectedChanged == b.ProtectedChanged
}
