package integration

// The FreeSWITCH smoke suite: it proves the FreeSWITCH lab itself is real (version,
// modules, the lab's dialplan, the outbound socket path, audio) before any callwarden
// behaviour is tested on it. It talks to FreeSWITCH with the lab's own ESL client only.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/integration/lab"
)

func TestFreeSWITCHESLAnswersWithVersion1_10_12(t *testing.T) {
	fs := suite.FreeSWITCH(t)
	ctx := testContext(t)
	out, err := fs.API(ctx, "version")
	mustOK(t, err)
	if !strings.Contains(out, "FreeSWITCH Version "+lab.FreeSWITCHVersion) {
		t.Fatalf("version = %q, want %s", out, lab.FreeSWITCHVersion)
	}
	t.Logf("%s (ESL %s)", strings.TrimSpace(out), fs.ESLAddr())

	t.Run("a wrong password is refused", func(t *testing.T) {
		c, err := lab.DialESL(ctx, fs.ESLAddr(), "not-the-password")
		if err == nil {
			c.Close()
			t.Fatal("auth with a wrong password accepted")
		}
		if !errors.Is(err, lab.ErrESL) {
			t.Fatalf("auth with a wrong password: %v, want an -ERR reply", err)
		}
	})
}

func TestFreeSWITCHLoadsTheLabModules(t *testing.T) {
	fs := suite.FreeSWITCH(t)
	ctx := testContext(t)
	for _, mod := range []string{
		"mod_console", "mod_logfile", "mod_event_socket", "mod_sofia", "mod_loopback",
		"mod_commands", "mod_dptools", "mod_db", "mod_hash", "mod_expr", "mod_callcenter",
		"mod_dialplan_xml", "mod_sndfile", "mod_native_file", "mod_tone_stream", "mod_say_en",
	} {
		out, err := fs.API(ctx, "module_exists "+mod)
		if err != nil || strings.TrimSpace(out) != "true" {
			t.Errorf("module_exists %s = %q, %v; want true", mod, out, err)
		}
	}
	// The applications and commands callwarden's adapter and these tests rely on.
	// `show` reads FreeSWITCH's core database, filled a moment after start: poll it.
	for _, tc := range []struct {
		what  string
		names []string
	}{
		{"application", []string{"socket", "eavesdrop", "record_session", "tone_detect", "playback", "transfer", "hash"}},
		{"api", []string{"uuid_record", "uuid_kill", "uuid_dump", "uuid_buglist", "uuid_setvar"}},
	} {
		waitFor(ctx, t, "show "+tc.what+" listing "+strings.Join(tc.names, ", "), func() error {
			out, err := fs.API(ctx, "show "+tc.what)
			if err != nil {
				return err
			}
			for _, name := range tc.names {
				if !strings.Contains(out, "\n"+name+",") {
					return fmt.Errorf("%s %s missing", tc.what, name)
				}
			}
			return nil
		})
	}
}

func TestFreeSWITCHCustomerAgentCallCarriesTheQueue(t *testing.T) {
	fs := suite.FreeSWITCH(t)
	ctx := testContext(t)
	customer, agent, err := fs.CustomerCall(ctx, "sales", "2001", "5550100")
	mustOK(t, err)
	// `show channels` reads FreeSWITCH's core database, written a moment after the call.
	waitFor(ctx, t, "both legs listed ACTIVE in playback", func() error {
		rows, err := fs.Channels(ctx)
		if err != nil {
			return err
		}
		up := map[string]lab.FSChannel{}
		for _, r := range rows {
			up[r.UUID] = r
		}
		for _, uuid := range []string{customer, agent} {
			if r := up[uuid]; r.CallState != "ACTIVE" || r.Application != "playback" {
				return fmt.Errorf("channel %s = %+v; channels: %+v", uuid, r, rows)
			}
		}
		return nil
	})
	for _, uuid := range []string{customer, agent} {
		if q, err := fs.Var(ctx, uuid, "callwarden_queue"); err != nil || q != "sales" {
			t.Errorf("callwarden_queue on %s = %q, %v; want sales", uuid, q, err)
		}
	}
	if a, err := fs.Var(ctx, agent, "callwarden_agent"); err != nil || a != "2001" {
		t.Errorf("callwarden_agent on the agent's leg = %q, %v; want 2001", a, err)
	}
	dump, err := fs.Dump(ctx, customer)
	mustOK(t, err)
	if got := dump["Caller-Caller-ID-Number"]; got != "5550100" {
		t.Errorf("customer caller id = %q, want 5550100", got)
	}

	t.Run("a direct call has no queue", func(t *testing.T) {
		fs := suite.FreeSWITCH(t)
		_, agent, err := fs.CustomerCall(ctx, "", "2002", "5550101")
		mustOK(t, err)
		if q, err := fs.Var(ctx, agent, "callwarden_queue"); !errors.Is(err, lab.ErrNotFound) {
			t.Errorf("callwarden_queue on a direct call = %q, %v; want unset", q, err)
		}
	})

	t.Run("hanging up the customer ends the agent's leg", func(t *testing.T) {
		if err := fs.Kill(ctx, customer); err != nil {
			t.Fatal(err)
		}
		if err := fs.WaitGone(ctx, agent); err != nil {
			t.Fatal(err)
		}
	})
}

