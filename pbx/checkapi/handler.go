// Package checkapi is callwarden's HTTP check API, the enforcement point
// that a dialplan's CURL() or a CTI tool asks: GET /v1/check, plus
// /healthz, /readyz and Prometheus /metrics. It parses the query with
// enforce.ParseRequest and answers enforce.Answer, which `callwarden check`
// uses too, so the CLI and the API cannot drift. Other routes (the admin
// API) can be mounted beside it on the same listener (Options.Admin).
//
// checkapi imports enforce and pbx/httpauth only. It reads the current
// snapshot through an injected function and knows nothing of where
// snapshots come from (files, Redis, config), nor of the admin API or the
// other enforcement points.
package checkapi

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// noStore is the Cache-Control of every check answer, shared by all of
// them (a header value is never modified in place).
var noStore = []string{"no-store"}

// ParamFormat selects the response body of /v1/check: "json" (default) or
// "text", a bare "allow" or "deny <reason>" that a dialplan's CURL() can
// compare without a JSON parser.
const ParamFormat = "format"

// Options configures the handler. Snapshot is required; every other field
// has a safe default.
type Options struct {
	// Snapshot returns the snapshot to decide from; nil means none is
	// loaded, and every check is denied with store_unavailable.
	Snapshot func() *enforce.Snapshot
	// Now is the clock used when a check names no "at"; default time.Now.
	Now func() time.Time
	// Logger receives the handler's errors and warnings, and the
	// decisions unless DecisionLogger is set; default zap.NewNop().
	Logger *zap.Logger
	// DecisionLogger, when set, receives the "decision" line logged at
	// info for every decision instead of Logger. A daemon under load gives
	// it a buffered output: written unbuffered under the logger's lock on
	// every check, the line cost more than the decision itself.
	DecisionLogger *zap.Logger
	// Registry receives the handler's metrics and is served on /metrics;
	// default a fresh registry (never the global one).
	Registry *prometheus.Registry
	// Ready reports whether the process can serve decisions; default: a
	// snapshot is loaded.
	Ready func() error
	// Auditor, when set, receives an audit record of every check decision
	// besides the log line (the shared audit trail in Redis). A failure to
	// write it is logged; the decision stands.
	Auditor enforce.Auditor
	// Admin, when set, registers its routes (the admin API: /v1/profiles,
	// /v1/users, /v1/protected, /v1/recordings and /v1/audit) beside the
	// check API.
	Admin Routes
	// CheckAuth says who may call /v1/check; default CheckAuthToken.
	CheckAuth CheckAuth
	// Auth authenticates the bearer tokens of checks; only RoleCheck
	// tokens are accepted. Without it, CheckAuthToken refuses every check.
	Auth httpauth.Authenticator
	// CheckRate and CheckBurst bound the checks of one asker (one token,
	// or the loopback PBX): a token bucket of CheckBurst refilled at
	// CheckRate per second; beyond it, 429. Defaults DefaultCheckRate and
	// DefaultCheckBurst.
	CheckRate  float64
	CheckBurst int
}

// Routes is a set of routes served beside the check API on its listener.
type Routes interface {
	// Register mounts the routes on mux.
	Register(mux *http.ServeMux)
}

// Handler serves the check API. Build it with New.
type Handler struct {
	opts      Options
	mux       *http.ServeMux
	decisions decisionCounters
	latency   prometheus.Histogram
	badReqs   prometheus.Counter

	unauthorized *prometheus.CounterVec
	limited      *prometheus.CounterVec
	limiter      *rateLimiter

	auditDeadline atomic.Pointer[auditDeadline]
}

