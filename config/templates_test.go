package config_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
)

// The templates are tested by walking each seed table row by row: every row
// is a subtest named after the row's label in the seed, and every case in it
// a request to enforce.Decide against the template as parsed by
// config.ParseProfiles, with users the test attributes queues, teams, agents
// and validity windows to.

// testNow is the instant every case is decided at unless it says otherwise:
// a Monday morning inside the XiVO teacher's configured period.
var testNow = time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)

// The XiVO teacher's configured period, [periodStart, periodEnd).
var (
	periodStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	periodEnd   = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

// decideCase is one request and the decision the template must give it.
type decideCase struct {
	name   string
	req    enforce.Request
	at     time.Time // zero: testNow
	allow  bool
	reason enforce.Reason
	mask   int // expected Decision.MaskDigits
}

// when returns the case decided at t instead of testNow.
func (c decideCase) when(t time.Time) decideCase { c.at = t; return c }

// masked returns the case expecting the decision to carry n masked digits.
func (c decideCase) masked(n int) decideCase { c.mask = n; return c }

func allowed(name string, req enforce.Request) decideCase {
	return decideCase{name: name, req: req, allow: true, reason: enforce.ReasonGranted}
}

func denied(name string, reason enforce.Reason, req enforce.Request) decideCase {
	return decideCase{name: name, req: req, reason: reason}
}

// seedRow is one row of a seed table: its label as the seed writes it and
// the cases that show the template reproduces it.
type seedRow struct {
	label string
	cases []decideCase
}

// templateSuite is one template, the users and protected targets the test
// adds to it (templates hold profiles only) and its seed table's rows.
type templateSuite struct {
	template  string
	users     []enforce.User
	protected enforce.Protected
	rows      []seedRow
}

// suites maps every template name to its suite; TestTemplatesCoverEveryProfile
// checks that no embedded template lacks one.
func suites() map[string]func() templateSuite {
	return map[string]func() templateSuite{
		"xivo":       xivoSuite,
		"callrex":    callrexSuite,
		"hosted-pbx": hostedPBXSuite,
		"webex-cc":   webexCCSuite,
		"xcally":     xcallySuite,
	}
}

// mustTemplatePolicy parses the embedded template name through
// config.ParseProfiles, so the YAML itself is under test.
func mustTemplatePolicy(tb testing.TB, name string) enforce.Policy {
	tb.Helper()
	data, err := config.Template(name)
	if err != nil {
		tb.Fatalf("Template(%q): %v", name, err)
	}
	pol, err := config.ParseProfiles(name+".yaml", data)
	if err != nil {
		tb.Fatalf("ParseProfiles(%s.yaml): %v", name, err)
	}
	return pol
}

// mustSuiteSnapshot builds the snapshot of s's template plus s's users.
func mustSuiteSnapshot(tb testing.TB, s templateSuite) *enforce.Snapshot {
	tb.Helper()
	pol := mustTemplatePolicy(tb, s.template)
	if len(pol.Users) != 0 || len(pol.Protected.Users) != 0 || len(pol.Protected.Queues) != 0 {
		tb.Fatalf("template %s: holds users or protected targets; templates hold profiles only", s.template)
	}
	pol.Users = s.users
	pol.Protected = s.protected
	snap, err := enforce.NewSnapshot(pol, 1)
	if err != nil {
		tb.Fatalf("template %s: NewSnapshot: %v", s.template, err)
	}
	return snap
}

// runSuite decides every case of every row of s.
func runSuite(t *testing.T, s templateSuite) {
	t.Helper()
	snap := mustSuiteSnapshot(t, s)
	for _, row := range s.rows {
		t.Run(row.label, func(t *testing.T) {
			if len(row.cases) == 0 {
				t.Fatal("row has no case")
			}
			for _, c := range row.cases {
				t.Run(c.name, func(t *testing.T) {
					at := c.at
					if at.IsZero() {
						at = testNow
					}
					req := c.req
					d := enforce.Decide(snap, &req, at)
					if d.Allow != c.allow || d.Reason != c.reason {
						t.Fatalf("Decide(%+v) = %s/%s (profile %q, grant %d), want %s/%s",
							req, d.Verdict(), d.Reason, d.Profile, d.Grant, verdict(c.allow), c.reason)
					}
					if u, ok := snap.User(req.User); ok && d.Profile != u.Profile {
						t.Fatalf("decision profile %q, want the requester's %q", d.Profile, u.Profile)
					}
					if d.MaskDigits != c.mask {
						t.Fatalf("decision masks %d digits, want %d", d.MaskDigits, c.mask)
					}
				})
			}
		})
	}
}

func verdict(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

// exceptActions returns every action but the given ones.
func exceptActions(skip ...enforce.Action) []enforce.Action {
	var out []enforce.Action
	for _, a := range enforce.Actions() {
		if !slices.Contains(skip, a) {
			out = append(out, a)
		}
	}
	return out
}

// nothingAllowed denies every action to user with reason: the rows whose
// profile grants nothing. Requests carry every dimension so no deny is due
// to a missing value.
func nothingAllowed(user string, reason enforce.Reason, actions ...enforce.Action) []decideCase {
	var out []decideCase
	for _, a := range actions {
		out = append(out, denied(a.String()+" is denied", reason, enforce.Request{
			User: user, Action: a, Queue: "sales", Team: "team-a", Agent: "dave", Site: "paris",
			AssignProfile: "teacher",
		}))
	}
	return out
}

// ---------------------------------------------------------------- XiVO ----

func xivoSuite() templateSuite {
	L, W, B := enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge
	P := enforce.RecordingPlayback
	assign := func(user, profile string, queues ...string) enforce.Request {
		return enforce.Request{User: user, Action: enforce.ProfileAssign, Agent: "erin", AssignProfile: profile, AssignQueues: queues}
	}
	req := func(user string, a enforce.Action, queue, agent string) enforce.Request {
		return enforce.Request{User: user, Action: a, Queue: queue, Agent: agent}
	}
	var switchOwn, switchOther []decideCase
	for _, a := range []enforce.Action{enforce.RecordingStart, enforce.RecordingStop, enforce.RecordingPause, enforce.RecordingResume} {
		switchOwn = append(switchOwn, allowed("Recording switch: "+a.String()+" on an attributed queue is allowed", req("alice", a, "support", "dave")))
		switchOther = append(switchOther, denied("Recording switch: "+a.String()+" on another queue is out of scope", enforce.ReasonOutOfScope, req("alice", a, "billing", "erin")))
	}
	supWith := []decideCase{
		allowed("All on its queues: listen on an attributed queue is allowed", req("alice", L, "sales", "dave")),
		allowed("All on its queues: whisper on an attributed queue is allowed", req("alice", W, "sales", "dave")),
		allowed("All on its queues: barge on an attributed queue is allowed", req("alice", B, "support", "erin")),
		allowed("All on its queues: presence of an attributed queue is allowed", req("alice", enforce.PresenceView, "sales", "")),
		allowed("All on its queues: presence of an agent of its attributed group is allowed", req("alice", enforce.PresenceView, "", "dave")),
		denied("All on its queues: listen on another queue is out of scope", enforce.ReasonOutOfScope, req("alice", L, "billing", "dave")),
		denied("All on its queues: barge on a direct call with no queue is out of scope", enforce.ReasonOutOfScope, req("alice", B, "", "dave")),
		denied("All on its queues: presence of an agent of another group is out of scope", enforce.ReasonOutOfScope, req("alice", enforce.PresenceView, "", "erin")),
	}
	supWith = append(supWith, switchOwn...)
	supWith = append(supWith, switchOther...)
	supWith = append(supWith,
		allowed("Its queues' recordings: playback of an attributed queue's recording is allowed", req("alice", P, "sales", "dave")),
		denied("Its queues' recordings: playback of another queue's recording is out of scope", enforce.ReasonOutOfScope, req("alice", P, "billing", "erin")),
		denied("Its queues' recordings: export is not in the table", enforce.ReasonActionNotGranted, req("alice", enforce.RecordingExport, "sales", "dave")),
		denied("Its queues' recordings: delete is not in the table", enforce.ReasonActionNotGranted, req("alice", enforce.RecordingDelete, "sales", "dave")),
		allowed("Create/delete teachers: teacher on a subset of its queues is allowed", assign("alice", "teacher", "sales")),
		allowed("Create/delete teachers: teacher on all its queues is allowed", assign("alice", "teacher", "sales", "support")),
		denied("Create/delete teachers: teacher on another queue is out of scope", enforce.ReasonOutOfScope, assign("alice", "teacher", "sales", "billing")),
		denied("Create/delete teachers: administrator is not delegable", enforce.ReasonProfileNotDelegable, assign("alice", "administrator", "sales")),
		denied("Create/delete teachers: its own profile is not delegable", enforce.ReasonProfileNotDelegable, assign("alice", "supervisor-with-recording", "sales")),
	)

	supWithout := []decideCase{
		allowed("All on its queues: listen on an attributed queue is allowed", req("sam", L, "sales", "dave")),
		allowed("All on its queues: whisper on an attributed queue is allowed", req("sam", W, "sales", "dave")),
		allowed("All on its queues: barge on an attributed queue is allowed", req("sam", B, "sales", "erin")),
		allowed("All on its queues: presence of an agent of its attributed group is allowed", req("sam", enforce.PresenceView, "", "dave")),
		denied("All on its queues: listen on another queue is out of scope", enforce.ReasonOutOfScope, req("sam", L, "support", "dave")),
		denied("Recording N.A.: playback is not granted", enforce.ReasonActionNotGranted, req("sam", P, "sales", "dave")),
		denied("no teachers: assigning teacher is not granted", enforce.ReasonActionNotGranted, assign("sam", "teacher", "sales")),
	}
	for _, a := range []enforce.Action{enforce.RecordingStart, enforce.RecordingStop, enforce.RecordingPause, enforce.RecordingResume} {
		supWithout = append(supWithout, denied("No recording switch: "+a.String()+" is not granted", enforce.ReasonActionNotGranted, req("sam", a, "sales", "dave")))
	}

	teacher := []decideCase{
		allowed("Its queues' recordings: playback inside the period is allowed", req("bob", P, "sales", "dave")),
		allowed("During configured period: playback on the period's first instant is allowed", req("bob", P, "sales", "dave")).when(periodStart),
		denied("Its queues' recordings: playback of another queue's recording is out of scope", enforce.ReasonOutOfScope, req("bob", P, "support", "dave")),
		denied("During configured period: playback before the period is outside the window", enforce.ReasonOutsideWindow, req("bob", P, "sales", "dave")).when(periodStart.Add(-time.Second)),
		denied("During configured period: playback at the period's end is outside the window", enforce.ReasonOutsideWindow, req("bob", P, "sales", "dave")).when(periodEnd),
		denied("CC Manager No: listen is not granted", enforce.ReasonActionNotGranted, req("bob", L, "sales", "dave")),
		denied("CC Manager No: presence is not granted", enforce.ReasonActionNotGranted, req("bob", enforce.PresenceView, "sales", "dave")),
		denied("no recording switch: recording.start is not granted", enforce.ReasonActionNotGranted, req("bob", enforce.RecordingStart, "sales", "dave")),
		denied("no delegation: a teacher cannot assign teacher", enforce.ReasonActionNotGranted, assign("bob", "teacher", "sales")),
	}

	admin := []decideCase{
		allowed("All: listen on any queue is allowed", req("admin", L, "billing", "erin")),
		allowed("All: whisper on any queue is allowed", req("admin", W, "support", "dave")),
		allowed("All: barge on a direct call with no queue is allowed", req("admin", B, "", "erin")),
		allowed("All: presence of any queue is allowed", req("admin", enforce.PresenceView, "billing", "")),
		allowed("All: recording pause on any queue is allowed", req("admin", enforce.RecordingPause, "billing", "erin")),
		allowed("all recording: playback of any queue's recording is allowed", req("admin", P, "billing", "erin")),
		denied("All: a protected user is still out of reach", enforce.ReasonProtectedTarget, req("admin", L, "sales", "ceo")),
		denied("All: a protected queue is still out of reach", enforce.ReasonProtectedTarget, req("admin", L, "hr-hotline", "dave")),
		denied("all recording: export is not in the table", enforce.ReasonActionNotGranted, req("admin", enforce.RecordingExport, "sales", "dave")),
		denied("no delegation: teachers are attributed by supervisors", enforce.ReasonActionNotGranted, assign("admin", "teacher", "sales")),
	}

	noProfile := nothingAllowed("nina", enforce.ReasonActionNotGranted, enforce.Actions()...)
	noProfile = append(noProfile, denied("a user with no profile at all is denied", enforce.ReasonNoProfile, req("dave", L, "sales", "erin")))

	return templateSuite{
		template: "xivo",
		users: []enforce.User{
			{ID: "admin", Profile: "administrator"},
			{ID: "alice", Profile: "supervisor-with-recording", Queues: []string{"sales", "support"}, Teams: []string{"team-a"}},
			{ID: "sam", Profile: "supervisor-without-recording", Queues: []string{"sales"}, Teams: []string{"team-a"}},
			{ID: "bob", Profile: "teacher", Queues: []string{"sales"}, ValidFrom: periodStart, ValidUntil: periodEnd},
			{ID: "nina", Profile: "no-profile", Queues: []string{"sales"}, Teams: []string{"team-a"}},
			{ID: "dave", Teams: []string{"team-a"}},
			{ID: "erin", Teams: []string{"team-b"}},
			{ID: "ceo"},
		},
		protected: enforce.Protected{Users: []string{"ceo"}, Queues: []string{"hr-hotline"}},
		rows: []seedRow{
			{"Administrator", admin},
			{"Supervisor w/ Recording", supWith},
			{"Supervisor wo/ Recordings", supWithout},
			{"Teacher", teacher},
			{"No profile", noProfile},
		},
	}
}

// TestTemplateXiVO walks seed 000's "Profiles Definition" table.
func TestTemplateXiVO(t *testing.T) { runSuite(t, xivoSuite()) }

// ------------------------------------------------------------- CallRex ----

func callrexSuite() templateSuite {
	// Every row of the seed's table says "any Managed User", for all five
	// columns: each profile reaches the user's managed users (`agents:` on
	// its entry), Agent and Privileged User included. An agent the operator
	// lists as managing only itself reaches only its own calls.
	type column struct {
		label, user string
	}
	columns := []column{
		{"Agent", "ag"},
		{"Privileged User", "pu"},
		{"Administrator", "adm"},
		{"Limited Admin", "la"},
		{"Manager", "mg"},
	}
	// table is the seed's permission table, restricted to the rows
	// callwarden decides; marks has one byte per column, 'X' where the seed
	// has an X.
	table := []struct {
		label   string
		actions []enforce.Action
		marks   string
	}{
		{"View Live Phone State", []enforce.Action{enforce.PresenceView}, "XXXXX"},
		{"Initiate User Recording", []enforce.Action{enforce.RecordingStart, enforce.RecordingStop}, "XXXXX"},
		{"Pause User Recording", []enforce.Action{enforce.RecordingPause, enforce.RecordingResume}, "XXXXX"},
		{"Playback Recording", []enforce.Action{enforce.RecordingPlayback}, " XXXX"},
		{"Delete Recording", []enforce.Action{enforce.RecordingDelete}, "  XXX"},
		{"Export Recording", []enforce.Action{enforce.RecordingExport}, "  XXX"},
		{"Live Monitor", []enforce.Action{enforce.MonitorListen}, "  XXX"},
	}
	var rows []seedRow
	for _, r := range table {
		var cases []decideCase
		for i, col := range columns {
			for _, a := range r.actions {
				on := func(agent string) enforce.Request {
					return enforce.Request{User: col.user, Action: a, Agent: agent}
				}
				switch {
				case r.marks[i] != 'X':
					cases = append(cases, denied(col.label+": no X, "+a.String()+" is not granted", enforce.ReasonActionNotGranted, on("a1")))
				default:
					cases = append(cases,
						allowed(col.label+": X, "+a.String()+" on a managed user is allowed", on("a1")),
						denied(col.label+": X, "+a.String()+" on an unmanaged user is out of scope", enforce.ReasonOutOfScope, on("a3")))
				}
			}
		}
		if r.label == "Live Monitor" {
			// "Listen to calls ... as they happen": never whisper nor barge.
			for _, col := range columns[2:] {
				for _, a := range []enforce.Action{enforce.MonitorWhisper, enforce.MonitorBarge} {
					cases = append(cases, denied(col.label+": listen only, "+a.String()+" is not granted", enforce.ReasonActionNotGranted,
						enforce.Request{User: col.user, Action: a, Agent: "a1"}))
				}
			}
		}
		if r.marks[0] == 'X' {
			// An agent whose only managed user is itself reaches its own
			// calls and no colleague's.
			for _, a := range r.actions {
				cases = append(cases,
					allowed("Agent managing only itself: "+a.String()+" on its own calls is allowed",
						enforce.Request{User: "self", Action: a, Agent: "self"}),
					denied("Agent managing only itself: "+a.String()+" on a colleague is out of scope", enforce.ReasonOutOfScope,
						enforce.Request{User: "self", Action: a, Agent: "a1"}))
			}
		}
		rows = append(rows, seedRow{r.label, cases})
	}
	return templateSuite{
		template: "callrex",
		users: []enforce.User{
			{ID: "ag", Profile: "agent", Agents: []string{"a1"}},
			{ID: "pu", Profile: "privileged-user", Agents: []string{"a1", "pu"}},
			{ID: "self", Profile: "agent", Agents: []string{"self"}}, // manages only itself
			{ID: "adm", Profile: "administrator", Agents: []string{"a1", "a2"}},
			{ID: "la", Profile: "limited-admin", Agents: []string{"a1"}},
			{ID: "mg", Profile: "manager", Agents: []string{"a1", "a2"}},
			{ID: "a1"}, {ID: "a2"}, {ID: "a3"},
		},
		rows: rows,
	}
}

// TestTemplateCallRex walks seed 004's "Security Profiles" permission table.
func TestTemplateCallRex(t *testing.T) { runSuite(t, callrexSuite()) }

// ---------------------------------------------------------- hosted PBX ----

func hostedPBXSuite() templateSuite {
	pv := enforce.PresenceView
	req := func(user string, a enforce.Action, queue, agent string) enforce.Request {
		return enforce.Request{User: user, Action: a, Queue: queue, Agent: agent}
	}
	basicPrivileges := func(user string) []decideCase {
		return []decideCase{
			allowed("same privileges as a Basic User: its own calls are visible", req(user, pv, "", user)),
			denied("same privileges as a Basic User: a colleague's calls are out of scope", enforce.ReasonOutOfScope, req(user, pv, "", "a1")),
		}
	}
	noCallRights := func(user string) []decideCase {
		var out []decideCase
		for _, a := range []enforce.Action{enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge, enforce.RecordingStart, enforce.RecordingPlayback} {
			out = append(out, denied("no call rights: "+a.String()+" is not granted", enforce.ReasonActionNotGranted, req(user, a, "sales", "a1")))
		}
		return out
	}
	assign := func(user, profile string) enforce.Request {
		return enforce.Request{User: user, Action: enforce.ProfileAssign, Agent: "a1", AssignProfile: profile}
	}

	basic := []decideCase{
		allowed("view their call history: its own calls are visible", req("basic", pv, "", "basic")),
		denied("view their call history: a colleague's calls are out of scope", enforce.ReasonOutOfScope, req("basic", pv, "", "a1")),
		denied("view their call history: a queue's status is out of scope", enforce.ReasonOutOfScope, req("basic", pv, "sales", "")),
		denied("manage their extension: assigning a scope is not granted", enforce.ReasonActionNotGranted, assign("basic", "basic-user")),
	}
	basic = append(basic, noCallRights("basic")...)

	office := basicPrivileges("om")
	for _, p := range []string{"basic-user", "office-manager", "call-center-agent", "call-center-supervisor", "no-portal"} {
		office = append(office, allowed("view and edit all Users: assigning "+p+" is allowed", assign("om", p)))
	}
	office = append(office,
		allowed("view and edit all Users: assigning on any queue is allowed", enforce.Request{User: "om", Action: enforce.ProfileAssign, Agent: "a1", AssignProfile: "call-center-agent", AssignQueues: []string{"sales", "billing"}}),
		denied("view and edit all Users: a profile outside the scopes is not delegable", enforce.ReasonProfileNotDelegable, assign("om", "administrator")))
	office = append(office, noCallRights("om")...)

	agent := basicPrivileges("cca")
	agent = append(agent,
		allowed("view queues they are members of: a member queue's status is visible", req("cca", pv, "sales", "")),
		allowed("view queues they are members of: a call in a member queue is visible", req("cca", pv, "sales", "a1")),
		denied("view queues they are members of: another queue is out of scope", enforce.ReasonOutOfScope, req("cca", pv, "billing", "")),
		denied("log in and out of queues: assigning a scope is not granted", enforce.ReasonActionNotGranted, assign("cca", "call-center-agent")))
	agent = append(agent, noCallRights("cca")...)

	sup := []decideCase{
		allowed("same privileges as a Basic User: its own calls are visible", req("ccs", pv, "", "ccs")),
		allowed("view all queues they have access to: its queue is visible", req("ccs", pv, "sales", "")),
		allowed("see the systems call activity: any queue is visible", req("ccs", pv, "billing", "")),
		allowed("view all Agents with their status: any agent is visible", req("ccs", pv, "", "a1")),
		denied("managed by an admin or another Office Manager: assigning a scope is not granted", enforce.ReasonActionNotGranted, assign("ccs", "call-center-agent")),
	}
	sup = append(sup, noCallRights("ccs")...)

	noPortal := nothingAllowed("np", enforce.ReasonActionNotGranted, enforce.Actions()...)

	return templateSuite{
		template: "hosted-pbx",
		users: []enforce.User{
			{ID: "basic", Profile: "basic-user", Queues: []string{"sales"}},
			{ID: "om", Profile: "office-manager", Queues: []string{"sales"}},
			{ID: "cca", Profile: "call-center-agent", Queues: []string{"sales"}},
			{ID: "ccs", Profile: "call-center-supervisor", Queues: []string{"sales"}},
			{ID: "np", Profile: "no-portal", Queues: []string{"sales"}},
			{ID: "a1"}, {ID: "dave"},
		},
		rows: []seedRow{
			{"Basic User", basic},
			{"Office Manager", office},
			{"Call Center Agent", agent},
			{"Call Center Supervisor", sup},
			{"No Portal", noPortal},
		},
	}
}

// TestTemplateHostedPBX walks seed 001's list of user scopes.
func TestTemplateHostedPBX(t *testing.T) { runSuite(t, hostedPBXSuite()) }

// ------------------------------------------------------------ Webex CC ----

func webexCCSuite() templateSuite {
	// selected returns the Call Monitoring / Call Recording scope cases for
	// action a: "a selected queue, team, site, or agent", each alone enough,
	// and a call outside all four out of scope.
	// The agents' teams and sites come from their own entries (a1 team-a
	// lyon, a2 team-b lyon, a3 team-b paris, a9 team-z lyon); a request
	// claiming another site for them is refused.
	selected := func(user string, a enforce.Action) []decideCase {
		on := func(queue, agent string) enforce.Request {
			return enforce.Request{User: user, Action: a, Queue: queue, Agent: agent}
		}
		claimed := on("billing", "a2")
		claimed.Site = "paris"
		return []decideCase{
			allowed(a.String()+" on a selected queue is allowed", on("sales", "a2")),
			allowed(a.String()+" on an agent of a selected team is allowed", on("billing", "a1")),
			allowed(a.String()+" on an agent of a selected site is allowed", on("billing", "a3")),
			allowed(a.String()+" on a selected agent is allowed", on("billing", "a9")),
			denied(a.String()+" outside every selection is out of scope", enforce.ReasonOutOfScope, on("billing", "a2")),
			denied(a.String()+" claiming a selected site the agent is not at is refused", enforce.ReasonContextMismatch, claimed),
		}
	}
	notGranted := func(user string, actions ...enforce.Action) []decideCase {
		var out []decideCase
		for _, a := range actions {
			out = append(out, denied(a.String()+" is not granted", enforce.ReasonActionNotGranted,
				enforce.Request{User: user, Action: a, Queue: "sales", Agent: "a1"}))
		}
		return out
	}
	L, W, B, PV := enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge, enforce.PresenceView
	rec := []enforce.Action{enforce.RecordingStart, enforce.RecordingStop, enforce.RecordingPause, enforce.RecordingResume,
		enforce.RecordingPlayback, enforce.RecordingExport, enforce.RecordingDelete}
	join := func(parts ...[]decideCase) []decideCase {
		var out []decideCase
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	prefix := func(p string, cases []decideCase) []decideCase {
		out := make([]decideCase, len(cases))
		for i, c := range cases {
			c.name = p + ": " + c.name
			out[i] = c
		}
		return out
	}
	user := func(id, profile string) enforce.User {
		return enforce.User{ID: id, Profile: profile, Queues: []string{"sales"}, Teams: []string{"team-a"}, Sites: []string{"paris"}, Agents: []string{"a9"}}
	}
	return templateSuite{
		template: "webex-cc",
		users: []enforce.User{
			user("ms", "monitor-silent"),
			user("mw", "monitor-whisper"),
			user("mb", "monitor-barge"),
			user("mwb", "monitor-whisper-barge"),
			user("mr", "monitor-restricted"),
			user("cr", "call-recording"),
			user("rm", "recording-management"),
			{ID: "a1", Teams: []string{"team-a"}, Sites: []string{"lyon"}},
			{ID: "a2", Teams: []string{"team-b"}, Sites: []string{"lyon"}},
			{ID: "a3", Teams: []string{"team-b"}, Sites: []string{"paris"}},
			{ID: "a9", Teams: []string{"team-z"}, Sites: []string{"lyon"}},
		},
		rows: []seedRow{
			{"Call Monitoring", join(
				prefix("silently monitor", selected("ms", L)),
				prefix("select the call", selected("ms", PV)),
				prefix("no toggle", notGranted("ms", append([]enforce.Action{W, B, enforce.ProfileAssign}, rec...)...)))},
			{"Whisper Coach", join(
				prefix("speak to the agent", selected("mw", W)),
				prefix("still monitors", selected("mw", L)[:1]),
				prefix("Barge-In off", notGranted("mw", B)),
				prefix("no recording", notGranted("mw", rec...)))},
			{"Barge-In", join(
				prefix("join any call", selected("mb", B)),
				prefix("still monitors", selected("mb", L)[:1]),
				prefix("Whisper Coach off", notGranted("mb", W)),
				prefix("no recording", notGranted("mb", rec...)))},
			{"Whisper Coach and Barge-In", join(
				prefix("whisper", selected("mwb", W)),
				prefix("barge", selected("mwb", B)),
				prefix("listen", selected("mwb", L)),
				prefix("no recording", notGranted("mwb", rec...)))},
			{"Restricted Monitor Only", join(
				prefix("monitors what it asks for", selected("mr", L)),
				prefix("no view of the live calls", notGranted("mr", PV)),
				prefix("monitor only", notGranted("mr", W, B)),
				prefix("no recording", notGranted("mr", rec...)))},
			{"Call Recording", join(
				prefix("record any active call", selected("cr", enforce.RecordingStart)),
				prefix("for a duration", selected("cr", enforce.RecordingStop)),
				prefix("recording only", notGranted("cr", L, W, B, PV, enforce.RecordingPause, enforce.RecordingResume,
					enforce.RecordingPlayback, enforce.RecordingExport, enforce.RecordingDelete)))},
			{"Recording Management", join(
				prefix("play audio files", selected("rm", enforce.RecordingPlayback)),
				prefix("search and play only", notGranted("rm", L, W, B, PV, enforce.RecordingStart, enforce.RecordingStop,
					enforce.RecordingPause, enforce.RecordingResume, enforce.RecordingExport, enforce.RecordingDelete)))},
		},
	}
}

// TestTemplateWebexCC walks seed 002's Call Monitoring, Call Recording and
// Recording Management module settings.
func TestTemplateWebexCC(t *testing.T) { runSuite(t, webexCCSuite()) }

// -------------------------------------------------------------- XCALLY ----

func xcallySuite() templateSuite {
	type perm struct {
		label, user string
		allow       []enforce.Action
		mask        int
	}
	read := []enforce.Action{enforce.RecordingPlayback}
	edit := []enforce.Action{enforce.RecordingStart, enforce.RecordingStop, enforce.RecordingPause, enforce.RecordingResume}
	del := []enforce.Action{enforce.RecordingDelete}
	perms := []perm{
		{"Read", "r", read, 0},
		{"Read and Edit", "re", slices.Concat(read, edit), 0},
		{"Read and Delete", "rd", slices.Concat(read, del), 0},
		{"Read, Edit and Delete", "red", slices.Concat(read, edit, del), 0},
		{"Mask Sensitive Data", "rm", read, 4},
		{"Downloads: Voice Recordigs", "rdl", slices.Concat(read, []enforce.Action{enforce.RecordingExport}), 0},
	}
	var rows []seedRow
	for _, p := range perms {
		var cases []decideCase
		for _, a := range p.allow {
			cases = append(cases,
				allowed(a.String()+" on any queue is allowed", enforce.Request{User: p.user, Action: a, Queue: "billing", Agent: "a1"}).masked(p.mask),
				allowed(a.String()+" on a call with no queue is allowed", enforce.Request{User: p.user, Action: a, Agent: "a1"}).masked(p.mask),
				denied(a.String()+" on a protected queue is denied", enforce.ReasonProtectedTarget, enforce.Request{User: p.user, Action: a, Queue: "hr-hotline", Agent: "a1"}).masked(p.mask))
		}
		for _, a := range exceptActions(p.allow...) {
			cases = append(cases, denied(a.String()+" is not granted", enforce.ReasonActionNotGranted,
				enforce.Request{User: p.user, Action: a, Queue: "billing", Agent: "a1", AssignProfile: "read"}).masked(p.mask))
		}
		rows = append(rows, seedRow{p.label, cases})
	}
	return templateSuite{
		template: "xcally",
		users: []enforce.User{
			{ID: "r", Profile: "read"},
			{ID: "re", Profile: "read-edit"},
			{ID: "rd", Profile: "read-delete"},
			{ID: "red", Profile: "read-edit-delete"},
			{ID: "rm", Profile: "read-masked"},
			{ID: "rdl", Profile: "read-download"},
			{ID: "a1"},
		},
		protected: enforce.Protected{Queues: []string{"hr-hotline"}},
		rows:      rows,
	}
}

// TestTemplateXCALLY walks seed 003's permission types, Mask Sensitive Data
// and the voice-recordings download.
func TestTemplateXCALLY(t *testing.T) { runSuite(t, xcallySuite()) }

// TestTemplateXCALLYMaskHidesCallerDigits checks that the masked profile's
// decision carries enough to hide a caller number as XCALLY's "Mask
// Sensitive Data" does.
func TestTemplateXCALLYMaskHidesCallerDigits(t *testing.T) {
	snap := mustSuiteSnapshot(t, xcallySuite())
	d := enforce.Decide(snap, &enforce.Request{User: "rm", Action: enforce.RecordingPlayback, Queue: "sales"}, testNow)
	if !d.Allow {
		t.Fatalf("playback denied: %s", d.Reason)
	}
	if got, want := enforce.Mask("+33 1 23 45 67 89", d.MaskDigits), "+33 1 23 45 ** **"; got != want {
		t.Fatalf("Mask with the profile's digits = %q, want %q", got, want)
	}
}

// -------------------------------------------------------- every template --

// TestTemplatesCoverEveryProfile checks that every embedded template has a
// suite, parses, and that each of its profiles is the requester's profile
// in at least one row case, so no template profile goes untested.
func TestTemplatesCoverEveryProfile(t *testing.T) {
	all := suites()
	names := config.TemplateNames()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			mk, ok := all[name]
			if !ok {
				t.Fatalf("template %s has no row-by-row suite in templates_test.go", name)
			}
			s := mk()
			if s.template != name {
				t.Fatalf("suite for %s tests template %s", name, s.template)
			}
			pol := mustTemplatePolicy(t, name)
			if len(pol.Profiles) == 0 {
				t.Fatal("template defines no profile")
			}
			profileOf := make(map[string]string, len(s.users))
			for _, u := range s.users {
				profileOf[u.ID] = u.Profile
			}
			reached := make(map[string]bool)
			for _, row := range s.rows {
				for _, c := range row.cases {
					reached[profileOf[c.req.User]] = true
				}
			}
			for _, p := range pol.Profiles {
				if !reached[p.Name] {
					t.Errorf("profile %q is reached by no row test", p.Name)
				}
			}
		})
	}
	for name := range all {
		if !slices.Contains(names, name) {
			t.Errorf("suite %s has no embedded template", name)
		}
	}
}

