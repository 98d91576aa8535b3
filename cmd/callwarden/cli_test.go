package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/callwarden/callwarden/enforce"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line in-process, with stdin and an environment
// given as a map.
func runCLI(tb testing.TB, stdin string, environ map[string]string, args ...string) result {
	tb.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return environ[k] }
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut, getenv, nil)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

const profilesFile = "testdata/profiles.yaml"

func TestCheckDecisions(t *testing.T) {
	// 2026-11-10 is a Tuesday; 10:00Z is 11:00 in Paris, inside the
	// teacher's hours and bob's period.
	const tuesday = "2026-11-10T10:00:00Z"
	cases := []struct {
		name     string
		args     []string
		code     int
		decision string
		reason   string
		grant    int // -1: omitted
	}{
		{"supervisor listening on an assigned queue is allowed",
			[]string{"--user", "alice", "--action", "monitor.listen", "--queue", "sales"}, 0, "allow", "granted", 0},
		{"unknown user is denied",
			[]string{"--user", "mallory", "--action", "monitor.listen", "--queue", "sales"}, 1, "deny", "unknown_user", -1},
		{"agent without profile is denied",
			[]string{"--user", "dave", "--action", "monitor.listen", "--queue", "sales"}, 1, "deny", "no_profile", -1},
		{"action no grant lists is denied",
			[]string{"--user", "alice", "--action", "recording.delete", "--queue", "sales"}, 1, "deny", "action_not_granted", -1},
		{"queue outside the assignment is denied",
			[]string{"--user", "alice", "--action", "monitor.listen", "--queue", "billing"}, 1, "deny", "out_of_scope", 0},
		{"teacher before its configured period is denied",
			[]string{"--user", "bob", "--action", "recording.playback", "--queue", "sales",
				"--at", "2026-10-20T10:00:00Z", "--recorded-at", "2026-10-15T10:00:00Z"}, 1, "deny", "outside_window", -1},
		{"teacher on a Saturday is denied",
			[]string{"--user", "bob", "--action", "recording.playback", "--queue", "sales",
				"--at", "2026-11-07T10:00:00Z", "--recorded-at", "2026-11-05T10:00:00Z"}, 1, "deny", "outside_window", 0},
		{"teacher in the evening is denied",
			[]string{"--user", "bob", "--action", "recording.playback", "--queue", "sales",
				"--at", "2026-11-10T17:30:00Z", "--recorded-at", "2026-11-05T10:00:00Z"}, 1, "deny", "outside_window", 0},
		{"teacher in hours on a recent recording is allowed",
			[]string{"--user", "bob", "--action", "recording.playback", "--queue", "sales",
				"--at", tuesday, "--recorded-at", "2026-11-05T10:00:00Z"}, 0, "allow", "granted", 0},
		{"protected queue is denied",
			[]string{"--user", "alice", "--action", "monitor.listen", "--queue", "hr-hotline"}, 1, "deny", "protected_target", -1},
		{"protected user is denied even on an assigned queue",
			[]string{"--user", "alice", "--action", "monitor.barge", "--queue", "sales", "--agent", "ceo"}, 1, "deny", "protected_target", -1},
		{"recording older than recorded_within is denied",
			[]string{"--user", "bob", "--action", "recording.playback", "--queue", "sales",
				"--at", tuesday, "--recorded-at", "2026-08-01T10:00:00Z"}, 1, "deny", "recording_too_old", 0},
		{"recording of unknown age is denied",
			[]string{"--user", "bob", "--action", "recording.playback", "--queue", "sales", "--at", tuesday}, 1, "deny", "recording_too_old", 0},
		{"handing out a profile the grant does not name is denied",
			[]string{"--user", "alice", "--action", "profile.assign", "--assign", "supervisor-with-recording", "--queue", "sales"},
			1, "deny", "profile_not_delegable", 1},
		{"handing out teacher on own queues is allowed",
			[]string{"--user", "alice", "--action", "profile.assign", "--assign", "teacher", "--queue", "sales", "--queue", "support"},
			0, "allow", "granted", 1},
		{"handing out teacher on a queue not owned is denied",
			[]string{"--user", "alice", "--action", "profile.assign", "--assign", "teacher", "--queue", "sales", "--queue", "billing"},
			1, "deny", "out_of_scope", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"check", "-f", profilesFile, "--output", "json"}, tc.args...)
			r := runCLI(t, "", nil, args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %s stderr %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("stderr not empty: %s", r.stderr)
			}
			var got enforce.Answer
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("decode %q: %v", r.stdout, err)
			}
			if got.Decision != tc.decision || got.Reason != tc.reason {
				t.Errorf("got %s/%s, want %s/%s (%s)", got.Decision, got.Reason, tc.decision, tc.reason, r.stdout)
			}
			switch {
			case tc.grant < 0 && got.Grant != nil:
				t.Errorf("grant = %d, want omitted", *got.Grant)
			case tc.grant >= 0 && (got.Grant == nil || *got.Grant != tc.grant):
				t.Errorf("grant = %v, want %d (%s)", got.Grant, tc.grant, r.stdout)
			}
		})
	}
}

