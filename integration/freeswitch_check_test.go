package integration

// callwarden's check verb against the real FreeSWITCH of the lab: the built binary,
// `callwarden serve` with a freeswitch: section, decides the dialplan's check example
// (*8<ext>, deploy/lab/freeswitch/conf/dialplan/callwarden.xml) from a policy in the
// lab's Redis, and the dialplan does what the decision says.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// fsDaemon is `callwarden serve` run as a child process against the lab's
// FreeSWITCH, deciding from the policy stored in the lab's Redis.
type fsDaemon struct {
	*servedDaemon
	http     string // host:port of /metrics
	outbound string // host:port of the outbound socket, as the dialplan reaches it
	fs       *lab.TestFreeSWITCH
}

// fsLab is the lab of a FreeSWITCH test, its FreeSWITCH and a context of three
// minutes.
func fsLab(t *testing.T) (*lab.TestLab, *lab.TestFreeSWITCH, context.Context) {
	return suite.Lab(t), suite.FreeSWITCH(t), contextFor(t, 3*time.Minute)
}

// mustAgentLeg makes a direct customer call from callerID to agent and returns
// the agent's leg.
func mustAgentLeg(ctx context.Context, t testing.TB, fs *lab.TestFreeSWITCH, agent, callerID string) string {
	t.Helper()
	_, leg, err := fs.CustomerCall(ctx, "", agent, callerID)
	mustOK(t, err)
	return leg
}

// supervisorCall makes supervisor dial exten, its dialplan reaching the daemon's
// outbound socket, and returns the supervisor's channel (its A leg).
func (d *fsDaemon) supervisorCall(ctx context.Context, t testing.TB, supervisor, exten string) string {
	t.Helper()
	sup, err := d.fs.SupervisorCall(ctx, supervisor, exten, d.outbound)
	mustOK(t, err)
	return sup.A
}

