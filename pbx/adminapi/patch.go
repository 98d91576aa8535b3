package adminapi

import (
	"context"
	"slices"

	"github.com/callwarden/callwarden/enforce"
)

// PatchStore is implemented by policy stores that apply a change entry by
// entry (cache.Redis, cache.Memory). With one, a write whose If-Match is
// the generation of the daemon's own snapshot is validated against that
// snapshot (enforce.Snapshot.Patch) and writes only the entries it
// changes: its cost does not grow with the policy. Otherwise the admin
// API reads the whole stored policy and applies it whole.
type PatchStore interface {
	// Generation returns the store's current generation, cheaply.
	Generation(ctx context.Context) (uint64, error)
	// ApplyPatch writes p if the store is still at base's generation (and
	// history), else returns enforce.ErrConflict. See cache.PatchStore.
	ApplyPatch(ctx context.Context, base *enforce.Snapshot, p enforce.PolicyPatch) (uint64, enforce.PolicyDiff, error)
}

// ExactStore is implemented by policy stores whose compare-and-set also
// holds for generation 0 (a store never written). The PolicyStore
// contract reads an ifGeneration of 0 as "unconditional", so without it
// If-Match: "0" cannot be honoured atomically and is answered 409.
type ExactStore interface {
	// ApplyPolicyAt is ApplyPolicy with gen compared exactly, 0 included.
	ApplyPolicyAt(ctx context.Context, p enforce.Policy, gen uint64) (uint64, enforce.PolicyDiff, error)
}

// ReadOnlyStore is implemented by policy stores that can never be
// written through the API (profiles files). Every write to one answers
// 405 before anything else is looked at: no If-Match, body or
// authorization can make it succeed.
type ReadOnlyStore interface {
	ReadOnly() bool
}

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
