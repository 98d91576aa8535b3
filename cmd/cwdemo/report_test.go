package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAuditExpectations(t *testing.T) {
	recs := []enforce.AuditRecord{
		{Source: "asterisk", User: "alice", Action: "monitor.listen", Decision: "allow", Reason: "granted"},
		{Source: "asterisk", User: "carol", Action: "monitor.listen", Decision: "deny", Reason: "out_of_scope"},
		{Source: "watchdog", Action: "monitor.listen", Decision: "deny", Reason: "no_allow_decision", Detail: "hung up ChanSpy"},
	}
	t.Run("a refusal is found by user, action, decision and reason", func(t *testing.T) {
		got, ok := findAudit(recs, auditWant{User: "carol", Action: "monitor.listen", Decision: "deny", Reason: "out_of_scope"})
		if !ok || got.User != "carol" {
			t.Fatalf("findAudit = %+v, %v; want carol's refusal", got, ok)
		}
	})
	t.Run("the wrong reason does not pass for the expected one", func(t *testing.T) {
		if got, ok := findAudit(recs, auditWant{User: "carol", Decision: "deny", Reason: "action_not_granted"}); ok {
			t.Fatalf("findAudit matched %+v", got)
		}
	})
	t.Run("an allow never satisfies an expected deny", func(t *testing.T) {
		if got, ok := findAudit(recs, auditWant{User: "alice", Decision: "deny"}); ok {
			t.Fatalf("findAudit matched %+v", got)
		}
	})
	t.Run("empty fields match anything: the watchdog's record by source", func(t *testing.T) {
		got, ok := findAudit(recs, auditWant{Source: "watchdog", Decision: "deny"})
		if !ok || got.Detail != "hung up ChanSpy" {
			t.Fatalf("findAudit = %+v, %v", got, ok)
		}
	})
	t.Run("the expectation reads as a sentence", func(t *testing.T) {
		w := auditWant{User: "tom", Action: "recording.playback", Decision: "deny", Reason: "outside_window"}
		if got, want := w.String(), "deny recording.playback by tom (outside_window)"; got != want {
			t.Fatalf("String() = %q, want %q", got, want)
		}
		if got, want := (auditWant{Source: "watchdog", Decision: "deny"}).String(), "deny any from watchdog"; got != want {
			t.Fatalf("String() = %q, want %q", got, want)
		}
	})
}

func TestFormatAudit(t *testing.T) {
	t.Run("names decision, action, who, whom and why; omits empty fields", func(t *testing.T) {
		got := formatAudit(enforce.AuditRecord{
			Source: "asterisk", User: "alice", Action: "monitor.listen", Target: "agent2001",
			Queue: "sales", Decision: "allow", Reason: "granted", Profile: "supervisor-with-recording",
		})
		want := "allow monitor.listen user=alice target=agent2001 queue=sales reason=granted profile=supervisor-with-recording source=asterisk"
		if got != want {
			t.Fatalf("formatAudit =\n %s\nwant\n %s", got, want)
		}
	})
	t.Run("quotes the detail", func(t *testing.T) {
		got := formatAudit(enforce.AuditRecord{Decision: "deny", Action: "monitor.listen", Detail: `hung up "ChanSpy"`})
		if !strings.HasSuffix(got, `detail="hung up \"ChanSpy\""`) {
			t.Fatalf("formatAudit = %s", got)
		}
	})
}

