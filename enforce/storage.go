package enforce

import (
	"context"
	"errors"
	"fmt"
)

// The errors of the store contracts below. Implementations wrap them (%w)
// with what they were doing; callers classify with errors.Is, once, where
// they decide to fail closed, retry or answer the client.
var (
	// ErrNotFound is returned when the asked-for item does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable is returned by stores that cannot reach their
	// backend. The caller decides whether to fail closed (deciding) or to
	// retry (auditing).
	ErrUnavailable = errors.New("store unavailable")
	// ErrConflict is returned by a conditional write when the store is not
	// at the generation (and history) the caller based its change on:
	// someone else changed the policy in between (HTTP 409).
	ErrConflict = errors.New("generation conflict")
	// ErrReadOnly is returned by every write to a store that cannot be
	// changed at run time, such as a profiles file (HTTP 405).
	ErrReadOnly = errors.New("store is read-only")
	// ErrInvalidPolicy wraps the reasons a policy or patch given to a
	// store was refused (NewSnapshot's or Snapshot.Patch's errors, a time
	// zone the store cannot carry). Nothing was written (HTTP 422).
	ErrInvalidPolicy = errors.New("invalid policy")
	// ErrCorrupt wraps a stored entry that cannot be decoded (written by
	// another tool or by hand): the store is reachable but its content is
	// not trustworthy, so the caller keeps what it has.
	ErrCorrupt = errors.New("stored data is corrupt")
	// ErrSchemaVersion is returned when the store was written with a
	// layout this version does not know: it is neither read nor written.
	ErrSchemaVersion = errors.New("unknown store schema version")
	// ErrChangelogGap is returned by ChangeSource.Changes when the change
	// log cannot bring a snapshot to the store's generation: entries were
	// trimmed, a change was too large to log by name, the store was
	// emptied and started a new history (another epoch), or it went
	// backwards. The caller reloads the whole policy.
	ErrChangelogGap = errors.New("change log does not cover the generations asked for")
	// ErrTokenTaken is returned by TokenStore.AddAdminToken when the hash
	// already authenticates another name, or the same name in another
	// role.
	ErrTokenTaken = errors.New("token hash already stored for another user")
	// ErrUnknownTokenRole is returned for a token role other than "" and
	// TokenRoleCheck.
	ErrUnknownTokenRole = errors.New("unknown token role")
)

// Precondition says on which generation a write may be applied. The zero
// value is IfGeneration(0): only on a store never written, so that a
// forgotten precondition can never overwrite a policy.
type Precondition struct {
	gen uint64
	any bool
}

// IfGeneration is the precondition of a compare-and-set: the store must be
// at generation gen, 0 included (a store never written).
func IfGeneration(gen uint64) Precondition { return Precondition{gen: gen} }

// Unconditionally is the precondition of a write that applies whatever the
// store's generation (`callwarden profiles apply --force`, tests).
func Unconditionally() Precondition { return Precondition{any: true} }

// Holds reports whether a store at generation gen may apply the write.
func (p Precondition) Holds(gen uint64) bool { return p.any || p.gen == gen }

// Generation returns the generation the write is based on, and false for
// an unconditional write.
func (p Precondition) Generation() (uint64, bool) { return p.gen, !p.any }

// Check returns nil when p holds at generation gen, else an error wrapping
// ErrConflict that says both generations.
func (p Precondition) Check(gen uint64) error {
	if p.Holds(gen) {
		return nil
	}
	return fmt.Errorf("apply on generation %d, store is at %d: %w", p.gen, gen, ErrConflict)
}

// String describes p for errors and logs.
func (p Precondition) String() string {
	if p.any {
		return "unconditionally"
	}
	return fmt.Sprintf("if generation %d", p.gen)
}

// Version identifies the content of a policy store: a generation counted
// within an epoch. The epoch is a random id a store takes when it is first
// written (and again after it is emptied), so that a generation number
// seen before a reset is never mistaken for the same number after it. A
// snapshot carries its epoch as its origin (Snapshot.WithOrigin).
type Version struct {
	Epoch string
	Gen   uint64
}

// PolicyStore holds the policy every daemon decides from.
type PolicyStore interface {
	// Policy returns the whole current policy and its generation, read
	// atomically. Profiles come sorted by name, users by id. An empty
	// store returns an empty policy at generation 0. Errors:
	// ErrUnavailable, ErrSchemaVersion, ErrCorrupt; a profiles file
	// returns its parse errors as they are.
	Policy(ctx context.Context) (Policy, uint64, error)
	// Writable returns nil when ApplyPolicy may change the policy, and
	// ErrReadOnly (wrapped) when the store can never be written, so a
	// caller refuses a write before preparing it. It does no I/O.
	Writable() error
	// ApplyPolicy replaces the policy atomically (readers never see half
	// of it) after validating it, when pre holds, and returns the new
	// generation and what changed. An apply that changes nothing keeps
	// the generation. Errors: ErrConflict (pre does not hold, or another
	// writer committed first; with the store's generation), ErrInvalidPolicy
	// (nothing written), ErrReadOnly, ErrUnavailable, ErrSchemaVersion,
	// ErrCorrupt.
	ApplyPolicy(ctx context.Context, p Policy, pre Precondition) (uint64, PolicyDiff, error)
}

