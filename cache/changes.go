package cache

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"

	"github.com/callwarden/callwarden/enforce"
)

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