// freeHostPort returns host:port, a TCP port free on host right now.
func freeHostPort(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveFreeSWITCH stores the scenarios' policy (scenarioProfiles: alice, 1001, may
// listen to agent 2001; carol, 1002, may not), starts `callwarden serve` with the
// lab's ESL address and password and an outbound socket where the container reaches
// this host, and waits until its inbound ESL connection is up
// (callwarden_freeswitch_connected). env adds CALLWARDEN_* variables ("NAME=value"),
// e.g. the watchdog mode.
func serveFreeSWITCH(ctx context.Context, t *testing.T, l *lab.TestLab, fs *lab.TestFreeSWITCH, name string, env ...string) *fsDaemon {
	t.Helper()
	storeScenarioPolicy(ctx, t, l)
	return serveFreeSWITCHConfig(ctx, t, l, fs, name, env...)
}

// serveFreeSWITCHPolicy is serveFreeSWITCH deciding from the policy profiles
// instead of the scenarios' policy.
func serveFreeSWITCHPolicy(ctx context.Context, t testing.TB, l *lab.TestLab, fs *lab.TestFreeSWITCH, name, profiles string, env ...string) *fsDaemon {
	t.Helper()
	store := newRedisStore(t, l, nil)
	p, err := config.LoadProfiles(writeFile(t, "profiles.yaml", profiles))
	mustOK(t, err)
	mustApplyPolicy(ctx, t, store, p)
	return serveFreeSWITCHConfig(ctx, t, l, fs, name, env...)
}

// serveFreeSWITCHConfig is serveFreeSWITCH deciding from the policy already stored
// under l's key prefix.
func serveFreeSWITCHConfig(ctx context.Context, t testing.TB, l *lab.TestLab, fs *lab.TestFreeSWITCH, name string, env ...string) *fsDaemon {
	t.Helper()
	bin := buildCallwarden(t)
	httpAddr, outbound := freeHostPort(t, "127.0.0.1"), freeHostPort(t, fs.HostIP)
	cfg := writeFile(t, "callwarden.yaml", fmt.Sprintf(`http:
  listen: %q
log:
  level: debug
  format: json
redis:
  addrs: [%q]
  prefix: %q
freeswitch:
  esl_address: %q
  outbound_listen: %q
  pbx: fslab
`, httpAddr, l.RedisAddr, l.KeyPrefix, fs.ESLAddr(), outbound))

	// The ESL password goes in the environment, as in a deployment.
	env = append(env, "CALLWARDEN_FREESWITCH_ESL_PASSWORD="+fs.ESLPassword)
	d := &fsDaemon{
		servedDaemon: startServed(t, bin, cfg, name, env...),
		http:         httpAddr,
		outbound:     outbound,
		fs:           fs,
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	waitFor(wctx, t, name+"'s inbound ESL connection up", func() error {
		select {
		case <-d.exited:
			return errors.New("callwarden exited")
		default:
		}
		return d.connected(ctx, 1)
	})
	return d
}

// metric returns the value of the unlabelled sample name on /metrics.
func (d *fsDaemon) metric(ctx context.Context, name string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.http+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s on /metrics (%v)", name, sc.Err())
}

// connected is nil when callwarden_freeswitch_connected is want.
func (d *fsDaemon) connected(ctx context.Context, want int) error {
	v, err := d.metric(ctx, "callwarden_freeswitch_connected")
	if err != nil {
		return err
	}
	if v != fmt.Sprint(want) {
		return fmt.Errorf("callwarden_freeswitch_connected = %s, want %d", v, want)
	}
	return nil
}

// recentAudit returns the audit records of the last ten minutes in the lab's Redis.
func recentAudit(ctx context.Context, t *testing.T, l *lab.TestLab) ([]enforce.AuditRecord, error) {
	return newRedisStore(t, l, nil).ReadAudit(ctx, enforce.AuditFilter{Since: time.Now().Add(-10 * time.Minute)})
}

// auditOn returns those of recs from source whose first channel is uuid.
func auditOn(recs []enforce.AuditRecord, source, uuid string) []enforce.AuditRecord {
	var found []enforce.AuditRecord
	for _, r := range recs {
		if r.Source == source && len(r.Channels) > 0 && r.Channels[0] == uuid {
			found = append(found, r)
		}
	}
	return found
}

// waitAuditOn waits for n audit records from source on channel uuid (see auditOn)
// and returns them; what names them in the failure.
func waitAuditOn(ctx context.Context, t *testing.T, l *lab.TestLab, what, source, uuid string, n int) []enforce.AuditRecord {
	t.Helper()
	var found []enforce.AuditRecord
	waitFor(ctx, t, what, func() error {
		recs, err := recentAudit(ctx, t, l)
		if err != nil {
			return err
		}
		if found = auditOn(recs, source, uuid); len(found) < n {
			return fmt.Errorf("%d of %d among %d records", len(found), n, len(recs))
		}
		return nil
	})
	return found
}

// currentApplication is the application channel uuid runs and its data.
func currentApplication(ctx context.Context, fs *lab.TestFreeSWITCH, uuid string) (app, data string, err error) {
	d, err := fs.Dump(ctx, uuid)
	return d["variable_current_application"], d["variable_current_application_data"], err
}

// wantEavesdropping waits until the supervisor's channel eavesdrops on agentLeg.
func wantEavesdropping(ctx context.Context, t *testing.T, fs *lab.TestFreeSWITCH, sup, agentLeg string) {
	t.Helper()
	waitFor(ctx, t, "the supervisor eavesdropping on the agent's leg", func() error {
		app, data, err := currentApplication(ctx, fs, sup)
		switch {
		case err != nil:
			return err
		case app == "eavesdrop" && data == agentLeg:
			return nil
		case app == "event" && strings.HasPrefix(data, "callwarden_digit="):
			// A mode digit's binding ran the event application inside the
			// eavesdrop (docs/freeswitch.md): the eavesdrop's media bug on the
			// agent's leg says whether it still runs.
			bugs, err := fs.API(ctx, "uuid_buglist "+agentLeg)
			if err != nil || !strings.Contains(bugs, "<function>eavesdrop</function>") {
				return fmt.Errorf("after a mode digit, no eavesdrop media bug on %s: %.200s %v", agentLeg, bugs, err)
			}
			return nil
		}
		return fmt.Errorf("supervisor runs %s(%s), want eavesdrop(%s)", app, data, agentLeg)
	})
}

// wantRefused waits until the supervisor's channel plays the refusal (the busy tone
// of the check example) and then until it is hung up; it never eavesdrops.
func wantRefused(ctx context.Context, t *testing.T, fs *lab.TestFreeSWITCH, sup string) {
	t.Helper()
	waitFor(ctx, t, "the supervisor hearing the busy tone", func() error {
		app, data, err := currentApplication(ctx, fs, sup)
		if err != nil {
			return err
		}
		if app == "eavesdrop" {
			t.Fatalf("refused supervisor eavesdrops on %s", data)
		}
		if app != "playback" || !strings.Contains(data, "480,620") {
			return fmt.Errorf("supervisor runs %s(%s), want playback of the busy tone", app, data)
		}
		return nil
	})
	if err := fs.WaitGone(ctx, sup); err != nil {
		t.Fatal(err)
	}
}

func TestFreeSWITCHCheckFailsClosedWhenCallwardenStops(t *testing.T) {
	l, fs, ctx := fsLab(t)
	cw := serveFreeSWITCH(ctx, t, l, fs, "callwarden")
	agentLeg := mustAgentLeg(ctx, t, fs, "2001", "5550100")

	// First the same call is allowed, so the refusal below is callwarden's absence.
	sup := cw.supervisorCall(ctx, t, "1001", "*82001")
	wantEavesdropping(ctx, t, fs, sup, agentLeg)

	cw.stop(t)
	sup = cw.supervisorCall(ctx, t, "1001", "*82001")
	wantRefused(ctx, t, fs, sup)
}

// A check naming a target is decided on the target's live call, found by callwarden
// itself: a queue-scoped grant matches an agent in a call of that queue, and not the
// same agent in a direct call.
func TestFreeSWITCHCheckReadsTheTargetsQueue(t *testing.T) {
	l, fs, ctx := fsLab(t)
	cw := serveFreeSWITCHPolicy(ctx, t, l, fs, "callwarden", `version: 1
profiles:
  - name: listen-support
    grants:
      - actions: [monitor.listen]
        queues: [support]
users:
  - id: sup1001
    profile: listen-support
    identities: [loopback/supervisor_1001]
  - id: agent2001
    identities: ["2001", 2001@lab.callwarden]
`)
	for _, tc := range []struct {
		name, queue, decision, reason string
	}{
		{"agent 2001 in a support call", "support", "allow", "granted"},
		{"agent 2001 in a direct call", "", "deny", "out_of_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := shortly(t, ctx)
			_, agentLeg, err := fs.CustomerCall(ctx, tc.queue, "2001", "5550104")
			mustOK(t, err)
			waitListed(ctx, t, fs, agentLeg)
			sup := cw.supervisorCall(ctx, t, "1001", "*82001")
			if tc.decision == "allow" {
				wantEavesdropping(ctx, t, fs, sup, agentLeg)
			} else {
				wantRefused(ctx, t, fs, sup)
			}
			rec := waitAuditOn(ctx, t, l, "the audit record of the check on "+sup, "freeswitch", sup, 1)[0]
			if rec.User != "sup1001" || rec.Target != "agent2001" || rec.Queue != tc.queue || rec.Decision != tc.decision ||
				rec.Reason != tc.reason || len(rec.Channels) != 2 || rec.Channels[1] != agentLeg {
				t.Errorf("audit record %+v, want sup1001 %s on agent2001's channel %s in queue %q", rec, tc.decision, agentLeg, tc.queue)
			}
			mustOK(t, fs.Kill(ctx, agentLeg))
		})
	}
}
