package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/callwarden/callwarden/enforce"
)

// sessionLine is one line of `callwarden sessions`: a live monitor
// session or a recording in progress.
type sessionLine struct {
	Session   *enforce.LiveSession `json:"session,omitempty"`
	Recording *enforce.Recording   `json:"recording,omitempty"`
}

// sessions prints, as JSON lines, the live monitor sessions of every
// daemon on the Redis store, then the recordings in progress, oldest
// first; with --follow it then polls the store and prints each change
// (enforce.SessionEvent) until interrupted. `sessions end ID` asks for one
// to end. Whoever holds the Redis credentials is an administrator:
// nothing is filtered or masked.
func (e *env) sessions(ctx context.Context, args []string) int {
	if len(args) > 0 && args[0] == "end" {
		return e.sessionsEnd(ctx, args[1:])
	}
	fs, sf := e.newStoreFlagSet("sessions", "sessions [--follow] [--redis-addr ADDR] [--config FILE]")
	follow := fs.Bool("follow", false, "keep printing each change (started, switched, ended with its cause; recording started, paused, resumed, stopped) until interrupted")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	return e.withStore(ctx, sf, func(st store) int {
		view, err := readView(ctx, st)
		if err != nil {
			return e.failure("sessions: %v", err)
		}
		enc := json.NewEncoder(e.stdout)
		for i := range view.Sessions {
			if err := enc.Encode(sessionLine{Session: &view.Sessions[i]}); err != nil {
				return e.failure("sessions: %v", err)
			}
		}
		for i := range view.Recordings {
			if err := enc.Encode(sessionLine{Recording: &view.Recordings[i]}); err != nil {
				return e.failure("sessions: %v", err)
			}
		}
		if !*follow {
			return exitOK
		}
		return e.followStore(ctx, "sessions", func() (readErr, writeErr error) {
			next, err := readView(ctx, st)
			if err != nil {
				return err, nil
			}
			events := view.Changes(next)
			// A cause that cannot be read is left out, not fatal.
			_ = enforce.ExplainChanges(ctx, st.SessionEnds, st, events)
			view = next
			for _, ev := range events {
				if err := enc.Encode(ev); err != nil {
					return nil, err
				}
			}
			return nil, nil
		})
	})
}

// readView lists the live sessions and the recordings in progress.
func readView(ctx context.Context, st store) (enforce.SessionsView, error) {
	ss, err := st.LiveSessions(ctx)
	if err != nil {
		return enforce.SessionsView{}, err
	}
	recs, err := st.ActiveRecordings(ctx)
	return enforce.SessionsView{Sessions: ss, Recordings: recs}, err
}

// sessionsEnd marks a live session as to be ended in Redis and audits it;
// the daemon that enforces the session ends it on its next poll (about a
// second), with cause ended_by_administrator.
func (e *env) sessionsEnd(ctx context.Context, args []string) int {
	return e.onStoreWith(ctx, args, "sessions end", "sessions end ID [--redis-addr ADDR] [--config FILE]", "ID", func(st store, id string) int {
		if err := enforce.CheckID(id); err != nil {
			return e.badInput("sessions end: %v", err)
		}
		s, err := st.Session(ctx, id)
		if errors.Is(err, enforce.ErrNotFound) {
			return e.failure("sessions end: no live session %s", id)
		}
		if err != nil {
			return e.failure("sessions end: %v", err)
		}
		if err := st.RequestSessionEnd(ctx, id, e.cliUser()); err != nil {
			return e.failure("sessions end: %v", err)
		}
		if err := st.Audit(ctx, enforce.AuditRecord{
			Time: e.now(), Source: "admin", User: e.cliUser(), Action: enforce.SessionEnd.String(),
			Target: s.Target, Queue: s.Queue, Decision: "allow", Reason: enforce.ReasonGranted.String(),
			PBX: s.PBX, Session: id, Detail: "sessions end " + id + ": end asked of " + s.Instance,
		}); err != nil {
			fmt.Fprintf(e.stderr, "callwarden sessions end: audit: %v\n", err)
		}
		fmt.Fprintf(e.stdout, "end of session %s asked of %s (%s %s %s)\n", id, s.Instance, s.User, s.Mode, s.Target)
		return exitOK
	})
}
