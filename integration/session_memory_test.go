package integration

import (
	"fmt"
	"testing"
	"time"

	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/enforce"
)

// TestRedisBytesPerLiveSession measures what one live monitor session
// costs Redis (MEMORY USAGE of its hash, and its share of the live index)
// for 1,000 sessions with lab-sized fields, and what its end costs for the
// 5 minutes it is kept. docs/performance.md reports the figures.
func TestRedisBytesPerLiveSession(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	r := newRedisStore(t, l, nil)
	const n = 1000
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second)
		s := enforce.LiveSession{ID: fmt.Sprintf("ms-%016x", i), User: "alice", Channel: fmt.Sprintf("1732867200.%d", 2*i),
			Target: "agent2001", TargetChannel: fmt.Sprintf("1732867200.%d", 2*i+1), Queue: "sales", Caller: "+33612345678",
			Mode: "listen", Modes: []enforce.ModeChange{{Mode: "listen", At: at}}, Profile: "supervisor-with-recording",
			PBX: "asterisk", Instance: "callwarden-1-0a1b2c3d", StartedAt: at, UpdatedAt: at}
		if err := r.PutSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	usage := func(key string) int64 {
		t.Helper()
		v, err := l.Redis.MemoryUsage(ctx, key, 0).Result()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", key, err)
		}
		return v
	}
	hash := usage(r.Key(redisstore.KeySessionPrefix + fmt.Sprintf("ms-%016x", n/2)))
	index := usage(r.Key(redisstore.KeySessions))
	perSession := hash + index/n
	if err := r.EndSession(ctx, enforce.EndedSession{ID: fmt.Sprintf("ms-%016x", 0), Cause: enforce.CauseTargetHangup, At: t0}); err != nil {
		t.Fatal(err)
	}
	ended := usage(r.Key(redisstore.KeySessionEndPrefix + fmt.Sprintf("ms-%016x", 0)))
	t.Logf("Redis per live session: %d B (hash %d B, index %d B / %d); per end kept 5 min: %d B", perSession, hash, index, n, ended)
	if perSession > 2048 || ended > 512 {
		t.Errorf("a live session costs Redis %d B and its end %d B: want under 2 KiB and 512 B", perSession, ended)
	}
}