// New returns the handler for opts, with its metrics registered on
// opts.Registry. It fails when Snapshot is nil or a metric with the same
// name is already registered.
func New(opts Options) (*Handler, error) {
	if opts.Snapshot == nil {
		return nil, errors.New("checkapi: Options.Snapshot is required")
	}
	if err := checkOptions(&opts); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.DecisionLogger == nil {
		opts.DecisionLogger = opts.Logger
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Ready == nil {
		snap := opts.Snapshot
		opts.Ready = func() error {
			if snap() == nil {
				return errors.New("no profiles snapshot loaded")
			}
			return nil
		}
	}
	h := &Handler{
		opts: opts,
		mux:  http.NewServeMux(),
		decisions: decisionCounters{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callwarden_decisions_total",
			Help: "Check decisions answered over HTTP, by action, decision and reason code.",
		}, []string{"action", "decision", "reason"})},
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "callwarden_decision_duration_seconds",
			Help: "Time the decision engine took to answer a check.",
			// Decide takes microseconds; the upper buckets catch a
			// pathological policy or a starved process.
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}),
		badReqs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callwarden_check_bad_requests_total",
			Help: "Check requests rejected for bad parameters (HTTP 400).",
		}),
		unauthorized: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callwarden_check_unauthorized_total",
			Help: "Check requests refused before deciding (401/403), by reason: missing, invalid, role, peer.",
		}, []string{"reason"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callwarden_check_rate_limited_total",
			Help: "Check requests refused with 429 by the per-asker rate limit, by token name (\"loopback\" for tokenless loopback checks).",
		}, []string{"token"}),
		limiter: newRateLimiter(opts.CheckRate, opts.CheckBurst),
	}
	for _, reason := range []string{"missing", "invalid", "role", "peer"} {
		h.unauthorized.WithLabelValues(reason)
	}
	generation := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "callwarden_snapshot_generation",
		Help: "Generation of the profiles snapshot decisions are made from; 0 when none is loaded.",
	}, func() float64 {
		if s := opts.Snapshot(); s != nil {
			return float64(s.Generation())
		}
		return 0
	})
	for _, c := range []prometheus.Collector{h.decisions.vec, h.latency, h.badReqs, h.unauthorized, h.limited, generation} {
		if err := opts.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("checkapi: register metrics: %w", err)
		}
	}
	h.mux.HandleFunc("GET /v1/check", h.check)
	if opts.Admin != nil {
		opts.Admin.Register(h.mux)
	}
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{
		ErrorLog: zap.NewStdLog(opts.Logger.Named("metrics")),
	}))
	return h, nil
}

// ServeHTTP routes the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) check(w http.ResponseWriter, r *http.Request) {
	w.Header()["Cache-Control"] = noStore
	// Authentication comes first: an unauthenticated request learns
	// nothing of the policy, is not decided and writes no audit record.
	askedBy, err := h.authenticateCheck(r)
	if err != nil {
		h.refuseCheck(w, r, err)
		return
	}
	now := h.opts.Now()
	if ok, wait := h.limiter.allow(askedBy, now); !ok {
		name := strings.TrimPrefix(askedBy, "token:")
		h.limited.WithLabelValues(name).Inc()
		w.Header().Set("Retry-After", retryAfter(wait))
		httpauth.WriteError(w, http.StatusTooManyRequests, fmt.Sprintf("rate limit of %s exceeded (%g checks/s, burst %d)", askedBy, h.opts.CheckRate, h.opts.CheckBurst))
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.badRequest(w, fmt.Errorf("query: %w", err))
		return
	}
	text, err := wantText(q, r.Header.Get("Accept"))
	if err != nil {
		h.badRequest(w, err)
		return
	}
	q.Del(ParamFormat)
	req, at, err := enforce.ParseRequest(q)
	if err != nil {
		h.badRequest(w, err)
		return
	}
	explicitAt := !at.IsZero()
	if !explicitAt {
		at = now
	}
	snap := h.opts.Snapshot()
	start := time.Now()
	d := enforce.Decide(snap, &req, at)
	h.latency.Observe(time.Since(start).Seconds())
	h.decisions.inc(req.Action, &d)
	h.audit(askedBy, req, d, snap, at, now, start, explicitAt)

	resp := enforce.NewAnswer(req, d)
	if text {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		body := resp.Decision
		if !d.Allow {
			body += " " + resp.Reason
		}
		_, _ = w.Write([]byte(body))
		return
	}
	writeAnswer(w, &resp)
}

// audit logs one decision and writes its audit record.
// now is the check's clock (Options.Now), start the real clock's time.
func (h *Handler) audit(askedBy string, req enforce.Request, d enforce.Decision, snap *enforce.Snapshot, at, now, start time.Time, explicitAt bool) {
	// The line is only built when it is written.
	if ce := h.opts.DecisionLogger.Check(zap.InfoLevel, "decision"); ce != nil {
		line := &decisionLine{askedBy: askedBy, req: req, d: d, at: at, explicitAt: explicitAt}
		if snap != nil {
			line.generation, line.hasGeneration = snap.Generation(), true
		}
		ce.Write(zap.Inline(line))
	}
	if h.opts.Auditor != nil {
		h.recordDecision(askedBy, req, d, at, now, start, explicitAt)
	}
}