func TestCheckOutput(t *testing.T) {
	t.Run("json output is the documented shape", func(t *testing.T) {
		r := runCLI(t, "", nil, "check", "-f", profilesFile, "--user", "alice", "--action", "monitor.listen",
			"--queue", "sales", "--output", "json")
		want := `{"decision":"allow","reason":"granted","profile":"supervisor-with-recording","grant":0,"user":"alice","action":"monitor.listen","target":{"queue":"sales"},"notify_target":true,"mask_digits":4}` + "\n"
		if r.code != 0 || r.stdout != want {
			t.Errorf("exit %d, stdout\n%s\nwant\n%s", r.code, r.stdout, want)
		}
	})
	t.Run("text output explains an allow", func(t *testing.T) {
		r := runCLI(t, "", nil, "check", "-f", profilesFile, "--user", "alice", "--action", "monitor.listen", "--queue", "sales")
		want := "allow: alice may monitor.listen on queue sales: profile supervisor-with-recording, grant #0; the target hears a tone; caller numbers masked (4 digits)\n"
		if r.code != 0 || r.stdout != want {
			t.Errorf("exit %d, stdout %q, want %q", r.code, r.stdout, want)
		}
	})
	t.Run("text output explains a deny", func(t *testing.T) {
		r := runCLI(t, "", nil, "check", "--file", profilesFile, "--user", "alice", "--action", "monitor.listen", "--queue", "billing")
		want := "deny (out_of_scope): alice may not monitor.listen on queue billing: profile supervisor-with-recording has grants for monitor.listen but none covers this target (closest: grant #0)\n"
		if r.code != 1 || r.stdout != want {
			t.Errorf("exit %d, stdout %q, want %q", r.code, r.stdout, want)
		}
	})
	t.Run("profiles can come from standard input", func(t *testing.T) {
		r := runCLI(t, "version: 1\nusers:\n  - id: zoe\n", nil, "check", "-f", "-", "--user", "zoe", "--action", "presence.view")
		if r.code != 1 || !strings.HasPrefix(r.stdout, "deny (no_profile)") {
			t.Errorf("exit %d, stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}

func TestCheckTakesTeamAndSiteFromThePolicy(t *testing.T) {
	const teams = "testdata/teams.yaml"
	cases := []struct {
		name, reason string
		code         int
		claimed      bool
		args         []string
	}{
		{"team claim contradicting the target's entry is refused", "context_mismatch", 1, false,
			[]string{"--user", "tess", "--action", "monitor.listen", "--agent", "erin", "--team", "team-a"}},
		{"team comes from the target's entry", "out_of_scope", 1, false,
			[]string{"--user", "tess", "--action", "monitor.listen", "--agent", "erin"}},
		{"site claim contradicting the target's entry is refused", "context_mismatch", 1, false,
			[]string{"--user", "sid", "--action", "monitor.listen", "--agent", "erin", "--site", "lyon"}},
		{"site comes from the target's entry", "granted", 0, false,
			[]string{"--user", "sid", "--action", "monitor.listen", "--agent", "dave"}},
		{"a claim is used for a target the policy does not describe, and said so", "granted", 0, true,
			[]string{"--user", "tess", "--action", "monitor.listen", "--agent", "ghost", "--team", "team-a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, "", nil, append([]string{"check", "-f", teams, "--output", "json"}, tc.args...)...)
			var got enforce.Answer
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("exit %d, decode %q: %v (stderr %s)", r.code, r.stdout, err, r.stderr)
			}
			if r.code != tc.code || got.Reason != tc.reason || got.ContextClaimed != tc.claimed {
				t.Errorf("exit %d reason %s claimed %v, want %d %s %v", r.code, got.Reason, got.ContextClaimed, tc.code, tc.reason, tc.claimed)
			}
			text := runCLI(t, "", nil, append([]string{"check", "-f", teams}, tc.args...)...)
			if note := strings.Contains(text.stdout, "note: the team/site given was used as claimed"); note != tc.claimed {
				t.Errorf("text output %q: note shown = %v, want %v", text.stdout, note, tc.claimed)
			}
		})
	}
}

func TestCheckBadInput(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		stderr string // prefix of the one line
	}{
		{"unknown action names the flag",
			[]string{"-f", profilesFile, "--user", "alice", "--action", "monitor.spy"},
			`callwarden: --action: unknown action "monitor.spy"`},
		{"bad --at names the flag",
			[]string{"-f", profilesFile, "--user", "alice", "--action", "monitor.listen", "--at", "tomorrow"},
			`callwarden: --at: "tomorrow" is not an RFC 3339 time`},
		{"bad --recorded-at names the flag",
			[]string{"-f", profilesFile, "--user", "bob", "--action", "recording.playback", "--recorded-at", "2026-11-31T00:00:00Z"},
			`callwarden: --recorded-at: `},
		{"missing --user is bad input",
			[]string{"-f", profilesFile, "--action", "monitor.listen"},
			"callwarden: --user: required"},
		{"profile.assign without --assign is bad input",
			[]string{"-f", profilesFile, "--user", "alice", "--action", "profile.assign", "--queue", "sales"},
			"callwarden: --assign: required"},
		{"missing -f is bad input",
			[]string{"--user", "alice", "--action", "monitor.listen"},
			"callwarden: check: -f FILE is required"},
		{"unknown output format is bad input",
			[]string{"-f", profilesFile, "--user", "alice", "--action", "monitor.listen", "--output", "yaml"},
			`callwarden: --output: "yaml", want text or json`},
		{"a profiles error names file, line and field",
			[]string{"-f", "testdata/broken.yaml", "--user", "alice", "--action", "monitor.listen"},
			`callwarden: testdata/broken.yaml:5: profiles[0].grants[0].actions[1]: unknown action "monitor.spy"`},
		{"several profiles errors print the first and count the rest",
			[]string{"-f", "testdata/broken-twice.yaml", "--user", "alice", "--action", "monitor.listen"},
			`callwarden: testdata/broken-twice.yaml:5: profiles[0].grants[0].actions[1]: unknown action "monitor.spy"`},
		{"a missing profiles file is bad input",
			[]string{"-f", "testdata/missing.yaml", "--user", "alice", "--action", "monitor.listen"},
			"callwarden: "},
		{"a user id with CR LF is refused, escaped, on one line",
			[]string{"-f", profilesFile, "--user", "alice\r\nallow: mallory", "--action", "monitor.listen"},
			`callwarden: --user: contains a control character`},
		{"a user id with a bidi override is refused escaped",
			[]string{"-f", profilesFile, "--user", "alice\u202e", "--action", "monitor.listen"},
			`callwarden: --user: invalid id: "alice\u202e" has U+202E`},
		{"an agent id with a space is refused",
			[]string{"-f", profilesFile, "--user", "alice", "--action", "monitor.listen", "--agent", "dave "},
			`callwarden: --agent: invalid id: "dave " has U+0020`},
		{"stdin mixed with files is bad input",
			[]string{"-f", "-", "-f", profilesFile, "--user", "alice", "--action", "monitor.listen"},
			"callwarden: -f -: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, "", nil, append([]string{"check"}, tc.args...)...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2; stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
			if !strings.HasPrefix(r.stderr, tc.stderr) {
				t.Errorf("stderr %q, want prefix %q", r.stderr, tc.stderr)
			}
			if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.HasSuffix(r.stderr, "\n") {
				t.Errorf("stderr has %d lines, want one: %q", n, r.stderr)
			}
		})
	}
	t.Run("the count of further problems points to validate", func(t *testing.T) {
		r := runCLI(t, "", nil, "check", "-f", "testdata/broken-twice.yaml", "--user", "alice", "--action", "monitor.listen")
		if !strings.HasSuffix(r.stderr, `(and 1 more; run "callwarden profiles validate")`+"\n") {
			t.Errorf("stderr %q", r.stderr)
		}
	})
}

func TestUsage(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no command prints usage and fails", nil, 2, "", "usage: callwarden"},
		{"unknown command prints usage and fails", []string{"spy"}, 2, "", `callwarden: unknown command "spy"`},
		{"unknown flag prints usage and fails", []string{"check", "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{"stray argument fails", []string{"check", "-f", profilesFile, "alice"}, 2, "", `callwarden check: unexpected argument "alice"`},
		{"help succeeds on stdout", []string{"help"}, 0, "usage: callwarden", ""},
		{"check -h succeeds", []string{"check", "-h"}, 0, "", "usage: callwarden check"},
		{"profiles without subcommand fails", []string{"profiles"}, 2, "", "callwarden: profiles: missing subcommand"},
		{"unknown profiles subcommand fails", []string{"profiles", "delete"}, 2, "", `callwarden: profiles: unknown subcommand "delete"`},
		{"version prints a version", []string{"version"}, 0, "callwarden ", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, "", nil, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, tc.code, r.stderr)
			}
			if !strings.HasPrefix(r.stdout, tc.stdout) || (tc.stdout == "" && r.stdout != "") {
				t.Errorf("stdout %q, want prefix %q", r.stdout, tc.stdout)
			}
			if !strings.HasPrefix(r.stderr, tc.stderr) || (tc.stderr == "" && r.stderr != "") {
				t.Errorf("stderr %q, want prefix %q", r.stderr, tc.stderr)
			}
		})
	}
	t.Run("usage after an unknown flag goes to stderr", func(t *testing.T) {
		r := runCLI(t, "", nil, "serve", "--bogus")
		if r.code != 2 || !strings.Contains(r.stderr, "usage: callwarden serve") {
			t.Errorf("exit %d stderr %q", r.code, r.stderr)
		}
	})
}

