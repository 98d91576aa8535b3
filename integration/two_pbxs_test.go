package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// loadedAt is when d's log says it enforces generation gen (its snapshot
// patched or loaded to it), ok false when it does not say so yet.
func (d *servedDaemon) loadedAt(t *testing.T, gen uint64) (time.Time, bool) {
	t.Helper()
	f, err := os.Open(d.log)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `"msg":"snapshot patched"`) && !strings.Contains(line, `"msg":"snapshot loaded"`) {
			continue
		}
		var rec struct {
			TS         string `json:"ts"`
			Generation uint64 `json:"generation"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Generation != gen {
			continue
		}
		ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", rec.TS)
		if err != nil {
			t.Fatalf("log time %q: %v", rec.TS, err)
		}
		return ts, true
	}
	return time.Time{}, false
}

// TestTwoAsterisksOnOneRedisEnforceARevokeOnBoth runs one `callwarden serve` on
// the lab's Asterisk (PBX pbx1) and one on a second Asterisk container (pbx2), on
// the lab's one Redis. Alice's profile is revoked and given back 21 times with
// `profiles apply` semantics (ApplyPolicy): each change is enforced by both
// daemons (their log's time of the new generation) within 50ms at p99. Then,
// revoked, alice's check is refused on both PBXs, each audit record naming its
// PBX.
func TestTwoAsterisksOnOneRedisEnforceARevokeOnBoth(t *testing.T) {
	l := suite.Lab(t)
	ctx := contextFor(t, 4*time.Minute)
	second, err := lab.StartAsterisk(ctx)
	if err != nil {
		t.Fatalf("start a second Asterisk: %v", err)
	}
	t.Cleanup(func() {
		if err := second.Close(context.Background()); err != nil {
			t.Errorf("remove the second Asterisk: %v", err)
		}
	})
	bin, store := mustBinaryOnExampleProfiles(ctx, t, l)
	config := func(pbx, ariURL string) string {
		body := l.ServeConfig("127.0.0.1:0", "callwarden", l.KeyPrefix)
		body = strings.Replace(body, fmt.Sprintf("  url: %q\n", l.ARIURL), fmt.Sprintf("  url: %q\n  pbx: %s\n", ariURL, pbx), 1)
		if !strings.Contains(body, "pbx: "+pbx) {
			t.Fatalf("cannot set the PBX in the lab's serve config:\n%s", body)
		}
		path := filepath.Join(t.TempDir(), pbx+".yaml")
		mustOK(t, os.WriteFile(path, []byte(body), 0o600))
		return path
	}
	env := envARIPassword(l)
	t.Cleanup(func() { waitApplicationGone(t, l, "pbx1's daemon stopped") })
	daemons := []*servedDaemon{
		startServed(t, bin, config("pbx1", l.ARIURL), "pbx1", env),
		startServed(t, bin, config("pbx2", second.ARIURL), "pbx2", env),
	}
	for _, d := range daemons {
		waitFor(ctx, t, d.name+"'s daemon connected", func() error {
			if !d.logged("ARI connected") {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	}

	p := mustExampleProfiles(t)
	i := slices.IndexFunc(p.Users, func(u enforce.User) bool { return u.ID == "alice" })
	if i < 0 {
		t.Fatal("no alice in the example profiles")
	}
	profile := p.Users[i].Profile
	var delays []time.Duration
	for n := range 21 {
		if n%2 == 0 {
			p.Users[i].Profile = "" // revoked
		} else {
			p.Users[i].Profile = profile
		}
		applied := time.Now()
		gen, _, err := store.ApplyPolicy(ctx, p, enforce.Unconditionally())
		mustOK(t, err)
		for _, d := range daemons {
			var at time.Time
			waitFor(ctx, t, fmt.Sprintf("%s enforcing generation %d", d.name, gen), func() error {
				var ok bool
				if at, ok = d.loadedAt(t, gen); !ok {
					return fmt.Errorf("not yet")
				}
				return nil
			})
			delays = append(delays, max(at.Sub(applied), 0))
		}
	}
	slices.Sort(delays)
	p50, p99 := delays[len(delays)/2], delays[(len(delays)*99+99)/100-1]
	t.Logf("apply -> enforced on both PBXs' daemons, %d measures (log times, ms resolution): p50 %s, p99 %s, max %s",
		len(delays), p50.Round(time.Millisecond/10), p99.Round(time.Millisecond/10), delays[len(delays)-1].Round(time.Millisecond/10))
	if p99 > 50*time.Millisecond {
		t.Errorf("a revoke took %s at p99 to be enforced on both PBXs, want within 50ms", p99)
	}

	// Revoked (21 changes, the last a revoke): alice's check is refused on
	// both PBXs, each audit record naming its own.
	since := time.Now()
	supervisor := func(exten string) lab.OriginateParams {
		return lab.OriginateParams{Endpoint: "Local/1001@cw-supervisor-line/n", Context: "cw-supervisors", Extension: exten, Priority: 1,
			CallerID: `"Supervisor 1001" <1001>`, Variables: map[string]string{"CALLWARDEN_SUPERVISOR": "1001"}}
	}
	for _, pbx := range []*lab.Lab{l.Lab, second} {
		originate(ctx, t, pbx, supervisor("*82001"))
	}
	waitFor(ctx, t, "alice's check refused on both PBXs", func() error {
		recs, err := store.ReadAudit(ctx, enforce.AuditFilter{Since: since.Add(-time.Second)})
		if err != nil {
			return err
		}
		refused := map[string]bool{}
		for _, r := range recs {
			if r.User == "alice" && r.Action == "monitor.listen" && r.Decision == "deny" {
				refused[r.PBX] = true
			}
		}
		if !refused["pbx1"] || !refused["pbx2"] {
			return fmt.Errorf("refusals by PBX %v:\n%s", refused, auditLines(recs))
		}
		return nil
	})

	// Given back, alice listens to a sales call on each PBX: `callwarden
	// sessions` lists both sessions, each with its PBX.
	p.Users[i].Profile = profile
	gen, _, err := store.ApplyPolicy(ctx, p, enforce.Unconditionally())
	mustOK(t, err)
	for _, d := range daemons {
		waitFor(ctx, t, d.name+" enforcing alice's profile again", func() error {
			if _, ok := d.loadedAt(t, gen); !ok {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	}
	for _, pbx := range []*lab.Lab{l.Lab, second} {
		originate(ctx, t, pbx, lab.OriginateParams{Endpoint: "Local/sales@cw-customer/n", Context: "cw-customer-audio",
			Extension: "play", Priority: 1, CallerID: "5550100"})
	}
	for _, pbx := range []*lab.Lab{l.Lab, second} {
		waitFor(ctx, t, "agent 2001 answering the sales call on "+pbx.ARIURL, func() error {
			return agentBridged(ctx, pbx, "Local/2001@cw-agent")
		})
	}
	for _, pbx := range []*lab.Lab{l.Lab, second} {
		originate(ctx, t, pbx, supervisor("*2222001"))
	}
	var out []byte
	waitFor(ctx, t, "`callwarden sessions` listing alice's session on both PBXs", func() error {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err = exec.CommandContext(cctx, bin, "sessions", "--redis-addr", l.RedisAddr, "--redis-prefix", l.KeyPrefix).CombinedOutput()
		if err != nil {
			return fmt.Errorf("callwarden sessions: %v\n%s", err, out)
		}
		listed := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var row struct {
				Session *enforce.LiveSession `json:"session"`
			}
			if json.Unmarshal([]byte(line), &row) == nil && row.Session != nil && row.Session.User == "alice" {
				listed[row.Session.PBX] = true
			}
		}
		if !listed["pbx1"] || !listed["pbx2"] {
			return fmt.Errorf("alice's sessions listed by PBX %v:\n%s", listed, out)
		}
		return nil
	})
	t.Logf("callwarden sessions:\n%s", out)
}

// originate makes a call on pbx, a lab Asterisk other than the suite's
// (whose TestLab helpers track and end their own calls): ended when the
// test ends.
func originate(ctx context.Context, t *testing.T, pbx *lab.Lab, p lab.OriginateParams) {
	t.Helper()
	p.ChannelID, p.OtherChannelID = fmt.Sprintf("cwtest-twopbx-%d", time.Now().UnixNano()), ""
	p.OtherChannelID = p.ChannelID + "-2"
	if _, err := pbx.ARI.Originate(ctx, p); err != nil {
		t.Fatalf("originate %s on %s: %v", p.Endpoint, pbx.ARIURL, err)
	}
	t.Cleanup(func() {
		for _, id := range []string{p.ChannelID, p.OtherChannelID} {
			_ = pbx.ARI.Hangup(context.Background(), id)
		}
	})
}

func envARIPassword(l *lab.TestLab) string { return config.EnvAsteriskPassword + "=" + l.ARIPassword }

// agentBridged says whether a channel of the agent's phone (its name's prefix)
// is in a bridge with another channel on pbx: the queue connected the call.
func agentBridged(ctx context.Context, pbx *lab.Lab, prefix string) error {
	chs, err := pbx.ARI.Channels(ctx)
	if err != nil {
		return err
	}
	agent := map[string]bool{}
	for _, c := range chs {
		if strings.HasPrefix(c.Name, prefix) {
			agent[c.ID] = true
		}
	}
	bridges, err := pbx.ARI.Bridges(ctx)
	if err != nil {
		return err
	}
	for _, b := range bridges {
		for _, id := range b.Channels {
			if agent[id] && len(b.Channels) > 1 {
				return nil
			}
		}
	}
	return fmt.Errorf("no channel of %s bridged among %d channels, %d bridges", prefix, len(chs), len(bridges))
}
