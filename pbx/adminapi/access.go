package adminapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// The query parameters of GET /v1/access/who-can and
// GET /v1/access/rights/{user}.
var (
	whoCanParams = []string{"action", "agent", "queue", "team", "site", "recording", "recorded_at", "at"}
	rightsParams = []string{"at"}
)

// accessIndex returns the access index of snap, built on first use and
// kept until the snapshot changes: building it is O(users), a query is
// O(candidates).
func (a *Admin) accessIndex(snap *enforce.Snapshot) *enforce.AccessIndex {
	if ix := a.access.Load(); ix != nil && ix.Snapshot() == snap {
		return ix
	}
	ix := enforce.NewAccessIndex(snap)
	a.access.Store(ix)
	return ix
}

// reviewer decides whether the requester may review access to the target
// of req: an administrator may, and so may whoever the engine allows
// audit.review on that target (an auditor's profile). On false it has
// answered 403 with the decision.
func (a *Admin) reviewer(w http.ResponseWriter, p *principal, target enforce.Request) bool {
	if _, d := p.admin(); d.Allow {
		return true
	}
	req := enforce.Request{Action: enforce.AuditReview, Queue: target.Queue, Team: target.Team, Agent: target.Agent, Site: target.Site}
	if d := p.decide(req); !d.Allow {
		a.forbid(w, p, req, d, "access review needs an administrator or audit.review on the target")
		return false
	}
	return true
}

// query parses the query string, refusing parameters not in known: a
// misspelt one silently dropped would widen the question.
func query(r *http.Request, known []string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	for k, v := range q {
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("unknown parameter %q (want %s)", k, strings.Join(known, ", "))
		}
		if len(v) > 1 {
			return nil, fmt.Errorf("%s: given %d times", k, len(v))
		}
	}
	return q, nil
}

// instant parses an optional RFC 3339 parameter.
func instant(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %q is not an RFC 3339 time", name, v)
	}
	return t, nil
}

// whoCan serves GET /v1/access/who-can: every user the engine allows an
// action on a target (agent, queue, team, site, or a recording's queue,
// agent and age), with the profile and grant that allow it.
func (a *Admin) whoCan(w http.ResponseWriter, r *http.Request, p *principal) {
	req, at, ok := a.whoCanRequest(w, r, p)
	if !ok || !a.reviewer(w, p, req) {
		return
	}
	users, err := a.accessIndex(p.snap).WhoCan(req, at)
	if err != nil {
		httpauth.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	httpauth.WriteJSON(w, http.StatusOK, enforce.NewWhoCanAnswer(req, at, users))
}

// whoCanRequest parses a who-can query into the request it asks about
// and the instant (now when absent); on false it has answered.
func (a *Admin) whoCanRequest(w http.ResponseWriter, r *http.Request, p *principal) (enforce.Request, time.Time, bool) {
	bad := func(err error) (enforce.Request, time.Time, bool) {
		httpauth.WriteError(w, http.StatusBadRequest, err.Error())
		return enforce.Request{}, time.Time{}, false
	}
	q, err := query(r, whoCanParams)
	if err != nil {
		return bad(err)
	}
	action, err := enforce.ParseAction(q.Get("action"))
	if err != nil {
		return bad(fmt.Errorf("action: %w", err))
	}
	for _, k := range []string{"agent", "queue", "team", "site", "recording"} {
		if v := q.Get(k); v != "" {
			if err := enforce.CheckID(v); err != nil {
				return bad(fmt.Errorf("%s: %w", k, err))
			}
		}
	}
	req := enforce.Request{Action: action, Agent: q.Get("agent"), Queue: q.Get("queue"), Team: q.Get("team"), Site: q.Get("site")}
	if req.RecordedAt, err = instant(q, "recorded_at"); err != nil {
		return bad(err)
	}
	at, err := instant(q, "at")
	if err != nil {
		return bad(err)
	}
	if at.IsZero() {
		at = p.now
	}
	id := q.Get("recording")
	switch {
	case id != "" && (req.Agent != "" || req.Queue != "" || !req.RecordedAt.IsZero()):
		return bad(errors.New("recording names its own queue, agent and age: give it alone"))
	case id == "" && req.Agent == "" && req.Queue == "":
		return bad(errors.New("give a target: agent, queue or recording"))
	case id == "":
		return req, at, true
	}
	// Whoever may review no target at all is refused before the lookup,
	// so that it cannot tell which recording ids exist; one scoped to
	// some targets is decided on the recording's once it is read.
	if _, d := p.admin(); !d.Allow {
		probe := enforce.Request{Action: enforce.AuditReview}
		if d := p.decide(probe); !d.Allow && d.Reason != enforce.ReasonOutOfScope {
			a.forbid(w, p, probe, d, "access review needs an administrator or audit.review")
			return enforce.Request{}, time.Time{}, false
		}
	}
	if a.opts.Recordings == nil {
		httpauth.WriteError(w, http.StatusNotFound, "this daemon keeps no recording metadata")
		return enforce.Request{}, time.Time{}, false
	}
	rec, ok := fetchID(a, w, r, "recording", id, a.opts.Recordings.Recording)
	if !ok {
		return enforce.Request{}, time.Time{}, false
	}
	req.Queue, req.Agent, req.RecordedAt = rec.Queue, rec.Target, rec.StartedAt
	return req, at, true
}

// rights serves GET /v1/access/rights/{id}: what a user may do, per
// action, as enforce.RightsOf describes it. A user may read its own.
func (a *Admin) rights(w http.ResponseWriter, r *http.Request, p *principal) {
	q, err := query(r, rightsParams)
	if err != nil {
		httpauth.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	at, err := instant(q, "at")
	if err != nil {
		httpauth.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if at.IsZero() {
		at = p.now
	}
	user := r.PathValue("id")
	if user != p.user && !a.reviewer(w, p, enforce.Request{Agent: user}) {
		return
	}
	httpauth.WriteJSON(w, http.StatusOK, enforce.RightsOf(p.snap, user, at))
}
