package adminapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/adminapi"
	"github.com/callwarden/callwarden/pbx/httpauth"
	"github.com/callwarden/callwarden/pbx/session"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

// sessionsPolicy: root administers; alice supervises sales (sees and ends
// its sessions, caller masked); bob sees sales only; dave has no profile.
func sessionsPolicy() enforce.Policy {
	all := [4]enforce.Scope{{Kind: enforce.ScopeAll}}
	return enforce.Policy{
		Profiles: []enforce.Profile{
			{Name: "administrator", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{"administrator"}, Scopes: all},
			}},
			{Name: "supervisor", MaskDigits: 4, Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.PresenceView, enforce.SessionEnd), Scopes: assignedQueues()},
			}},
			{Name: "viewer", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.PresenceView), Scopes: assignedQueues()},
			}},
		},
		Users: []enforce.User{
			{ID: "root", Profile: "administrator"},
			{ID: "alice", Profile: "supervisor", Queues: []string{"sales"}},
			{ID: "bob", Profile: "viewer", Queues: []string{"sales"}},
			{ID: "dave", Queues: []string{"sales"}},
		},
	}
}

type sessionsFixture struct {
	store  *sessiontest.Sessions
	recs   *memory.Recordings
	audit  *fakeAudit
	holder *enforce.Holder
	admin  *adminapi.Admin
	af     *adminFixture
}

// newSessionsFixture serves the admin API over a session registry (of
// another daemon: every end goes through the store) holding s1 (sales)
// and s2 (billing).
func newSessionsFixture(tb testing.TB) *sessionsFixture {
	tb.Helper()
	return newSessionsFixtureOn(tb, func(*http.Server) {})
}

// newSessionsFixtureOn is newSessionsFixture with the test server's
// settings changed by tune before it starts.
func newSessionsFixtureOn(tb testing.TB, tune func(*http.Server)) *sessionsFixture {
	tb.Helper()
	f := &sessionsFixture{audit: &fakeAudit{}, store: &sessiontest.Sessions{SessionStore: memory.NewSessions()}, recs: memory.NewRecordings()}
	if err := f.recs.SaveRecording(context.Background(), enforce.Recording{ID: "r1", Target: "agent1", Queue: "sales",
		Caller: "0612345678", State: enforce.RecordingActive}); err != nil {
		tb.Fatal(err)
	}
	for _, l := range []enforce.LiveSession{
		{ID: "s1", User: "carol", Target: "agent1", Queue: "sales", Caller: "0612345678", Mode: "listen", Instance: "d1", StartedAt: now.Add(-time.Minute)},
		{ID: "s2", User: "carol", Target: "agent2", Queue: "billing", Caller: "0612345678", Mode: "barge", Instance: "d2", StartedAt: now},
	} {
		if err := f.store.PutSession(context.Background(), l); err != nil {
			tb.Fatal(err)
		}
	}
	reg, err := session.NewRegistry(session.RegistryOptions{Store: f.store, Instance: "here"})
	if err != nil {
		tb.Fatal(err)
	}
	f.holder = &enforce.Holder{}
	f.holder.Store(mustSnapshot(tb, sessionsPolicy(), 1))
	var tokens []httpauth.TokenHash
	for _, u := range []string{"root", "alice", "bob", "dave"} {
		th, err := httpauth.ParseTokenHash(u, httpauth.HashToken(u+"-token"))
		if err != nil {
			tb.Fatal(err)
		}
		tokens = append(tokens, th)
	}
	admin, err := adminapi.NewAdmin(adminapi.AdminOptions{
		Store: &fakeStore{policy: sessionsPolicy(), gen: 1}, Snapshot: f.holder.Load, Auth: httpauth.NewTokenSet(tokens),
		Codec: jsonCodec{}, Auditor: f.audit, Sessions: reg, LiveRecordings: f.recs, Recordings: f.recs,
		Now:        func() time.Time { return now },
		StreamPoll: 5 * time.Millisecond, StreamHeartbeat: 20 * time.Millisecond,
	})
	if err != nil {
		tb.Fatal(err)
	}
	f.admin = admin
	srv := httptest.NewUnstartedServer(admin)
	tune(srv.Config)
	srv.Start()
	tb.Cleanup(srv.Close)
	// Streams end before the server closes (Close waits for handlers).
	tb.Cleanup(admin.CloseStreams)
	f.af = &adminFixture{srv: srv}
	return f
}

