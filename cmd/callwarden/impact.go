package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
)

// defaultImpact is the audit period --impact replays when it names none.
const defaultImpact = 7 * 24 * time.Hour

// impactFlag is --impact[=PERIOD]: off, or how far back the audit trail
// is replayed (a Go duration or days, "7d"; --impact alone is 7d).
type impactFlag struct{ period time.Duration }

// IsBoolFlag lets --impact stand alone, as a boolean flag does.
func (f *impactFlag) IsBoolFlag() bool { return true }

func (f *impactFlag) String() string {
	if f == nil || f.period == 0 {
		return ""
	}
	return f.period.String()
}

// Set reads "true" (--impact alone), "false" or a period.
func (f *impactFlag) Set(s string) error {
	switch s {
	case "true":
		f.period = defaultImpact
		return nil
	case "false":
		f.period = 0
		return nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	f.period = d
	return nil
}

// changeFlags are the flags of a command that changes the policy:
// --dry-run and --impact.
type changeFlags struct {
	dryRun bool
	impact impactFlag
}

func (c *changeFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.dryRun, "dry-run", false, "print what would change and write nothing")
	fs.Var(&c.impact, "impact", "with --dry-run: replay the audited decisions of the last `PERIOD` (default 7d) against\nthe new policy and print those that would change")
}

// check refuses --impact without --dry-run: the impact is read before a
// change, never after it.
func (c *changeFlags) check() error {
	if c.impact.period > 0 && !c.dryRun {
		return fmt.Errorf("--impact needs --dry-run (see the impact, then apply)")
	}
	return nil
}

// printImpact replays the audit records of the period before now against
// next, compared with cur, and prints what would change.
func (e *env) printImpact(ctx context.Context, st store, cur, next *enforce.Snapshot, period time.Duration) int {
	since := e.now().Add(-period)
	recs, err := st.ReadAudit(ctx, enforce.AuditFilter{Since: since})
	if err != nil {
		return e.failure("read audit: %v", err)
	}
	im := enforce.ReplayAudit(cur, next, recs)
	fmt.Fprintf(e.stdout, "impact: %d decision(s) audited since %s replayed, %d would change\n",
		im.Replayed, since.UTC().Format(time.RFC3339), len(im.Changes))
	for _, c := range im.Changes {
		arrow := "allow->deny"
		if c.After.Allowed() {
			arrow = "deny->allow"
		}
		target := ""
		if c.After.Target != nil {
			target = " on " + c.After.Target.String()
		}
		fmt.Fprintf(e.stdout, "  %s  %s  %s %s%s: now %s (was %s)\n", arrow, c.Record.Time.UTC().Format(time.RFC3339),
			c.Record.User, c.Record.Action, target, verdictOf(c.After), verdictOf(c.Before))
	}
	if len(im.Counts) > 0 {
		fmt.Fprintln(e.stdout, "per user and action:")
		for _, c := range im.Counts {
			fmt.Fprintf(e.stdout, "  %s %s: %d allow->deny, %d deny->allow\n", c.User, c.Action, c.AllowToDeny, c.DenyToAllow)
		}
	}
	if len(im.Skipped) > 0 {
		var parts []string
		for _, why := range slices.Sorted(maps.Keys(im.Skipped)) {
			parts = append(parts, fmt.Sprintf("%d %s", im.Skipped[why], why))
		}
		fmt.Fprintf(e.stdout, "not replayed: %s\n", strings.Join(parts, ", "))
	}
	if im.Drifted > 0 {
		fmt.Fprintf(e.stdout, "note: %d replayed record(s) were decided otherwise when audited than the current policy decides them (an earlier change); they are compared with the current policy\n", im.Drifted)
	}
	return exitOK
}

// verdictOf renders an answer as "allow (profile p, grant #0)" or
// "deny (reason)".
func verdictOf(a enforce.Answer) string {
	if a.Allowed() {
		s := "allow (profile " + a.Profile
		if a.Grant != nil {
			s += fmt.Sprintf(", grant #%d", *a.Grant)
		}
		return s + ")"
	}
	return "deny (" + a.Reason + ")"
}
