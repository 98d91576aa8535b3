package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// The parameters of GET /v1/audit, also the flags of `callwarden audit
// tail`.
const (
	AuditParamUser     = "user"
	AuditParamTarget   = "target"
	AuditParamAction   = "action"
	AuditParamDecision = "decision"
	AuditParamSince    = "since"
	AuditParamUntil    = "until"
	AuditParamLimit    = "limit"
)

// AuditBody is the answer to GET /v1/audit: the matching records, oldest
// first, caller numbers masked per the reader's profile.
type AuditBody struct {
	Records []enforce.AuditRecord `json:"records"`
}

// ParseAuditQuery turns the audit parameters into a filter: user, target,
// action and decision (allow or deny) match exactly, since and until
// (RFC 3339) bound the time, limit (default 100, at most 10000) keeps the
// most recent records. Unknown parameters are errors, as for checks.
func ParseAuditQuery(q url.Values) (enforce.AuditFilter, error) {
	f := enforce.AuditFilter{Limit: defaultAuditLimit}
	for k, vs := range q {
		switch k {
		case AuditParamUser, AuditParamTarget, AuditParamAction, AuditParamDecision,
			AuditParamSince, AuditParamUntil, AuditParamLimit:
		default:
			return f, paramErr(printable(k), "unknown parameter (want user, target, action, decision, since, until or limit)")
		}
		if len(vs) > 1 {
			return f, paramErr(k, "given %d times, want at most once", len(vs))
		}
		if len(vs[0]) > MaxParamLen || strings.IndexFunc(vs[0], isControl) >= 0 {
			return f, paramErr(k, "not an id (too long or contains a control character)")
		}
	}
	f.User, f.Target, f.Action = q.Get(AuditParamUser), q.Get(AuditParamTarget), q.Get(AuditParamAction)
	switch f.Decision = q.Get(AuditParamDecision); f.Decision {
	case "", "allow", "deny":
	default:
		return f, paramErr(AuditParamDecision, "%s, want allow or deny", printable(f.Decision))
	}
	var err error
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{AuditParamSince, &f.Since}, {AuditParamUntil, &f.Until}} {
		if v := q.Get(t.name); v != "" {
			if *t.dst, err = time.Parse(time.RFC3339, v); err != nil {
				return f, paramErr(t.name, "%s is not an RFC 3339 time", printable(v))
			}
		}
	}
	if v := q.Get(AuditParamLimit); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			return f, paramErr(AuditParamLimit, "%s, want 1 to %d", printable(v), maxAuditLimit)
		}
		f.Limit = n
	}
	return f, nil
}

// readAudit serves GET /v1/audit. Administrators read every record; anyone
// else with a profile reads only the records of its own actions. Caller
// numbers are masked per the reader's profile (mask_digits), on top of the
// masking applied when the record was written.
func (a *Admin) readAudit(w http.ResponseWriter, r *http.Request, p *principal) {
	if a.opts.AuditReader == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "this daemon keeps no audit trail"})
		return
	}
	admin, ok := a.reader(w, p)
	if !ok {
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "query: " + err.Error()})
		return
	}
	f, err := ParseAuditQuery(q)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return
	}
	req, d := p.admin()
	if !admin {
		if f.User != "" && f.User != p.user {
			a.forbid(w, p, req, d, "only an administrator may read other users' audit records")
			return
		}
		f.User = p.user
	}
	ctx, cancel := a.storeContext(r)
	defer cancel()
	recs, err := a.opts.AuditReader.ReadAudit(ctx, f)
	if err != nil {
		a.storeFailed(w, r, err)
		return
	}
	for i := range recs {
		recs[i].Caller = enforce.Mask(recs[i].Caller, d.MaskDigits)
	}
	if recs == nil {
		recs = []enforce.AuditRecord{}
	}
	writeJSON(w, http.StatusOK, AuditBody{Records: recs})
}

// getRecording serves GET /v1/recordings/{id}: the metadata of one
// recording, to an administrator or to whoever may play it back
// (recording.playback decided on its queue, agent and age). The caller
// number is masked per the reader's profile.
func (a *Admin) getRecording(w http.ResponseWriter, r *http.Request, p *principal) {
	if a.opts.Recordings == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "this daemon keeps no recording metadata"})
		return
	}
	admin, ok := a.reader(w, p)
	if !ok {
		return
	}
	id := r.PathValue("id")
	ctx, cancel := a.storeContext(r)
	defer cancel()
	rec, err := a.opts.Recordings.Recording(ctx, id)
	if errors.Is(err, enforce.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no recording %q", id)})
		return
	}
	if err != nil {
		a.storeFailed(w, r, err)
		return
	}
	_, d := p.admin()
	if !admin {
		req := enforce.Request{Action: enforce.RecordingPlayback, Queue: rec.Queue, Agent: rec.Target, RecordedAt: rec.StartedAt}
		if d = p.decide(req); !d.Allow {
			a.forbid(w, p, req, d, "")
			return
		}
	}
	rec.Caller = enforce.Mask(rec.Caller, d.MaskDigits)
	rec.Pauses = slices.Clone(rec.Pauses)
	writeJSON(w, http.StatusOK, rec)
}