func TestSnoopTarget(t *testing.T) {
	for _, tc := range []struct {
		name, channel, want string
		ok                  bool
	}{
		{"lab unique id with system name", "Snoop/callwarden-lab-1795461318.2-00000000", "callwarden-lab-1795461318.2", true},
		{"plain unique id", "Snoop/1700000000.12-0000001a", "1700000000.12", true},
		{"not a snoop", "Local/2001@cw-agent-00000001;1", "", false},
		{"no sequence", "Snoop/1700000000.12", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := snoopTarget(tc.channel)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("snoopTarget(%q) = %q, %v; want %q, %v", tc.channel, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestStepReport(t *testing.T) {
	t.Run("a passing step prints the PBX facts, the audit and PASS", func(t *testing.T) {
		r := &stepResult{N: 1, Title: "alice listens", Want: "bridged"}
		r.pbx("Snoop/x spies on %s", "Local/2001@cw-agent-00000001;1")
		r.Audit = append(r.Audit, "allow monitor.listen user=alice")
		var b bytes.Buffer
		r.Write(&b)
		want := "\nstep 1: alice listens\n  expect: bridged\n" +
			"  PBX:    Snoop/x spies on Local/2001@cw-agent-00000001;1\n" +
			"  audit:  allow monitor.listen user=alice\n  PASS\n"
		if b.String() != want {
			t.Fatalf("Write =\n%s\nwant\n%s", b.String(), want)
		}
	})
	t.Run("a failing step prints every unmet expectation and no PASS", func(t *testing.T) {
		r := &stepResult{N: 4, Title: "carol is refused"}
		r.fail("carol's line is still up after %s", 10*time.Second)
		r.failErr("read the audit stream", errors.New("redis down\nretrying"))
		var b bytes.Buffer
		r.Write(&b)
		out := b.String()
		if strings.Contains(out, "PASS") || r.Passed() {
			t.Fatalf("failing step reads as passed:\n%s", out)
		}
		for _, want := range []string{"FAIL:   carol's line is still up after 10s", "FAIL:   read the audit stream: redis down retrying"} {
			if !strings.Contains(out, want) {
				t.Fatalf("Write lacks %q:\n%s", want, out)
			}
		}
	})
}

func TestSummarize(t *testing.T) {
	pass := func(n int) *stepResult { return &stepResult{N: n} }
	failed := func(n int) *stepResult { return &stepResult{N: n, Fails: []string{"x"}} }
	t.Run("every step passed", func(t *testing.T) {
		line, ok := summarize([]*stepResult{pass(1), pass(2)})
		if !ok || line != "all 2 steps passed" {
			t.Fatalf("summarize = %q, %v", line, ok)
		}
	})
	t.Run("names the failed steps", func(t *testing.T) {
		line, ok := summarize([]*stepResult{pass(1), failed(2), failed(3)})
		if ok || line != "1 of 3 steps passed; failed: step 2, 3" {
			t.Fatalf("summarize = %q, %v", line, ok)
		}
	})
	t.Run("no step at all is a failure", func(t *testing.T) {
		if _, ok := summarize(nil); ok {
			t.Fatal("summarize(nil) passed")
		}
	})
}

func TestPoll(t *testing.T) {
	ctx := context.Background()
	t.Run("returns once the condition holds", func(t *testing.T) {
		n := 0
		err := poll(ctx, time.Second, func(context.Context) (bool, error) { n++; return n == 3, nil })
		if err != nil || n != 3 {
			t.Fatalf("poll = %v after %d tries", err, n)
		}
	})
	t.Run("reports the last real error, not the deadline that ended the wait", func(t *testing.T) {
		boom := errors.New("connection refused")
		err := poll(ctx, 3*pollInterval, func(ctx context.Context) (bool, error) {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("poll = %v, want %v", err, boom)
		}
	})
	t.Run("times out without an error to report", func(t *testing.T) {
		err := poll(ctx, 2*pollInterval, func(context.Context) (bool, error) { return false, nil })
		if !errors.Is(err, errPollTimeout) {
			t.Fatalf("poll = %v, want errPollTimeout", err)
		}
	})
}

func TestEventGap(t *testing.T) {
	from := lab.Event{Timestamp: "2026-11-23T19:15:19.011+0000"}
	to := lab.Event{Timestamp: "2026-11-23T19:15:19.261+0000"}
	if got := eventGap(from, to); got != "250ms" {
		t.Fatalf("eventGap = %q, want 250ms", got)
	}
	if got := eventGap(from, lab.Event{Timestamp: "garbage"}); got != "some time" {
		t.Fatalf("eventGap with a bad timestamp = %q", got)
	}
}

func TestFormatCause(t *testing.T) {
	if got := formatCause(16, "Normal Clearing"); got != "cause 16 (Normal Clearing)" {
		t.Fatalf("formatCause = %q", got)
	}
	if got := formatCause(21, ""); got != "cause 21" {
		t.Fatalf("formatCause = %q", got)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--nope"}, "flag provided but not defined"},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
		{"non-positive wait", []string{"--wait", "0s"}, "--wait must be positive"},
		{"missing callwarden binary", []string{"--callwarden", "/nonexistent/callwarden"}, "after `make build`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != exitBadInput {
				t.Fatalf("run(%q) = %d, want %d; stderr: %s", tc.args, code, exitBadInput, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr lacks %q:\n%s", tc.want, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Fatalf("bad input started the demo:\n%s", stdout.String())
			}
		})
	}
}
