// Package integration holds callwarden's suites against a real Asterisk 22 and a real
// Redis, started in containers by integration/lab. This file is the smoke suite: it
// proves the lab itself is real before any callwarden behaviour is tested on it.
package integration

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/integration/lab"
)

var suite lab.Suite

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }

// testContext gives a test's calls to the lab 30s.
func testContext(t *testing.T) context.Context { return contextFor(t, 30*time.Second) }

func TestAsteriskARIAnswersWithVersion22(t *testing.T) {
	l := suite.Lab(t)
	info, err := l.ARI.Info(testContext(t))
	if err != nil {
		t.Fatalf("GET /ari/asterisk/info: %v", err)
	}
	if !strings.HasPrefix(info.System.Version, "22.") {
		t.Fatalf("Asterisk version = %q, want 22.x", info.System.Version)
	}
	t.Logf("Asterisk %s (%s)", info.System.Version, info.Config.Name)
}

func TestAsteriskLoadsTheModulesCallwardenNeeds(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	for _, mod := range []string{
		"res_ari.so", "res_stasis.so", "res_stasis_snoop.so", "res_stasis_recording.so",
		"res_stasis_playback.so", "app_queue.so", "app_chanspy.so", "app_mixmonitor.so",
		"chan_pjsip.so", "app_stasis.so",
	} {
		out := mustAsteriskCLI(ctx, t, l, "module show like "+mod)
		if !strings.Contains(out, mod) || !strings.Contains(out, "Running") {
			t.Errorf("module %s is not running:\n%s", mod, out)
		}
	}
	out := mustAsteriskCLI(ctx, t, l, "core show channeltypes")
	if !strings.Contains(out, "Local Proxy Channel Driver") {
		t.Errorf("Local channel driver missing:\n%s", out)
	}
}

func TestLabDialplanHasTheCallwardenFeatureCodes(t *testing.T) {
	l := suite.Lab(t)
	out, err := l.AsteriskCLI(testContext(t), "dialplan show callwarden-features")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Stasis(callwarden,monitor,listen,${EXTEN:4})",
		"Stasis(callwarden,monitor,whisper,${EXTEN:4})",
		"Stasis(callwarden,monitor,barge,${EXTEN:4})",
		"Stasis(callwarden,record,start,${EXTEN:4})",
		"Stasis(callwarden,record,toggle)",
		"Stasis(callwarden,playback,${EXTEN:4})",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("callwarden-features lacks %s", want)
		}
	}
}

func TestCustomerInQueueIsBridgedWithAnAgentAndBothCarryTheQueueName(t *testing.T) {
	for _, tc := range []struct {
		queue  string
		agents []string // the queue's members; strategy linear picks the first free one
	}{
		{queue: "sales", agents: []string{"2001", "2002", "2003"}},
		{queue: "support", agents: []string{"2004", "2005", "2003"}},
	} {
		t.Run(tc.queue, func(t *testing.T) {
			l := suite.Lab(t)
			ctx := testContext(t)
			events := mustEvents(ctx, t, l)
			call, err := l.OriginateCustomer(ctx, tc.queue, "5550100", "wait")
			if err != nil {
				t.Fatal(err)
			}

			// The customer's queue side enters the bridge app_queue makes with the agent.
			entered := mustWait(ctx, t, events, "customer entering a bridge", lab.OnChannel("ChannelEnteredBridge", call.Second))
			bridgeID := entered.Bridge.ID
			agentEv := mustWait(ctx, t, events, "agent entering the customer's bridge", func(e lab.Event) bool {
				return e.Type == "ChannelEnteredBridge" && e.Bridge != nil && e.Bridge.ID == bridgeID &&
					e.ChannelID() != call.Second
			})
			agentID := agentEv.Channel.ID
			if !strings.Contains(agentEv.Channel.Name, "@cw-agent-") {
				t.Fatalf("bridged with %s, want an agent Local channel", agentEv.Channel.Name)
			}

			bridges := mustList(ctx, t, l.ARI.Bridges)
			var found bool
			for _, b := range bridges {
				if b.ID == bridgeID {
					found = b.Has(call.Second) && b.Has(agentID)
					t.Logf("bridge %s (%s/%s): %v", b.ID, b.BridgeType, b.Technology, b.Channels)
				}
			}
			if !found {
				t.Fatalf("GET /bridges has no bridge %s holding %s and %s: %+v", bridgeID, call.Second, agentID, bridges)
			}

			for _, id := range []string{call.Second, agentID} {
				got, err := l.ARI.ChannelVar(ctx, id, "QUEUENAME")
				if err != nil {
					t.Fatalf("QUEUENAME on %s: %v", id, err)
				}
				if got != tc.queue {
					t.Errorf("QUEUENAME on %s = %q, want %q", id, got, tc.queue)
				}
			}
			agent, err := l.ARI.ChannelVar(ctx, agentID, "CALLWARDEN_AGENT")
			if err != nil {
				t.Fatal(err)
			}
			member, err := l.ARI.ChannelVar(ctx, call.Second, "MEMBERNAME")
			if err != nil {
				t.Fatal(err)
			}
			if agent != member || !contains(tc.agents, agent) {
				t.Errorf("agent channel says CALLWARDEN_AGENT=%q, customer says MEMBERNAME=%q; want the same member of %v", agent, member, tc.agents)
			}
			spy, err := l.ARI.ChannelVar(ctx, agentID, "SPYGROUP")
			if err != nil || spy != "agent"+agent {
				t.Errorf("SPYGROUP on the agent channel = %q (%v), want agent%s", spy, err, agent)
			}

			// Hanging up the customer ends the whole call, agent included.
			mustHangup(ctx, t, l, call.First)
			mustWait(ctx, t, events, "agent channel destroyed", lab.OnChannel("ChannelDestroyed", agentID))
		})
	}
}

