package wire

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// Change log bounds: the number of generations kept, and the number of
// entries one generation may name before it is logged as "full" (daemons
// reload everything: a bulk apply is cheaper to read whole than by name).
const (
	ChangelogKeep     = 1024
	ChangelogMaxNames = 1000
)

// ChangeEntry is one generation's line in the change log.
type ChangeEntry struct {
	Gen       uint64   `json:"gen"`
	Full      bool     `json:"full,omitempty"`
	Profiles  []string `json:"profiles,omitempty"`
	Users     []string `json:"users,omitempty"`
	Protected bool     `json:"protected,omitempty"`
}

// NewChangeEntry logs diff as the change that made generation gen.
func NewChangeEntry(gen uint64, d enforce.PolicyDiff) ChangeEntry {
	e := ChangeEntry{Gen: gen, Protected: d.ProtectedChanged}
	for _, l := range [][]string{d.AddedProfiles, d.ChangedProfiles, d.RemovedProfiles} {
		e.Profiles = append(e.Profiles, l...)
	}
	for _, l := range [][]string{d.AddedUsers, d.ChangedUsers, d.RemovedUsers} {
		e.Users = append(e.Users, l...)
	}
	if len(e.Profiles)+len(e.Users) > ChangelogMaxNames {
		return ChangeEntry{Gen: gen, Full: true}
	}
	return e
}

func (e ChangeEntry) Encode() string {
	b, _ := json.Marshal(e) // strings and bools only: cannot fail
	return string(b)
}

// NewEpoch returns a fresh random epoch id.
func NewEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Notify sends gen on ch (capacity 1), replacing an unread older value.
// Callers serialise sends to ch.
func Notify(ch chan uint64, gen uint64) {
	select {
	case old := <-ch:
		gen = max(gen, old)
	default:
	}
	ch <- gen
}

// AuditOptions bound an audit trail. Zero values keep everything.
type AuditOptions struct {
	// MaxLen is the number of records kept; Redis trims approximately
	// (whole stream nodes), so slightly more may remain.
	MaxLen int64
	// MaxAge drops records older than this, by the time they were
	// appended.
	MaxAge time.Duration
	// Now is the clock that MaxAge is measured with (default time.Now).
	Now func() time.Time
}
