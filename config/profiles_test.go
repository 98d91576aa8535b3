package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// MustParseProfiles parses data or fails the test with every error.
func MustParseProfiles(tb testing.TB, name string, data []byte) enforce.Policy {
	tb.Helper()
	p, err := ParseProfiles(name, data)
	if err != nil {
		tb.Fatalf("ParseProfiles(%s):\n%v", name, err)
	}
	return p
}

// MustReadFile reads a fixture or fails the test.
func MustReadFile(tb testing.TB, path string) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// mustLoc loads a time zone or fails the test.
func mustLoc(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}

// normalizeWith makes two equal policies reflect.DeepEqual: time zones
// loaded separately are distinct pointers, so each is replaced by one
// canonical *time.Location per name, kept in locs.
func normalizeWith(p enforce.Policy, locs map[string]*time.Location) enforce.Policy {
	out := p
	out.Profiles = make([]enforce.Profile, len(p.Profiles))
	for i, pr := range p.Profiles {
		pr.Grants = append([]enforce.Grant(nil), pr.Grants...)
		for gi := range pr.Grants {
			if h := pr.Grants[gi].Hours; h != nil {
				w := *h
				name := "UTC"
				if w.Location != nil {
					name = w.Location.String()
				}
				if locs[name] == nil {
					locs[name] = w.Location
				}
				w.Location = locs[name]
				pr.Grants[gi].Hours = &w
			}
		}
		out.Profiles[i] = pr
	}
	return out
}

// policiesEqual compares two policies, time zones by name.
func policiesEqual(a, b enforce.Policy) bool {
	locs := map[string]*time.Location{}
	return reflect.DeepEqual(normalizeWith(a, locs), normalizeWith(b, locs))
}

// mustReadBack checks that out, a profiles file written from want, parses
// back as want.
func mustReadBack(tb testing.TB, out []byte, want enforce.Policy) {
	tb.Helper()
	back, err := ParseProfiles("written.yaml", out)
	if err != nil {
		tb.Fatalf("the written file does not parse: %v\n%s", err, out)
	}
	if !policiesEqual(back, want) {
		tb.Fatalf("the written file reads back as another policy\n got: %+v\nwant: %+v\n%s", back, want, out)
	}
}

func assertPolicyEqual(t *testing.T, got, want enforce.Policy) {
	t.Helper()
	if !policiesEqual(got, want) {
		t.Errorf("policy mismatch\n got: %+v\nwant: %+v", got, want)
	}
}

func TestParseProfilesDesignExample(t *testing.T) {
	got := MustParseProfiles(t, "design.yaml", MustReadFile(t, "testdata/design.yaml"))
	assigned := enforce.Scope{Kind: enforce.ScopeAssigned}
	var days [7]bool
	for d := time.Monday; d <= time.Friday; d++ {
		days[d] = true
	}
	want := enforce.Policy{
		Profiles: []enforce.Profile{
			{
				Name: "supervisor-with-recording",
				Grants: []enforce.Grant{
					{
						Actions: enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge,
							enforce.RecordingStart, enforce.RecordingStop, enforce.RecordingPause,
							enforce.RecordingResume, enforce.RecordingPlayback),
						Scopes: [4]enforce.Scope{enforce.DimQueues: assigned},
					},
					{
						Actions:  enforce.NewActionSet(enforce.ProfileAssign),
						Scopes:   [4]enforce.Scope{enforce.DimQueues: assigned},
						Profiles: []string{"teacher"},
					},
				},
			},
			{
				Name: "teacher",
				Grants: []enforce.Grant{{
					Actions:        enforce.NewActionSet(enforce.RecordingPlayback),
					Scopes:         [4]enforce.Scope{enforce.DimQueues: assigned},
					RecordedWithin: 720 * time.Hour,
					Hours:          &enforce.Weekly{Days: days, From: 8 * 60, To: 18 * 60, Location: mustLoc(t, "Europe/Paris")},
				}},
			},
		},
		Users: []enforce.User{
			{ID: "alice", Profile: "supervisor-with-recording", Queues: []string{"sales", "support"},
				Teams: []string{"team-a"}, Identities: []string{"PJSIP/1001", "1001"}},
			{ID: "bob", Profile: "teacher", Queues: []string{"sales"},
				ValidFrom:  time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
				ValidUntil: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
			{ID: "dave", Teams: []string{"team-a"}},
		},
		Protected: enforce.Protected{Users: []string{"ceo"}, Queues: []string{"hr-hotline"}},
	}
	assertPolicyEqual(t, got, want)
}

