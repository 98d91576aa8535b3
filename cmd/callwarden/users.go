package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// maxCASAttempts bounds how often a read-modify-write command retries
// after another administrator changed the policy in between.
const maxCASAttempts = 3

// parseInterleaved parses flags that may come before, between or after
// the positional arguments (`users assign bob teacher --queue sales`) and
// returns the positional ones, or the exit status to stop with.
func (e *env) parseInterleaved(fs *flag.FlagSet, args []string) ([]string, int) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK
			}
			return nil, exitBadInput
		}
		if fs.NArg() == 0 {
			return pos, -1
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parsePositional is parseInterleaved for a command that takes exactly n
// positional arguments, named by want in the complaint when it gets
// another count.
func (e *env) parsePositional(fs *flag.FlagSet, args []string, n int, want string) ([]string, int) {
	pos, code := e.parseInterleaved(fs, args)
	if code >= 0 {
		return nil, code
	}
	if len(pos) != n {
		fs.Usage()
		return nil, e.badInput("%s: want %s, got %d arguments", fs.Name(), want, len(pos))
	}
	return pos, -1
}

// changeUser applies change to the stored policy, retrying when another
// writer got in between; change returns the new policy and a description
// for the audit trail, or a bad-input error. What changed is written as a
// patch (enforce.PatchStore) validated against the stored policy, so only
// the changed entries are written and daemons patch their snapshots.
//
// With --dry-run it prints what would change, and with --impact the
// audited decisions the change would decide otherwise, and writes nothing.
func (e *env) changeUser(ctx context.Context, st store, id string, cf changeFlags, change func(enforce.Policy) (enforce.Policy, string, error)) int {
	for attempt := 1; ; attempt++ {
		cur, v, err := st.PolicyVersion(ctx)
		if err != nil {
			return e.failure("read the stored policy: %v", err)
		}
		base, err := enforce.NewSnapshot(cur, v.Gen)
		if err != nil {
			return e.failure("the stored policy (generation %d) is invalid: %s", v.Gen, oneLine(err))
		}
		base = base.WithOrigin(v.Epoch)
		next, what, err := change(cur)
		if err != nil {
			return e.badInput("%v", err)
		}
		patch := enforce.PatchOf(cur, next)
		nextSnap, err := base.Patch(patch, v.Gen+1)
		if err != nil {
			return e.badInput("%s: %s", id, oneLine(err))
		}
		if cf.dryRun {
			return e.dryRunChange(ctx, st, base, nextSnap, enforce.DiffPolicies(cur, next), cf)
		}
		newGen, diff, err := st.ApplyPatch(ctx, base, patch)
		if errors.Is(err, enforce.ErrConflict) && attempt < maxCASAttempts {
			continue
		}
		if err != nil {
			return e.failure("apply: %v", err)
		}
		lines := enforce.FormatDiff(diff)
		if len(lines) == 0 {
			fmt.Fprintf(e.stdout, "no changes (generation %d)\n", newGen)
			return exitOK
		}
		e.auditCLI(ctx, st, id, fmt.Sprintf("%s: generation %d -> %d", what, v.Gen, newGen))
		for _, l := range lines {
			fmt.Fprintln(e.stdout, l)
		}
		fmt.Fprintf(e.stdout, "applied: generation %d\n", newGen)
		return exitOK
	}
}

// dryRunChange prints the diff of a change and, with --impact, its
// impact, and writes nothing.
func (e *env) dryRunChange(ctx context.Context, st store, cur, next *enforce.Snapshot, diff enforce.PolicyDiff, cf changeFlags) int {
	lines := enforce.FormatDiff(diff)
	for _, l := range lines {
		fmt.Fprintln(e.stdout, l)
	}
	if len(lines) == 0 {
		fmt.Fprintf(e.stdout, "no changes (generation %d)\n", cur.Generation())
		return exitOK
	}
	if cf.impact.period > 0 {
		if code := e.printImpact(ctx, st, cur, next, cf.impact.period); code != exitOK {
			return code
		}
	}
	fmt.Fprintf(e.stdout, "dry run: nothing written (store at generation %d)\n", cur.Generation())
	return exitOK
}

// assign gives USER the profile PROFILE; --queue (repeatable) replaces the
// user's attributed queues, and --valid-from/--valid-until its validity
// period. A user that does not exist is created.
func (e *env) assign(ctx context.Context, args []string) int {
	fs, sf := e.newStoreFlagSet("users assign", "users assign USER PROFILE [--queue Q...] [--valid-from RFC3339] [--valid-until RFC3339] [--dry-run [--impact[=PERIOD]]] [--redis-addr ADDR] [--config FILE]")
	var cf changeFlags
	cf.register(fs)
	var queues stringList
	fs.Var(&queues, "queue", "attributed `QUEUE` (repeatable; replaces the user's queues)")
	from := fs.String("valid-from", "", "start of the assignment's validity (`TIME`, RFC 3339)")
	until := fs.String("valid-until", "", "end of the assignment's validity (`TIME`, RFC 3339)")
	pos, code := e.parsePositional(fs, args, 2, "USER PROFILE")
	if code >= 0 {
		return code
	}
	if err := cf.check(); err != nil {
		return e.badInput("users assign: %v", err)
	}
	id, profile := pos[0], pos[1]
	var vf, vu time.Time
	for _, t := range []struct {
		flag, v string
		dst     *time.Time
	}{{"--valid-from", *from, &vf}, {"--valid-until", *until, &vu}} {
		if t.v == "" {
			continue
		}
		var err error
		if *t.dst, err = time.Parse(time.RFC3339, t.v); err != nil {
			return e.badInput("%s: %q is not an RFC 3339 time", t.flag, t.v)
		}
	}
	return e.withStore(ctx, sf, func(st store) int {
		return e.changeUser(ctx, st, id, cf, func(p enforce.Policy) (enforce.Policy, string, error) {
			if !slices.ContainsFunc(p.Profiles, func(pr enforce.Profile) bool { return pr.Name == profile }) {
				return p, "", fmt.Errorf("users assign: no profile %q in the store", profile)
			}
			p.Users = slices.Clone(p.Users)
			i := slices.IndexFunc(p.Users, func(u enforce.User) bool { return u.ID == id })
			if i < 0 {
				p.Users = append(p.Users, enforce.User{ID: id})
				i = len(p.Users) - 1
			}
			u := &p.Users[i]
			u.Profile = profile
			if len(queues) > 0 {
				u.Queues = slices.Clone([]string(queues))
			}
			if !vf.IsZero() {
				u.ValidFrom = vf
			}
			if !vu.IsZero() {
				u.ValidUntil = vu
			}
			return p, fmt.Sprintf("users assign %s %s on queues [%s]", id, profile, strings.Join(u.Queues, ", ")), nil
		})
	})
}

// revoke takes USER's profile away: its profile, attributed queues and
// validity period are cleared. The user stays known when it still has
// teams, agents, sites or identities (it may still be a monitored agent);
// otherwise its entry is removed.
func (e *env) revoke(ctx context.Context, args []string) int {
	fs, sf := e.newStoreFlagSet("users revoke", "users revoke USER [--dry-run [--impact[=PERIOD]]] [--redis-addr ADDR] [--config FILE]")
	var cf changeFlags
	cf.register(fs)
	pos, code := e.parsePositional(fs, args, 1, "USER")
	if code >= 0 {
		return code
	}
	if err := cf.check(); err != nil {
		return e.badInput("users revoke: %v", err)
	}
	id := pos[0]
	return e.withStore(ctx, sf, func(st store) int {
		return e.changeUser(ctx, st, id, cf, func(p enforce.Policy) (enforce.Policy, string, error) {
			i := slices.IndexFunc(p.Users, func(u enforce.User) bool { return u.ID == id })
			if i < 0 {
				return p, "", fmt.Errorf("users revoke: no user %q in the store", id)
			}
			p.Users = slices.Clone(p.Users)
			u := p.Users[i]
			was := u.Profile
			u.Profile, u.Queues, u.ValidFrom, u.ValidUntil = "", nil, time.Time{}, time.Time{}
			if len(u.Teams)+len(u.Agents)+len(u.Sites)+len(u.Identities) == 0 {
				p.Users = slices.Delete(p.Users, i, i+1)
			} else {
				p.Users[i] = u
			}
			return p, fmt.Sprintf("users revoke %s (was %s)", id, was), nil
		})
	})
}