func TestDirectAgentCallHasNoQueue(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	events := mustEvents(ctx, t, l)
	call := mustAnsweredAgentCall(ctx, t, l, events, "2005", "5550101")
	agent, err := l.ARI.ChannelVar(ctx, call.Second, "CALLWARDEN_AGENT")
	if err != nil || agent != "2005" {
		t.Fatalf("CALLWARDEN_AGENT = %q (%v), want 2005", agent, err)
	}
	if _, err := l.ARI.ChannelVar(ctx, call.Second, "QUEUENAME"); !errors.Is(err, lab.ErrNotFound) {
		t.Fatalf("QUEUENAME on a direct call: err = %v, want not found", err)
	}
}

func TestFeatureCodeFailsClosedWhileCallwardenIsNotServing(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	events := mustEvents(ctx, t, l)
	sup := mustOriginateSupervisor(ctx, t, l, "1001", "cw-supervisors", "*2222001")
	// No Stasis application "callwarden" is registered: Stasis() fails and the
	// dialplan hangs up, so nobody is bridged in.
	mustWait(ctx, t, events, "supervisor channel hung up", lab.OnChannel("ChannelDestroyed", sup.First))
}

func TestUnguardedChanSpyAttachesToTheAgent(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	events := mustEvents(ctx, t, l)
	mustAnsweredAgentCall(ctx, t, l, events, "2004", "5550102")
	sup := mustOriginateSupervisor(ctx, t, l, "1002", "cw-unguarded", "*9992004")
	ev := mustWait(ctx, t, events, "supervisor running ChanSpy", func(e lab.Event) bool {
		return e.Type == "ChannelDialplan" && e.ChannelID() == sup.First && e.DialplanApp == "ChanSpy"
	})
	if caller := ev.Channel.Caller.Number; caller != "1002" {
		t.Errorf("supervisor caller id = %q, want 1002", caller)
	}
	// ChanSpy without a target keeps scanning; only the console says it attached.
	want := "Attaching spy channel " + ev.Channel.Name + " to Local/2004@cw-agent-"
	for {
		logs, err := l.AsteriskLogs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs, want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Asterisk never logged %q: %v", want, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestRedisAnswersPingAndKeysStayUnderTheTestPrefix(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	pong, err := l.Redis.Ping(ctx).Result()
	if err != nil || pong != "PONG" {
		t.Fatalf("PING = %q, %v; want PONG", pong, err)
	}
	key := l.KeyPrefix + "profiles"
	mustOK(t, l.Redis.Set(ctx, key, "v1", time.Minute).Err())
	if other := lab.KeyPrefix(t); other == l.KeyPrefix {
		t.Fatalf("two prefixes for the same test are equal (%s): reruns would share keys", other)
	}
	got, err := l.Redis.Get(ctx, key).Result()
	if err != nil || got != "v1" {
		t.Fatalf("GET %s = %q, %v", key, got, err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
