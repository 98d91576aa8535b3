package integration

// The monitor verb against the real FreeSWITCH of the lab: `callwarden serve` decides
// the dialplan's *222/*223/*224<ext> codes (deploy/lab/freeswitch/conf/dialplan/
// callwarden.xml), finds the agent's live call itself and enforces with eavesdrop on
// the supervisor's channel, or plays the refusal and hangs up.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// freeswitchMonitorProfiles: agents are named by their loopback channel (the lab's
// agent leg is loopback/agent_<ext>-b); agent 2002 is protected.
const freeswitchMonitorProfiles = `version: 1
profiles:
  - name: listen-team-a
    grants:
      - actions: [monitor.listen, monitor.whisper]
        teams: [team-a]
` + freeswitchSupervisors + `  - id: agent2001
    teams: [team-a]
    identities: ["2001", loopback/agent_2001]
  - id: agent2002
    teams: [team-a]
    identities: ["2002", loopback/agent_2002]
protected:
  users: [agent2002]
`

// fsMonitorRecords waits for n audit records of the monitor request made on channel
// uuid (the decision, then the enforcement's result on an allow).
func fsMonitorRecords(ctx context.Context, t *testing.T, l *lab.TestLab, uuid string, n int) []enforce.AuditRecord {
	t.Helper()
	return waitAuditOn(ctx, t, l, fmt.Sprintf("%d audit records of the request on %s", n, uuid), "freeswitch", uuid, n)
}

// wantMonitorRefused makes supervisor dial exten, waits until the supervisor's
// channel plays callwarden's refusal tone and is hung up (it never eavesdrops), and
// returns the audit record of the request.
func wantMonitorRefused(ctx context.Context, t *testing.T, l *lab.TestLab, cw *fsDaemon, supervisor, exten string) enforce.AuditRecord {
	t.Helper()
	sup := cw.supervisorCall(ctx, t, supervisor, exten)
	wantRefused(ctx, t, cw.fs, sup)
	return fsMonitorRecords(ctx, t, l, sup, 1)[0]
}

// waitListed waits until `show channels` lists uuid running its tone (playback):
// FreeSWITCH writes its rows about a second after a channel appears, and updates a
// row's presence id only with the channel's next application, and callwarden finds
// the target's call there, by channel name or presence id.
func waitListed(ctx context.Context, t testing.TB, fs *lab.TestFreeSWITCH, uuid string) {
	t.Helper()
	waitFor(ctx, t, uuid+" listed by show channels", func() error {
		chs, err := fs.Channels(ctx)
		if err != nil {
			return err
		}
		for _, c := range chs {
			if c.UUID == uuid && c.Application == "playback" {
				return nil
			}
		}
		return fmt.Errorf("not among %d channels, or not speaking yet", len(chs))
	})
}

