package adminapi_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/callwarden/callwarden/enforce"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// now is a Tuesday, 10:00 in Paris.
var now = time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)

func assignedQueues() [4]enforce.Scope {
	return [4]enforce.Scope{{Kind: enforce.ScopeAssigned}}
}

func mustSnapshot(tb testing.TB, p enforce.Policy, gen uint64) *enforce.Snapshot {
	tb.Helper()
	s, err := enforce.NewSnapshot(p, gen)
	if err != nil {
		tb.Fatalf("NewSnapshot: %v", err)
	}
	return s
}