// TestTemplatesParse checks every embedded template on its own: it parses,
// compiles without users, cites its seed in its header, holds no users, and
// survives `profiles export` (MarshalProfiles) unchanged.
func TestTemplatesParse(t *testing.T) {
	names := config.TemplateNames()
	if want := []string{"callrex", "hosted-pbx", "webex-cc", "xcally", "xivo"}; !slices.Equal(names, want) {
		t.Fatalf("TemplateNames() = %v, want %v", names, want)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data, err := config.Template(name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte("# callwarden template: ")) || !bytes.Contains(data, []byte("Reproduces seed 00")) {
				t.Error("header does not start with the template title and the seed it reproduces")
			}
			if !bytes.Contains(data, []byte("Out of scope")) {
				t.Error("header does not say which seed rows are out of scope")
			}
			pol := mustTemplatePolicy(t, name)
			if _, err := enforce.NewSnapshot(pol, 1); err != nil {
				t.Fatalf("NewSnapshot without users: %v", err)
			}
			out, err := config.MarshalProfiles(pol)
			if err != nil {
				t.Fatalf("MarshalProfiles: %v", err)
			}
			again, err := config.ParseProfiles(name+"-export.yaml", out)
			if err != nil {
				t.Fatalf("re-parsing the export: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(normalize(again), normalize(pol)) {
				t.Fatalf("export changes the template:\nparsed:   %+v\nexported: %+v", pol, again)
			}
		})
	}
}