func TestProfilesValidate(t *testing.T) {
	t.Run("a valid file is summarised", func(t *testing.T) {
		r := runCLI(t, "", nil, "profiles", "validate", "-f", profilesFile)
		if r.code != 0 || r.stdout != "ok: 2 profiles, 4 users\n" || r.stderr != "" {
			t.Errorf("got %+v", r)
		}
	})
	t.Run("every problem is printed, one per line", func(t *testing.T) {
		r := runCLI(t, "", nil, "profiles", "validate", "--file", "testdata/broken-twice.yaml")
		want := []string{
			`testdata/broken-twice.yaml:5: profiles[0].grants[0].actions[1]: unknown action "monitor.spy"`,
			`testdata/broken-twice.yaml:9: users[0].profile: unknown profile "nobody"`,
		}
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if r.code != 2 || r.stdout != "" || len(lines) != len(want) {
			t.Fatalf("got %+v", r)
		}
		for i, w := range want {
			if !strings.HasPrefix(lines[i], w) {
				t.Errorf("line %d = %q, want prefix %q", i, lines[i], w)
			}
		}
	})
	t.Run("files are required", func(t *testing.T) {
		if r := runCLI(t, "", nil, "profiles", "validate"); r.code != 2 {
			t.Errorf("got %+v", r)
		}
	})
}

