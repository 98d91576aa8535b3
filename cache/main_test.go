package cache_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/cache/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t *testing.T) context.Context { return storetest.Context(t, 10*time.Second) }

// waitFor polls cond until it holds, or fails the test after 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// running starts a's Run, which returns once a is closed.
func running(a *cache.AsyncAuditor) *cache.AsyncAuditor {
	go func() { _ = a.Run(context.Background()) }()
	return a
}
