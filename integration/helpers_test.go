package integration

// The Must helpers: each does one step of a test's set-up against the lab
// and stops the test at once, saying which step failed, when the step
// cannot be done. A test then reads as the story of the call it places.

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// mustOK fails the test now if err is not nil.
func mustOK(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// mustEvents connects an event stream of the lab's Asterisk, recording
// from now on, for the test.
func mustEvents(ctx context.Context, tb testing.TB, l *lab.TestLab) *lab.EventStream {
	tb.Helper()
	s, err := l.Events(ctx)
	if err != nil {
		tb.Fatalf("connect an ARI event stream: %v", err)
	}
	return s
}

// mustWait returns the first event of s that satisfies match (see
// lab.EventStream.Wait); what names the event in the failure.
func mustWait(ctx context.Context, tb testing.TB, s *lab.EventStream, what string, match func(lab.Event) bool) lab.Event {
	tb.Helper()
	e, err := s.Wait(ctx, what, match)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// mustOriginateSupervisor makes supervisor dial exten in dialContext, as
// lab.TestLab.OriginateSupervisor does.
func mustOriginateSupervisor(ctx context.Context, tb testing.TB, l *lab.TestLab, supervisor, dialContext, exten string) lab.LocalCall {
	tb.Helper()
	call, err := l.OriginateSupervisor(ctx, supervisor, dialContext, exten)
	if err != nil {
		tb.Fatalf("supervisor %s dials %s in %s: %v", supervisor, exten, dialContext, err)
	}
	return call
}

// mustAnsweredAgentCall makes a direct call to agent (no queue) and waits
// until both halves are up: First is the caller, Second the agent.
func mustAnsweredAgentCall(ctx context.Context, tb testing.TB, l *lab.TestLab, events *lab.EventStream, agent, callerID string) lab.LocalCall {
	tb.Helper()
	call, err := l.OriginateAgentCall(ctx, agent, callerID)
	if err != nil {
		tb.Fatalf("call agent %s: %v", agent, err)
	}
	for _, id := range []string{call.First, call.Second} {
		mustWait(ctx, tb, events, "agent "+agent+" answering", func(e lab.Event) bool {
			return e.Type == "ChannelStateChange" && e.ChannelID() == id && e.Channel.State == "Up"
		})
	}
	return call
}

// mustHangup hangs up channelID.
func mustHangup(ctx context.Context, tb testing.TB, l *lab.TestLab, channelID string) {
	tb.Helper()
	if err := l.ARI.Hangup(ctx, channelID); err != nil {
		tb.Fatalf("hang up %s: %v", channelID, err)
	}
}

// mustAsteriskCLI runs command on the lab's Asterisk console.
func mustAsteriskCLI(ctx context.Context, tb testing.TB, l *lab.TestLab, command string) string {
	tb.Helper()
	out, err := l.AsteriskCLI(ctx, command)
	if err != nil {
		tb.Fatalf("asterisk -rx %q: %v", command, err)
	}
	return out
}

// mustApplyPolicy stores p unconditionally and returns its generation.
func mustApplyPolicy(ctx context.Context, tb testing.TB, s enforce.PolicyStore, p enforce.Policy) uint64 {
	tb.Helper()
	gen, _, err := s.ApplyPolicy(ctx, p, enforce.Unconditionally())
	if err != nil {
		tb.Fatalf("apply policy: %v", err)
	}
	return gen
}

// mustExampleProfiles loads deploy/examples/profiles.yaml, the policy the
// lab's dialplan and phones are written for.
func mustExampleProfiles(tb testing.TB) enforce.Policy {
	tb.Helper()
	p, err := config.LoadProfiles("../deploy/examples/profiles.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// mustBinaryOnExampleProfiles builds the callwarden binary and stores the
// example profiles in a store of its own on l's Redis, for a test that
// serves the binary from that store.
func mustBinaryOnExampleProfiles(ctx context.Context, tb testing.TB, l *lab.TestLab) (string, *redisstore.Store) {
	tb.Helper()
	bin := buildCallwarden(tb)
	store := newRedisStore(tb, l, nil)
	mustApplyPolicy(ctx, tb, store, mustExampleProfiles(tb))
	return bin, store
}

// mustList returns what list answers (the lab's channels, bridges...),
// and stops the test when it cannot be asked.
func mustList[T any](ctx context.Context, tb testing.TB, list func(context.Context) ([]T, error)) []T {
	tb.Helper()
	items, err := list(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return items
}

// contextFor is a context that ends after d or with the test.
func contextFor(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it returns nil, and fails the test with cond's
// last answer when ctx ends first. cond says, in its error, what is still
// missing.
func waitFor(ctx context.Context, tb testing.TB, what string, cond func() error) {
	tb.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("%s: %v; last: %v", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// writeFile writes body to a file of the test's temporary directory and returns it.
func writeFile(t testing.TB, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	mustOK(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

// storeScenarioPolicy stores the scenarios' policy under l's key prefix and returns
// the store.
func storeScenarioPolicy(ctx context.Context, t *testing.T, l *lab.TestLab) *redisstore.Store {
	t.Helper()
	p, err := config.LoadProfiles(writeFile(t, "profiles.yaml", scenarioProfiles))
	mustOK(t, err)
	store := newRedisStore(t, l, nil)
	mustApplyPolicy(ctx, t, store, p)
	return store
}