// normalize makes empty and nil slices compare equal.
func normalize(p enforce.Policy) enforce.Policy {
	out := enforce.Policy{Profiles: make([]enforce.Profile, len(p.Profiles))}
	for i, pr := range p.Profiles {
		if len(pr.Grants) == 0 {
			pr.Grants = nil
		}
		out.Profiles[i] = pr
	}
	return out
}

// TestTemplateLookup checks the embedding API the CLI builds on.
func TestTemplateLookup(t *testing.T) {
	t.Run("a known template is returned as a private copy", func(t *testing.T) {
		a, err := config.Template("xivo")
		if err != nil {
			t.Fatal(err)
		}
		a[0] = 'X'
		b, err := config.Template("xivo")
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != '#' {
			t.Fatal("modifying a returned template changed the embedded one")
		}
	})
	for _, name := range []string{"", "nope", "xivo.yaml", "../config", "templates/xivo", `..\xivo`} {
		t.Run(fmt.Sprintf("unknown name %q is ErrUnknownTemplate", name), func(t *testing.T) {
			_, err := config.Template(name)
			if !errors.Is(err, config.ErrUnknownTemplate) {
				t.Fatalf("Template(%q) error = %v, want ErrUnknownTemplate", name, err)
			}
			if !strings.Contains(err.Error(), "xivo") {
				t.Fatalf("error %q does not list the known templates", err)
			}
		})
	}
	t.Run("Templates holds exactly the named templates", func(t *testing.T) {
		var files []string
		err := fs.WalkDir(config.Templates(), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, n := range config.TemplateNames() {
			want = append(want, n+".yaml")
		}
		if !slices.Equal(files, want) {
			t.Fatalf("Templates() files = %v, want %v", files, want)
		}
		for _, n := range config.TemplateNames() {
			data, err := fs.ReadFile(config.Templates(), n+".yaml")
			if err != nil {
				t.Fatal(err)
			}
			direct, _ := config.Template(n)
			if !bytes.Equal(data, direct) {
				t.Fatalf("Templates()/%s.yaml differs from Template(%q)", n, n)
			}
		}
	})
}
