package integration

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/callwarden/callwarden/integration/lab"
)

// TestProductionDialplanFallsBackToDaemonB loads deploy/production's failover dialplan
// into the lab's Asterisk, its two Stasis applications played by the test (contexts
// renamed so the lab's own feature codes stay), and proves what the README says: a
// feature code goes to daemon a when a is registered and never to b after that, to b
// when a is not registered, and hangs up when neither is.
func TestProductionDialplanFallsBackToDaemonB(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	appA, appB := "cwtest-failover-a", "cwtest-failover-b"
	src, err := os.ReadFile("../deploy/production/extensions_callwarden_failover.conf")
	mustOK(t, err)
	conf := strings.NewReplacer(
		"[callwarden-features]", "[cwtest-failover-features]",
		"[callwarden-check-examples]", "[cwtest-failover-check-examples]",
		"Stasis(callwarden-a,", "Stasis("+appA+",",
		"Stasis(callwarden-b,", "Stasis("+appB+",",
	).Replace(string(src))
	if strings.Contains(conf, "Stasis(callwarden") || !strings.Contains(conf, "Stasis("+appB+",monitor,listen,${EXTEN:4})") {
		t.Fatalf("the failover dialplan does not have the expected Stasis lines:\n%s", conf)
	}
	mustLoadDialplan(ctx, t, l, "cwtest_failover.conf", conf)

	// watch sees every channel, whichever application it enters.
	watch := mustEvents(ctx, t, l)
	dial := func(t *testing.T) lab.LocalCall {
		t.Helper()
		return mustOriginateSupervisor(ctx, t, l, "1001", "cwtest-failover-features", "*2222001")
	}
	stasisIn := func(app, channel string) func(lab.Event) bool {
		return func(e lab.Event) bool {
			return e.Type == "StasisStart" && e.Application == app && e.ChannelID() == channel
		}
	}
	entered := func(app, channel string) bool {
		return slices.ContainsFunc(watch.Events(), func(e lab.Event) bool {
			return e.Type == "StasisStart" && e.Application == app && e.ChannelID() == channel
		})
	}

	t.Run("neither daemon registered: the feature code tries both and hangs up", func(t *testing.T) {
		call := dial(t)
		mustWait(ctx, t, watch, "the supervisor's channel destroyed", lab.OnChannel("ChannelDestroyed", call.First))
		var tried []string
		for _, e := range watch.Events() {
			if e.Type == "ChannelDialplan" && e.ChannelID() == call.First && e.DialplanApp == "Stasis" {
				tried = append(tried, e.DialplanAppData)
			}
		}
		want := []string{appA + ",monitor,listen,2001", appB + ",monitor,listen,2001"}
		if !slices.Equal(tried, want) {
			t.Errorf("Stasis tried with %q, want %q", tried, want)
		}
	})

	b := mustAppEvents(ctx, t, l, appB)
	t.Run("daemon a not registered: daemon b gets the request", func(t *testing.T) {
		call := dial(t)
		e := mustWait(ctx, t, b, "StasisStart in "+appB, stasisIn(appB, call.First))
		if want := []string{"monitor", "listen", "2001"}; !slices.Equal(e.Args, want) {
			t.Errorf("args %q, want %q", e.Args, want)
		}
		mustHangup(ctx, t, l, call.First)
	})

	a := mustAppEvents(ctx, t, l, appA)
	t.Run("daemon a registered: a gets the request, and b never, even when a lets it go on", func(t *testing.T) {
		call := dial(t)
		mustWait(ctx, t, a, "StasisStart in "+appA, stasisIn(appA, call.First))
		// What callwarden does with `continue`: the dialplan goes on, STASISSTATUS=SUCCESS.
		mustOK(t, l.ARI.Do(ctx, "POST", "/channels/"+call.First+"/continue", nil, nil, nil))
		mustWait(ctx, t, watch, "the supervisor's channel destroyed", lab.OnChannel("ChannelDestroyed", call.First))
		if entered(appB, call.First) {
			t.Errorf("the request went to %s after %s had it", appB, appA)
		}
	})
}

// mustAppEvents registers the Stasis application app for the test (closed when it
// ends): a stand-in for a callwarden daemon registered under that name.
func mustAppEvents(ctx context.Context, tb testing.TB, l *lab.TestLab, app string) *lab.EventStream {
	tb.Helper()
	s, err := l.ARI.Events(ctx, app)
	if err != nil {
		tb.Fatalf("register Stasis application %s: %v", app, err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// mustLoadDialplan adds the dialplan file name (body) to the lab's Asterisk through
// an #include at the end of extensions.conf, reloads the dialplan, and puts
// extensions.conf back (and reloads) when the test ends.
func mustLoadDialplan(ctx context.Context, tb testing.TB, l *lab.TestLab, name, body string) {
	tb.Helper()
	const extensions = "/etc/asterisk/extensions.conf"
	orig, err := l.ReadAsteriskFile(ctx, extensions)
	mustOK(tb, err)
	mustOK(tb, l.WriteAsteriskFile(ctx, "/etc/asterisk/"+name, []byte(body)))
	mustOK(tb, l.WriteAsteriskFile(ctx, extensions, append(slices.Clip(orig), []byte("\n#include "+name+"\n")...)))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), lab.DefaultTimeout)
		defer cancel()
		if err := l.WriteAsteriskFile(ctx, extensions, orig); err != nil {
			tb.Errorf("restore %s: %v", extensions, err)
			return
		}
		if _, err := l.AsteriskCLI(ctx, "dialplan reload"); err != nil {
			tb.Errorf("dialplan reload: %v", err)
		}
	})
	mustAsteriskCLI(ctx, tb, l, "dialplan reload")
	out := mustAsteriskCLI(ctx, tb, l, "dialplan show cwtest-failover-features")
	if !strings.Contains(out, "*2222001") && !strings.Contains(out, "_*222X.") {
		tb.Fatalf("the failover dialplan is not loaded:\n%s", out)
	}
}