// decisionLine is the fields of a decision's log line, added inline: the
// line has the same keys, in the same order, as if each were its own zap
// field, but a check builds one value instead of a slice of fields. Only
// identifiers and codes are logged: no caller numbers, no credentials.
type decisionLine struct {
	askedBy       string
	req           enforce.Request
	d             enforce.Decision
	at            time.Time
	explicitAt    bool
	generation    uint64
	hasGeneration bool
}

// MarshalLogObject adds the line's fields to enc.
func (l *decisionLine) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	req, d := &l.req, &l.d
	enc.AddString("source", "http")
	enc.AddString("asked_by", l.askedBy)
	enc.AddString("user", req.User)
	enc.AddString("action", req.Action.String())
	enc.AddString("queue", req.Queue)
	enc.AddString("team", req.Team)
	enc.AddString("agent", req.Agent)
	enc.AddString("site", req.Site)
	enc.AddString("decision", d.Verdict())
	enc.AddString("reason", d.Reason.String())
	enc.AddString("profile", d.Profile)
	enc.AddInt("grant", d.Grant)
	if req.Action == enforce.ProfileAssign {
		enc.AddString("assign_profile", req.AssignProfile)
		zap.Strings("assign_queues", req.AssignQueues).AddTo(enc)
	}
	if !req.RecordedAt.IsZero() {
		enc.AddTime("recorded_at", req.RecordedAt)
	}
	if l.explicitAt {
		// A what-if question about another instant: say so, so an auditor
		// does not mistake it for a live decision.
		enc.AddTime("at", l.at)
	}
	if l.hasGeneration {
		enc.AddUint64("generation", l.generation)
	}
	return nil
}

// recordDecision writes the audit record of one decision.
func (h *Handler) recordDecision(askedBy string, req enforce.Request, d enforce.Decision, at, now, start time.Time, explicitAt bool) {
	when := at
	if explicitAt {
		when = now
	}
	rec := enforce.AuditRecord{
		Time: when, Source: "http", User: req.User, Action: req.Action.String(),
		Target: req.Agent, Queue: req.Queue, Team: req.Team, Site: req.Site,
		Decision: d.Verdict(), Reason: d.Reason.String(), Profile: d.Profile,
		AskedBy: askedBy, RecordedAt: req.RecordedAt, AssignProfile: req.AssignProfile, AssignQueues: req.AssignQueues,
	}
	if req.Action == enforce.ProfileAssign {
		rec.Detail = "assign " + req.AssignProfile + " on queues [" + strings.Join(req.AssignQueues, ", ") + "]"
	}
	if explicitAt {
		rec.At = at
		rec.Detail = strings.TrimSpace(rec.Detail + " (what-if at " + at.Format(time.RFC3339) + ")")
	}
	if err := h.opts.Auditor.Audit(h.auditContext(start), rec); err != nil {
		h.opts.Logger.Error("audit write failed", zap.String("user", req.User), zap.String("action", req.Action.String()), zap.Error(err))
	}
}

// auditTimeout bounds the audit write of one check, so a slow store delays
// an answer by at most this much (auditContext).
const auditTimeout = time.Second

func (h *Handler) badRequest(w http.ResponseWriter, err error) {
	h.badReqs.Inc()
	httpauth.WriteError(w, http.StatusBadRequest, err.Error())
}

// wantText reports whether the client asked for the text body, through
// format=text or an Accept header preferring text/plain.
func wantText(q url.Values, accept string) (bool, error) {
	switch vs := q[ParamFormat]; {
	case len(vs) > 1:
		return false, &enforce.ParamError{Param: ParamFormat, Err: errors.New("given more than once")}
	case len(vs) == 1 && vs[0] == "text":
		return true, nil
	case len(vs) == 1 && vs[0] == "json":
		return false, nil
	case len(vs) == 1 && vs[0] != "":
		return false, &enforce.ParamError{Param: ParamFormat, Err: fmt.Errorf("%s, want json or text", printable(vs[0]))}
	}
	// The first media type of Accept decides; CURL() sends none, or "*/*".
	first, _, _ := strings.Cut(accept, ",")
	mt, _, err := mime.ParseMediaType(strings.TrimSpace(first))
	return err == nil && mt == "text/plain", nil
}

func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// Ready reports what /readyz answers: nil when the process can serve
// decisions, else why not (Options.Ready, or its default).
func (h *Handler) Ready() error { return h.opts.Ready() }

func (h *Handler) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := h.opts.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// printable quotes a rejected value so that arbitrary bytes from the query
// string never reach an error message or a log line raw.
func printable(s string) string { return fmt.Sprintf("%q", s[:min(len(s), 64)]) }
