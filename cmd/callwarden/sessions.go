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
// first; `sessions end ID` asks for one to end. Whoever holds the Redis
// credentials is an administrator: nothing is filtered or masked.
func (e *env) sessions(ctx context.Context, args []string) int {
	if len(args) > 0 && args[0] == "end" {
		return e.sessionsEnd(ctx, args[1:])
	}
	return e.onStore(ctx, args, "sessions", "sessions [--redis-addr ADDR] [--config FILE]", func(st store) int {
		ss, err := st.LiveSessions(ctx)
		if err != nil {
			return e.failure("sessions: %v", err)
		}
		recs, err := st.ActiveRecordings(ctx)
		if err != nil {
			return e.failure("sessions: %v", err)
		}
		enc := json.NewEncoder(e.stdout)
		for i := range ss {
			if err := enc.Encode(sessionLine{Session: &ss[i]}); err != nil {
				return e.failure("sessions: %v", err)
			}
		}
		for i := range recs {
			if err := enc.Encode(sessionLine{Recording: &recs[i]}); err != nil {
				return e.failure("sessions: %v", err)
			}
		}
		return exitOK
	})
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
