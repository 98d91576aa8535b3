package integration

// Hand edits of the store that this callwarden cannot load, or only in
// part (issue 9): a revocation in the same generation must be enforced
// (an unknown action is ignored and the rest loads) or, when the
// generation cannot be loaded at all, decisions must fail closed after
// the staleness bound rather than keep the old snapshot forever.

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callwarden/callwarden/cache"
	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/cache/storetest"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// handEdit changes the store the way an operator with redis-cli would,
// in one MULTI/EXEC that bumps the generation once, without a change log
// entry, and announces it.
func handEdit(t *testing.T, l *lab.TestLab, edit func(p redis.Pipeliner, key func(string) string)) {
	t.Helper()
	ctx := testContext(t)
	key := func(name string) string { return l.KeyPrefix + name }
	if _, err := l.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		edit(p, key)
		p.Incr(ctx, key(redisstore.KeyGeneration))
		return nil
	}); err != nil {
		t.Fatalf("hand edit: %v", err)
	}
	gen, err := l.Redis.Get(ctx, key(redisstore.KeyGeneration)).Result()
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, l.Redis.Publish(ctx, key(redisstore.ChannelChanges), gen).Err())
}

func TestHandEditWithAnUnknownActionStillRevokesInTheSameGeneration(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	admin := newRedisStore(t, l, nil)
	mustApplyPolicy(ctx, t, admin, storetest.Policy(t))
	daemon := newRedisStore(t, l, nil)
	d := startLoader(t, daemon, func(o *cache.LoaderOptions) { o.Staleness = 1500 * time.Millisecond })
	waitUntil(t, 10*time.Second, "the daemon loads", func() bool { return d.Snapshot() != nil })
	if !aliceListens(d.Snapshot()).Allow {
		t.Fatal("alice denied before the edit")
	}
	before := d.Generation()

	handEdit(t, l, func(p redis.Pipeliner, key func(string) string) {
		p.HDel(ctx, key(redisstore.KeyUsers), "alice")
		p.HSet(ctx, key(redisstore.KeyProfiles), "newer",
			`{"name":"newer","grants":[{"actions":["monitor.listen","monitor.teleport"],"scopes":{"queues":{"kind":"all"}}}]}`)
	})
	waitUntil(t, 3*time.Second, "the daemon loads the edited generation", func() bool { return d.Generation() == before+1 })
	if dec := aliceListens(d.Snapshot()); dec.Allow || dec.Reason != enforce.ReasonUnknownUser {
		t.Fatalf("alice after her deletion: %+v, want unknown_user", dec)
	}
	pr, ok := d.Snapshot().Profile("newer")
	if !ok || len(pr.Grants) != 1 || pr.Grants[0].Actions != enforce.NewActionSet(enforce.MonitorListen) {
		t.Fatalf("profile newer = %+v, want its known action only", pr)
	}
	if n := daemon.IgnoredActions(); n == 0 {
		t.Fatal("the unknown action was not counted")
	}
	if err := d.Ready(); err != nil {
		t.Fatalf("Ready = %v", err)
	}
}

func TestHandEditOnAMissingProfileFailsClosedAfterTheStalenessBound(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	const staleness = 1500 * time.Millisecond
	admin := newRedisStore(t, l, nil)
	mustApplyPolicy(ctx, t, admin, storetest.Policy(t))
	d := startLoader(t, newRedisStore(t, l, nil), func(o *cache.LoaderOptions) { o.Staleness = staleness })
	waitUntil(t, 10*time.Second, "the daemon loads", func() bool { return d.Snapshot() != nil })
	before := d.Generation()

	edited := time.Now()
	handEdit(t, l, func(p redis.Pipeliner, key func(string) string) {
		p.HDel(ctx, key(redisstore.KeyUsers), "alice")
		p.HSet(ctx, key(redisstore.KeyUsers), "zed", `{"id":"zed","profile":"ghost"}`)
	})
	waitUntil(t, staleness+2*time.Second, "decisions fail closed", func() bool { return d.Snapshot() == nil })
	if took := time.Since(edited); took < staleness-300*time.Millisecond {
		t.Errorf("failed closed %s after the edit, before the %s staleness bound", took, staleness)
	}
	// The store keeps answering every generation read; decisions stay closed
	// (a negative check over a second of real time).
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if dec := aliceListens(d.Snapshot()); dec.Allow || dec.Reason != enforce.ReasonStoreUnavailable {
			t.Fatalf("decision while the store cannot be loaded: %+v, want store_unavailable", dec)
		}
	}
	err := d.Ready()
	if !errors.Is(err, cache.ErrStale) || !errors.Is(err, cache.ErrUnloadable) ||
		!strings.Contains(err.Error(), "cannot be loaded") || !strings.Contains(err.Error(), `unknown profile "ghost"`) {
		t.Fatalf("Ready = %v, want the generation that cannot be loaded and why", err)
	}
	if d.Generation() != before {
		t.Fatalf("loaded generation %d, want %d kept", d.Generation(), before)
	}

	handEdit(t, l, func(p redis.Pipeliner, key func(string) string) {
		p.HSet(ctx, key(redisstore.KeyProfiles), "ghost", `{"name":"ghost"}`)
	})
	waitUntil(t, 3*time.Second, "decisions come back", func() bool { return d.Snapshot() != nil })
	if dec := aliceListens(d.Snapshot()); dec.Allow || dec.Reason != enforce.ReasonUnknownUser {
		t.Fatalf("alice after the fix: %+v, want unknown_user (she was deleted)", dec)
	}
	if err := d.Ready(); err != nil {
		t.Fatalf("Ready after the fix = %v", err)
	}
}

// TestRedisURLWithAPasswordConnects: the CLI reaches a Redis that needs
// an ACL user and password given as a redis:// URL, and prints the
// password nowhere, not even when the password is wrong.
func TestRedisURLWithAPasswordConnects(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	user, secret := "cw-"+strings.TrimSuffix(strings.ReplaceAll(l.KeyPrefix, ":", "-"), "-"), "Pw-9f3kq-itest"
	if err := l.Redis.Do(ctx, "ACL", "SETUSER", user, "on", ">"+secret, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Redis.Do(cctx, "ACL", "DELUSER", user).Err()
	})
	admin := newRedisStore(t, l, nil)
	mustApplyPolicy(ctx, t, admin, storetest.Policy(t))
	bin := buildCallwarden(t)
	export := func(url string) (int, string) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, bin, "profiles", "export", "--redis-addr", url, "--redis-prefix", l.KeyPrefix).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if err != nil {
			return ee.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	code, out := export("redis://" + user + ":" + secret + "@" + l.RedisAddr + "/0")
	if code != 0 || !strings.Contains(out, "supervisor") || strings.Contains(out, secret) {
		t.Fatalf("export through the URL: exit %d\n%s", code, out)
	}
	code, out = export("redis://" + user + ":wrong-" + secret + "@" + l.RedisAddr + "/0")
	if code == 0 || strings.Contains(out, secret) {
		t.Fatalf("export with a wrong password: exit %d\n%s", code, out)
	}
}