// endAsked is who asked for session id to end, "" for nobody.
func (f *sessionsFixture) endAsked(t *testing.T, id string) string {
	t.Helper()
	l, err := f.store.Session(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return l.EndRequestedBy
}

func (f *sessionsFixture) list(t *testing.T, user string) (int, adminapi.SessionsBody) {
	t.Helper()
	r := f.af.do(t, "GET", "/v1/sessions", user, "", "")
	var b adminapi.SessionsBody
	if r.code == 200 {
		if err := json.Unmarshal([]byte(r.body), &b); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
	}
	return r.code, b
}

func TestAdminSessionsList(t *testing.T) {
	t.Run("an administrator sees every session and recording, oldest first", func(t *testing.T) {
		f := newSessionsFixture(t)
		code, b := f.list(t, "root")
		if code != 200 || len(b.Sessions) != 2 || b.Sessions[0].ID != "s1" || len(b.Recordings) != 1 {
			t.Errorf("code %d body %+v", code, b)
		}
	})
	t.Run("a supervisor sees the sessions presence.view allows, caller masked", func(t *testing.T) {
		f := newSessionsFixture(t)
		code, b := f.list(t, "alice")
		if code != 200 || len(b.Sessions) != 1 || b.Sessions[0].ID != "s1" || b.Sessions[0].Caller != "061234****" {
			t.Errorf("code %d body %+v", code, b)
		}
		if len(b.Recordings) != 1 || b.Recordings[0].Caller != "061234****" {
			t.Errorf("recordings %+v", b.Recordings)
		}
	})
	t.Run("a user without a profile is refused", func(t *testing.T) {
		f := newSessionsFixture(t)
		if code, _ := f.list(t, "dave"); code != 403 {
			t.Errorf("code %d, want 403", code)
		}
	})
	t.Run("a registry that cannot be read answers 503, never an empty list", func(t *testing.T) {
		f := newSessionsFixture(t)
		f.store.Down(true)
		if code, _ := f.list(t, "root"); code != 503 {
			t.Errorf("code %d, want 503", code)
		}
	})
	t.Run("no token is 401", func(t *testing.T) {
		f := newSessionsFixture(t)
		if code, _ := f.list(t, ""); code != 401 {
			t.Errorf("code %d, want 401", code)
		}
	})
}

func TestAdminSessionsEnd(t *testing.T) {
	t.Run("an administrator ends any session, audited", func(t *testing.T) {
		f := newSessionsFixture(t)
		f.af.do(t, "DELETE", "/v1/sessions/s2", "root", "", "").wantField(t, 202, "status", "ending")
		if by := f.endAsked(t, "s2"); by != "root" {
			t.Errorf("end asked by %q, want root", by)
		}
		recs := f.audit.All()
		if len(recs) != 1 || recs[0].Action != "session.end" || recs[0].Decision != "allow" || recs[0].Session != "s2" || recs[0].User != "root" {
			t.Errorf("audit %+v", recs)
		}
	})
	for _, tc := range []struct {
		name, path, user string
		code             int
		key, value       string
	}{
		{"session.end in scope ends a session of the supervisor's queue", "/v1/sessions/s1", "alice", 202, "ended_by", "alice"},
		{"out of scope is refused", "/v1/sessions/s2", "alice", 403, "reason", "out_of_scope"},
		{"presence.view alone may not end", "/v1/sessions/s1", "bob", 403, "reason", "action_not_granted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSessionsFixture(t)
			f.af.do(t, "DELETE", tc.path, tc.user, "", "").wantField(t, tc.code, tc.key, tc.value)
			recs := f.audit.All()
			if len(recs) != 1 || recs[0].Decision != map[bool]string{true: "allow", false: "deny"}[tc.code == 202] {
				t.Errorf("audit %+v, want the DELETE audited", recs)
			}
			if by := f.endAsked(t, strings.TrimPrefix(tc.path, "/v1/sessions/")); (by != "") != (tc.code == 202) {
				t.Errorf("end asked by %q after %d", by, tc.code)
			}
		})
	}
	t.Run("an unknown session is 404 and a registry outage 503", func(t *testing.T) {
		f := newSessionsFixture(t)
		f.af.do(t, "DELETE", "/v1/sessions/nope", "root", "", "").wantField(t, 404, "", "")
		f.store.Down(true)
		f.af.do(t, "DELETE", "/v1/sessions/s1", "root", "", "").wantField(t, 503, "", "")
	})
}

func TestAdminWithoutSessionRegistry(t *testing.T) {
	f := newAdminFixture(t)
	f.do(t, "GET", "/v1/sessions", "root", "", "").wantField(t, 404, "", "")
}
