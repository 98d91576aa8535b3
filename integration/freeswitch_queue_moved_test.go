package integration

// A FreeSWITCH monitor session follows its call between queues, as on Asterisk:
// the dialplan sets callwarden_queue again on the agent's leg (here with
// uuid_broadcast set::, as a transfer or mod_callcenter would), FreeSWITCH's
// inbound events carry the new value, and the session is decided again with it.

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/callwarden/callwarden/config/configtest"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/freeswitch"
	"github.com/callwarden/callwarden/pbx/session"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

// queueMovedProfiles: sup1001 listens on sales and support only; agent 2001's
// phone is known by its presence id (the lab's agent extension sets it).
const queueMovedProfiles = `version: 1
profiles:
  - name: listen-sales-support
    grants:
      - actions: [monitor.listen]
        queues: [sales, support]
users:
  - id: sup1001
    profile: listen-sales-support
    identities: [loopback/supervisor_1001]
  - id: agent2001
    identities: ["2001", 2001@lab.callwarden]
`

func TestFreeSWITCHSessionFollowsItsCallBetweenQueues(t *testing.T) {
	_, fs, ctx := fsLab(t)
	snap := configtest.MustSnapshot(t, writeFile(t, "profiles.yaml", queueMovedProfiles))
	policy := func() *enforce.Snapshot { return snap }
	reg, err := session.NewRegistry(session.RegistryOptions{Policy: policy, Notice: time.Millisecond})
	mustOK(t, err)
	log := &sessiontest.AuditLog{}
	outbound := freeHostPort(t, fs.HostIP)
	runFSAdapter(ctx, t, freeswitch.Options{ESLAddress: fs.ESLAddr(), ESLPassword: fs.ESLPassword,
		OutboundListen: outbound, PBX: "fslab", Snapshot: policy, Auditor: log, Sessions: reg})
	cw := &fsDaemon{outbound: outbound, fs: fs}

	customerLeg, agentLeg, err := fs.CustomerCall(ctx, "sales", "2001", "5550100")
	mustOK(t, err)
	waitListed(ctx, t, fs, agentLeg)
	sup := cw.supervisorCall(ctx, t, "1001", "*2222001")
	listedIn := func(queue string) func() error {
		return func() error {
			live, err := reg.List(ctx)
			if err != nil {
				return err
			}
			if len(live) != 1 || live[0].Queue != queue {
				return fmt.Errorf("sessions %+v", live)
			}
			return nil
		}
	}
	waitFor(shortly(t, ctx), t, "sup1001's session on agent 2001's sales call", listedIn("sales"))
	// The lab's queue extension sets callwarden_queue on both legs of the loopback
	// call: the move sets it on both, as the dialplan would.
	move := func(queue string) {
		t.Helper()
		for _, leg := range []string{agentLeg, customerLeg} {
			_, err := fs.API(ctx, "uuid_broadcast "+leg+" set::callwarden_queue="+queue+" aleg")
			mustOK(t, err)
		}
	}

	t.Run("a move within the supervisor's queues keeps the session, in the new queue", func(t *testing.T) {
		move("support")
		waitFor(shortly(t, ctx), t, "the session in support", listedIn("support"))
		if up, err := fs.Exists(ctx, sup); err != nil || !up {
			t.Fatalf("the supervisor's channel is gone (%v): a move within her queues must not end the session", err)
		}
	})

	t.Run("a move to a queue she does not supervise ends the session, cause queue_moved", func(t *testing.T) {
		move("billing")
		mustOK(t, fs.WaitGone(shortly(t, ctx), sup))
		var end enforce.AuditRecord
		waitFor(shortly(t, ctx), t, "the session's end audited", func() error {
			for _, r := range log.All() {
				if r.Outcome == enforce.OutcomeEnded {
					end = r
					return nil
				}
			}
			return errors.New("no end record yet")
		})
		if end.Cause != enforce.CauseQueueMoved || end.Queue != "billing" || end.User != "sup1001" {
			t.Errorf("end record %+v, want sup1001's session ended queue_moved in billing", end)
		}
		for _, leg := range []string{agentLeg, customerLeg} {
			if up, err := fs.Exists(ctx, leg); err != nil || !up {
				t.Errorf("the call's leg %s ended too (%v): only the session must end", leg, err)
			}
		}
		waitFor(shortly(t, ctx), t, "no session listed", func() error {
			if live, _ := reg.List(ctx); len(live) != 0 {
				return fmt.Errorf("still listed: %+v", live)
			}
			return nil
		})
	})
}
