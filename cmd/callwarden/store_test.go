package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpapi"
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
	ctx, cancel := context.WithCancel(context.Background())
	cfg := adminConfig()
	cfg.Redis.Addrs = []string{"127.0.0.1:1"}
	app, err := newApp(ctx, cfg, io.Discard, appDeps{open: openFake(st)})
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = app.Run(ctx) }()
	c := newClient()
	base := "http://" + app.Addr().String()
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
	cancel()
	wg.Wait()
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := st.ReadAudit(context.Background(), enforce.AuditFilter{User: "bob", Action: "recording.playback"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("%d decision records in the trail after Close, want %d", len(recs), n)
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
	ctx, cancel := context.WithCancel(context.Background())
	cfg := adminConfig()
	cfg.Redis.Addrs = []string{"127.0.0.1:1"}
	app, err := newApp(ctx, cfg, io.Discard, appDeps{open: openFake(st)})
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = app.Run(ctx) }()
	defer func() {
		cancel()
		wg.Wait()
		_ = app.Close()
	}()
	admin := adminClient{c: newClient(), base: "http://" + app.Addr().String()}
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
		want := "root " + httpapi.HashToken("ops-token")[:12] + "...\n"
		if r.code != exitOK || r.stdout != want {
			t.Fatalf("token list: %+v, want %q", r, want)
		}
	})
	t.Run("a token of another user cannot be added", func(t *testing.T) {
		r := runStore(t, ctx, st, "", "token", "add", "alice", "--sha256", strings.ToUpper(httpapi.HashToken("ops-token")), "--redis-addr", "x:1")
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
	ctx, cancel := context.WithCancel(context.Background())
	cfg := adminConfig()
	cfg.Redis.Addrs = []string{"127.0.0.1:1"}
	cfg.Audit.HTTPQueueSize, cfg.Audit.PBXQueueSize, cfg.Audit.BatchSize = 16, 4, 1
	app, err := newApp(ctx, cfg, io.Discard, appDeps{open: openFake(st)})
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = app.Run(ctx) }()
	defer func() {
		cancel()
		wg.Wait()
		_ = app.Close()
	}()
	c := newClient()
	base := "http://" + app.Addr().String()
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
