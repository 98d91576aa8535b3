package enforce

import (
	"context"
	"time"
)

// WatchdogStore is what the daemons of one deployment share so that
// exactly one watchdog acts on a PBX's bypasses while every daemon
// answers checks: a lease naming the watchdog that acts, and the
// allowances the checks gave.
type WatchdogStore interface {
	// AcquireLease takes the lease name for holder for ttl, or renews it
	// when holder already holds it (compare and renew, one atomic step).
	// It returns the holder after the call: holder itself, or the other
	// holder whose unexpired lease it left alone. Errors: ErrUnavailable.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (string, error)
	// ReleaseLease drops the lease name when holder holds it, so that
	// another daemon takes it at its next try. Errors: ErrUnavailable.
	ReleaseLease(ctx context.Context, name, holder string) error
	// PutAllowance records that a check allowed channel to run action
	// once, for ttl. Allowances add up: two puts let two runs through.
	// Errors: ErrUnavailable.
	PutAllowance(ctx context.Context, channel string, action Action, ttl time.Duration) error
	// TakeAllowance uses up one unexpired allowance of channel for
	// action; it reports false when there is none. The use is remembered
	// for keep (AllowanceUsed). Errors: ErrUnavailable.
	TakeAllowance(ctx context.Context, channel string, action Action, keep time.Duration) (bool, error)
	// AllowanceUsed reports whether an allowance of channel for action was
	// taken within its keep: a watchdog taking the lease over tells by it
	// an application the previous holder let through from a bypass.
	// Errors: ErrUnavailable.
	AllowanceUsed(ctx context.Context, channel string, action Action) (bool, error)
}
