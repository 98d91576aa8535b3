package adminapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/adminapi"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// fakeSessions is adminapi.Sessions over a map, with an outage switch.
type fakeSessions struct {
	mu          sync.Mutex
	live        map[string]enforce.LiveSession
	ended       map[string]string // id -> by
	unavailable bool
}

func (s *fakeSessions) List(context.Context) ([]enforce.LiveSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unavailable {
		return nil, fmt.Errorf("fake: %w", enforce.ErrUnavailable)
	}
	var out []enforce.LiveSession
	for _, l := range s.live {
		out = append(out, l)
	}
	enforce.SortSessions(out)
	return out, nil
}

func (s *fakeSessions) Get(_ context.Context, id string) (enforce.LiveSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unavailable {
		return enforce.LiveSession{}, fmt.Errorf("fake: %w", enforce.ErrUnavailable)
	}
	l, ok := s.live[id]
	if !ok {
		return l, enforce.ErrNotFound
	}
	return l, nil
}

func (s *fakeSessions) End(_ context.Context, id, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended[id] = by
	delete(s.live, id)
	return nil
}

// fakeLiveRecordings lists recordings in progress.
type fakeLiveRecordings []enforce.Recording

func (r fakeLiveRecordings) ActiveRecordings(context.Context) ([]enforce.Recording, error) {
	return r, nil
}

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
	sessions *fakeSessions
	audit    *fakeAudit
	af       *adminFixture
}

func newSessionsFixture(tb testing.TB) *sessionsFixture {
	tb.Helper()
	f := &sessionsFixture{audit: &fakeAudit{}, sessions: &fakeSessions{ended: map[string]string{}, live: map[string]enforce.LiveSession{
		"s1": {ID: "s1", User: "carol", Target: "agent1", Queue: "sales", Caller: "0612345678", Mode: "listen", Instance: "d1", StartedAt: now.Add(-time.Minute)},
		"s2": {ID: "s2", User: "carol", Target: "agent2", Queue: "billing", Caller: "0612345678", Mode: "barge", Instance: "d2", StartedAt: now},
	}}}
	holder := &enforce.Holder{}
	holder.Store(mustSnapshot(tb, sessionsPolicy(), 1))
	var tokens []httpauth.TokenHash
	for _, u := range []string{"root", "alice", "bob", "dave"} {
		th, err := httpauth.ParseTokenHash(u, httpauth.HashToken(u+"-token"))
		if err != nil {
			tb.Fatal(err)
		}
		tokens = append(tokens, th)
	}
	admin, err := adminapi.NewAdmin(adminapi.AdminOptions{
		Store: &fakeStore{policy: sessionsPolicy(), gen: 1}, Snapshot: holder.Load, Auth: httpauth.NewTokenSet(tokens),
		Codec: jsonCodec{}, Auditor: f.audit, Sessions: f.sessions,
		LiveRecordings: fakeLiveRecordings{{ID: "r1", Target: "agent1", Queue: "sales", Caller: "0612345678", State: enforce.RecordingActive}},
		Now:            func() time.Time { return now },
	})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(admin)
	tb.Cleanup(srv.Close)
	f.af = &adminFixture{srv: srv}
	return f
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
		f.sessions.unavailable = true
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
		if f.sessions.ended["s2"] != "root" {
			t.Errorf("ended %v", f.sessions.ended)
		}
		recs := f.audit.All()
		if len(recs) != 1 || recs[0].Action != "session.end" || recs[0].Decision != "allow" || recs[0].Session != "s2" || recs[0].User != "root" {
			t.Errorf("audit %+v", recs)
		}
	})
	t.Run("session.end in scope ends a session of the supervisor's queue", func(t *testing.T) {
		f := newSessionsFixture(t)
		f.af.do(t, "DELETE", "/v1/sessions/s1", "alice", "", "").wantField(t, 202, "ended_by", "alice")
	})
	t.Run("out of scope is refused and audited", func(t *testing.T) {
		f := newSessionsFixture(t)
		f.af.do(t, "DELETE", "/v1/sessions/s2", "alice", "", "").wantField(t, 403, "reason", "out_of_scope")
		recs := f.audit.All()
		if len(f.sessions.ended) != 0 || len(recs) != 1 || recs[0].Decision != "deny" || !strings.Contains(recs[0].Detail, "refused") {
			t.Errorf("ended %v, audit %+v", f.sessions.ended, recs)
		}
	})
	t.Run("presence.view alone may not end", func(t *testing.T) {
		f := newSessionsFixture(t)
		f.af.do(t, "DELETE", "/v1/sessions/s1", "bob", "", "").wantField(t, 403, "reason", "action_not_granted")
	})
	t.Run("an unknown session is 404 and a registry outage 503", func(t *testing.T) {
		f := newSessionsFixture(t)
		f.af.do(t, "DELETE", "/v1/sessions/nope", "root", "", "").wantField(t, 404, "", "")
		f.sessions.unavailable = true
		f.af.do(t, "DELETE", "/v1/sessions/s1", "root", "", "").wantField(t, 503, "", "")
	})
}

func TestAdminWithoutSessionRegistry(t *testing.T) {
	f := newAdminFixture(t)
	f.do(t, "GET", "/v1/sessions", "root", "", "").wantField(t, 404, "", "")
}
