package adminapi

import (
	"slices"

	"github.com/callwarden/callwarden/enforce"
)

// policyView is what a write is based on: the store's generation and
// either the daemon's snapshot of exactly that generation (base; the
// change is then applied as a patch) or the whole stored policy (pol).
type policyView struct {
	gen  uint64
	base *enforce.Snapshot
	pol  enforce.Policy
}

// snapshot returns the view's policy compiled: base itself, or a
// snapshot of pol at the view's generation.
func (v *policyView) snapshot() (*enforce.Snapshot, error) {
	if v.base != nil {
		return v.base, nil
	}
	return enforce.NewSnapshot(v.pol, v.gen)
}

func (v *policyView) profileNames() []string {
	if v.base != nil {
		return v.base.ProfileNames()
	}
	return profileNames(v.pol)
}

func (v *policyView) hasProfile(name string) bool {
	if v.base != nil {
		_, ok := v.base.Profile(name)
		return ok
	}
	return slices.ContainsFunc(v.pol.Profiles, func(p enforce.Profile) bool { return p.Name == name })
}

// user returns a copy of the user's entry, or nil.
func (v *policyView) user(id string) *enforce.User {
	if v.base != nil {
		u, ok := v.base.User(id)
		if !ok {
			return nil
		}
		return &u
	}
	_, u := findUser(v.pol, id)
	return u
}
