package checkapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/checkapi"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// now is a Tuesday, 10:00 in Paris, inside bob's validity period.
var now = time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)

func assignedQueues() [4]enforce.Scope {
	return [4]enforce.Scope{{Kind: enforce.ScopeAssigned}}
}

// testPolicy is a small policy with one way to reach every reason code.
func testPolicy(tb testing.TB) enforce.Policy {
	tb.Helper()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		tb.Fatalf("load Europe/Paris: %v", err)
	}
	return enforce.Policy{
		Profiles: []enforce.Profile{
			{Name: "supervisor", NotifyTarget: true, MaskDigits: 4, Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge, enforce.RecordingPlayback),
					Scopes: assignedQueues()},
				{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{"teacher"}, Scopes: assignedQueues()},
			}},
			{Name: "teacher", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.RecordingPlayback), Scopes: assignedQueues(),
					RecordedWithin: 720 * time.Hour,
					Hours: &enforce.Weekly{Days: [7]bool{false, true, true, true, true, true, false},
						From: 8 * 60, To: 18 * 60, Location: paris}},
			}},
		},
		Users: []enforce.User{
			{ID: "alice", Profile: "supervisor", Queues: []string{"sales", "support"}},
			{ID: "bob", Profile: "teacher", Queues: []string{"sales"},
				ValidFrom:  time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
				ValidUntil: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
			{ID: "dave"},
		},
		Protected: enforce.Protected{Users: []string{"ceo"}, Queues: []string{"hr-hotline"}},
	}
}

func mustSnapshot(tb testing.TB, p enforce.Policy, gen uint64) *enforce.Snapshot {
	tb.Helper()
	s, err := enforce.NewSnapshot(p, gen)
	if err != nil {
		tb.Fatalf("NewSnapshot: %v", err)
	}
	return s
}

type fixture struct {
	holder *enforce.Holder
	reg    *prometheus.Registry
	logs   *observer.ObservedLogs
	audit  *fakeAudit
	srv    *httptest.Server
}

// The tokens every fixture knows: pbxToken (role check, named "pbx"),
// ctiToken (role check, named "cti") and rootToken (role admin, user
// root).
const (
	pbxToken  = "pbx-secret"
	ctiToken  = "cti-secret"
	rootToken = "root-secret"
)

func fixtureTokens(tb testing.TB) httpauth.Authenticator {
	tb.Helper()
	var out []httpauth.TokenHash
	for _, t := range []struct {
		role        httpauth.Role
		name, token string
	}{{httpauth.RoleCheck, "pbx", pbxToken}, {httpauth.RoleCheck, "cti", ctiToken}, {httpauth.RoleAdmin, "root", rootToken}} {
		th, err := httpauth.ParseRoleTokenHash(t.role, t.name, httpauth.HashToken(t.token))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, th)
	}
	return httpauth.NewTokenSet(out)
}

func newFixture(tb testing.TB, snap *enforce.Snapshot) *fixture {
	tb.Helper()
	return newFixtureWith(tb, snap, checkapi.Options{})
}

