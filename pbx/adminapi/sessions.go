package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// Sessions is the daemon's registry of live monitor sessions, as the
// admin API lists and ends them (pbx/session.Registry).
type Sessions interface {
	// List returns every live session. Errors: the store's
	// (enforce.ErrUnavailable, enforce.ErrCorrupt).
	List(ctx context.Context) ([]enforce.LiveSession, error)
	// Get returns one live session. Errors: enforce.ErrNotFound, the
	// store's.
	Get(ctx context.Context, id string) (enforce.LiveSession, error)
	// End asks for the session to end, by the user by: at once on the
	// daemon that enforces it, within its poll interval on another.
	// Errors: enforce.ErrNotFound, the store's.
	End(ctx context.Context, id, by string) error
	// Ends returns why the sessions ids ended, by id, for those the
	// registry still knows of. Errors: the store's.
	Ends(ctx context.Context, ids []string) (map[string]enforce.EndedSession, error)
}

// SessionsBody is the answer to GET /v1/sessions: the live monitor
// sessions and the recordings in progress the reader may see, oldest
// first, caller numbers masked per the reader's profile.
type SessionsBody struct {
	Sessions   []enforce.LiveSession `json:"sessions"`
	Recordings []enforce.Recording   `json:"recordings"`
}

// EndBody is the answer to DELETE /v1/sessions/{id}: the end was asked
// for; the session leaves the list once its daemon has ended it.
type EndBody struct {
	ID       string `json:"id"`
	EndedBy  string `json:"ended_by"`
	Instance string `json:"instance"`
	Status   string `json:"status"`
}

// listSessions serves GET /v1/sessions. Administrators see every row;
// anyone else with a profile sees the rows presence.view allows on their
// queue and agent. A registry that cannot be read answers 503 (never an
// empty list).
func (a *Admin) listSessions(w http.ResponseWriter, r *http.Request, p *principal) {
	admin, ok := a.readerOf(w, p, a.opts.Sessions != nil, "this daemon keeps no session registry")
	if !ok {
		return
	}
	ctx, cancel := a.storeContext(r)
	defer cancel()
	sessions, err := a.opts.Sessions.List(ctx)
	if err != nil {
		a.storeFailed(w, r, err)
		return
	}
	var recs []enforce.Recording
	if a.opts.LiveRecordings != nil {
		if recs, err = a.opts.LiveRecordings.ActiveRecordings(ctx); err != nil {
			a.storeFailed(w, r, err)
			return
		}
	}
	body := viewerOf(p, admin).body(enforce.SessionsView{Sessions: sessions, Recordings: recs})
	httpauth.WriteJSON(w, http.StatusOK, body)
}

// viewer is what one reader may see of the live sessions view: every row
// for an administrator, else the rows presence.view allows on their queue
// and agent; caller numbers masked per the reader's profile.
type viewer struct {
	p     *principal
	admin bool
	mask  int
}

// viewerOf is p's view; admin says whether p is an administrator
// (Admin.reader).
func viewerOf(p *principal, admin bool) viewer {
	_, d := p.admin()
	return viewer{p: p, admin: admin, mask: d.MaskDigits}
}

func (v viewer) sees(queue, agent string) bool {
	return v.admin || v.p.decide(enforce.Request{Action: enforce.PresenceView, Queue: queue, Agent: agent}).Allow
}

// body is what the reader sees of view, as GET /v1/sessions answers it.
func (v viewer) body(view enforce.SessionsView) SessionsBody {
	body := SessionsBody{Sessions: []enforce.LiveSession{}, Recordings: []enforce.Recording{}}
	for _, s := range view.Sessions {
		if s, ok := v.session(s); ok {
			body.Sessions = append(body.Sessions, s)
		}
	}
	for _, rec := range view.Recordings {
		if rec, ok := v.recording(rec); ok {
			body.Recordings = append(body.Recordings, rec)
		}
	}
	return body
}

// session returns s as the reader sees it, false when it may not.
func (v viewer) session(s enforce.LiveSession) (enforce.LiveSession, bool) {
	if !v.sees(s.Queue, s.Target) {
		return s, false
	}
	s.Caller = enforce.Mask(s.Caller, v.mask)
	s.Modes = slices.Clone(s.Modes)
	return s, true
}