func TestServeBadInput(t *testing.T) {
	cases := []struct {
		name    string
		environ map[string]string
		args    []string
		stderr  string
	}{
		{"no profiles files", nil, []string{"--listen", "127.0.0.1:0"}, "callwarden: serve: no profiles files"},
		{"a broken profiles file names file, line and field", nil,
			[]string{"-f", "testdata/broken.yaml", "--listen", "127.0.0.1:0"},
			"callwarden: testdata/broken.yaml:5: profiles[0].grants[0].actions[1]: "},
		{"an invalid flag value fails validation", nil,
			[]string{"-f", profilesFile, "--listen", "127.0.0.1:0", "--log-level", "chatty"},
			"callwarden: config: log.level: "},
		{"a malformed environment variable is named", map[string]string{"CALLWARDEN_HTTP_READ_TIMEOUT": "soon"},
			[]string{"-f", profilesFile, "--listen", "127.0.0.1:0"},
			"callwarden: environment: CALLWARDEN_HTTP_READ_TIMEOUT: "},
		{"a missing config file is bad input", nil,
			[]string{"-f", profilesFile, "--config", "testdata/missing-config.yaml"},
			"callwarden: --config: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, "", tc.environ, append([]string{"serve"}, tc.args...)...)
			if r.code != 2 || !strings.HasPrefix(r.stderr, tc.stderr) {
				t.Errorf("exit %d stderr %q, want 2 and prefix %q", r.code, r.stderr, tc.stderr)
			}
			if strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", r.stderr)
			}
		})
	}
}