// shortly bounds one wait of a subtest, so a failure does not use the whole budget.
func shortly(t *testing.T, ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestFreeSWITCHMonitorIsDecidedAndEnforced(t *testing.T) {
	l, fs, ctx := fsLab(t)
	cw := serveFreeSWITCHPolicy(ctx, t, l, fs, "callwarden", freeswitchMonitorProfiles)
	agentLeg := mustAgentLeg(ctx, t, fs, "2001", "5550100")
	protectedLeg := mustAgentLeg(ctx, t, fs, "2002", "5550101")
	waitListed(ctx, t, fs, agentLeg)
	waitListed(ctx, t, fs, protectedLeg)

	t.Run("supervisor 1001 granted team-a listens to agent 2001", func(t *testing.T) {
		ctx := shortly(t, ctx)
		asked := time.Now()
		sup := cw.supervisorCall(ctx, t, "1001", "*2222001")
		wantEavesdropping(ctx, t, fs, sup, agentLeg)
		t.Logf("originate of *2222001 to eavesdrop running: %s", time.Since(asked).Round(time.Millisecond))
		d, err := fs.Dump(ctx, sup)
		mustOK(t, err)
		if d["variable_eavesdrop_enable_dtmf"] != "false" {
			t.Errorf("eavesdrop_enable_dtmf = %q, want false: FreeSWITCH's own DTMF switches must be off", d["variable_eavesdrop_enable_dtmf"])
		}
		recs := fsMonitorRecords(ctx, t, l, sup, 2)
		dec, res := recs[0], recs[1]
		if dec.User != "sup1001" || dec.Action != "monitor.listen" || dec.Target != "agent2001" || dec.Decision != "allow" ||
			dec.AskedBy != "freeswitch:fslab" || len(dec.Channels) != 2 || dec.Channels[1] != agentLeg {
			t.Errorf("decision record %+v, want sup1001 allowed monitor.listen on agent2001's channel %s", dec, agentLeg)
		}
		if res.Decision != "allow" || res.Outcome != enforce.OutcomeEnforced {
			t.Errorf("result record %+v, want allow enforced", res)
		}
		// The session lasts while the supervisor stays: the eavesdrop still runs
		// after the first decision's deadlines.
		time.Sleep(3 * time.Second)
		wantEavesdropping(ctx, t, fs, sup, agentLeg)
		// Hanging up the agent's call ends the eavesdrop; callwarden hangs the
		// supervisor up.
		mustOK(t, fs.Kill(ctx, agentLeg))
		mustOK(t, fs.WaitGone(ctx, sup))
	})

	t.Run("a whisper is enforced by eavesdrop-command, never by a whisper variable; a barge without the right is refused", func(t *testing.T) {
		ctx := shortly(t, ctx)
		agentLeg := mustAgentLeg(ctx, t, fs, "2001", "5550103")
		waitListed(ctx, t, fs, agentLeg)
		sup := cw.supervisorCall(ctx, t, "1001", "*2232001")
		wantEavesdropping(ctx, t, fs, sup, agentLeg)
		recs := fsMonitorRecords(ctx, t, l, sup, 2)
		if dec, res := recs[0], recs[1]; dec.Action != "monitor.whisper" || dec.Decision != "allow" || res.Outcome != enforce.OutcomeEnforced {
			t.Errorf("records %+v / %+v, want whisper allowed and enforced", dec, res)
		}
		d, err := fs.Dump(ctx, sup)
		mustOK(t, err)
		for _, v := range []string{"eavesdrop_whisper_aleg", "eavesdrop_whisper_bleg", "eavesdrop_enable_dtmf"} {
			if d["variable_"+v] != "false" {
				t.Errorf("%s = %q, want false (the mode is set by eavesdrop-command only)", v, d["variable_"+v])
			}
		}
		time.Sleep(time.Second)
		wantEavesdropping(ctx, t, fs, sup, agentLeg)

		if r := wantMonitorRefused(ctx, t, l, cw, "1001", "*2242001"); r.Action != "monitor.barge" || r.Decision != "deny" || r.Reason != "action_not_granted" {
			t.Errorf("barge record %+v, want deny action_not_granted", r)
		}
	})

	t.Run("supervisor 1002 granted team-b only is refused", func(t *testing.T) {
		ctx := shortly(t, ctx)
		agentLeg := mustAgentLeg(ctx, t, fs, "2001", "5550102")
		waitListed(ctx, t, fs, agentLeg)
		if r := wantMonitorRefused(ctx, t, l, cw, "1002", "*2222001"); r.User != "sup1002" || r.Decision != "deny" || r.Reason != "out_of_scope" || r.Target != "agent2001" ||
			r.Outcome != "" || r.AskedBy != "freeswitch:fslab" {
			t.Errorf("audit record %+v, want sup1002 denied out_of_scope, nothing enforced", r)
		}
	})

	t.Run("a protected target is refused", func(t *testing.T) {
		ctx := shortly(t, ctx)
		if r := wantMonitorRefused(ctx, t, l, cw, "1001", "*2222002"); r.User != "sup1001" || r.Decision != "deny" || r.Reason != "protected_target" || r.Target != "agent2002" ||
			len(r.Channels) != 2 || r.Channels[1] != protectedLeg {
			t.Errorf("audit record %+v, want sup1001 denied protected_target on agent2002's channel", r)
		}
	})

	t.Run("an unknown target is refused", func(t *testing.T) {
		ctx := shortly(t, ctx)
		if r := wantMonitorRefused(ctx, t, l, cw, "1001", "*2222009"); r.Decision != "deny" || !strings.Contains(r.Reason, "unknown_target") {
			t.Errorf("audit record %+v, want deny unknown_target", r)
		}
	})
}
