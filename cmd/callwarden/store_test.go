package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

func TestRedisLoggerWritesGoRedisLinesThroughZap(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	l := redisLogger{log: zap.New(core).Named("go-redis")}
	l.Printf(context.Background(), "redis: discarding bad PubSub connection: %s\n", "read tcp: i/o timeout")
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d entries, want 1", len(entries))
	}
	e := entries[0]
	if e.Level != zap.WarnLevel || e.LoggerName != "go-redis" || e.Message != "redis: discarding bad PubSub connection: read tcp: i/o timeout" {
		t.Fatalf("entry %+v", e)
	}
}

// TestDaemonAuditsDecisionsAsynchronously: in Redis mode the decisions of
// /v1/check reach the audit trail through the bounded asynchronous writer,
// whose counters are on /metrics, and Close flushes what is queued.
func TestDaemonAuditsDecisionsAsynchronously(t *testing.T) {
	st := seededStore(t)
	d := MustRunDaemon(t, st, nil)
	c := newClient()
	base := d.base
	const n = 50
	for range n {
		if got := decision(t, c, base, "user=bob&action=recording.playback&queue=sales"); got != "deny/unknown_user" {
			t.Fatalf("decision %s", got)
		}
	}
	_, metrics := get(t, c, base+"/metrics")
	for _, m := range []string{`callwarden_audit_dropped_total{lane="http"} 0`, `callwarden_audit_dropped_total{lane="pbx"} 0`,
		"callwarden_audit_written_total", `callwarden_audit_queue_length{lane="pbx"}`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	recs, err := st.ReadAudit(context.Background(), enforce.AuditFilter{User: "bob", Action: "recording.playback"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("%d decision records in the trail after Close, want %d", len(recs), n)
	}
	if recs[0].AskedBy != "token:pbx" || recs[0].User != "bob" {
		t.Errorf("record AskedBy=%q User=%q, want token:pbx, bob", recs[0].AskedBy, recs[0].User)
	}
	if res, _ := st.VerifyAudit(context.Background()); !res.OK() {
		t.Fatalf("audit chain: %+v", res)
	}
}

// TestAdminTokensStoredInRedis: a token added with `token add` is
// accepted by a running daemon within its poll interval, beside the
// config's tokens; `token revoke` takes it away again.
func TestAdminTokensStoredInRedis(t *testing.T) {
	st := seededStore(t)
	d := MustRunDaemon(t, st, nil)
	ctx := d.ctx
	admin := adminClient{c: newClient(), base: d.base}
	status := func(token string) func() string {
		return func() string {
			code, _, _ := admin.do(t, "GET", "/v1/profiles", token, "", "")
			return strconv.Itoa(code)
		}
	}
	if got := status("ops-token")(); got != "401" {
		t.Fatalf("the token before it is added: %s", got)
	}

	t.Run("an added token is accepted by the daemon", func(t *testing.T) {
		r := runStore(t, ctx, st, "ops-token\n", "token", "add", "root", "--redis-addr", "x:1")
		if r.code != exitOK || !strings.Contains(r.stdout, "added a token for root") || strings.Contains(r.stdout+r.stderr, "ops-token") {
			t.Fatalf("token add: %+v", r)
		}
		eventually(t, "the added token", status("ops-token"), "200")
		if got := status("root-token")(); got != "200" {
			t.Fatalf("the config's token stopped working: %s", got)
		}
	})
	t.Run("a token is listed by user and hash prefix, never in full", func(t *testing.T) {
		r := runStore(t, ctx, st, "", "token", "list", "--redis-addr", "x:1")
		want := "root " + httpauth.HashToken("ops-token")[:12] + "...\n"
		if r.code != exitOK || r.stdout != want {
			t.Fatalf("token list: %+v, want %q", r, want)
		}
	})
	t.Run("a token of another user cannot be added", func(t *testing.T) {
		r := runStore(t, ctx, st, "", "token", "add", "alice", "--sha256", strings.ToUpper(httpauth.HashToken("ops-token")), "--redis-addr", "x:1")
		if r.code != exitBadInput || !strings.Contains(r.stderr, "already belongs to another user") {
			t.Fatalf("token add of root's hash for alice: %+v", r)
		}
	})
	t.Run("a revoked token is refused by the daemon", func(t *testing.T) {
		r := runStore(t, ctx, st, "", "token", "revoke", "root", "--redis-addr", "x:1")
		if r.code != exitOK || !strings.Contains(r.stdout, "revoked 1 tokens of root") {
			t.Fatalf("token revoke: %+v", r)
		}
		eventually(t, "the revoked token", status("ops-token"), "401")
		if got := status("root-token")(); got != "200" {
			t.Fatalf("revoking root's stored tokens disabled its config token: %s", got)
		}
	})
	t.Run("a stored check token checks, is listed as such, and opens no admin endpoint", func(t *testing.T) {
		r := runStore(t, ctx, st, "cti-token\n", "token", "add", "cti", "--role", "check", "--redis-addr", "x:1")
		if r.code != exitOK || !strings.Contains(r.stdout, "added a token for check token cti") {
			t.Fatalf("token add --role check: %+v", r)
		}
		checkStatus := func() string {
			req, _ := http.NewRequest(http.MethodGet, admin.base+"/v1/check?user=alice&action=monitor.listen&queue=sales", nil)
			req.Header.Set("Authorization", "Bearer cti-token")
			resp, err := admin.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return strconv.Itoa(resp.StatusCode)
		}
		eventually(t, "the stored check token", checkStatus, "200")
		if got := status("cti-token")(); got != "403" {
			t.Errorf("GET /v1/profiles with a check token: %s, want 403", got)
		}
		r = runStore(t, ctx, st, "", "token", "list", "--redis-addr", "x:1")
		if want := "cti " + httpauth.HashToken("cti-token")[:12] + "... (check)\n"; !strings.Contains(r.stdout, want) {
			t.Errorf("token list: %q, want a line %q", r.stdout, want)
		}
		if r := runStore(t, ctx, st, "", "token", "revoke", "cti", "--redis-addr", "x:1"); !strings.Contains(r.stdout, "revoked 0 tokens") {
			t.Errorf("revoking admin tokens of cti touched its check token: %+v", r)
		}
		if r := runStore(t, ctx, st, "", "token", "revoke", "cti", "--role", "check", "--redis-addr", "x:1"); !strings.Contains(r.stdout, "revoked 1 tokens of cti") {
			t.Fatalf("token revoke --role check: %+v", r)
		}
		eventually(t, "the revoked check token", checkStatus, "401")
	})
	t.Run("token changes are audited", func(t *testing.T) {
		recs, err := st.ReadAudit(context.Background(), enforce.AuditFilter{Target: "root", User: "cli:tester"})
		if err != nil {
			t.Fatal(err)
		}
		var details []string
		for _, r := range recs {
			details = append(details, r.Detail)
		}
		joined := strings.Join(details, "\n")
		if !strings.Contains(joined, "token add root") || !strings.Contains(joined, "token revoke root: 1 tokens") {
			t.Fatalf("audit details: %q", details)
		}
	})
}

// unloadableStore is a store that, once broken, answers every read but
// holds a generation no callwarden can load (a user on a profile that
// does not exist).
type unloadableStore struct {
	*memoryStore
	broken *atomic.Bool
}

func (u unloadableStore) Generation(ctx context.Context) (uint64, error) {
	g, err := u.memoryStore.Generation(ctx)
	if u.broken.Load() {
		g++
	}
	return g, err
}

func (u unloadableStore) Changes(ctx context.Context, since enforce.Version) (enforce.PolicyPatch, enforce.Version, error) {
	if u.broken.Load() {
		return enforce.PolicyPatch{}, since, fmt.Errorf("changes: %w", enforce.ErrChangelogGap)
	}
	return u.memoryStore.Changes(ctx, since)
}

func (u unloadableStore) PolicyVersion(ctx context.Context) (enforce.Policy, enforce.Version, error) {
	p, v, err := u.memoryStore.PolicyVersion(ctx)
	if u.broken.Load() {
		p.Users = append(p.Users, enforce.User{ID: "zed", Profile: "ghost"})
		v.Gen++
	}
	return p, v, err
}

// TestDaemonFailsClosedOnAStoreGenerationItCannotLoad: once the store
// holds a generation the daemon cannot load, past redis.staleness it
// denies store_unavailable, its readiness names the generation and why,
// and /metrics counts the failed loads by cause.
func TestDaemonFailsClosedOnAStoreGenerationItCannotLoad(t *testing.T) {
	st := unloadableStore{seededStore(t), new(atomic.Bool)}
	d := MustRunDaemon(t, st, func(cfg *config.Config) { cfg.Redis.Staleness = 300 * time.Millisecond })
	app := d.app
	c := newClient()
	base := d.base
	ready := func() string { code, body := get(t, c, base+"/readyz"); return strconv.Itoa(code) + " " + body }
	waitFor(t, "readiness", ready, "200 ", 5*time.Second)
	gen := app.loader.Generation()

	st.broken.Store(true)
	got := waitFor(t, "readiness", ready, fmt.Sprintf("store generation %d cannot be loaded", gen+1), 5*time.Second)
	if !strings.HasPrefix(got, "503 ") || !strings.Contains(got, "unknown profile") {
		t.Fatalf("/readyz = %s, want 503 naming the missing profile", got)
	}
	if d := decision(t, c, base, "user=alice&action=monitor.listen&queue=sales"); d != "deny/store_unavailable" {
		t.Fatalf("decision %s, want deny/store_unavailable", d)
	}
	_, m := get(t, c, base+"/metrics")
	if strings.Contains(m, `callwarden_policy_load_failures_total{cause="invalid"} 0`) ||
		!strings.Contains(m, `callwarden_policy_load_failures_total{cause="invalid"}`) {
		t.Fatalf("/metrics does not count the invalid loads:\n%s", m)
	}
}

// TestRedisURLPasswordNeverPrinted: a redis:// URL's password appears in
// no error and no log line, whether the URL is malformed (the command
// refuses it) or well-formed but unreachable (the store does not open).
func TestRedisURLPasswordNeverPrinted(t *testing.T) {
	const secret = "Zq9-topsecret"
	t.Run("a malformed URL is refused without its password", func(t *testing.T) {
		for _, addr := range []string{"redis://cw:" + secret + "@h:port", "redis://cw:ab/" + secret + "@h st:6379", "cw:" + secret + "@h:6379"} {
			r := runCLI(t, "", map[string]string{"CALLWARDEN_REDIS_ADDRS": addr}, "profiles", "export")
			if r.code != 2 || strings.Contains(r.stderr+r.stdout, secret) {
				t.Fatalf("%s: exit %d stdout %q stderr %q", addr, r.code, r.stdout, r.stderr)
			}
		}
	})
	t.Run("an unreachable server: neither the error nor the logs print it", func(t *testing.T) {
		core, logs := observer.New(zap.DebugLevel)
		cfg := config.Default()
		cfg.Redis.Addrs = []string{"redis://cw:" + secret + "@127.0.0.1:1/3"}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := openRedis(ctx, cfg.Redis, zap.New(core))
		if err == nil {
			_ = st.Close()
			t.Fatal("opened a store on a closed port")
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error prints the password: %v", err)
		}
		for _, e := range logs.All() {
			line := e.Message + fmt.Sprint(e.ContextMap())
			if strings.Contains(line, secret) {
				t.Fatalf("log prints the password: %s", line)
			}
		}
	})
}

// heldAuditStore is a memory store whose audit writes wait for gate (or
// their deadline): a Redis too slow for the load.
type heldAuditStore struct {
	*memoryStore
	gate chan struct{}
}

func (h *heldAuditStore) Audit(ctx context.Context, r enforce.AuditRecord) error {
	select {
	case <-h.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return h.memoryStore.Audit(ctx, r)
}

// TestFloodOfChecksLeavesRoomForThePBX: with the audit writer held, a
// flood of /v1/check fills the HTTP lane and its records are dropped,
// counted per lane, while the PBX adapters' lane still takes records and
// the daemon stays ready; once the PBX lane drops too, /readyz says so.
func TestFloodOfChecksLeavesRoomForThePBX(t *testing.T) {
	st := &heldAuditStore{memoryStore: seededStore(t), gate: make(chan struct{})}
	d := MustRunDaemon(t, st, func(cfg *config.Config) {
		cfg.Audit.HTTPQueueSize, cfg.Audit.PBXQueueSize, cfg.Audit.BatchSize = 16, 4, 1
	})
	app, ctx := d.app, d.ctx
	c := newClient()
	base := d.base
	for range 100 {
		if got := decision(t, c, base, "user=bob&action=recording.playback&queue=sales"); got != "deny/unknown_user" {
			t.Fatalf("decision %s", got)
		}
	}
	_, metrics := get(t, c, base+"/metrics")
	if strings.Contains(metrics, `callwarden_audit_dropped_total{lane="http"} 0`) ||
		!strings.Contains(metrics, `callwarden_audit_dropped_total{lane="pbx"} 0`) {
		t.Fatalf("after the flood, /metrics shows:\n%s", grepLines(metrics, "callwarden_audit_"))
	}
	pbxRec := enforce.AuditRecord{Time: time.Now(), Source: "asterisk", User: "alice", Action: "monitor.listen", Decision: "allow", Reason: "granted"}
	for i := range 4 {
		if err := app.pbxAudit.Audit(ctx, pbxRec); err != nil {
			t.Fatalf("PBX record %d after the flood: %v; want it queued (an allow would become audit_unavailable)", i, err)
		}
	}
	if status, body := get(t, c, base+"/readyz"); status != http.StatusOK {
		t.Fatalf("/readyz with only HTTP drops: %d %s; want 200", status, body)
	}
	for range 4 {
		_ = app.pbxAudit.Audit(ctx, pbxRec)
	}
	status, body := get(t, c, base+"/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "pbx lane dropped") {
		t.Fatalf("/readyz after PBX drops: %d %s; want 503 naming the pbx lane", status, body)
	}
	close(st.gate)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// memoryStore is an in-process store (memory.Store and friends), for
// tests of the commands and the daemon without Redis.
type memoryStore struct {
	*memory.Store
	*memory.AuditLog
	*memory.Recordings
	*memory.Tokens
	*memory.Sessions
	*memory.Watchdog
}

func newMemoryStore() *memoryStore {
	return &memoryStore{memory.NewStore(), memory.NewAuditLog(memory.AuditOptions{}), memory.NewRecordings(), memory.NewTokens(), memory.NewSessions(), memory.NewWatchdog()}
}

// Close implements store; there is nothing to release.
func (*memoryStore) Close() error { return nil }
