package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// The bounds of GET /v1/recordings.
const (
	defaultRecordingsLimit = 100
	maxRecordingsLimit     = 1000
	// recordingsScanFactor bounds the recordings one list request reads
	// (decided and refused) to this many times its limit: a caller who
	// may play back few of the recordings read gets a shorter page and a
	// cursor to go on from, never a request that reads the catalogue whole.
	recordingsScanFactor = 10
	// audioWriteTimeout is how long the answer of GET .../audio may take to
	// write, in place of the server's write timeout (sized for small JSON
	// answers).
	audioWriteTimeout = 30 * time.Minute
)

// RecordingRow is a recording as the API shows it: its metadata, caller
// masked per the reader's profile, and how long it recorded.
type RecordingRow struct {
	enforce.Recording
	// Duration is the seconds recorded, pauses excluded (so far, for one
	// in progress).
	Duration float64 `json:"duration"`
}

// RecordingsBody is the answer to GET /v1/recordings: a page of the
// recordings the caller may play back, newest first, and the cursor of the
// next page ("" when there is none).
type RecordingsBody struct {
	Recordings []RecordingRow `json:"recordings"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

// AccessBody is the answer to GET /v1/recordings/{id}/access: the audit
// records of every playback, export, metadata read and delete of the
// recording, allowed or refused, oldest first.
type AccessBody struct {
	Recording string                `json:"recording"`
	Accesses  []enforce.AuditRecord `json:"accesses"`
}

// recordingsQuery is GET /v1/recordings' query.
type recordingsQuery struct {
	agent, queue string
	from, to     time.Time
	limit        int
	cursor       string
}

func parseRecordingsQuery(raw string) (recordingsQuery, error) {
	q := recordingsQuery{limit: defaultRecordingsLimit}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return q, fmt.Errorf("query: %w", err)
	}
	for k, vs := range vals {
		if len(vs) > 1 {
			return q, fmt.Errorf("%s: given %d times, want at most once", strconv.Quote(k), len(vs))
		}
		v := vs[0]
		switch k {
		case "agent", "queue":
			if v != "" {
				if err := enforce.CheckID(v); err != nil {
					return q, fmt.Errorf("%s: %w", k, err)
				}
			}
			if k == "agent" {
				q.agent = v
			} else {
				q.queue = v
			}
		case "from", "to":
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return q, fmt.Errorf("%s: %s is not an RFC 3339 time", k, strconv.Quote(v))
			}
			if k == "from" {
				q.from = t
			} else {
				q.to = t
			}
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxRecordingsLimit {
				return q, fmt.Errorf("limit: %s, want 1 to %d", strconv.Quote(v), maxRecordingsLimit)
			}
			q.limit = n
		case "cursor":
			if q.cursor, err = enforce.ParseCatalogueKey(v); err != nil {
				return q, err
			}
		default:
			return q, fmt.Errorf("%s: unknown parameter (want agent, queue, from, to, limit or cursor)", strconv.Quote(k))
		}
	}
	return q, nil
}

// playbackRequest is the decision of action on rec: its queue, agent and
// age (recorded_within).
func playbackRequest(action enforce.Action, rec *enforce.Recording) enforce.Request {
	return enforce.Request{Action: action, Queue: rec.Queue, Agent: rec.Target, RecordedAt: rec.StartedAt}
}

// row is rec as a reader whose profile masks mask digits sees it.
func row(rec enforce.Recording, mask int, now time.Time) RecordingRow {
	rec.Caller = enforce.Mask(rec.Caller, mask)
	rec.Pauses = slices.Clone(rec.Pauses)
	return RecordingRow{Recording: rec, Duration: rec.Duration(now).Seconds()}
}

// listRecordings serves GET /v1/recordings: a page of the recordings the
// caller may play back (recording.playback decided on each one's queue,
// agent and age), newest first. Only the indexes the caller's grants can
// reach are read (Snapshot.RecordingReach), or the one agent= or queue=
// names; a page reads at most recordingsScanFactor times its limit, and
// its cursor goes on from the last recording read.
func (a *Admin) listRecordings(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, ok := a.readerOf(w, p, a.opts.Catalogue != nil, "this daemon keeps no recording catalogue"); !ok {
		return
	}
	q, err := parseRecordingsQuery(r.URL.RawQuery)
	if err != nil {
		httpauth.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	var ixs []enforce.RecordingIndex
	switch {
	case q.agent != "":
		ixs = []enforce.RecordingIndex{{Agent: q.agent}}
	case q.queue != "":
		ixs = []enforce.RecordingIndex{{Queue: q.queue}}
	default:
		var all bool
		if ixs, all = p.snap.RecordingReach(p.user, enforce.RecordingPlayback); all {
			ixs = []enforce.RecordingIndex{{}}
		}
	}
	_, own := p.admin()
	ctx, cancel := a.storeContext(r)
	defer cancel()
	body := RecordingsBody{Recordings: []RecordingRow{}}
	budget := q.limit * recordingsScanFactor
	// Each index is read in pages of its share of the limit (and one more,
	// so that a page that ends an index says so).
	page := min(max(q.limit/max(len(ixs), 1), 16), maxRecordingsLimit) + 1
	m := newMerger(a.opts.Catalogue, ixs, enforce.RecordingQuery{From: q.from, To: q.to, After: q.cursor, Limit: page})
	for read := 0; len(body.Recordings) < q.limit; read++ {
		if read == budget {
			break
		}
		rec, ok, err := m.next(ctx)
		if err != nil {
			a.storeFailed(w, r, err)
			return
		}
		if !ok {
			break
		}
		if q.queue != "" && rec.Queue != q.queue {
			continue
		}
		if p.decide(playbackRequest(enforce.RecordingPlayback, &rec)).Allow {
			body.Recordings = append(body.Recordings, row(rec, own.MaskDigits, p.now))
		}
	}
	if !m.exhausted() {
		body.NextCursor = m.last
	}
	a.auditListing(r, p, q, len(body.Recordings))
	httpauth.WriteJSON(w, http.StatusOK, body)
}

// auditListing records that p listed n recordings with query q: who looked
// at the catalogue, for what, and from where (action recording.list; each
// row was decided recording.playback and is not audited one by one).
func (a *Admin) auditListing(r *http.Request, p *principal, q recordingsQuery, n int) {
	a.writeAudit(r, enforce.AuditRecord{
		Time: p.now, Source: AuditSource, User: p.user, Action: "recording.list", Target: q.agent, Queue: q.queue,
		Decision: "allow", Reason: "granted", Addr: r.RemoteAddr,
		Detail: fmt.Sprintf("GET %s: %d recording(s) listed, each decided recording.playback", r.URL.RequestURI(), n),
	})
}

// merger reads several catalogue indexes as one, newest first, each
// recording once (a recording is in its queue's and its agent's index).
type merger struct {
	cat   enforce.RecordingCatalogue
	q     enforce.RecordingQuery
	heads []*indexPage
	last  string // the key of the last recording returned
}

// indexPage is what was read of one index and not yet returned.
type indexPage struct {
	ix    enforce.RecordingIndex
	recs  []enforce.Recording
	keys  []string // recs' catalogue keys
	after string   // where the next page of the index starts
	done  bool     // the index has nothing after recs
}

// newMerger reads ixs from after q.After; each index is read q.Limit
// recordings at a time.
func newMerger(cat enforce.RecordingCatalogue, ixs []enforce.RecordingIndex, q enforce.RecordingQuery) *merger {
	m := &merger{cat: cat, q: q, last: q.After}
	for _, ix := range ixs {
		m.heads = append(m.heads, &indexPage{ix: ix, after: q.After})
	}
	return m
}

// fill reads the next page of h when it has nothing left.
func (m *merger) fill(ctx context.Context, h *indexPage) error {
	if len(h.recs) > 0 || h.done {
		return nil
	}
	q := m.q
	q.Index, q.After = h.ix, h.after
	recs, err := m.cat.ListRecordings(ctx, q)
	if err != nil {
		return err
	}
	h.done = len(recs) < q.Limit
	h.recs, h.keys = recs, make([]string, len(recs))
	for i := range recs {
		h.keys[i], _ = enforce.CatalogueKey(&recs[i])
	}
	if n := len(h.keys); n > 0 {
		h.after = h.keys[n-1]
	}
	return nil
}

// exhausted reports whether every index is known to hold nothing more.
func (m *merger) exhausted() bool {
	for _, h := range m.heads {
		if len(h.recs) > 0 || !h.done {
			return false
		}
	}
	return true
}

// next returns the newest recording not yet returned; ok is false when
// every index is exhausted.
func (m *merger) next(ctx context.Context) (enforce.Recording, bool, error) {
	for {
		var best *indexPage
		for _, h := range m.heads {
			if err := m.fill(ctx, h); err != nil {
				return enforce.Recording{}, false, err
			}
			if len(h.recs) > 0 && (best == nil || h.keys[0] > best.keys[0]) {
				best = h
			}
		}
		if best == nil {
			return enforce.Recording{}, false, nil
		}
		rec, key := best.recs[0], best.keys[0]
		best.recs, best.keys = best.recs[1:], best.keys[1:]
		if key == m.last {
			continue // the same recording, read from another index
		}
		m.last = key
		return rec, true, nil
	}
}

// allowedRecording opens a request to do action on the recording the path
// names: the reader check, the recording (404 when there is none), then
// the decision (decideRecording). On false it has answered.
func (a *Admin) allowedRecording(w http.ResponseWriter, r *http.Request, p *principal, action enforce.Action, why string) (enforce.Recording, enforce.Decision, bool) {
	rec, _, ok := readOne(a, w, r, p, a.opts.Recordings != nil, "this daemon keeps no recording metadata", "recording",
		func(ctx context.Context, id string) (enforce.Recording, error) {
			return a.opts.Recordings.Recording(ctx, id)
		})
	if !ok {
		return rec, enforce.Decision{}, false
	}
	d, ok := a.decideRecording(w, r, p, action, &rec, why)
	return rec, d, ok
}

// decideRecording decides action on rec for p; a refusal is audited and
// answered 403 (false).
func (a *Admin) decideRecording(w http.ResponseWriter, r *http.Request, p *principal, action enforce.Action, rec *enforce.Recording, why string) (enforce.Decision, bool) {
	req := playbackRequest(action, rec)
	d := p.decide(req)
	if !d.Allow {
		a.auditRecording(r, p, action, rec, d, "refused")
		a.forbid(w, p, req, d, why)
	}
	return d, d.Allow
}

// getRecording serves GET /v1/recordings/{id}: the metadata of one
// recording, to whoever may play it back (recording.playback decided on
// its queue, agent and age). The caller number is masked per the reader's
// profile. Every read is audited, refusals too.
func (a *Admin) getRecording(w http.ResponseWriter, r *http.Request, p *principal) {
	rec, d, ok := a.allowedRecording(w, r, p, enforce.RecordingPlayback, "")
	if !ok {
		return
	}
	a.auditRecording(r, p, enforce.RecordingPlayback, &rec, d, "metadata read")
	httpauth.WriteJSON(w, http.StatusOK, row(rec, d.MaskDigits, p.now))
}

// recordingAudio serves GET /v1/recordings/{id}/audio: the audio, with
// range requests (http.ServeContent), to whoever recording.export
// (?download=1: an attachment) or recording.playback (inline) allows on
// it, decided at the time of the request. Each request is audited,
// refusals too.
func (a *Admin) recordingAudio(w http.ResponseWriter, r *http.Request, p *principal) {
	if a.opts.Audio == nil {
		httpauth.WriteError(w, http.StatusNotFound, "this daemon reaches no recording audio")
		return
	}
	download := false
	switch v := r.URL.Query().Get("download"); v {
	case "", "0", "false":
	case "1", "true":
		download = true
	default:
		httpauth.WriteError(w, http.StatusBadRequest, "download: "+strconv.Quote(v)+", want 1 or 0")
		return
	}
	action, disposition := enforce.RecordingPlayback, "inline"
	if download {
		action, disposition = enforce.RecordingExport, "attachment"
	}
	rec, d, ok := a.allowedRecording(w, r, p, action, "")
	if !ok {
		return
	}
	if rec.State != enforce.RecordingStopped {
		a.auditRecording(r, p, action, &rec, d, "allowed, but the recording is in progress")
		httpauth.WriteError(w, http.StatusConflict, "recording "+rec.ID+" is in progress: its audio is not complete")
		return
	}
	// The audio is opened on the request's own context: a download may
	// take longer than a store call.
	audio, err := a.opts.Audio.OpenAudio(r.Context(), rec)
	if err != nil {
		a.auditRecording(r, p, action, &rec, d, "allowed, but the audio could not be read: "+err.Error())
		if errors.Is(err, enforce.ErrNotFound) {
			httpauth.WriteError(w, http.StatusNotFound, "the PBX holds no audio for recording "+rec.ID)
			return
		}
		a.storeFailed(w, r, err)
		return
	}
	defer audio.Close()
	a.keepSize(r, rec, audio.Size)
	detail := "audio served"
	if rg := r.Header.Get("Range"); rg != "" {
		detail += " (" + rg + ")"
	}
	a.auditRecording(r, p, action, &rec, d, detail)
	name := rec.Name
	if rec.Format != "" {
		name += "." + rec.Format
	}
	w.Header().Set("Content-Type", audio.ContentType)
	w.Header().Set("Content-Disposition", disposition+"; filename="+strconv.Quote(name))
	// The server's write timeout is sized for JSON answers, not audio.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(audioWriteTimeout))
	http.ServeContent(w, r, name, audio.ModTime, audio)
}

// keepSize writes the audio's size into rec's metadata the first time it
// is known (or when it changed); a failure only leaves it unknown (logged).
func (a *Admin) keepSize(r *http.Request, rec enforce.Recording, size int64) {
	if a.opts.Recordings == nil || size <= 0 || rec.Size == size {
		return
	}
	rec.Size = size
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.opts.StoreTimeout)
	defer cancel()
	if err := a.opts.Recordings.SaveRecording(ctx, rec); err != nil {
		a.log.Warn("cannot keep a recording's audio size", zap.String("recording", rec.ID), zap.Error(err))
	}
}

// deleteRecording serves DELETE /v1/recordings/{id}: whoever
// recording.delete allows on it removes its audio from the PBX, then its
// metadata from the catalogue. A recording in progress is not deleted
// (409). Every request is audited, refusals too.
func (a *Admin) deleteRecording(w http.ResponseWriter, r *http.Request, p *principal) {
	if a.opts.Catalogue == nil || a.opts.Audio == nil {
		httpauth.WriteError(w, http.StatusNotFound, "this daemon keeps no recording catalogue with its audio")
		return
	}
	rec, d, ok := a.allowedRecording(w, r, p, enforce.RecordingDelete, "may not delete this recording")
	if !ok {
		return
	}
	if rec.State != enforce.RecordingStopped {
		a.auditRecording(r, p, enforce.RecordingDelete, &rec, d, "allowed, but the recording is in progress")
		httpauth.WriteError(w, http.StatusConflict, "recording "+rec.ID+" is in progress: stop it first")
		return
	}
	ctx, cancel := a.storeContext(r)
	defer cancel()
	if err := enforce.DeleteRecording(ctx, a.opts.Catalogue, a.opts.Audio, rec); err != nil {
		a.auditRecording(r, p, enforce.RecordingDelete, &rec, d, "allowed, but failed: "+err.Error())
		a.storeFailed(w, r, err)
		return
	}
	a.auditRecording(r, p, enforce.RecordingDelete, &rec, d, "deleted from the PBX and the catalogue")
	a.log.Info("admin: recording deleted", zap.String("user", p.user), zap.String("recording", rec.ID))
	w.WriteHeader(http.StatusNoContent)
}

// recordingAccess serves GET /v1/recordings/{id}/access: the audit records
// about the recording (who read, played, exported or deleted it, when, from
// where), to an administrator or to whoever recording.delete allows on
// it. Once the recording is deleted, only administrators read its history.
func (a *Admin) recordingAccess(w http.ResponseWriter, r *http.Request, p *principal) {
	admin, ok := a.readerOf(w, p, a.opts.AuditReader != nil && a.opts.Recordings != nil, "this daemon keeps no audit trail")
	if !ok {
		return
	}
	id := r.PathValue("id")
	ctx, cancel := a.storeContext(r)
	defer cancel()
	rec, err := a.opts.Recordings.Recording(ctx, id)
	switch {
	case errors.Is(err, enforce.ErrNotFound):
		if !admin {
			httpauth.WriteError(w, http.StatusNotFound, fmt.Sprintf("no recording %q", id))
			return
		}
	case err != nil:
		a.storeFailed(w, r, err)
		return
	case !admin:
		if _, ok := a.decideRecording(w, r, p, enforce.RecordingDelete, &rec, "only an administrator or who may delete it reads its access history"); !ok {
			return
		}
	}
	recs, err := a.opts.AuditReader.ReadAudit(ctx, enforce.AuditFilter{Recording: id})
	if err != nil {
		a.storeFailed(w, r, err)
		return
	}
	_, d := p.admin()
	for i := range recs {
		recs[i].Caller = enforce.Mask(recs[i].Caller, d.MaskDigits)
	}
	if recs == nil {
		recs = []enforce.AuditRecord{}
	}
	httpauth.WriteJSON(w, http.StatusOK, AccessBody{Recording: id, Accesses: recs})
}

// auditRecording records one access to rec: who, from where, the action
// decided and what became of it.
func (a *Admin) auditRecording(r *http.Request, p *principal, action enforce.Action, rec *enforce.Recording, d enforce.Decision, detail string) {
	a.writeAudit(r, enforce.AuditRecord{
		Time: p.now, Source: AuditSource, User: p.user, Action: action.String(),
		Target: rec.Target, Queue: rec.Queue, Decision: d.Verdict(), Reason: d.Reason.String(), Profile: d.Profile,
		Caller: enforce.Mask(rec.Caller, d.MaskDigits), PBX: rec.PBX, Recording: rec.ID, Addr: r.RemoteAddr,
		Detail: r.Method + " " + r.URL.Path + ": " + detail,
	})
}
