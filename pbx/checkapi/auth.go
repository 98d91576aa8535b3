package checkapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/pbx/httpauth"
)

// CheckAuth says who may call GET /v1/check.
type CheckAuth string

// The CheckAuth modes.
const (
	// CheckAuthToken (the default) requires a RoleCheck bearer token on
	// every check; the audit record names the token (AskedBy
	// "token:<name>").
	CheckAuthToken CheckAuth = "token"
	// CheckAuthLoopback also answers checks that carry no token, when they
	// come from a loopback address (AskedBy "loopback"), for a PBX on the
	// same host whose dialplan cannot send a header. The config accepts it
	// only when every listener is on a loopback address; the handler still
	// refuses a tokenless check from any other peer. A token, when sent,
	// must be valid.
	CheckAuthLoopback CheckAuth = "none-on-loopback"
)

// The defaults of the per-asker check rate limit.
const (
	DefaultCheckRate  = 200.0
	DefaultCheckBurst = 400
)

// AskedByLoopback is the AskedBy of a tokenless check in CheckAuthLoopback
// mode.
const AskedByLoopback = "loopback"

// errAuth* are the reasons a check is refused before it is decided; each
// is a label of callwarden_check_unauthorized_total.
var (
	errAuthMissing = errors.New("missing bearer token")
	errAuthInvalid = errors.New("invalid bearer token")
	errAuthRole    = errors.New("not a check token")
	errAuthPeer    = errors.New("a check without a token must come from a loopback address")
)

// queryTokenParams are parameter names under which a client might try to
// pass a token in the URL. They are never accepted (URLs end up in access
// logs, proxies and dialplan traces); the 401 says so.
var queryTokenParams = []string{"token", "access_token"}

// authenticateCheck returns the AskedBy of a check request, or why it is
// refused.
func (h *Handler) authenticateCheck(r *http.Request) (string, error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		if h.opts.CheckAuth == CheckAuthLoopback {
			if loopbackPeer(r.RemoteAddr) {
				return AskedByLoopback, nil
			}
			return "", errAuthPeer
		}
		return "", errAuthMissing
	}
	tok, ok := httpauth.BearerToken(header)
	if !ok || h.opts.Auth == nil {
		return "", errAuthInvalid
	}
	id, ok := h.opts.Auth.Authenticate(tok)
	if !ok {
		return "", errAuthInvalid
	}
	if id.Role != httpauth.RoleCheck {
		return "", errAuthRole
	}
	return "token:" + id.Name, nil
}

// loopbackPeer reports whether a request's RemoteAddr is a loopback
// address (an IPv4-mapped one included).
func loopbackPeer(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}

// refuseCheck answers a check refused before it was decided: 401, or 403
// for a valid token of another role. Nothing is audited as a decision:
// no decision was made, and an unauthenticated caller must not be able to
// write to the audit trail.
func (h *Handler) refuseCheck(w http.ResponseWriter, r *http.Request, err error) {
	reason := "missing"
	switch {
	case errors.Is(err, errAuthInvalid):
		reason = "invalid"
	case errors.Is(err, errAuthRole):
		reason = "role"
	case errors.Is(err, errAuthPeer):
		reason = "peer"
	}
	h.unauthorized.WithLabelValues(reason).Inc()
	h.opts.Logger.Warn("check refused before deciding", zap.String("reason", reason), zap.String("remote", r.RemoteAddr))
	msg := err.Error()
	if reason == "missing" || reason == "peer" {
		q := r.URL.Query()
		for _, p := range queryTokenParams {
			if q.Has(p) {
				msg += "; a token in the query string is never accepted (URLs end up in logs): send Authorization: Bearer <token>"
				break
			}
		}
	}
	switch reason {
	case "role":
		httpauth.Refuse(w, httpauth.ChallengeInsufficientScope, "this token may not call /v1/check: it needs role check")
	case "invalid":
		httpauth.Refuse(w, httpauth.ChallengeInvalidToken, msg)
	default:
		httpauth.Refuse(w, "", msg)
	}
}

// rateLimiter is a token bucket per asker. Buckets are only made for
// authenticated askers (check tokens and "loopback"), so their number is
// bounded by the configured tokens and an unauthenticated flood cannot
// grow it.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// allow takes one token from key's bucket at now. When the bucket is
// empty it returns false and how long until a token is back.
func (l *rateLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// retryAfter renders a wait as whole seconds, at least 1 (RFC 9110).
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// checkOptions fills in the check defaults and rejects what cannot work.
func checkOptions(opts *Options) error {
	switch opts.CheckAuth {
	case "":
		opts.CheckAuth = CheckAuthToken
	case CheckAuthToken, CheckAuthLoopback:
	default:
		return fmt.Errorf("checkapi: unknown CheckAuth %q (want %s or %s)", opts.CheckAuth, CheckAuthToken, CheckAuthLoopback)
	}
	if opts.CheckRate <= 0 {
		opts.CheckRate = DefaultCheckRate
	}
	if opts.CheckBurst <= 0 {
		opts.CheckBurst = DefaultCheckBurst
	}
	return nil
}
