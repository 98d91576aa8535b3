package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// reviewFlags are the flags who-can and rights share: where the policy
// comes from (-f files, else the store), the instant to review at and the
// output format.
type reviewFlags struct {
	files  stringList
	at     string
	output string
	store  *storeFlags
}

func (e *env) newReviewFlagSet(name, synopsis string) (*flag.FlagSet, *reviewFlags) {
	fs, sf := e.newStoreFlagSet(name, synopsis)
	rf := &reviewFlags{store: sf}
	fileFlags(fs, &rf.files, true)
	fs.StringVar(&rf.at, "at", "", "review at this `TIME` (RFC 3339; default now)")
	fs.StringVar(&rf.output, "output", "text", "output `FORMAT`: text or json")
	return fs, rf
}

// instant parses --at (now when absent) and checks --output.
func (rf *reviewFlags) instant(now time.Time) (time.Time, error) {
	if rf.output != "text" && rf.output != "json" {
		return time.Time{}, fmt.Errorf("--output: %q, want text or json", rf.output)
	}
	if rf.at == "" {
		return now, nil
	}
	at, err := time.Parse(time.RFC3339, rf.at)
	if err != nil {
		return time.Time{}, fmt.Errorf("--at: %q is not an RFC 3339 time", rf.at)
	}
	return at, nil
}

// withPolicy runs fn on the snapshot of the profiles files when -f names
// some, else of the stored policy; st is the store, opened when the
// policy comes from it or needStore asks for it (a recording's metadata),
// nil otherwise.
func (e *env) withPolicy(ctx context.Context, rf *reviewFlags, needStore bool, fn func(snap *enforce.Snapshot, st store) int) int {
	if len(rf.files) > 0 {
		snap, _, err := e.loadSnapshot(rf.files)
		if err != nil {
			return e.badInput("%s", oneLine(err))
		}
		if !needStore {
			return fn(snap, nil)
		}
		return e.withStore(ctx, rf.store, func(st store) int { return fn(snap, st) })
	}
	return e.withStore(ctx, rf.store, func(st store) int {
		p, gen, err := st.Policy(ctx)
		if err != nil {
			return e.failure("read the stored policy: %v", err)
		}
		snap, err := enforce.NewSnapshot(p, gen)
		if err != nil {
			return e.failure("the stored policy (generation %d) is invalid: %s", gen, oneLine(err))
		}
		return fn(snap, st)
	})
}

// writeJSON prints v as one JSON document.
func (e *env) writeJSON(v any) int {
	if err := json.NewEncoder(e.stdout).Encode(v); err != nil {
		return e.failure("write: %v", err)
	}
	return exitOK
}