func TestExampleFileDecisions(t *testing.T) {
	p := MustParseProfiles(t, "profiles.yaml", MustReadFile(t, "../deploy/examples/profiles.yaml"))
	snap, err := enforce.NewSnapshot(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Monday 23 November 2026, 10:00 in Paris.
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		req    enforce.Request
		at     time.Time
		allow  bool
		reason enforce.Reason
	}{
		{"alice listens on her queue", enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "sales", Agent: "agent2001"}, now, true, enforce.ReasonGranted},
		{"erin may listen on sales", enforce.Request{User: "erin", Action: enforce.MonitorListen, Queue: "sales", Agent: "agent2001"}, now, true, enforce.ReasonGranted},
		{"erin may not escalate to barge", enforce.Request{User: "erin", Action: enforce.MonitorBarge, Queue: "sales", Agent: "agent2001"}, now, false, enforce.ReasonActionNotGranted},
		{"carol may not record", enforce.Request{User: "carol", Action: enforce.RecordingStart, Queue: "support"}, now, false, enforce.ReasonActionNotGranted},
		{"carol is out of scope on sales", enforce.Request{User: "carol", Action: enforce.MonitorListen, Queue: "sales"}, now, false, enforce.ReasonOutOfScope},
		{"nobody monitors the ceo, not even admin", enforce.Request{User: "admin", Action: enforce.MonitorListen, Agent: "ceo"}, now, false, enforce.ReasonProtectedTarget},
		{"the hr hotline is protected", enforce.Request{User: "admin", Action: enforce.MonitorListen, Queue: "hr-hotline"}, now, false, enforce.ReasonProtectedTarget},
		{"admin listens to a direct call", enforce.Request{User: "admin", Action: enforce.MonitorListen, Agent: "agent2003"}, now, true, enforce.ReasonGranted},
		{"bob plays back a recent recording in office hours", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales", RecordedAt: now.Add(-24 * time.Hour)}, now, true, enforce.ReasonGranted},
		{"teacher outside period is denied", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales", RecordedAt: now.Add(-24 * time.Hour)}, time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC), false, enforce.ReasonOutsideWindow},
		{"dave has no profile", enforce.Request{User: "dave", Action: enforce.MonitorListen, Queue: "sales"}, now, false, enforce.ReasonNoProfile},
		{"alice may make bob a teacher on sales", enforce.Request{User: "alice", Action: enforce.ProfileAssign, AssignProfile: "teacher", AssignQueues: []string{"sales"}}, now, true, enforce.ReasonGranted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := enforce.Decide(snap, &tt.req, tt.at)
			if d.Allow != tt.allow || d.Reason != tt.reason {
				t.Errorf("got %s/%s, want allow=%v/%s", d.Verdict(), d.Reason, tt.allow, tt.reason)
			}
		})
	}
	t.Run("lab agent channels resolve to their user", func(t *testing.T) {
		if u, ok := snap.ResolveIdentity("Local/2001@cw-agent-00000001;1"); !ok || u != "agent2001" {
			t.Errorf("ResolveIdentity = %q, %v; want agent2001", u, ok)
		}
		if u, ok := snap.ResolveIdentity("PJSIP/1003-0000002a"); !ok || u != "erin" {
			t.Errorf("ResolveIdentity = %q, %v; want erin", u, ok)
		}
	})
}

func TestParseProfilesErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		// want is the exact "file:line: field" prefix of one error, and
		// msg a part of its message.
		want, msg string
	}{
		{"unknown top-level field", "version: 1\nprofile: []\n",
			"t.yaml:2: profile", "unknown field (want one of version, profiles, users, protected)"},
		{"unknown profile field", "version: 1\nprofiles:\n  - name: p\n    colour: red\n",
			"t.yaml:4: profiles[0].colour", "unknown field"},
		{"unknown grant field", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        queue: [sales]\n",
			"t.yaml:6: profiles[0].grants[0].queue", "unknown field"},
		{"unknown hours field", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        hours: {from: \"08:00\", to: \"09:00\", zone: UTC}\n",
			"t.yaml:6: profiles[0].grants[0].hours.zone", "unknown field"},
		{"unknown user field", "version: 1\nusers:\n  - id: u\n    phone: 1001\n",
			"t.yaml:4: users[0].phone", "unknown field"},
		{"unknown protected field", "version: 1\nprotected:\n  agents: [x]\n",
			"t.yaml:3: protected.agents", "unknown field"},
		{"unknown action lists the valid ones", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen,\n                  monitor.spy]\n",
			"t.yaml:6: profiles[0].grants[0].actions[1]", `unknown action "monitor.spy" (want one of monitor.listen, monitor.whisper`},
		{"user references an unknown profile", "version: 1\nusers:\n  - id: u\n    profile: ghost\n",
			"t.yaml:4: users[0].profile", `unknown profile "ghost"`},
		{"grant delegates an unknown profile", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [profile.assign]\n        profiles: [p, ghost]\n",
			"t.yaml:6: profiles[0].grants[0].profiles[1]", `unknown profile "ghost" (defined: p)`},
		{"duplicate profile names the first", "version: 1\nprofiles:\n  - name: p\n  - name: q\n  - name: p\n",
			"t.yaml:5: profiles[2].name", `profile "p" already defined at line 3`},
		{"duplicate user id names the first", "version: 1\nusers:\n  - id: u\n  - id: u\n",
			"t.yaml:4: users[1].id", `user "u" already defined at line 3`},
		{"duplicate identity names its owner", "version: 1\nusers:\n  - id: u\n    identities: [PJSIP/1001]\n  - id: v\n    identities: [\"9\", PJSIP/1001]\n",
			"t.yaml:6: users[1].identities[1]", `identity "PJSIP/1001" already belongs to user "u" at line 4`},
		{"identity listed twice by one user", "version: 1\nusers:\n  - id: u\n    identities: [\"1001\", 1001]\n",
			"t.yaml:4: users[0].identities[1]", `listed twice`},
		{"bad duration", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [recording.playback]\n        recorded_within: 30days\n",
			"t.yaml:6: profiles[0].grants[0].recorded_within", `invalid duration "30days"`},
		{"user id with CR LF", "version: 1\nusers:\n  - id: \"alice\\r\\nallow\"\n",
			"t.yaml:3: users[0].id", `invalid id: "alice\r\nallow" has U+000D`},
		{"user id with a NUL", "version: 1\nusers:\n  - id: \"ali\\0ce\"\n",
			"t.yaml:3: users[0].id", `invalid id`},
		{"profile name with ESC", "version: 1\nprofiles:\n  - name: \"\\e[31mred\"\n",
			"t.yaml:3: profiles[0].name", `U+001B`},
		{"profile name with a bidi override", "version: 1\nprofiles:\n  - name: \"p\\u202Eq\"\n",
			"t.yaml:3: profiles[0].name", `U+202E`},
		{"user id with a trailing space", "version: 1\nusers:\n  - id: \"alice \"\n",
			"t.yaml:3: users[0].id", `U+0020`},
		{"queue name with a leading space", "version: 1\nusers:\n  - id: u\n    queues: [\" sales\"]\n",
			"t.yaml:4: users[0].queues[0]", `U+0020`},
		{"identity with LF", "version: 1\nusers:\n  - id: u\n    identities: [\"PJSIP/1\\n\"]\n",
			"t.yaml:4: users[0].identities[0]", `U+000A`},
		{"scope value with a tab", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        queues: [\"a\\tb\"]\n",
			"t.yaml:6: profiles[0].grants[0].queues[0]", `U+0009`},
		{"protected user with CR", "version: 1\nprotected:\n  users: [\"ceo\\r\"]\n",
			"t.yaml:3: protected.users[0]", `U+000D`},
		{"user id too long", "version: 1\nusers:\n  - id: " + strings.Repeat("a", enforce.MaxIDLen+1) + "\n",
			"t.yaml:3: users[0].id", `257 bytes long (at most 256)`},
		{"zero duration", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [recording.playback]\n        recorded_within: 0s\n",
			"t.yaml:6: profiles[0].grants[0].recorded_within", `must be positive`},
		{"max_duration not a string", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        max_duration: [30m]\n",
			"t.yaml:6: profiles[0].grants[0].max_duration", `expected`},
		{"max_duration without monitor or recording.start", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [recording.playback]\n        max_duration: 30m\n",
			"t.yaml:6: profiles[0].grants[0].max_duration", `only meaningful when actions include a monitor action or recording.start`},
		{"max_pause without recording.pause", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen, recording.start]\n        max_pause: 2m\n",
			"t.yaml:6: profiles[0].grants[0].max_pause", `only meaningful when actions include recording.pause`},
		{"bad time zone", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        hours: {from: \"08:00\", to: \"18:00\",\n                tz: Mars/Olympus}\n",
			"t.yaml:7: profiles[0].grants[0].hours.tz", `unknown time zone "Mars/Olympus"`},
		{"host-dependent time zone", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        hours: {from: \"08:00\", to: \"18:00\", tz: Local}\n",
			"t.yaml:6: profiles[0].grants[0].hours.tz", `Local depends on the host`},
		{"user window ends before it starts", "version: 1\nusers:\n  - id: u\n    valid_from: 2026-12-01T00:00:00Z\n    valid_until: 2026-11-01T00:00:00Z\n",
			"t.yaml:5: users[0].valid_until", `must be after valid_from (2026-12-01T00:00:00Z)`},
		{"empty user window", "version: 1\nusers:\n  - id: u\n    valid_from: 2026-12-01T00:00:00Z\n    valid_until: 2026-12-01T00:00:00Z\n",
			"t.yaml:5: users[0].valid_until", `must be after valid_from`},
		{"grant window ends before it starts", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        valid_from: 2026-12-01T00:00:00Z\n        valid_until: 2026-11-01T00:00:00+01:00\n",
			"t.yaml:7: profiles[0].grants[0].valid_until", `must be after valid_from`},
		{"bad timestamp", "version: 1\nusers:\n  - id: u\n    valid_from: 2026-11-01\n",
			"t.yaml:4: users[0].valid_from", `invalid time "2026-11-01" (want RFC3339`},
		{"hours from equals to", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        hours: {from: \"08:00\", to: \"8:00\"}\n",
			"t.yaml:6: profiles[0].grants[0].hours.to", "must differ from `from`"},
		{"bad day", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        hours:\n          days: [mon, funday]\n          from: \"08:00\"\n          to: \"18:00\"\n",
			"t.yaml:7: profiles[0].grants[0].hours.days[1]", `unknown day "funday" (want mon, tue`},
		{"empty days", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        hours: {days: [], from: \"08:00\", to: \"18:00\"}\n",
			"t.yaml:6: profiles[0].grants[0].hours.days", `at least one day`},
		{"bad time of day", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        hours: {from: \"25:00\", to: \"18:00\"}\n",
			"t.yaml:6: profiles[0].grants[0].hours.from", `invalid time of day "25:00"`},
		{"24:00 is not a start", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        hours: {from: \"24:00\", to: \"06:00\"}\n",
			"t.yaml:6: profiles[0].grants[0].hours.from", `invalid time of day "24:00"`},
		{"hours need from and to", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        hours: {days: all, from: \"08:00\"}\n",
			"t.yaml:6: profiles[0].grants[0].hours.to", `required`},
		{"negative mask_digits", "version: 1\nprofiles:\n  - name: p\n    mask_digits: -4\n",
			"t.yaml:4: profiles[0].mask_digits", `must not be negative`},
		{"mask_digits not a number", "version: 1\nprofiles:\n  - name: p\n    mask_digits: four\n",
			"t.yaml:4: profiles[0].mask_digits", `expected an integer`},
		{"notify_target not a bool", "version: 1\nprofiles:\n  - name: p\n    notify_target: sometimes\n",
			"t.yaml:4: profiles[0].notify_target", `expected true or false`},
		{"missing version", "profiles: []\n",
			"t.yaml:1: version", "required"},
		{"empty file", "# nothing but a comment\n",
			"t.yaml:1: version", "required"},
		{"unsupported version", "version: 2\n",
			"t.yaml:1: version", "unsupported version 2 (want 1)"},
		{"version is not a number", "version: one\n",
			"t.yaml:1: version", "expected an integer"},
		{"empty actions", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: []\n",
			"t.yaml:5: profiles[0].grants[0].actions", "at least one action"},
		{"grant without actions", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - queues: all\n",
			"t.yaml:5: profiles[0].grants[0].actions", "required"},
		{"empty scope list", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        queues: []\n",
			"t.yaml:6: profiles[0].grants[0].queues", "empty list"},
		{"scope is neither list, all nor assigned", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        teams: everything\n",
			"t.yaml:6: profiles[0].grants[0].teams", `expected a list, all or assigned, got "everything"`},
		{"scope is a mapping", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        sites: {a: b}\n",
			"t.yaml:6: profiles[0].grants[0].sites", `got a mapping`},
		{"self is only for agents", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        queues: self\n",
			"t.yaml:6: profiles[0].grants[0].queues", `self is only valid for agents`},
		{"keyword inside a list", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        queues: [sales, all]\n",
			"t.yaml:6: profiles[0].grants[0].queues[1]", "write `queues: all`"},
		{"profiles without profile.assign", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        profiles: [p]\n",
			"t.yaml:6: profiles[0].grants[0].profiles", `only meaningful when actions include profile.assign`},
		{"profile.assign without profiles", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen, profile.assign]\n",
			"t.yaml:5: profiles[0].grants[0].actions", "profile.assign needs `profiles:`"},
		{"profile.assign with empty profiles", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [profile.assign]\n        profiles: []\n",
			"t.yaml:6: profiles[0].grants[0].profiles", "at least one profile"},
		{"identity is a mapping", "version: 1\nusers:\n  - id: u\n    identities: [PJSIP/1001, {ext: 1001}]\n",
			"t.yaml:4: users[0].identities[1]", "expected a string, got a mapping"},
		{"identity is a boolean", "version: 1\nusers:\n  - id: u\n    identities: [yes, true]\n",
			"t.yaml:4: users[0].identities[1]", `expected a string, got bool "true"; quote it`},
		{"identities is not a list", "version: 1\nusers:\n  - id: u\n    identities: PJSIP/1001\n",
			"t.yaml:4: users[0].identities", `expected a list, got "PJSIP/1001"`},
		{"profile without a name", "version: 1\nprofiles:\n  - grants: []\n",
			"t.yaml:3: profiles[0].name", "required"},
		{"user without an id", "version: 1\nusers:\n  - profile: x\n",
			"t.yaml:3: users[0].id", "required"},
		{"empty user id", "version: 1\nusers:\n  - id: \"\"\n",
			"t.yaml:3: users[0].id", "must not be empty"},
		{"profile is a list", "version: 1\nprofiles:\n  - [a, b]\n",
			"t.yaml:3: profiles[0]", "expected a mapping"},
		{"document is a list", "- version: 1\n",
			"t.yaml:1:", "expected a mapping"},
		{"duplicate key", "version: 1\nusers:\n  - id: u\n    queues: [a]\n    queues: [b]\n",
			"t.yaml:5: users[0].queues", "duplicate field (first at line 4)"},
		{"merge keys are refused", "version: 1\nusers:\n  - &u {id: u}\n  - <<: *u\n    id: v\n",
			"t.yaml:4: users[1]", "merge keys"},
		{"invalid YAML", "version: 1\nusers:\n  - id: u\n   queues: [a]\n",
			"t.yaml:2:", "invalid YAML"}, // yaml.v3 reports the enclosing block's line
		{"two documents", "version: 1\n---\nversion: 1\n",
			"t.yaml:2:", "only one YAML document"},
	}
	// Each limit refuses the same nonsense, on its own field.
	for _, l := range []struct{ field, action string }{{"max_duration", "monitor.listen"}, {"max_pause", "recording.pause"}} {
		for _, c := range []struct{ name, value, msg string }{
			{"negative", "-5m", "must be positive"},
			{"zero", "0s", "must be positive"},
			{"over a year", "367d", "exceeds a year"},
			{"over a year in hours", "8785h", "exceeds a year"},
			{"unparseable", "half an hour", `invalid duration "half an hour"`},
		} {
			tests = append(tests, struct {
				name      string
				yaml      string
				want, msg string
			}{c.name + " " + l.field,
				"version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [" + l.action + "]\n        " + l.field + ": " + c.value + "\n",
				"t.yaml:6: profiles[0].grants[0]." + l.field, c.msg})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProfiles("t.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; policy %+v", p)
			}
			if !reflect.DeepEqual(p, enforce.Policy{}) {
				t.Errorf("a bad file returned a policy: %+v", p)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			for _, fe := range errs {
				s := fe.Error()
				if strings.HasPrefix(s, tt.want) && strings.Contains(s, tt.msg) {
					return
				}
			}
			t.Errorf("no error %q ... %q in:\n%v", tt.want, tt.msg, err)
		})
	}
}

func TestParseProfilesReportsEveryErrorSorted(t *testing.T) {
	_, err := ParseProfiles("broken.yaml", MustReadFile(t, "testdata/broken.yaml"))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %T: %v", err, err)
	}
	want := []string{
		"broken.yaml:1: version:",
		"broken.yaml:4: profiles[0].colour:",
		"broken.yaml:6: profiles[0].grants[0].actions[1]:",
		"broken.yaml:7: profiles[0].grants[0].queues[0]:",
		"broken.yaml:8: profiles[0].grants[0].recorded_within:",
		"broken.yaml:9: profiles[0].grants[0].hours.days[1]:",
		"broken.yaml:9: profiles[0].grants[0].hours.from:",
		"broken.yaml:9: profiles[0].grants[0].hours.tz:",
		"broken.yaml:10: profiles[0].grants[1].actions:",
		"broken.yaml:12: profiles[0].grants[2].profiles:",
		"broken.yaml:12: profiles[0].grants[2].profiles[0]:",
		"broken.yaml:13: profiles[0].grants[2].teams:",
		"broken.yaml:15: profiles[0].grants[2].valid_until:",
		"broken.yaml:16: profiles[0].mask_digits:",
		"broken.yaml:17: profiles[1].name:",
		"broken.yaml:20: users[0].profile:",
		"broken.yaml:21: users[0].identities[1]:",
		"broken.yaml:21: users[0].identities[2]:",
		"broken.yaml:22: users[1].id:",
		"broken.yaml:23: users[1].identities[0]:",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, errs[i], w)
		}
	}
	t.Run("each error is a FieldError with its position", func(t *testing.T) {
		var fe *FieldError
		if !errors.As(err, &fe) || fe.File != "broken.yaml" || fe.Line != 1 || fe.Field != "version" {
			t.Errorf("errors.As gave %+v", fe)
		}
	})
}

func TestParseProfilesAccepts(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, p enforce.Policy)
	}{
		{"bare integer identities and ids are strings", "version: 1\nusers:\n  - id: 2001\n    identities: [1001, \"1002\", 0123]\n",
			func(t *testing.T, p enforce.Policy) {
				u := p.Users[0]
				if u.ID != "2001" || !reflect.DeepEqual(u.Identities, []string{"1001", "1002", "0123"}) {
					t.Errorf("got %+v", u)
				}
			}},
		{"self scope for agents", "version: 1\nprofiles:\n  - name: agent\n    grants:\n      - actions: [recording.pause]\n        agents: self\n",
			func(t *testing.T, p enforce.Policy) {
				if k := p.Profiles[0].Grants[0].Scopes[enforce.DimAgents].Kind; k != enforce.ScopeSelf {
					t.Errorf("kind = %v", k)
				}
			}},
		{"max_duration and max_pause per grant", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen, recording.start, recording.pause]\n        max_duration: 30m\n        max_pause: 2m\n      - actions: [monitor.barge]\n        max_duration: 1d\n",
			func(t *testing.T, p enforce.Policy) {
				g := p.Profiles[0].Grants
				if g[0].MaxDuration != 30*time.Minute || g[0].MaxPause != 2*time.Minute || g[1].MaxDuration != 24*time.Hour || g[1].MaxPause != 0 {
					t.Errorf("limits = %v %v, %v %v", g[0].MaxDuration, g[0].MaxPause, g[1].MaxDuration, g[1].MaxPause)
				}
			}},
		{"recorded_within in days", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [recording.playback]\n        recorded_within: 30d\n",
			func(t *testing.T, p enforce.Policy) {
				if d := p.Profiles[0].Grants[0].RecordedWithin; d != 30*24*time.Hour {
					t.Errorf("recorded_within = %v", d)
				}
			}},
		{"overnight hours, weekday shorthand, default UTC", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        hours: {days: weekdays, from: \"22:00\", to: \"06:00\"}\n",
			func(t *testing.T, p enforce.Policy) {
				h := p.Profiles[0].Grants[0].Hours
				want := [7]bool{false, true, true, true, true, true, false}
				if h.From != 22*60 || h.To != 6*60 || h.Days != want || h.Location != time.UTC {
					t.Errorf("hours = %+v", h)
				}
			}},
		{"days omitted means every day, 24:00 ends the day", "version: 1\nprofiles:\n  - name: p\n    grants:\n      - actions: [monitor.listen]\n        hours: {from: \"18:00\", to: \"24:00\", tz: America/New_York}\n",
			func(t *testing.T, p enforce.Policy) {
				h := p.Profiles[0].Grants[0].Hours
				all := [7]bool{true, true, true, true, true, true, true}
				if h.Days != all || h.To != 24*60 || h.Location.String() != "America/New_York" {
					t.Errorf("hours = %+v", h)
				}
			}},
		{"descriptions are ignored", "version: 1\nprofiles:\n  - name: p\n    description: Quality team.\nusers:\n  - id: u\n    description: Works nights.\n",
			func(t *testing.T, p enforce.Policy) {
				if len(p.Profiles) != 1 || len(p.Users) != 1 {
					t.Errorf("got %+v", p)
				}
			}},
		{"a profile without grants grants nothing", "version: 1\nprofiles:\n  - name: empty\n",
			func(t *testing.T, p enforce.Policy) {
				if p.Profiles[0].Grants != nil {
					t.Errorf("grants = %+v", p.Profiles[0].Grants)
				}
			}},
		{"aliases reuse a value", "version: 1\nprofiles:\n  - name: a\n    grants:\n      - actions: &acts [monitor.listen, monitor.whisper]\n  - name: b\n    grants:\n      - actions: *acts\n",
			func(t *testing.T, p enforce.Policy) {
				if p.Profiles[1].Grants[0].Actions != enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorWhisper) {
					t.Errorf("got %+v", p.Profiles[1])
				}
			}},
		{"times are normalised to UTC", "version: 1\nusers:\n  - id: u\n    valid_from: \"2026-11-01T01:00:00+01:00\"\n",
			func(t *testing.T, p enforce.Policy) {
				if vf := p.Users[0].ValidFrom; vf != time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) {
					t.Errorf("valid_from = %v", vf)
				}
			}},
		{"only a version", "version: 1\n",
			func(t *testing.T, p enforce.Policy) {
				if !reflect.DeepEqual(p, enforce.Policy{}) {
					t.Errorf("got %+v", p)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, MustParseProfiles(t, "t.yaml", []byte(tt.yaml)))
		})
	}
}

