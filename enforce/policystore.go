package enforce

import (
	"context"
	"errors"
	"time"
)

// ErrConflict is returned by PolicyStore.ApplyPolicy when the store's
// generation is not the one the caller based its change on: someone else
// changed the policy in between (HTTP 409).
var ErrConflict = errors.New("generation conflict")

// ErrReadOnly is returned by stores that cannot be changed at run time,
// such as a profiles file.
var ErrReadOnly = errors.New("store is read-only")

// PolicyDiff says what an apply changed, by name.
type PolicyDiff struct {
	AddedProfiles    []string `json:"added_profiles,omitempty"`
	RemovedProfiles  []string `json:"removed_profiles,omitempty"`
	ChangedProfiles  []string `json:"changed_profiles,omitempty"`
	AddedUsers       []string `json:"added_users,omitempty"`
	RemovedUsers     []string `json:"removed_users,omitempty"`
	ChangedUsers     []string `json:"changed_users,omitempty"`
	ProtectedChanged bool     `json:"protected_changed,omitempty"`
}

// Empty reports whether the diff changes nothing.
func (d PolicyDiff) Empty() bool {
	return len(d.AddedProfiles)+len(d.RemovedProfiles)+len(d.ChangedProfiles)+
		len(d.AddedUsers)+len(d.RemovedUsers)+len(d.ChangedUsers) == 0 && !d.ProtectedChanged
}

// PolicyStore holds the policy every daemon decides from.
type PolicyStore interface {
	// Policy returns the whole current policy and its generation.
	Policy(ctx context.Context) (Policy, uint64, error)
	// ApplyPolicy replaces the policy atomically (readers never see half
	// of it) after validating it, and returns the new generation and what
	// changed. When ifGeneration is non-zero and differs from the store's
	// generation it returns ErrConflict and changes nothing. An invalid
	// policy changes nothing.
	ApplyPolicy(ctx context.Context, p Policy, ifGeneration uint64) (uint64, PolicyDiff, error)
}

// AuditFilter selects audit records; zero fields match everything.
type AuditFilter struct {
	User, Target, Action, Decision string
	Since, Until                   time.Time
	Limit                          int
}

// AuditReader reads the audit trail, oldest first.
type AuditReader interface {
	ReadAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error)
}