// recording returns rec as the reader sees it, false when it may not.
func (v viewer) recording(rec enforce.Recording) (enforce.Recording, bool) {
	if !v.sees(rec.Queue, rec.Target) {
		return rec, false
	}
	rec.Caller = enforce.Mask(rec.Caller, v.mask)
	rec.Pauses = slices.Clone(rec.Pauses)
	return rec, true
}

// endSession serves DELETE /v1/sessions/{id}: an administrator, or whoever
// session.end allows on the session's queue and agent, ends it. Every
// request that names a session is audited, allowed or refused.
func (a *Admin) endSession(w http.ResponseWriter, r *http.Request, p *principal) {
	s, admin, ok := readOne(a, w, r, p, a.opts.Sessions != nil, "this daemon keeps no session registry", "live session",
		func(ctx context.Context, id string) (enforce.LiveSession, error) { return a.opts.Sessions.Get(ctx, id) })
	if !ok {
		return
	}
	id := s.ID
	req, d := p.admin()
	if !admin {
		req = enforce.Request{Action: enforce.SessionEnd, Queue: s.Queue, Agent: s.Target}
		if d = p.decide(req); !d.Allow {
			a.auditSession(r, p, s, d, "refused")
			a.forbid(w, p, req, d, "may not end this session")
			return
		}
	}
	ctx, cancel := a.storeContext(r)
	defer cancel()
	if err := a.opts.Sessions.End(ctx, id, p.user); err != nil {
		if errors.Is(err, enforce.ErrNotFound) {
			a.auditSession(r, p, s, d, "allowed, but the session had ended")
			httpauth.WriteError(w, http.StatusNotFound, fmt.Sprintf("no live session %q", id))
			return
		}
		a.auditSession(r, p, s, d, "allowed, but the end could not be asked: "+err.Error())
		a.storeFailed(w, r, err)
		return
	}
	a.auditSession(r, p, s, d, "end asked of "+s.Instance)
	a.log.Info("admin: session end asked", zap.String("user", p.user), zap.String("session", id), zap.String("instance", s.Instance))
	httpauth.WriteJSON(w, http.StatusAccepted, EndBody{ID: id, EndedBy: p.user, Instance: s.Instance, Status: "ending"})
}

// readOne opens the read of what the path's id names, with get (kept
// false: the daemon keeps no such store, 404 saying none): the reader check
// (reader: whether p is an administrator), then the item, 404 "no <what>
// <id>" when there is none, the store's failure otherwise. On false it has
// answered.
func readOne[T any](a *Admin, w http.ResponseWriter, r *http.Request, p *principal, kept bool, none, what string,
	get func(context.Context, string) (T, error)) (v T, admin, ok bool) {
	if admin, ok = a.readerOf(w, p, kept, none); !ok {
		return v, false, false
	}
	v, ok = fetch(a, w, r, what, get)
	return v, admin, ok
}

// fetch reads what the path's id names with get: 404 "no <what> <id>"
// when there is none, the store's failure otherwise. On false it has
// answered.
func fetch[T any](a *Admin, w http.ResponseWriter, r *http.Request, what string, get func(context.Context, string) (T, error)) (T, bool) {
	return fetchID(a, w, r, what, r.PathValue("id"), get)
}

// fetchID is fetch of the item id names.
func fetchID[T any](a *Admin, w http.ResponseWriter, r *http.Request, what, id string, get func(context.Context, string) (T, error)) (T, bool) {
	ctx, cancel := a.storeContext(r)
	defer cancel()
	v, err := get(ctx, id)
	if errors.Is(err, enforce.ErrNotFound) {
		httpauth.WriteError(w, http.StatusNotFound, fmt.Sprintf("no %s %q", what, id))
		return v, false
	}
	if err != nil {
		a.storeFailed(w, r, err)
		return v, false
	}
	return v, true
}

// auditSession records a DELETE of session s: who asked, the decision,
// the session's requester and target.
func (a *Admin) auditSession(r *http.Request, p *principal, s enforce.LiveSession, d enforce.Decision, detail string) {
	a.writeAudit(r, enforce.AuditRecord{
		Time: p.now, Source: AuditSource, User: p.user, Action: enforce.SessionEnd.String(),
		Target: s.Target, Queue: s.Queue, Decision: d.Verdict(), Reason: d.Reason.String(), Profile: d.Profile,
		PBX: s.PBX, Session: s.ID,
		Detail: r.Method + " " + r.URL.Path + ": " + detail + " (" + s.User + " in " + s.Mode + ")",
	})
}