func TestParseProfilesAliasBomb(t *testing.T) {
	// A list of lists of aliases, profiles × grants × actions: millions of
	// nodes to walk from 60 kB.
	bomb := "version: 1\nprofiles:\n  - &p {name: p, grants: &g [&gr {actions: &acts [monitor.listen, monitor.listen, monitor.listen, monitor.listen, monitor.listen, monitor.listen, monitor.listen, monitor.listen]}"
	for i := 0; i < 200; i++ {
		bomb += ", *gr"
	}
	bomb += "]}\n"
	for i := 0; i < 5000; i++ {
		bomb += "  - *p\n"
	}
	start := time.Now()
	_, err := ParseProfiles("bomb.yaml", []byte(bomb))
	if err == nil {
		t.Fatal("an alias bomb parsed")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("parsing took %v", d)
	}
	if !strings.Contains(err.Error(), "through aliases") {
		t.Errorf("unexpected error: %.300s", err)
	}
}

func TestLoadProfilesMerges(t *testing.T) {
	t.Run("profiles and users split across two files", func(t *testing.T) {
		p, err := LoadProfiles("testdata/split/profiles.yaml", "testdata/split/users.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Profiles) != 2 || len(p.Users) != 2 || p.Users[0].Profile != "supervisor" {
			t.Errorf("got %+v", p)
		}
		if want := []string{"ceo", "cfo"}; !reflect.DeepEqual(p.Protected.Users, want) {
			t.Errorf("protected users = %v, want %v (concatenated, deduplicated)", p.Protected.Users, want)
		}
		if _, err := enforce.NewSnapshot(p, 0); err != nil {
			t.Error(err)
		}
	})
	t.Run("the users file alone has unknown profiles", func(t *testing.T) {
		_, err := LoadProfiles("testdata/split/users.yaml")
		if err == nil || !strings.Contains(err.Error(), `testdata/split/users.yaml:5: users[0].profile: unknown profile "supervisor"`) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("a conflict names both files", func(t *testing.T) {
		_, err := LoadProfiles("testdata/conflict/a.yaml", "testdata/conflict/b.yaml")
		for _, want := range []string{
			`testdata/conflict/b.yaml:3: profiles[0].name: profile "supervisor" already defined at testdata/conflict/a.yaml:3`,
			`testdata/conflict/b.yaml:5: users[0].id: user "alice" already defined at testdata/conflict/a.yaml:7`,
			`testdata/conflict/b.yaml:7: users[1].identities[0]: identity "1001" already belongs to user "alice" at testdata/conflict/a.yaml:9`,
		} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("missing %q in:\n%v", want, err)
			}
		}
	})
	t.Run("a file without version fails the load", func(t *testing.T) {
		_, err := LoadProfiles("testdata/split/profiles.yaml", "testdata/split/noversion.yaml")
		if err == nil || !strings.Contains(err.Error(), "testdata/split/noversion.yaml:1: version: required") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("an unreadable file names its path", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope.yaml")
		_, err := LoadProfiles("testdata/split/profiles.yaml", missing)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("no file is an error", func(t *testing.T) {
		if _, err := LoadProfiles(); err == nil {
			t.Error("no error")
		}
	})
}

func TestMarshalProfilesRoundTrip(t *testing.T) {
	for _, path := range []string{"testdata/design.yaml", "../deploy/examples/profiles.yaml", "testdata/split/profiles.yaml"} {
		t.Run(path, func(t *testing.T) {
			p := MustParseProfiles(t, path, MustReadFile(t, path))
			out, err := MarshalProfiles(p)
			if err != nil {
				t.Fatal(err)
			}
			back := MustParseProfiles(t, "marshalled", out)
			assertPolicyEqual(t, back, p)
		})
	}
	t.Run("every scope kind, window and option survives", func(t *testing.T) {
		p := enforce.Policy{
			Profiles: []enforce.Profile{{
				Name: "p", NotifyTarget: true, MaskDigits: 3,
				Grants: []enforce.Grant{{
					Actions: enforce.NewActionSet(enforce.RecordingStart, enforce.RecordingPause, enforce.ProfileAssign),
					Scopes: [4]enforce.Scope{
						{Kind: enforce.ScopeList, Values: []string{"q1", "all-hands", "007"}},
						{Kind: enforce.ScopeAll},
						{Kind: enforce.ScopeSelf},
						{Kind: enforce.ScopeAssigned},
					},
					Profiles:       []string{"p"},
					ValidFrom:      time.Date(2026, 1, 1, 0, 0, 0, 500, time.UTC),
					ValidUntil:     time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
					Hours:          &enforce.Weekly{Days: [7]bool{true, false, false, false, false, false, true}, From: 22 * 60, To: 24 * 60, Location: time.UTC},
					RecordedWithin: 90 * time.Minute,
					MaxDuration:    45 * time.Minute,
					MaxPause:       48 * time.Hour,
				}},
			}},
			Users:     []enforce.User{{ID: "1001", Profile: "p", Sites: []string{"true"}, Agents: []string{"a"}, Identities: []string{"1001", "null"}}},
			Protected: enforce.Protected{Queues: []string{"hr"}},
		}
		out, err := MarshalProfiles(p)
		if err != nil {
			t.Fatal(err)
		}
		back := MustParseProfiles(t, "marshalled", out)
		assertPolicyEqual(t, back, p)
	})
}
