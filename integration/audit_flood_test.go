package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// metricValue reads one sample (name with its labels, as exposed) from a
// Prometheus text page; -1 when it is absent.
func metricValue(page, sample string) float64 {
	sc := bufio.NewScanner(strings.NewReader(page))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestCheckFloodDoesNotRefuseSupervisors: the audit writer is stuck (Redis
// paused) while a CTI tool floods /v1/check, so the HTTP checks' audit lane
// overflows and drops. A supervisor dialling a listen feature code at that
// moment is still bridged: the PBX path has its own audit capacity, so its
// allow is queued, not turned into an audit_unavailable deny. Once Redis is
// back, the allow and its enforced outcome are in the audit stream.
func TestCheckFloodDoesNotRefuseSupervisors(t *testing.T) {
	l := suite.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, store := mustBinaryOnExampleProfiles(ctx, t, l)
	const token = "flood-check-token-0123456789"
	sum := sha256.Sum256([]byte(token))
	port := freePort(t)
	cfg := filepath.Join(t.TempDir(), "callwarden.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`http:
  listen: "127.0.0.1:%d"
  check_rate: 1000000
  check_burst: 1000000
log:
  level: info
  format: json
asterisk:
  url: %q
  user: %q
  app: callwarden
  pbx: lab-pbx
redis:
  addrs: [%q]
  prefix: %q
audit:
  http_queue_size: 64
  pbx_queue_size: 64
admin:
  tokens:
    - {name: cti, role: check, sha256: %s}
`, port, l.ARIURL, l.ARIUser, l.RedisAddr, l.KeyPrefix, hex.EncodeToString(sum[:]))), 0o600); err != nil {
		t.Fatal(err)
	}
	serveAsterisk(ctx, t, l, bin, cfg, "daemon")
	t.Cleanup(func() { hangupAll(t, l) })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(path string, auth bool) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	started := time.Now()
	events := mustEvents(ctx, t, l)
	agent, ext := salesCall(ctx, t, l, events, "5550100")

	// Redis stops answering: the audit writer hangs, both lanes fill up.
	id := redisContainer(t, l)
	docker(t, "pause", id)
	unpaused := false
	unpause := func() {
		if !unpaused {
			unpaused = true
			docker(t, "unpause", id)
		}
	}
	defer unpause()

	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		allowed atomic.Int64
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil {
				if code, body := get("/v1/check?user=alice&action=monitor.listen&queue=sales", true); code == http.StatusOK && strings.Contains(body, `"allow"`) {
					allowed.Add(1)
				}
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	var dropped float64
	for dropped <= 0 {
		if ctx.Err() != nil || time.Since(started) > time.Minute {
			t.Fatalf("the flood never overflowed the HTTP audit lane (%d checks answered)", allowed.Load())
		}
		_, page := get("/metrics", false)
		dropped = metricValue(page, `callwarden_audit_dropped_total{lane="http"}`)
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("HTTP lane dropping: %.0f records dropped after %d checks", dropped, allowed.Load())

	// The supervisor dials the listen feature code in the middle of it.
	sup := mustOriginateSupervisor(ctx, t, l, "1001", "cw-supervisors", "*222"+ext)
	bctx, bcancel := context.WithTimeout(ctx, 15*time.Second)
	defer bcancel()
	created, err := events.Wait(bctx, "a snoop on the agent's channel", snoopOn(agent.ID))
	if err != nil {
		t.Fatalf("alice was not bridged during the flood: %v", err)
	}
	if _, err := events.Wait(bctx, "alice in the snoop's bridge", func(e lab.Event) bool {
		return e.Type == "ChannelEnteredBridge" && e.ChannelID() == sup.First
	}); err != nil {
		t.Fatalf("alice's channel never entered the snoop %s's bridge during the flood: %v", created.Channel.ID, err)
	}
	stop.Store(true)
	wg.Wait()
	_, page := get("/metrics", false)
	if d := metricValue(page, `callwarden_audit_dropped_total{lane="pbx"}`); d != 0 {
		t.Errorf("PBX lane dropped %v records during the flood, want 0", d)
	}
	unpause()

	// Everything the PBX path queued reaches Redis.
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs, err := store.ReadAudit(ctx, enforce.AuditFilter{User: "alice", Since: started.Add(-time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		var allow, enforced bool
		for _, r := range recs {
			if r.Source != "asterisk" {
				continue
			}
			if r.Reason == "audit_unavailable" {
				t.Fatalf("the PBX path refused alice for want of audit capacity: %+v", r)
			}
			if r.Action == "monitor.listen" && r.Decision == "allow" {
				allow = allow || r.Outcome == ""
				enforced = enforced || r.Outcome == enforce.OutcomeEnforced
				if r.AskedBy != "asterisk:lab-pbx" || r.PBX != "lab-pbx" {
					t.Errorf("PBX record names %q/%q, want asked_by asterisk:lab-pbx and pbx lab-pbx", r.AskedBy, r.PBX)
				}
			}
		}
		if allow && enforced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's allow and its enforced outcome never reached the audit stream: %+v", recs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
