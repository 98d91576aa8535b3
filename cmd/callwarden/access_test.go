package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
)

func TestWhoCan(t *testing.T) {
	ctx := context.Background()
	file := []string{"-f", "testdata/admin.yaml"}
	t.Run("lists every user allowed on a queue, with profile and grant", func(t *testing.T) {
		r := runCLI(t, "", nil, append([]string{"who-can", "monitor.listen", "--queue", "sales"}, file...)...)
		if r.code != 0 {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "monitor.listen on queue sales at ") || !strings.Contains(lines[0], "2 user(s)") ||
			!strings.Contains(lines[1], "alice") || !strings.Contains(lines[1], "profile supervisor-with-recording, grant #0") ||
			!strings.Contains(lines[2], "root") || !strings.Contains(lines[2], "profile administrator, grant #0") {
			t.Errorf("who-can output:\n%s", r.stdout)
		}
	})
	t.Run("json lists the users with the target and instant", func(t *testing.T) {
		r := runCLI(t, "", nil, append([]string{"who-can", "recording.playback", "--queue", "support", "--agent", "dave",
			"--at", "2026-11-23T09:00:00Z", "--output", "json"}, file...)...)
		var ans enforce.WhoCanAnswer
		if err := json.Unmarshal([]byte(r.stdout), &ans); err != nil || r.code != 0 {
			t.Fatalf("exit %d: %v: %s %s", r.code, err, r.stdout, r.stderr)
		}
		want := []enforce.Access{{User: "alice", Profile: "supervisor-with-recording", Grant: 0}, {User: "root", Profile: "administrator", Grant: 0}}
		if !slices.Equal(ans.Users, want) || ans.Target.Queue != "support" || ans.Target.Agent != "dave" || ans.At.Format(time.RFC3339) != "2026-11-23T09:00:00Z" {
			t.Errorf("answer %+v, want users %+v", ans, want)
		}
	})
	t.Run("nobody may listen to a protected agent", func(t *testing.T) {
		r := runCLI(t, "", nil, append([]string{"who-can", "monitor.listen", "--queue", "sales", "--agent", "ceo"}, file...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "0 user(s) allowed") {
			t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("a recording is reviewed with its queue, agent and age from the store", func(t *testing.T) {
		st := seededStore(t)
		if err := st.SaveRecording(ctx, enforce.Recording{ID: "rec1", Name: "rec1", Target: "dave", Queue: "support",
			StartedBy: "alice", StartedAt: time.Now().Add(-time.Hour), State: enforce.RecordingStopped}); err != nil {
			t.Fatal(err)
		}
		r := runStore(t, ctx, st, "", append([]string{"who-can", "recording.playback", "--recording", "rec1"}, storeArgs...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "on queue support, agent dave") || !strings.Contains(r.stdout, "2 user(s)") {
			t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		r = runStore(t, ctx, st, "", append([]string{"who-can", "recording.playback", "--recording", "nope"}, storeArgs...)...)
		if r.code != 2 || !strings.Contains(r.stderr, `no recording "nope"`) {
			t.Errorf("unknown recording: exit %d stderr %q", r.code, r.stderr)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no target", []string{"who-can", "monitor.listen"}, "give a target"},
		{"an unknown action", []string{"who-can", "monitor.spy", "--queue", "sales"}, "unknown action"},
		{"profile.assign", []string{"who-can", "profile.assign", "--queue", "sales"}, "rights"},
		{"a recording with an agent", []string{"who-can", "recording.playback", "--recording", "r", "--agent", "dave"}, "give it alone"},
		{"a bad --at", []string{"who-can", "monitor.listen", "--queue", "sales", "--at", "monday"}, "--at"},
		{"no action", []string{"who-can", "--queue", "sales"}, "want ACTION"},
	} {
		t.Run(tc.name+" is bad input", func(t *testing.T) {
			r := runCLI(t, "", nil, append(tc.args, file...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d stderr %q, want 2 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
}

func TestRights(t *testing.T) {
	file := []string{"-f", "testdata/admin.yaml"}
	t.Run("a supervisor's rights name its queues per action", func(t *testing.T) {
		r := runCLI(t, "", nil, append([]string{"rights", "alice", "--at", "2026-11-23T09:00:00Z"}, file...)...)
		if r.code != 0 {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
		for _, want := range []string{
			"alice at 2026-11-23T09:00:00Z: profile supervisor-with-recording",
			"monitor.barge       grant #0: queues sales, support (assigned)",
			"profile.assign      grant #1: queues sales, support (assigned); hands out teacher",
			"except protected users [ceo]",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("rights lack %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("json is the engine's description", func(t *testing.T) {
		r := runCLI(t, "", nil, append([]string{"rights", "root", "--output", "json"}, file...)...)
		var got enforce.Rights
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
			t.Fatalf("exit %d: %v: %s", r.code, err, r.stdout)
		}
		if got.Profile != "administrator" || len(got.Actions) != 3 || got.Actions[0].Grants[0].Scopes[0].Kind != "all" {
			t.Errorf("root's rights %+v", got)
		}
	})
	t.Run("a user without a profile may do nothing, and says why", func(t *testing.T) {
		r := runCLI(t, "", nil, append([]string{"rights", "dave"}, file...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "dave at ") || !strings.Contains(r.stdout, "no profile — allowed nothing (no_profile)") {
			t.Errorf("exit %d stdout %q", r.code, r.stdout)
		}
	})
	t.Run("rights read the stored policy without -f", func(t *testing.T) {
		r := runStore(t, context.Background(), seededStore(t), "", append([]string{"rights", "alice"}, storeArgs...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "profile supervisor-with-recording") {
			t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}

// impactStore is the admin.yaml store with a second supervisor, sam, and
// an audit trail of the last hours: alice and sam listened on sales,
// alice was refused hr and once found no call, the watchdog ended a
// bypass.
func impactStore(tb testing.TB) (*memoryStore, enforce.Policy) {
	tb.Helper()
	ctx := context.Background()
	p := mustLoad(tb, "testdata/admin.yaml")
	p.Users = append(p.Users, enforce.User{ID: "sam", Profile: "supervisor-with-recording", Queues: []string{"sales"}})
	st := newMemoryStore()
	if _, _, err := st.ApplyPolicy(ctx, p, enforce.Unconditionally()); err != nil {
		tb.Fatal(err)
	}
	t0 := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	rec := func(min int, user, action, queue, decision, reason string) enforce.AuditRecord {
		return enforce.AuditRecord{Time: t0.Add(time.Duration(min) * time.Minute), Source: "asterisk", User: user,
			Action: action, Target: "dave", Queue: queue, Decision: decision, Reason: reason}
	}
	watchdog := rec(5, "", "monitor.listen", "", "deny", "no_allow_decision")
	watchdog.Source = "watchdog"
	old := rec(-10*24*60, "alice", "monitor.listen", "sales", "allow", "granted") // ten days ago
	for _, r := range []enforce.AuditRecord{
		old,
		rec(0, "alice", "monitor.listen", "sales", "allow", "granted"),
		rec(1, "sam", "monitor.listen", "sales", "allow", "granted"),
		rec(2, "alice", "monitor.barge", "support", "allow", "granted"),
		rec(3, "alice", "monitor.listen", "hr", "deny", "out_of_scope"),
		rec(4, "alice", "monitor.listen", "sales", "deny", "target_not_in_call"),
		watchdog,
	} {
		if err := st.Audit(ctx, r); err != nil {
			tb.Fatal(err)
		}
	}
	return st, p
}

func TestImpactOfRevokingOneSupervisor(t *testing.T) {
	ctx := context.Background()
	wantLines := func(t *testing.T, out string, n int) {
		t.Helper()
		var changes []string
		for _, l := range strings.Split(out, "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "allow->deny") || strings.HasPrefix(l, "deny->allow") {
				changes = append(changes, l)
			}
		}
		if len(changes) != n {
			t.Fatalf("%d changes, want %d: alice's previously allowed requests only:\n%s", len(changes), n, out)
		}
		for _, c := range changes {
			if !strings.Contains(c, "allow->deny") || !strings.Contains(c, " alice monitor.") || !strings.Contains(c, "now deny (no_profile)") ||
				!strings.Contains(c, "was allow (profile supervisor-with-recording, grant #0)") {
				t.Errorf("change %q: want one of alice's allows now refused", c)
			}
		}
		for _, want := range []string{"alice monitor.barge: 1 allow->deny, 0 deny->allow", "alice monitor.listen: 1 allow->deny, 0 deny->allow",
			"not replayed: 1 not decided by the policy, 1 watchdog enforcement"} {
			if !strings.Contains(out, want) {
				t.Errorf("impact lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "sam") {
			t.Errorf("sam's decisions are listed:\n%s", out)
		}
	}
	t.Run("profiles apply --dry-run --impact lists exactly the supervisor's allowed requests", func(t *testing.T) {
		st, p := impactStore(t)
		gen := generationOf(t, st)
		for i := range p.Users {
			if p.Users[i].ID == "alice" {
				p.Users[i].Profile, p.Users[i].Queues = "", nil
			}
		}
		data, err := config.MarshalProfiles(p)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "revoked.yaml")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r := runStore(t, ctx, st, "", append([]string{"profiles", "apply", "-f", file, "--dry-run", "--impact"}, storeArgs...)...)
		if r.code != 0 {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "~ user alice") || !strings.Contains(r.stdout, "impact: 4 decision(s) audited since") ||
			!strings.Contains(r.stdout, "dry run: nothing written") {
			t.Errorf("output:\n%s", r.stdout)
		}
		wantLines(t, r.stdout, 2)
		if generationOf(t, st) != gen {
			t.Error("a dry run wrote the policy")
		}
	})
	t.Run("users revoke --dry-run --impact=1d says the same and writes nothing", func(t *testing.T) {
		st, _ := impactStore(t)
		gen := generationOf(t, st)
		r := runStore(t, ctx, st, "", append([]string{"users", "revoke", "alice", "--dry-run", "--impact=1d"}, storeArgs...)...)
		if r.code != 0 {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		wantLines(t, r.stdout, 2)
		if generationOf(t, st) != gen {
			t.Error("a dry run wrote the policy")
		}
	})
	t.Run("a longer period reaches older decisions", func(t *testing.T) {
		st, _ := impactStore(t)
		r := runStore(t, ctx, st, "", append([]string{"users", "revoke", "alice", "--dry-run", "--impact=30d"}, storeArgs...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "alice monitor.listen: 2 allow->deny") {
			t.Errorf("exit %d stdout:\n%s", r.code, r.stdout)
		}
	})
	t.Run("users assign --dry-run --impact shows what a new profile would allow", func(t *testing.T) {
		st, _ := impactStore(t)
		r := runStore(t, ctx, st, "", append([]string{"users", "assign", "sam", "teacher", "--dry-run", "--impact"}, storeArgs...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "sam monitor.listen: 1 allow->deny") || !strings.Contains(r.stdout, "~ user sam") {
			t.Errorf("exit %d stdout:\n%s", r.code, r.stdout)
		}
	})
	t.Run("--impact without --dry-run is bad input", func(t *testing.T) {
		st, _ := impactStore(t)
		r := runStore(t, ctx, st, "", append([]string{"users", "revoke", "alice", "--impact"}, storeArgs...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "--impact needs --dry-run") {
			t.Errorf("exit %d stderr %q", r.code, r.stderr)
		}
		r = runStore(t, ctx, st, "", append([]string{"users", "revoke", "alice", "--dry-run", "--impact=soon"}, storeArgs...)...)
		if r.code != 2 {
			t.Errorf("--impact=soon: exit %d stderr %q", r.code, r.stderr)
		}
	})
}
