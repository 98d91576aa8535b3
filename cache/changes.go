package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/callwarden/callwarden/enforce"
)

// ErrChangelogGap is returned by Changes when the change log cannot bring
// a snapshot to the store's generation: entries were trimmed, a change was
// too large to log by name, the store was emptied and started a new
// history (another epoch), or it went backwards. The caller reloads the
// whole policy.
var ErrChangelogGap = errors.New("change log does not cover the generations asked for")

// Version identifies the content of a policy store: a generation counted
// within an epoch. The epoch is a random id a store takes when it is first
// written (and again after it is emptied), so that a generation number
// seen before a reset is never mistaken for the same number after it.
type Version struct {
	Epoch string
	Gen   uint64
}

// IncrementalSource is a policy store that can tell a Loader what changed
// since the version of its snapshot, so the Loader patches the snapshot
// (enforce.Snapshot.Patch) rather than reloading the whole policy.
type IncrementalSource interface {
	// PolicyVersion returns the whole policy and its version, read
	// atomically.
	PolicyVersion(ctx context.Context) (enforce.Policy, Version, error)
	// Changes returns the entries changed since since, with their
	// current content (a removed entry is listed as removed), and the
	// version they bring a snapshot of since to. It returns
	// ErrChangelogGap when it cannot.
	Changes(ctx context.Context, since Version) (enforce.PolicyPatch, Version, error)
}

// PatchStore is a policy store that applies a change entry by entry,
// validated against the snapshot of the generation it is based on, so that
// a one-user change costs what the change touches, not what the policy
// holds.
type PatchStore interface {
	// ApplyPatch validates p against base (base.Patch), then writes only
	// the entries p puts or removes that differ from base, bumps the
	// generation, logs the change and notifies, as ApplyPolicy does. It
	// is a compare-and-set: when the store is not at base's generation
	// and origin, it returns enforce.ErrConflict and writes nothing. An
	// invalid result is ErrInvalidPolicy. A patch that changes nothing
	// keeps the generation.
	ApplyPatch(ctx context.Context, base *enforce.Snapshot, p enforce.PolicyPatch) (uint64, enforce.PolicyDiff, error)
}

// Change log bounds: the number of generations kept, and the number of
// entries one generation may name before it is logged as "full" (daemons
// reload everything: a bulk apply is cheaper to read whole than by name).
const (
	changelogKeep     = 1024
	changelogMaxNames = 1000
)

// changeEntry is one generation's line in the change log.
type changeEntry struct {
	Gen       uint64   `json:"gen"`
	Full      bool     `json:"full,omitempty"`
	Profiles  []string `json:"profiles,omitempty"`
	Users     []string `json:"users,omitempty"`
	Protected bool     `json:"protected,omitempty"`
}

// newChangeEntry logs diff as the change that made generation gen.
func newChangeEntry(gen uint64, d enforce.PolicyDiff) changeEntry {
	e := changeEntry{Gen: gen, Protected: d.ProtectedChanged}
	for _, l := range [][]string{d.AddedProfiles, d.ChangedProfiles, d.RemovedProfiles} {
		e.Profiles = append(e.Profiles, l...)
	}
	for _, l := range [][]string{d.AddedUsers, d.ChangedUsers, d.RemovedUsers} {
		e.Users = append(e.Users, l...)
	}
	if len(e.Profiles)+len(e.Users) > changelogMaxNames {
		return changeEntry{Gen: gen, Full: true}
	}
	return e
}

func (e changeEntry) encode() string {
	b, _ := json.Marshal(e) // strings and bools only: cannot fail
	return string(b)
}

// newEpoch returns a fresh random epoch id.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