// PatchStore is a policy store that applies a change entry by entry,
// validated against the snapshot of the generation it is based on, so
// that a one-user change costs what the change touches, not what the
// policy holds.
type PatchStore interface {
	// Generation returns the store's current generation, cheaply (0 for
	// an empty store). Errors: ErrUnavailable, ErrSchemaVersion,
	// ErrCorrupt.
	Generation(ctx context.Context) (uint64, error)
	// ApplyPatch validates p against base (base.Patch), then writes only
	// the entries p puts or removes that differ from base (base.PatchDiff),
	// bumps the generation, logs the change and notifies, as ApplyPolicy
	// does. It is a compare-and-set: when the store is not at base's
	// generation and origin it writes nothing. A patch that changes
	// nothing keeps the generation. Errors: ErrConflict (with the store's
	// generation), ErrInvalidPolicy, ErrUnavailable, ErrSchemaVersion,
	// ErrCorrupt.
	ApplyPatch(ctx context.Context, base *Snapshot, p PolicyPatch) (uint64, PolicyDiff, error)
}

// ChangeSource is a policy store that can tell a snapshot's holder what
// changed since the version of its snapshot, so that the holder patches
// the snapshot (Snapshot.Patch) rather than reloading the whole policy,
// and when it changed.
type ChangeSource interface {
	// PolicyVersion returns the whole policy and its version, read
	// atomically. Errors: as PolicyStore.Policy.
	PolicyVersion(ctx context.Context) (Policy, Version, error)
	// Changes returns the entries changed since since, with their
	// current content (a removed entry is listed as removed), and the
	// version they bring a snapshot of since to. Errors: ErrChangelogGap
	// (reload the whole policy), ErrUnavailable, ErrSchemaVersion,
	// ErrCorrupt.
	Changes(ctx context.Context, since Version) (PolicyPatch, Version, error)
	// Watch returns a channel that receives the new generation after each
	// change, coalesced to the latest when the reader is slow. It is
	// closed when ctx is done or the subscription is lost; notifications
	// may be lost, which a periodic Generation check covers. Errors:
	// ErrUnavailable when the subscription cannot be made.
	Watch(ctx context.Context) (<-chan uint64, error)
	// Generation returns the store's current generation, as
	// PatchStore.Generation.
	Generation(ctx context.Context) (uint64, error)
}

// RecordingStore keeps recording metadata where the playback step, the
// admin API and every daemon can find it.
type RecordingStore interface {
	// SaveRecording creates or replaces the recording with r.ID. Errors:
	// ErrUnavailable.
	SaveRecording(ctx context.Context, r Recording) error
	// Recording returns the recording with the given id. Errors:
	// ErrNotFound, ErrUnavailable, ErrCorrupt.
	Recording(ctx context.Context, id string) (Recording, error)
	// ActiveRecording returns the recording in progress (active or paused)
	// on the given agent's call, the most recently started when there are
	// several. Errors: ErrNotFound, ErrUnavailable, ErrCorrupt.
	ActiveRecording(ctx context.Context, target string) (Recording, error)
}

// Auditor records audit records. Implementations must be safe for
// concurrent use and must not block the call path for long: they take a
// context with a deadline. Errors: ErrUnavailable from a store; a
// decorator that drops a record says so with its own error.
type Auditor interface {
	Audit(ctx context.Context, r AuditRecord) error
}

// AuditorFunc adapts a function to Auditor.
type AuditorFunc func(ctx context.Context, r AuditRecord) error

// Audit calls f.
func (f AuditorFunc) Audit(ctx context.Context, r AuditRecord) error { return f(ctx, r) }

// BatchAuditor is an Auditor that appends several records in one round
// trip, in order (Redis chains them in Go and appends them in one script
// call).
type BatchAuditor interface {
	Auditor
	// AuditBatch appends recs in order and returns how many were
	// appended: on error, recs[:n] are stored and recs[n:] are not.
	// Errors: ErrUnavailable.
	AuditBatch(ctx context.Context, recs []AuditRecord) (int, error)
}

// AuditReader reads the audit trail, oldest first.
type AuditReader interface {
	// ReadAudit returns the records matching f, oldest first; with
	// f.Limit > 0, the most recent Limit of them. Errors: ErrUnavailable,
	// ErrCorrupt.
	ReadAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error)
}

// AuditLog is an append-only, hash-chained audit trail (AuditEntry): the
// Auditor the enforcement points write to, the AuditReader the admin API
// and CLI read from, and VerifyAudit for `callwarden audit verify`.
type AuditLog interface {
	Auditor
	AuditReader
	// VerifyAudit walks the retained trail, oldest first, and reports the
	// first record whose hash or link to its predecessor is wrong, then
	// whether the head (the hash the next record will link to) is the
	// hash of a record in the trail, and, WithAnchor, whether the trail
	// still holds the anchored record. Its error is only for failing to
	// read the trail (ErrUnavailable); a broken chain is a result, not an
	// error.
	VerifyAudit(ctx context.Context, opts ...VerifyOption) (VerifyResult, error)
}

// TokenStore keeps API token hashes in the shared store, beside the ones
// of each daemon's config, so that a token is added or revoked once for
// every daemon. Only SHA-256 hashes (hex) are stored, never tokens.
type TokenStore interface {
	// AdminTokens returns every stored hash, of both roles, with the name
	// it authenticates, sorted by role ("" first), name, then hash
	// (SortAdminTokens). Errors: ErrUnavailable, ErrCorrupt.
	AdminTokens(ctx context.Context) ([]AdminToken, error)
	// AddAdminToken stores the hash of one of a name's tokens (a name may
	// have several). Errors: ErrTokenTaken (the hash is stored for another
	// name or role), ErrUnknownTokenRole, a malformed token
	// (AdminToken.Check), ErrUnavailable.
	AddAdminToken(ctx context.Context, t AdminToken) error
	// RevokeAdminTokens removes every hash of the name in the role and
	// returns how many there were. Errors: ErrUnavailable.
	RevokeAdminTokens(ctx context.Context, role, name string) (int, error)
}