// newFixtureWith serves opts with the fixture's snapshot holder, clock,
// logger, registry, auditor and tokens filled in.
func newFixtureWith(tb testing.TB, snap *enforce.Snapshot, opts checkapi.Options) *fixture {
	tb.Helper()
	core, logs := observer.New(zap.InfoLevel)
	f := &fixture{holder: &enforce.Holder{}, reg: prometheus.NewRegistry(), logs: logs, audit: &fakeAudit{}}
	if snap != nil {
		f.holder.Store(snap)
	}
	opts.Snapshot = f.holder.Load
	opts.Now = func() time.Time { return now }
	opts.Logger = zap.New(core)
	opts.Registry = f.reg
	opts.Auditor = f.audit
	opts.Auth = fixtureTokens(tb)
	h, err := checkapi.New(opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	f.srv = httptest.NewServer(h)
	tb.Cleanup(f.srv.Close)
	return f
}

// get sends a GET with the PBX's check token; header pairs are set after
// it, so an "Authorization" pair replaces it ("" removes it).
func (f *fixture) get(tb testing.TB, path string, header ...string) (int, http.Header, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+pbxToken)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func TestCheckDecisions(t *testing.T) {
	f := newFixture(t, mustSnapshot(t, testPolicy(t), 7))
	cases := []struct {
		name, query      string
		decision, reason string
		profile          string
		grant            int // -1: omitted
	}{
		{"supervisor listening on an assigned queue is allowed", "user=alice&action=monitor.listen&queue=sales",
			"allow", "granted", "supervisor", 0},
		{"unknown user is denied", "user=mallory&action=monitor.listen&queue=sales",
			"deny", "unknown_user", "", -1},
		{"user without profile is denied", "user=dave&action=monitor.listen&queue=sales",
			"deny", "no_profile", "", -1},
		{"action no grant lists is denied", "user=alice&action=recording.delete&queue=sales",
			"deny", "action_not_granted", "supervisor", -1},
		{"queue outside the assignment is denied", "user=alice&action=monitor.listen&queue=billing",
			"deny", "out_of_scope", "supervisor", 0},
		{"teacher before its period is denied", "user=bob&action=recording.playback&queue=sales&recorded_at=2026-10-20T10:00:00Z&at=2026-10-27T10:00:00Z",
			"deny", "outside_window", "teacher", -1},
		{"teacher on a Saturday is denied", "user=bob&action=recording.playback&queue=sales&recorded_at=2026-11-05T10:00:00Z&at=2026-11-07T10:00:00Z",
			"deny", "outside_window", "teacher", 0},
		{"teacher in hours on a recent recording is allowed", "user=bob&action=recording.playback&queue=sales&recorded_at=2026-11-05T10:00:00Z",
			"allow", "granted", "teacher", 0},
		{"protected queue is denied", "user=alice&action=monitor.listen&queue=hr-hotline",
			"deny", "protected_target", "supervisor", -1},
		{"protected user is denied", "user=alice&action=monitor.barge&queue=sales&agent=ceo",
			"deny", "protected_target", "supervisor", -1},
		{"recording older than recorded_within is denied", "user=bob&action=recording.playback&queue=sales&recorded_at=2026-08-01T10:00:00Z",
			"deny", "recording_too_old", "teacher", 0},
		{"handing out a profile the grant does not name is denied", "user=alice&action=profile.assign&assign=supervisor&queue=sales",
			"deny", "profile_not_delegable", "supervisor", 1},
		{"handing out teacher on own queues is allowed", "user=alice&action=profile.assign&assign=teacher&queue=sales&queue=support",
			"allow", "granted", "supervisor", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := f.get(t, "/v1/check?"+tc.query)
			if status != http.StatusOK {
				t.Fatalf("status = %d, body %s", status, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var got enforce.Answer
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			if got.Decision != tc.decision || got.Reason != tc.reason || got.Profile != tc.profile {
				t.Errorf("got %s/%s/%q, want %s/%s/%q (body %s)", got.Decision, got.Reason, got.Profile,
					tc.decision, tc.reason, tc.profile, body)
			}
			switch {
			case tc.grant < 0 && got.Grant != nil:
				t.Errorf("grant = %d, want omitted", *got.Grant)
			case tc.grant >= 0 && (got.Grant == nil || *got.Grant != tc.grant):
				t.Errorf("grant = %v, want %d (body %s)", got.Grant, tc.grant, body)
			}
		})
	}

	t.Run("allow body has the documented shape", func(t *testing.T) {
		_, _, body := f.get(t, "/v1/check?user=alice&action=monitor.listen&queue=sales&agent=carol")
		want := `{"decision":"allow","reason":"granted","profile":"supervisor","grant":0,"user":"alice","action":"monitor.listen","target":{"queue":"sales","agent":"carol"},"notify_target":true,"mask_digits":4}` + "\n"
		if body != want {
			t.Errorf("body =\n%s\nwant\n%s", body, want)
		}
	})
	t.Run("deny body without grant or target omits them", func(t *testing.T) {
		_, _, body := f.get(t, "/v1/check?user=mallory&action=presence.view")
		want := `{"decision":"deny","reason":"unknown_user","profile":"","user":"mallory","action":"presence.view","notify_target":false,"mask_digits":0}` + "\n"
		if body != want {
			t.Errorf("body =\n%s\nwant\n%s", body, want)
		}
	})
	t.Run("profile.assign body echoes the assignment", func(t *testing.T) {
		_, _, body := f.get(t, "/v1/check?user=alice&action=profile.assign&assign=teacher&queue=sales")
		if !strings.Contains(body, `"assign":{"profile":"teacher","queues":["sales"]}`) {
			t.Errorf("body %s lacks the assignment", body)
		}
	})
}

func TestCheckFormats(t *testing.T) {
	f := newFixture(t, mustSnapshot(t, testPolicy(t), 1))
	cases := []struct {
		name, query string
		header      []string
		want        string
	}{
		{"format=text allows with a bare word", "user=alice&action=monitor.listen&queue=sales&format=text", nil, "allow"},
		{"format=text denies with the reason", "user=alice&action=monitor.listen&queue=billing&format=text", nil, "deny out_of_scope"},
		{"Accept text/plain selects text", "user=dave&action=monitor.listen", []string{"Accept", "text/plain"}, "deny no_profile"},
		{"format=json wins over Accept", "user=dave&action=monitor.listen&format=json", []string{"Accept", "text/plain"}, `{"decision":"deny"`},
		{"Accept */* stays JSON", "user=dave&action=monitor.listen", []string{"Accept", "*/*"}, `{"decision":"deny"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := f.get(t, "/v1/check?"+tc.query, tc.header...)
			if status != http.StatusOK || !strings.HasPrefix(body, tc.want) {
				t.Errorf("got %d %q, want 200 %q", status, body, tc.want)
			}
			if strings.HasPrefix(tc.want, "allow") || strings.HasPrefix(tc.want, "deny") {
				if body != tc.want {
					t.Errorf("text body = %q, want exactly %q", body, tc.want)
				}
			}
		})
	}
}

func TestCheckBadRequests(t *testing.T) {
	f := newFixture(t, mustSnapshot(t, testPolicy(t), 1))
	cases := []struct{ name, query, want string }{
		{"unknown action answers 400 naming the parameter", "user=alice&action=monitor.spy", `action: unknown action \"monitor.spy\"`},
		{"missing user answers 400", "action=monitor.listen", "user: required"},
		{"bad at answers 400", "user=alice&action=monitor.listen&at=now", "at: "},
		{"bad format answers 400", "user=alice&action=monitor.listen&format=xml", "format: "},
		{"malformed escape answers 400", "user=al%zzice&action=monitor.listen", "query: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := f.get(t, "/v1/check?"+tc.query)
			if status != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400 (body %s)", status, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !strings.HasPrefix(body, `{"error":"`+tc.want) {
				t.Errorf("body = %s, want error starting %q", body, tc.want)
			}
		})
	}
	t.Run("POST is not allowed", func(t *testing.T) {
		resp, err := f.srv.Client().Post(f.srv.URL+"/v1/check?user=alice&action=monitor.listen", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status = %d, want 405", resp.StatusCode)
		}
	})
	t.Run("bad requests are counted, not decided", func(t *testing.T) {
		_, _, metrics := f.get(t, "/metrics")
		if !strings.Contains(metrics, "callwarden_check_bad_requests_total 5") {
			t.Errorf("metrics lack 5 bad requests:\n%s", metrics)
		}
		if strings.Contains(metrics, "callwarden_decisions_total{") {
			t.Errorf("bad requests were counted as decisions:\n%s", metrics)
		}
	})
}

func TestNoSnapshot(t *testing.T) {
	f := newFixture(t, nil)
	t.Run("check without a snapshot denies store_unavailable with 200", func(t *testing.T) {
		status, _, body := f.get(t, "/v1/check?user=alice&action=monitor.listen&queue=sales")
		if status != http.StatusOK || !strings.HasPrefix(body, `{"decision":"deny","reason":"store_unavailable"`) {
			t.Errorf("got %d %s", status, body)
		}
	})
	t.Run("not ready without a snapshot", func(t *testing.T) {
		status, _, body := f.get(t, "/readyz")
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "no profiles snapshot loaded") {
			t.Errorf("got %d %q", status, body)
		}
	})
	t.Run("healthy without a snapshot", func(t *testing.T) {
		if status, _, body := f.get(t, "/healthz"); status != http.StatusOK || body != "ok\n" {
			t.Errorf("got %d %q", status, body)
		}
	})
	f.holder.Store(mustSnapshot(t, testPolicy(t), 3))
	t.Run("ready once a snapshot is stored", func(t *testing.T) {
		if status, _, body := f.get(t, "/readyz"); status != http.StatusOK {
			t.Errorf("got %d %q", status, body)
		}
	})
	t.Run("generation gauge follows the snapshot", func(t *testing.T) {
		if _, _, m := f.get(t, "/metrics"); !strings.Contains(m, "callwarden_snapshot_generation 3") {
			t.Errorf("metrics lack generation 3:\n%s", m)
		}
	})
}

func TestMetricsAndAudit(t *testing.T) {
	f := newFixture(t, mustSnapshot(t, testPolicy(t), 1))
	f.get(t, "/v1/check?user=alice&action=monitor.listen&queue=sales")
	f.get(t, "/v1/check?user=alice&action=monitor.listen&queue=sales")
	f.get(t, "/v1/check?user=alice&action=monitor.listen&queue=hr-hotline&at=2026-11-10T10:00:00Z")

	t.Run("decisions are counted by action, decision and reason", func(t *testing.T) {
		_, _, m := f.get(t, "/metrics")
		for _, want := range []string{
			`callwarden_decisions_total{action="monitor.listen",decision="allow",reason="granted"} 2`,
			`callwarden_decisions_total{action="monitor.listen",decision="deny",reason="protected_target"} 1`,
			`callwarden_decision_duration_seconds_count 3`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s:\n%s", want, m)
			}
		}
	})
	t.Run("every decision is audited at info with its fields", func(t *testing.T) {
		entries := f.logs.FilterMessage("decision").AllUntimed()
		if len(entries) != 3 {
			t.Fatalf("%d audit records, want 3", len(entries))
		}
		last := entries[2].ContextMap()
		for k, want := range map[string]any{
			"source": "http", "user": "alice", "action": "monitor.listen", "queue": "hr-hotline",
			"decision": "deny", "reason": "protected_target", "profile": "supervisor",
		} {
			if last[k] != want {
				t.Errorf("audit %s = %v, want %v", k, last[k], want)
			}
		}
		if _, ok := last["at"]; !ok {
			t.Error("a what-if decision is not marked with its at")
		}
		if _, ok := entries[0].ContextMap()["at"]; ok {
			t.Error("a live decision is marked with an at")
		}
	})
	t.Run("the audit record carries the instant a what-if was decided at, to replay it", func(t *testing.T) {
		recs := f.audit.All()
		if len(recs) != 3 {
			t.Fatalf("%d audit records, want 3", len(recs))
		}
		want := time.Date(2026, 11, 10, 10, 0, 0, 0, time.UTC)
		if !recs[2].At.Equal(want) || !recs[0].At.IsZero() {
			t.Errorf("at = %v (what-if), %v (live); want %v and none", recs[2].At, recs[0].At, want)
		}
		if _, at, skip := recs[2].ReplayRequest(); skip != "" || !at.Equal(want) {
			t.Errorf("replayed at %v (skip %q), want %v", at, skip, want)
		}
	})
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Run("missing snapshot source is an error", func(t *testing.T) {
		if _, err := checkapi.New(checkapi.Options{}); err == nil {
			t.Error("New accepted options without Snapshot")
		}
	})
	t.Run("registering twice on one registry is an error", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		h := &enforce.Holder{}
		if _, err := checkapi.New(checkapi.Options{Snapshot: h.Load, Registry: reg}); err != nil {
			t.Fatal(err)
		}
		if _, err := checkapi.New(checkapi.Options{Snapshot: h.Load, Registry: reg}); err == nil {
			t.Error("second New on the same registry succeeded")
		}
	})
}

func TestExplain(t *testing.T) {
	snap := mustSnapshot(t, testPolicy(t), 1)
	cases := []struct {
		name string
		req  enforce.Request
		want string
	}{
		{"allow names profile and grant",
			enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "sales"},
			"allow: alice may monitor.listen on queue sales: profile supervisor, grant #0; the target hears a tone; caller numbers masked (4 digits)"},
		{"out of scope names the closest grant",
			enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "billing"},
			"deny (out_of_scope): alice may not monitor.listen on queue billing: profile supervisor has grants for monitor.listen but none covers this target (closest: grant #0)"},
		{"validity period of the assignment",
			enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales"},
			"deny (outside_window): bob may not recording.playback on queue sales: the user's assignment is outside its validity period"},
		{"delegation names the profile",
			enforce.Request{User: "alice", Action: enforce.ProfileAssign, AssignProfile: "supervisor", AssignQueues: []string{"sales"}},
			"deny (profile_not_delegable): alice may not profile.assign (profile supervisor on queues sales): profile supervisor, grant #1 may not hand out that profile"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			at := now
			if tc.req.User == "bob" {
				at = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
			}
			got := enforce.NewAnswer(tc.req, enforce.Decide(snap, &tc.req, at)).Explain()
			if got != tc.want {
				t.Errorf("Explain =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	t.Run("every reason has an explanation", func(t *testing.T) {
		for _, r := range enforce.Reasons() {
			if r == enforce.ReasonGranted {
				continue // never a denial
			}
			resp := enforce.Answer{Decision: "deny", Reason: r.String(), User: "u", Action: "monitor.listen"}
			if strings.HasSuffix(resp.Explain(), "no grant allows it") {
				t.Errorf("reason %s falls back to the generic explanation", r)
			}
		}
	})
}
