package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/adminapi"
	"github.com/callwarden/callwarden/pbx/asterisk"
	"github.com/callwarden/callwarden/pbx/httpauth/httpauthtest"
	"github.com/callwarden/callwarden/pbx/session"
)

// noCodec is the admin API's body codec for a test that writes no policy.
type noCodec struct{}

var errNoCodec = errors.New("no policy writes in this test")

func (noCodec) DecodeProfile([]byte, []string) (enforce.Profile, error) {
	return enforce.Profile{}, errNoCodec
}
func (noCodec) DecodeUser([]byte, []string) (enforce.User, error)      { return enforce.User{}, errNoCodec }
func (noCodec) EncodeProfile(enforce.Profile) (json.RawMessage, error) { return nil, errNoCodec }
func (noCodec) EncodeUser(enforce.User) (json.RawMessage, error)       { return nil, errNoCodec }

// sessionsAPI serves the admin API over cw's session registry, the
// example profiles and cw's audit log; "admin-token" is the example
// administrator's (admin), "carol-token" carol's (presence.view on support).
func sessionsAPI(t *testing.T, cw *callwarden) *httptest.Server {
	t.Helper()
	snap := exampleSnapshot(t)
	admin, err := adminapi.NewAdmin(adminapi.AdminOptions{
		Store: memory.NewFile(func() (enforce.Policy, error) { return mustExampleProfiles(t), nil }), Snapshot: func() *enforce.Snapshot { return snap },
		Auth: httpauthtest.Tokens(t, "admin", "carol"), Codec: noCodec{}, Auditor: cw.audit,
		Sessions: cw.sessions, LiveRecordings: cw.recs, Now: cw.now.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admin)
	t.Cleanup(srv.Close)
	return srv
}

func adminCall(t *testing.T, srv *httptest.Server, method, path string, out any) int {
	t.Helper()
	return adminCallAs(t, srv, "admin-token", method, path, out)
}

// adminCallAs calls the admin API with token; out, when set, receives the
// JSON answer.
func adminCallAs(t *testing.T, srv *httptest.Server, token, method, path string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func TestAdministratorListsAndEndsALiveSession(t *testing.T) {
	l, ctx, cw, events := startMonitoring(t, asterisk.WatchdogEnforce)
	srv := sessionsAPI(t, cw)
	agent, ext := salesCall(ctx, t, l, events, "5550100")
	sess := mustMonitor(ctx, t, l, events, "1001", "*222"+ext, agent.ID)

	// The session is registered once the eavesdrop runs: just after the
	// bridge events the test waited for.
	var list adminapi.SessionsBody
	waitFor(ctx, t, "the session listed", func() error {
		list = adminapi.SessionsBody{}
		if code := adminCall(t, srv, "GET", "/v1/sessions", &list); code != http.StatusOK || len(list.Sessions) != 1 {
			return fmt.Errorf("GET /v1/sessions: %d %+v, want one session", code, list)
		}
		return nil
	})
	live := list.Sessions[0]
	if live.Mode != "listen" || live.Target != "agent"+ext || live.User != "alice" || live.Queue != "sales" || live.Instance != cw.sessions.Instance() {
		t.Errorf("live session %+v, want alice listening to agent%s on sales", live, ext)
	}

	var ended adminapi.EndBody
	asked := time.Now()
	if code := adminCall(t, srv, "DELETE", "/v1/sessions/"+live.ID, &ended); code != http.StatusAccepted || ended.EndedBy != "admin" {
		t.Fatalf("DELETE: %d %+v", code, ended)
	}
	leftBridgeWithin(ctx, t, events, sess, asked, "the DELETE")
	end := cw.audit.wait(ctx, t, "the session's end", func(r enforce.AuditRecord) bool {
		return r.Session == live.ID && r.Outcome == enforce.OutcomeEnded
	})
	if end.Cause != enforce.CauseAdministrator || end.Duration <= 0 || end.User != "alice" || end.Action != "monitor.listen" {
		t.Errorf("end record %+v, want cause %s and a duration", end, enforce.CauseAdministrator)
	}
	cw.audit.wait(ctx, t, "the DELETE audited", func(r enforce.AuditRecord) bool {
		return r.Source == adminapi.AuditSource && r.Action == "session.end" && r.User == "admin" && r.Decision == "allow" && r.Session == live.ID
	})
	// The session's audit reads from its decision to its end (audit tail --session).
	cw.audit.wait(ctx, t, "the allowing decision naming the session", func(r enforce.AuditRecord) bool {
		return r.Session == live.ID && r.Outcome == "" && r.Decision == "allow" && r.Action == "monitor.listen"
	})
	list = adminapi.SessionsBody{}
	if code := adminCall(t, srv, "GET", "/v1/sessions", &list); code != http.StatusOK || len(list.Sessions) != 0 {
		t.Errorf("GET /v1/sessions after the end: %d %+v, want none", code, list)
	}
	mustWait(ctx, t, events, "the supervisor hung up", lab.OnChannel("ChannelDestroyed", sess.sup.First))
}

// nullPBX is a PBX whose eavesdrops always work and do nothing.
type nullPBX struct{}

func (nullPBX) Eavesdrop(context.Context, string, string, session.Mode, bool) (session.Tap, error) {
	return nullPBX{}, nil
}
func (nullPBX) Play(context.Context, string, string) error  { return nil }
func (nullPBX) Hangup(context.Context, string) error        { return nil }
func (nullPBX) SetMode(context.Context, session.Mode) error { return nil }
func (nullPBX) Mute(context.Context, bool) error            { return nil }
func (nullPBX) Close(context.Context) error                 { return nil }

// TestSupervisorSeesOnlyTheSessionsInItsScope: alice listens to a sales
// call, the administrator to a support call; carol, whose presence.view
// covers support only, lists the support session alone, its caller masked
// per her profile, and may not end alice's.
func TestSupervisorSeesOnlyTheSessionsInItsScope(t *testing.T) {
	l, ctx, cw, events := startMonitoring(t, asterisk.WatchdogEnforce)
	srv := sessionsAPI(t, cw)
	sales, salesExt := salesCall(ctx, t, l, events, "5550100")
	mustMonitor(ctx, t, l, events, "1001", "*222"+salesExt, sales.ID)
	support, supportExt := queueCall(ctx, t, l, events, "support", "5550199")
	mustMonitor(ctx, t, l, events, "1000", "*222"+supportExt, support.ID)

	var all adminapi.SessionsBody
	waitFor(ctx, t, "both sessions listed for the administrator", func() error {
		all = adminapi.SessionsBody{}
		if code := adminCall(t, srv, "GET", "/v1/sessions", &all); code != http.StatusOK || len(all.Sessions) != 2 {
			return fmt.Errorf("GET /v1/sessions: %d %+v, want two sessions", code, all)
		}
		return nil
	})
	var mine adminapi.SessionsBody
	if code := adminCallAs(t, srv, "carol-token", "GET", "/v1/sessions", &mine); code != http.StatusOK {
		t.Fatalf("carol's GET /v1/sessions: %d", code)
	}
	if len(mine.Sessions) != 1 || mine.Sessions[0].Queue != "support" || mine.Sessions[0].User != "admin" {
		t.Fatalf("carol lists %+v, want the administrator's support session only", mine.Sessions)
	}
	if got, want := mine.Sessions[0].Caller, enforce.Mask("5550199", 4); got != want {
		t.Errorf("carol sees caller %q, want %q (her profile masks 4 digits)", got, want)
	}
	for _, s := range all.Sessions {
		if s.Queue != "sales" {
			continue
		}
		if code := adminCallAs(t, srv, "carol-token", "DELETE", "/v1/sessions/"+s.ID, nil); code != http.StatusForbidden {
			t.Errorf("carol's DELETE of alice's sales session: %d, want 403", code)
		}
	}
}

func TestTwoDaemonsShareTheSessionRegistryAndEndEachOthersSessions(t *testing.T) {
	l := suite.Lab(t)
	ctx := contextFor(t, 30*time.Second)
	newRegistry := func(instance string) *session.Registry {
		r, err := session.NewRegistry(session.RegistryOptions{Store: newRedisStore(t, l, nil), Instance: instance, PollInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	owner, other := newRegistry("daemon-1"), newRegistry("daemon-2")
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); owner.Run(rctx) }()
	defer func() { stop(); <-done }()
	audit := newAuditLog()
	m, err := session.StartMonitor(ctx, nullPBX{}, &session.Audit{Log: audit, Source: "test", PBX: "pbx1"}, session.MonitorSpec{
		Supervisor: "sup", Target: "agent", Mode: session.Listen, Registry: owner,
		Entry:   session.Entry{User: "alice", Action: enforce.MonitorListen, Target: "agent2001", Queue: "sales"},
		Allowed: session.Decided(enforce.Decision{Allow: true, Profile: "supervisor"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	live, err := other.List(ctx)
	if err != nil || len(live) != 1 || live[0].ID != m.ID() || live[0].Instance != "daemon-1" || live[0].UpdatedAt.IsZero() {
		t.Fatalf("the other daemon lists %+v, %v; want daemon-1's session", live, err)
	}
	asked := time.Now()
	if err := other.End(ctx, m.ID(), "root"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Done():
		t.Logf("the owner saw the end asked through Redis after %v", time.Since(asked))
	case <-ctx.Done():
		t.Fatal("the owning daemon never saw the end asked through Redis")
	}
	if err := m.End(ctx, enforce.CauseAdministrator); err != nil {
		t.Fatal(err)
	}
	if live, err := other.List(ctx); err != nil || len(live) != 0 {
		t.Errorf("after the end the other daemon lists %+v, %v", live, err)
	}
	end := audit.wait(ctx, t, "the end", func(r enforce.AuditRecord) bool { return r.Session == m.ID() && r.Cause != "" })
	if end.Cause != enforce.CauseAdministrator || end.Detail == "" {
		t.Errorf("end record %+v", end)
	}
}

// leftBridgeWithin waits for sess's supervisor to leave its bridge and
// fails the test unless it did within a second of since (when what
// happened).
func leftBridgeWithin(ctx context.Context, t *testing.T, events *lab.EventStream, sess monitorSession, since time.Time, what string) {
	t.Helper()
	mustWait(ctx, t, events, "the supervisor out of the bridge", func(e lab.Event) bool {
		return (e.Type == "ChannelLeftBridge" && e.ChannelID() == sess.sup.First) ||
			(e.Type == "BridgeDestroyed" && e.Bridge != nil && e.Bridge.ID == sess.bridge)
	})
	took := time.Since(since)
	if took > time.Second {
		t.Errorf("the supervisor left the bridge %v after %s, want within 1s", took, what)
	}
	t.Logf("the supervisor left the bridge %v after %s", took, what)
}