func TestFreeSWITCHFeatureCodeConnectsToTheOutboundSocket(t *testing.T) {
	for _, tc := range []struct {
		exten, action, mode, target string
	}{
		{"*2222001", "monitor", "listen", "2001"},
		{"*2232001", "monitor", "whisper", "2001"},
		{"*2242001", "monitor", "barge", "2001"},
		{"*2252001", "record", "start", "2001"},
		{"*226", "record", "toggle", ""},
		{"*22742", "playback", "play", "42"},
		{"*2282001", "record", "toggle", "2001"},
		{"*2292001", "record", "stop", "2001"},
		{"*82001", "check", "monitor.listen", "2001"},
	} {
		t.Run(tc.exten, func(t *testing.T) {
			fs := suite.FreeSWITCH(t)
			ctx := testContext(t)
			ln, err := fs.ListenOutbound()
			mustOK(t, err)
			sup, err := fs.SupervisorCall(ctx, "1001", tc.exten, ln.Addr())
			mustOK(t, err)
			conn, err := ln.Accept(ctx)
			mustOK(t, err)
			defer conn.Close()
			ch := conn.Channel
			for name, want := range map[string]string{
				"Unique-ID":                 sup.A,
				"Caller-Caller-ID-Number":   "1001",
				"Caller-Destination-Number": tc.exten,
				"Caller-Context":            "callwarden",
				"Socket-Mode":               "async",
				"Control":                   "full",
			} {
				if got := ch.Header(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			for name, want := range map[string]string{
				"callwarden_action": tc.action,
				"callwarden_mode":   tc.mode,
				"callwarden_target": tc.target,
			} {
				if got := ch.Var(name); got != want {
					t.Errorf("channel variable %s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestFreeSWITCHCheckExampleFollowsTheDecision(t *testing.T) {
	fs := suite.FreeSWITCH(t)
	ctx := testContext(t)
	_, agent, err := fs.CustomerCall(ctx, "sales", "2003", "5550102")
	mustOK(t, err)
	ln, err := fs.ListenOutbound()
	mustOK(t, err)

	t.Run("allow: the dialplan eavesdrops on the agent", func(t *testing.T) {
		sup := decideOnSocket(ctx, t, fs, ln, "allow")
		wantEavesdropping(ctx, t, fs, sup, agent)
	})

	t.Run("deny: the dialplan refuses and hangs up", func(t *testing.T) {
		sup := decideOnSocket(ctx, t, fs, ln, "deny")
		if err := fs.WaitGone(ctx, sup); err != nil {
			t.Fatal(err)
		}
	})
}

// decideOnSocket makes supervisor 1002 dial the check example *82003, answers the
// outbound socket connection that reaches ln by setting callwarden_decision to
// decision and closes it (socket_resume=true: the dialplan goes on). It returns the
// supervisor's channel.
func decideOnSocket(ctx context.Context, t *testing.T, fs *lab.TestFreeSWITCH, ln *lab.OutboundListener, decision string) string {
	t.Helper()
	sup, err := fs.SupervisorCall(ctx, "1002", "*82003", ln.Addr())
	mustOK(t, err)
	conn, err := ln.Accept(ctx)
	mustOK(t, err)
	_, err = conn.API(ctx, "uuid_setvar "+sup.A+" callwarden_decision "+decision)
	mustOK(t, err)
	conn.Close()
	return sup.A
}

func TestFreeSWITCHFeatureCodeFailsClosedWithoutCallwarden(t *testing.T) {
	fs := suite.FreeSWITCH(t)
	ctx := testContext(t)
	// A port nobody listens on: listen, note the address, close.
	addr := freeHostPort(t, fs.HostIP)
	sup, err := fs.SupervisorCall(ctx, "1003", "*2222001", addr)
	if errors.Is(err, lab.ErrHungUp) {
		return // gone before the harness could even look at it
	}
	mustOK(t, err)
	if err := fs.WaitGone(ctx, sup.A); err != nil {
		t.Fatalf("the socket could not connect, yet: %v", err)
	}
}

// tone_detect hears on the originated (A) leg of a loopback pair only: on a B leg it
// never fires in this image (tried read and write streams), so the probes run on A legs.
func TestFreeSWITCHToneOnOneLegIsHeardOnTheOther(t *testing.T) {
	fs := suite.FreeSWITCH(t)
	ctx := testContext(t)
	customer, _, err := fs.CustomerCall(ctx, "support", "2004", "5550103")
	mustOK(t, err)
	for _, tc := range []struct {
		who   string
		uuid  string
		hz    int
		heard bool
	}{
		{"customer hears the agent", customer, 440, true},
		{"customer does not hear its own tone", customer, 1000, false},
		{"customer hears no supervisor", customer, 2000, false},
	} {
		t.Run(tc.who, func(t *testing.T) {
			if got := mustHear(ctx, t, fs, tc.uuid, tc.hz); got != tc.heard {
				t.Errorf("heard %d Hz on %s = %v, want %v", tc.hz, tc.uuid, got, tc.heard)
			}
		})
	}
}

// mustHear reports whether uuid hears hz within a second.
func mustHear(ctx context.Context, tb testing.TB, fs *lab.TestFreeSWITCH, uuid string, hz int) bool {
	tb.Helper()
	heard, err := fs.HearsTone(ctx, uuid, hz, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	return heard
}