// whoCan lists every user the engine allows ACTION on the target, with
// the profile and grant that allow it (enforce.AccessIndex.WhoCan).
func (e *env) whoCan(ctx context.Context, args []string) int {
	fs, rf := e.newReviewFlagSet("who-can", "who-can ACTION (--agent A | --queue Q | --recording ID) [--team T] [--site S] [--recorded-at RFC3339] [--at RFC3339] [-f FILE...] [--output text|json] [--redis-addr ADDR] [--config FILE]")
	agent := fs.String("agent", "", "target `AGENT` (user id)")
	queue := fs.String("queue", "", "target `QUEUE`")
	team := fs.String("team", "", "target `TEAM`, for an agent the policy does not describe")
	site := fs.String("site", "", "target `SITE`, for an agent the policy does not describe")
	recording := fs.String("recording", "", "target recording `ID`: its queue, agent and age, read from the store")
	recordedAt := fs.String("recorded-at", "", "when the recording was made (`TIME`, RFC 3339)")
	pos, code := e.parsePositional(fs, args, 1, "ACTION")
	if code >= 0 {
		return code
	}
	action, err := enforce.ParseAction(pos[0])
	if err != nil {
		return e.badInput("who-can: %v", err)
	}
	at, err := rf.instant(e.now())
	if err != nil {
		return e.badInput("who-can: %v", err)
	}
	req := enforce.Request{Action: action, Agent: *agent, Queue: *queue, Team: *team, Site: *site}
	switch {
	case *recording != "" && (*agent != "" || *queue != "" || *recordedAt != ""):
		return e.badInput("who-can: --recording names its own queue, agent and age: give it alone")
	case *recording == "" && *agent == "" && *queue == "":
		return e.badInput("who-can: give a target: --agent A, --queue Q or --recording ID")
	}
	for _, v := range []struct{ flag, id string }{{"--agent", *agent}, {"--queue", *queue}, {"--team", *team}, {"--site", *site}, {"--recording", *recording}} {
		if v.id == "" {
			continue
		}
		if err := enforce.CheckID(v.id); err != nil {
			return e.badInput("who-can: %s: %v", v.flag, err)
		}
	}
	if *recordedAt != "" {
		if req.RecordedAt, err = time.Parse(time.RFC3339, *recordedAt); err != nil {
			return e.badInput("who-can: --recorded-at: %q is not an RFC 3339 time", *recordedAt)
		}
	}
	return e.withPolicy(ctx, rf, *recording != "", func(snap *enforce.Snapshot, st store) int {
		if *recording != "" {
			rec, err := st.Recording(ctx, *recording)
			if errors.Is(err, enforce.ErrNotFound) {
				return e.badInput("who-can: no recording %q in the store", *recording)
			}
			if err != nil {
				return e.failure("read recording %s: %v", *recording, err)
			}
			req.Queue, req.Agent, req.RecordedAt = rec.Queue, rec.Target, rec.StartedAt
		}
		users, err := enforce.NewAccessIndex(snap).WhoCan(req, at)
		if err != nil {
			return e.badInput("who-can: %v", err)
		}
		ans := enforce.NewWhoCanAnswer(req, at, users)
		if rf.output == "json" {
			return e.writeJSON(ans)
		}
		fmt.Fprintf(e.stdout, "%s on %s at %s: %d user(s) allowed\n", ans.Action, ans.Target, ans.At.Format(time.RFC3339), len(users))
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, u := range users {
			fmt.Fprintf(tw, "  %s\tprofile %s, grant #%d\n", u.User, u.Profile, u.Grant)
		}
		if err := tw.Flush(); err != nil {
			return e.failure("write: %v", err)
		}
		return exitOK
	})
}

// rights prints what USER may do: per action, the grants that give it and
// what each reaches (enforce.RightsOf).
func (e *env) rights(ctx context.Context, args []string) int {
	fs, rf := e.newReviewFlagSet("rights", "rights USER [--at RFC3339] [-f FILE...] [--output text|json] [--redis-addr ADDR] [--config FILE]")
	pos, code := e.parsePositional(fs, args, 1, "USER")
	if code >= 0 {
		return code
	}
	if err := enforce.CheckID(pos[0]); err != nil {
		return e.badInput("rights: USER: %v", err)
	}
	at, err := rf.instant(e.now())
	if err != nil {
		return e.badInput("rights: %v", err)
	}
	return e.withPolicy(ctx, rf, false, func(snap *enforce.Snapshot, _ store) int {
		r := enforce.RightsOf(snap, pos[0], at)
		if rf.output == "json" {
			return e.writeJSON(r)
		}
		e.printRights(r, at)
		return exitOK
	})
}

// printRights renders a user's rights for people.
func (e *env) printRights(r enforce.Rights, at time.Time) {
	when := at.UTC().Format(time.RFC3339)
	head := fmt.Sprintf("%s at %s: profile %s", r.User, when, r.Profile)
	if r.Profile == "" {
		head = fmt.Sprintf("%s at %s: no profile", r.User, when)
	}
	if !r.ValidFrom.IsZero() || !r.ValidUntil.IsZero() {
		head += fmt.Sprintf(", assignment valid %s to %s", orOpen(r.ValidFrom), orOpen(r.ValidUntil))
	}
	if r.Reason != "" {
		head += fmt.Sprintf(" — allowed nothing (%s)", r.Reason)
	}
	fmt.Fprintln(e.stdout, head)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, a := range r.Actions {
		for i, g := range a.Grants {
			name := a.Action
			if i > 0 {
				name = ""
			}
			fmt.Fprintf(tw, "  %s\t%s\n", name, g)
		}
	}
	_ = tw.Flush()
	if p := r.Protected; len(p.Users)+len(p.Queues) > 0 && len(r.Actions) > 0 {
		fmt.Fprintf(e.stdout, "  except protected users [%s] (but on their own calls) and queues [%s]\n",
			strings.Join(p.Users, ", "), strings.Join(p.Queues, ", "))
	}
}

func orOpen(t time.Time) string {
	if t.IsZero() {
		return "(open)"
	}
	return t.UTC().Format(time.RFC3339)
}
