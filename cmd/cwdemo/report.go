package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/callwarden/callwarden/enforce"
)

// stepResult is what one scenario step showed: the facts read from Asterisk
// through ARI, the audit records read from Redis, and the expectations that
// were not met. A step with no failure passed.
type stepResult struct {
	N     int
	Title string
	// Want is the expected outcome, in words.
	Want string
	// PBX are facts seen in Asterisk (ARI REST and events), never callwarden's
	// own account of what it did.
	PBX []string
	// Audit are the audit records of the step, formatted by formatAudit.
	Audit []string
	// Fails are the unmet expectations; empty means PASS.
	Fails []string
}

// Passed reports whether every expectation of the step was met.
func (r *stepResult) Passed() bool { return len(r.Fails) == 0 }

// pbx records a fact seen in Asterisk.
func (r *stepResult) pbx(format string, args ...any) {
	r.PBX = append(r.PBX, fmt.Sprintf(format, args...))
}

// fail records an unmet expectation.
func (r *stepResult) fail(format string, args ...any) {
	r.Fails = append(r.Fails, fmt.Sprintf(format, args...))
}

// failErr records an unmet expectation caused by err, on one line.
func (r *stepResult) failErr(what string, err error) {
	r.fail("%s: %s", what, oneLine(err.Error()))
}

// Write prints the step for a PBX administrator: title, expectation, what
// the PBX showed, the audit records, and PASS or FAIL with the reasons.
func (r *stepResult) Write(w io.Writer) {
	fmt.Fprintf(w, "\nstep %d: %s\n", r.N, r.Title)
	if r.Want != "" {
		fmt.Fprintf(w, "  expect: %s\n", r.Want)
	}
	for _, l := range r.PBX {
		fmt.Fprintf(w, "  PBX:    %s\n", l)
	}
	for _, l := range r.Audit {
		fmt.Fprintf(w, "  audit:  %s\n", l)
	}
	if r.Passed() {
		fmt.Fprintf(w, "  PASS\n")
		return
	}
	for _, f := range r.Fails {
		fmt.Fprintf(w, "  FAIL:   %s\n", f)
	}
}

// stepList numbers the steps of a scenario and prints each as it ends.
type stepList struct {
	ctx     context.Context
	out     io.Writer
	results []*stepResult
}

// add numbers, prints and keeps r; false when ctx has ended (the scenario
// stops there).
func (l *stepList) add(r *stepResult) bool {
	if l.ctx.Err() != nil {
		return false
	}
	r.N = len(l.results) + 1
	r.Write(l.out)
	l.results = append(l.results, r)
	return true
}

// play runs steps in order, adding each result, until ctx ends.
func (l *stepList) play(steps ...func() *stepResult) {
	for _, step := range steps {
		if !l.add(step()) {
			return
		}
	}
}

// summarize returns the closing line of the demo and whether every step
// passed. No step at all is a failure: the scenario did not run.
func summarize(results []*stepResult) (string, bool) {
	if len(results) == 0 {
		return "no step ran", false
	}
	var failed []string
	for _, r := range results {
		if !r.Passed() {
			failed = append(failed, strconv.Itoa(r.N))
		}
	}
	if len(failed) == 0 {
		return fmt.Sprintf("all %d steps passed", len(results)), true
	}
	return fmt.Sprintf("%d of %d steps passed; failed: step %s",
		len(results)-len(failed), len(results), strings.Join(failed, ", ")), false
}

// auditWant describes the audit record a step expects; an empty field
// matches anything.
type auditWant struct {
	Source, User, Action, Decision, Reason string
}

func (w auditWant) String() string {
	var b strings.Builder
	b.WriteString(orAny(w.Decision))
	b.WriteByte(' ')
	b.WriteString(orAny(w.Action))
	if w.User != "" {
		b.WriteString(" by " + w.User)
	}
	if w.Reason != "" {
		b.WriteString(" (" + w.Reason + ")")
	}
	if w.Source != "" {
		b.WriteString(" from " + w.Source)
	}
	return b.String()
}

func orAny(s string) string {
	if s == "" {
		return "any"
	}
	return s
}

// match reports whether rec is the record w describes.
func (w auditWant) match(rec *enforce.AuditRecord) bool {
	return (w.Source == "" || w.Source == rec.Source) &&
		(w.User == "" || w.User == rec.User) &&
		(w.Action == "" || w.Action == rec.Action) &&
		(w.Decision == "" || w.Decision == rec.Decision) &&
		(w.Reason == "" || w.Reason == rec.Reason)
}

// findAudit returns the first record of recs (oldest first) that w matches.
func findAudit(recs []enforce.AuditRecord, w auditWant) (enforce.AuditRecord, bool) {
	for i := range recs {
		if w.match(&recs[i]) {
			return recs[i], true
		}
	}
	return enforce.AuditRecord{}, false
}

// formatAudit renders an audit record on one line, the fields an auditor
// reads first: decision, action, who, on whom, why.
func formatAudit(r enforce.AuditRecord) string {
	var b strings.Builder
	b.WriteString(r.Decision)
	b.WriteByte(' ')
	b.WriteString(r.Action)
	for _, f := range []struct{ k, v string }{
		{"user", r.User}, {"target", r.Target}, {"queue", r.Queue},
		{"reason", r.Reason}, {"profile", r.Profile}, {"source", r.Source},
	} {
		if f.v != "" {
			b.WriteString(" " + f.k + "=" + f.v)
		}
	}
	if r.Detail != "" {
		b.WriteString(" detail=" + strconv.Quote(r.Detail))
	}
	return b.String()
}

// snoopTarget returns the unique id of the channel a snoop channel spies on,
// from the snoop's name: Asterisk names it Snoop/<uniqueid>-<sequence>.
func snoopTarget(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "Snoop/")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return "", false
	}
	return rest[:i], true
}

// formatCause renders a Q.850 hangup cause as Asterisk reports it.
func formatCause(code int, text string) string {
	if text == "" {
		return fmt.Sprintf("cause %d", code)
	}
	return fmt.Sprintf("cause %d (%s)", code, text)
}

// oneLine joins a multi-line message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
