// Package adminapi is callwarden's admin API over HTTP: profiles, users,
// protected targets, recordings, the audit trail, the live sessions and
// the access review (/v1/profiles, /v1/users, /v1/protected,
// /v1/recordings, /v1/audit, /v1/sessions and its event stream
// /v1/sessions/stream, /v1/access). Every change is a profile.assign
// decision of the engine, audited, and written to the policy store
// conditionally on the generation it was based on; an access review is
// open to an administrator and to whoever the engine allows audit.review.
//
// adminapi imports enforce and pbx/httpauth only. The store, the snapshot,
// the auditor and the body codec (the profiles file parser, in cmd) are
// injected; it knows neither Redis nor config, nor the check API it is
// usually mounted beside.
package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// AuditSource is the Source of the audit records the admin API writes.
const AuditSource = "admin"

// The defaults of AdminOptions.
const (
	defaultStoreTimeout = 5 * time.Second
	defaultMaxBody      = 1 << 20
)

// FieldError is one problem in an admin request body, named by its path in
// the profiles-file shape ("grants[0].actions[1]") and, when known, the
// line of the body it is on.
type FieldError struct {
	Field   string `json:"field"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// ValidationError is what a Codec returns for a body it rejects, and what
// the admin API answers with 422.
type ValidationError struct {
	Fields []FieldError
}

// Error lists the problems, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		lines[i] = f.Message
		if f.Field != "" {
			lines[i] = f.Field + ": " + f.Message
		}
	}
	return strings.Join(lines, "\n")
}

// Codec translates admin API bodies to and from the profiles-file shape of
// one profile or one user. cmd supplies one backed by the profiles file
// parser, so the API accepts exactly what a profiles file accepts, with the
// same field paths and messages, while adminapi does not import config.
type Codec interface {
	// DecodeProfile parses one profile entry. profiles names the profiles
	// that exist, which the entry's profile.assign grants may reference.
	// A rejected body is a *ValidationError.
	DecodeProfile(body []byte, profiles []string) (enforce.Profile, error)
	// DecodeUser parses one user entry; profiles as for DecodeProfile.
	DecodeUser(body []byte, profiles []string) (enforce.User, error)
	// EncodeProfile and EncodeUser render an entry as JSON in the shape
	// the Decode methods accept.
	EncodeProfile(p enforce.Profile) (json.RawMessage, error)
	EncodeUser(u enforce.User) (json.RawMessage, error)
}

// AdminOptions configures the admin API. Store, Snapshot, Auth and Codec
// are required; the rest is optional.
type AdminOptions struct {
	// Store is the policy changed by the API. A read-only store (a
	// profiles file) answers writes with 405.
	Store enforce.PolicyStore
	// Snapshot returns the snapshot authorization is decided from; nil
	// answers 503 (never allow what cannot be checked).
	Snapshot func() *enforce.Snapshot
	// Auth maps bearer tokens to identities; only RoleAdmin tokens (user
	// ids) are accepted here.
	Auth httpauth.Authenticator
	// Codec decodes and encodes bodies.
	Codec Codec
	// Auditor receives one record per admin change, allowed or refused.
	Auditor enforce.Auditor
	// AuditReader serves GET /v1/audit; nil answers 404.
	AuditReader enforce.AuditReader
	// Recordings serves GET /v1/recordings/{id} and the access history;
	// nil answers 404.
	Recordings enforce.RecordingStore
	// Catalogue serves GET /v1/recordings and, with Audio, DELETE
	// /v1/recordings/{id}; nil answers 404.
	Catalogue enforce.RecordingCatalogue
	// Audio serves GET /v1/recordings/{id}/audio and removes the audio of
	// a deleted recording; nil answers 404.
	Audio enforce.RecordingAudio
	// Sessions serves GET and DELETE /v1/sessions; nil answers 404.
	Sessions Sessions
	// LiveRecordings lists the recordings in progress on GET
	// /v1/sessions; nil lists none.
	LiveRecordings enforce.ActiveRecordingLister
	// StreamPoll is how often GET /v1/sessions/stream reads the registry
	// while a stream is open (default 1s); StreamHeartbeat how often an
	// idle stream sends a comment (default 15s).
	StreamPoll      time.Duration
	StreamHeartbeat time.Duration
	// Now is the clock decisions are made at; default time.Now.
	Now func() time.Time
	// Logger receives refusals and failures; tokens are never logged.
	// Default zap.NewNop().
	Logger *zap.Logger
	// StoreTimeout bounds each store call; default 5s.
	StoreTimeout time.Duration
	// MaxBodyBytes bounds request bodies; default 1 MiB.
	MaxBodyBytes int64
}

// Admin serves the admin API: /v1/profiles, /v1/users, /v1/protected,
// /v1/recordings and /v1/audit. Every change is a profile.assign decision
// of the engine (see docs/admin-api.md); writes are conditional on the
// policy generation (If-Match). Build it with NewAdmin and mount it with
// Register (checkapi.Options.Admin does).
type Admin struct {
	opts AdminOptions
	log  *zap.Logger
	mux  *http.ServeMux
	feed *feed // the live sessions view, for the session streams
	// access is the access index of the last snapshot reviewed
	// (accessIndex).
	access atomic.Pointer[enforce.AccessIndex]
}

// NewAdmin checks opts and returns the admin API.
func NewAdmin(opts AdminOptions) (*Admin, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("adminapi: AdminOptions.Store is required")
	case opts.Snapshot == nil:
		return nil, errors.New("adminapi: AdminOptions.Snapshot is required")
	case opts.Auth == nil:
		return nil, errors.New("adminapi: AdminOptions.Auth is required")
	case opts.Codec == nil:
		return nil, errors.New("adminapi: AdminOptions.Codec is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = defaultStoreTimeout
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = defaultMaxBody
	}
	if opts.StreamPoll <= 0 {
		opts.StreamPoll = defaultStreamPoll
	}
	if opts.StreamHeartbeat <= 0 {
		opts.StreamHeartbeat = defaultStreamHeartbeat
	}
	a := &Admin{opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	a.feed = &feed{a: a, followers: make(map[*follower]struct{})}
	a.Register(a.mux)
	return a, nil
}

// Register mounts the admin routes on mux, beside the check API's
// (checkapi.Options.Admin) or alone.
func (a *Admin) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/profiles", a.authed(a.listProfiles))
	mux.HandleFunc("GET /v1/profiles/{name}", a.authed(a.getProfile))
	mux.HandleFunc("PUT /v1/profiles/{name}", a.authed(a.putProfile))
	mux.HandleFunc("DELETE /v1/profiles/{name}", a.authed(a.deleteProfile))
	mux.HandleFunc("GET /v1/users", a.authed(a.listUsers))
	mux.HandleFunc("GET /v1/users/{id}", a.authed(a.getUser))
	mux.HandleFunc("PUT /v1/users/{id}", a.authed(a.putUser))
	mux.HandleFunc("DELETE /v1/users/{id}", a.authed(a.deleteUser))
	mux.HandleFunc("GET /v1/protected", a.authed(a.getProtected))
	mux.HandleFunc("PUT /v1/protected", a.authed(a.putProtected))
	mux.HandleFunc("GET /v1/recordings", a.authed(a.listRecordings))
	mux.HandleFunc("GET /v1/recordings/{id}", a.authed(a.getRecording))
	mux.HandleFunc("GET /v1/recordings/{id}/audio", a.authed(a.recordingAudio))
	mux.HandleFunc("GET /v1/recordings/{id}/access", a.authed(a.recordingAccess))
	mux.HandleFunc("DELETE /v1/recordings/{id}", a.authed(a.deleteRecording))
	mux.HandleFunc("GET /v1/audit", a.authed(a.readAudit))
	mux.HandleFunc("GET /v1/sessions", a.authed(a.listSessions))
	mux.HandleFunc("GET /v1/sessions/stream", a.authed(a.streamSessions))
	mux.HandleFunc("DELETE /v1/sessions/{id}", a.authed(a.endSession))
	mux.HandleFunc("GET /v1/access/who-can", a.authed(a.whoCan))
	mux.HandleFunc("GET /v1/access/rights/{id}", a.authed(a.rights))
}

// ServeHTTP serves the admin routes alone, for tests and for mounting the
// admin API on its own listener.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// principal is an authenticated requester and the snapshot its request is
// decided from (one snapshot per request, so every decision agrees).
type principal struct {
	user string
	snap *enforce.Snapshot
	now  time.Time
}

// decide asks the engine.
func (p *principal) decide(req enforce.Request) enforce.Decision {
	req.User = p.user
	return enforce.Decide(p.snap, &req, p.now)
}

// adminRequest is the request that makes a user an administrator: handing
// out its own profile with no queue restriction. Whoever may make anyone
// its equal everywhere already holds every power the admin API gives.
func (p *principal) adminRequest() enforce.Request {
	own := ""
	if pr, ok := p.snap.ProfileOf(p.user); ok {
		own = pr.Name
	}
	return enforce.Request{User: p.user, Action: enforce.ProfileAssign, AssignProfile: own}
}

// admin decides whether the requester is an administrator.
func (p *principal) admin() (enforce.Request, enforce.Decision) {
	req := p.adminRequest()
	return req, p.decide(req)
}

// authed authenticates the bearer token and fetches the snapshot before
// calling h: 401 without a valid token, 503 without a snapshot.
func (a *Admin) authed(h func(http.ResponseWriter, *http.Request, *principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		tok, ok := httpauth.BearerToken(r.Header.Get("Authorization"))
		if !ok {
			httpauth.Refuse(w, "", "missing bearer token")
			return
		}
		id, ok := a.opts.Auth.Authenticate(tok)
		if !ok {
			a.log.Warn("admin request with an unknown token", zap.String("method", r.Method), zap.String("path", r.URL.Path))
			httpauth.Refuse(w, httpauth.ChallengeInvalidToken, "invalid bearer token")
			return
		}
		if id.Role != httpauth.RoleAdmin {
			a.log.Warn("admin request with a token of another role", zap.String("token", id.Name),
				zap.String("role", string(id.Role)), zap.String("method", r.Method), zap.String("path", r.URL.Path))
			httpauth.Refuse(w, httpauth.ChallengeInsufficientScope, "a "+string(id.Role)+" token cannot use the admin API")
			return
		}
		// Path ids follow the grammar every entry point shares: a name no
		// policy can hold is bad input, said escaped, not a 404 or a 422.
		for _, key := range [...]string{"name", "id"} {
			if v := r.PathValue(key); v != "" {
				if err := enforce.CheckID(v); err != nil {
					httpauth.WriteError(w, http.StatusBadRequest, key+": "+err.Error())
					return
				}
			}
		}
		user := id.Name
		snap := a.opts.Snapshot()
		if snap == nil {
			httpauth.WriteError(w, http.StatusServiceUnavailable, "no trustworthy policy snapshot (store_unavailable): refusing to decide")
			return
		}
		h(w, r, &principal{user: user, snap: snap, now: a.opts.Now()})
	}
}

// deniedBody is the 403 answer: the engine's decision in the check
// response shape, plus a sentence for people.
type deniedBody struct {
	Error string `json:"error"`
	enforce.Answer
}

func (a *Admin) forbid(w http.ResponseWriter, p *principal, req enforce.Request, d enforce.Decision, why string) {
	req.User = p.user
	resp := enforce.NewAnswer(req, d)
	msg := resp.Explain()
	if why != "" {
		msg = why + ": " + msg
	}
	httpauth.WriteJSON(w, http.StatusForbidden, deniedBody{Error: msg, Answer: resp})
}

// validationBody is the 422 answer.
type validationBody struct {
	Error  string       `json:"error"`
	Fields []FieldError `json:"fields"`
}

func writeValidation(w http.ResponseWriter, fields []FieldError) {
	httpauth.WriteJSON(w, http.StatusUnprocessableEntity, validationBody{Error: "validation failed", Fields: fields})
}

// validationFields turns a Codec or NewSnapshot error into field errors.
func validationFields(err error) []FieldError {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Fields
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]FieldError, 0, len(list))
	for _, e := range list {
		out = append(out, FieldError{Message: e.Error()})
	}
	return out
}

// storeContext bounds one store call; it outlives a client that hung up
// only as long as the timeout.
func (a *Admin) storeContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.opts.StoreTimeout)
}

// storeFailed answers a store error: 503 when the store is unreachable
// (never allow), 500 otherwise.
func (a *Admin) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, enforce.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		a.log.Warn("admin: store unavailable", zap.String("path", r.URL.Path), zap.Error(err))
		httpauth.WriteError(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	a.log.Error("admin: store failed", zap.String("path", r.URL.Path), zap.Error(err))
	httpauth.WriteError(w, http.StatusInternalServerError, "store error")
}

// etag renders a generation as an entity tag.
func etag(gen uint64) string { return `"` + strconv.FormatUint(gen, 10) + `"` }

// errNoIfMatch and errBadIfMatch are the If-Match failures.
var (
	errNoIfMatch  = errors.New(`If-Match is required: send the ETag of your last GET ("<generation>")`)
	errBadIfMatch = errors.New(`If-Match: want one ETag "<generation>"`)
)

// ifMatch parses If-Match: one strong ETag holding a generation.
func ifMatch(r *http.Request) (uint64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" {
		return 0, errNoIfMatch
	}
	if len(v) < 3 || v[0] != '"' || v[len(v)-1] != '"' {
		return 0, errBadIfMatch
	}
	gen, err := strconv.ParseUint(v[1:len(v)-1], 10, 64)
	if err != nil {
		return 0, errBadIfMatch
	}
	return gen, nil
}

// readBody reads a bounded request body.
func (a *Admin) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			httpauth.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", mb.Limit))
			return nil, false
		}
		httpauth.WriteError(w, http.StatusBadRequest, "read body: "+err.Error())
		return nil, false
	}
	return body, true
}

// audit records one admin change. A failure to audit is logged: the
// change itself has already been decided (and possibly applied), and the
// audit trail's own health is watched through its store.
func (a *Admin) audit(r *http.Request, p *principal, target string, d enforce.Decision, detail string) {
	a.writeAudit(r, enforce.AuditRecord{
		Time:     p.now,
		Source:   AuditSource,
		User:     p.user,
		Action:   enforce.ProfileAssign.String(),
		Target:   target,
		Decision: d.Verdict(),
		Reason:   d.Reason.String(),
		Profile:  d.Profile,
		Detail:   r.Method + " " + r.URL.Path + ": " + detail,
	})
}

// writeAudit writes rec, one record of an admin request, within the store
// timeout even when the client has gone. A failure is logged: what the
// request did is already decided, and the audit trail's own health is
// watched through its store.
func (a *Admin) writeAudit(r *http.Request, rec enforce.AuditRecord) {
	if a.opts.Auditor == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.opts.StoreTimeout)
	defer cancel()
	if err := a.opts.Auditor.Audit(ctx, rec); err != nil {
		a.log.Error("admin: audit write failed", zap.String("user", rec.User), zap.String("action", rec.Action),
			zap.String("target", rec.Target), zap.String("session", rec.Session), zap.String("recording", rec.Recording), zap.Error(err))
	}
}
