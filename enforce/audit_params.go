package enforce

import (
	"strconv"
	"strings"
	"time"
)

// The audit filter parameters, of GET /v1/audit and, as flags, of
// `callwarden audit tail`.
const (
	AuditParamUser     = "user"
	AuditParamTarget   = "target"
	AuditParamAction   = "action"
	AuditParamDecision = "decision"
	AuditParamSince    = "since"
	AuditParamUntil    = "until"
	AuditParamLimit    = "limit"
	// AuditParamSession follows one live monitor session's records.
	AuditParamSession = "session"
	// AuditParamRecording follows one catalogued recording's accesses.
	AuditParamRecording = "recording"
)

// The bounds of AuditFilter.Limit as ParseAuditFilter reads it.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 10000
)

// ParseAuditFilter turns the audit parameters into a filter: user, target,
// action and decision (allow or deny) match exactly, since and until
// (RFC 3339) bound the time, limit (default 100, at most 10000) keeps the
// most recent records. Unknown parameters are errors, as for checks.
func ParseAuditFilter(q map[string][]string) (AuditFilter, error) {
	f := AuditFilter{Limit: defaultAuditLimit}
	for k, vs := range q {
		switch k {
		case AuditParamUser, AuditParamTarget, AuditParamAction, AuditParamDecision,
			AuditParamSince, AuditParamUntil, AuditParamLimit, AuditParamSession, AuditParamRecording:
		default:
			return f, paramErr(printable(k), "unknown parameter (want user, target, action, decision, session, recording, since, until or limit)")
		}
		if len(vs) == 0 {
			continue
		}
		if len(vs) > 1 {
			return f, paramErr(k, "given %d times, want at most once", len(vs))
		}
		if len(vs[0]) > MaxParamLen || strings.IndexFunc(vs[0], isControl) >= 0 {
			return f, paramErr(k, "not an id (too long or contains a control character)")
		}
	}
	f.User, f.Target, f.Action = first(q, AuditParamUser), first(q, AuditParamTarget), first(q, AuditParamAction)
	f.Session, f.Recording = first(q, AuditParamSession), first(q, AuditParamRecording)
	switch f.Decision = first(q, AuditParamDecision); f.Decision {
	case "", "allow", "deny":
	default:
		return f, paramErr(AuditParamDecision, "%s, want allow or deny", printable(f.Decision))
	}
	var err error
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{AuditParamSince, &f.Since}, {AuditParamUntil, &f.Until}} {
		if v := first(q, t.name); v != "" {
			if *t.dst, err = time.Parse(time.RFC3339, v); err != nil {
				return f, paramErr(t.name, "%s is not an RFC 3339 time", printable(v))
			}
		}
	}
	if v := first(q, AuditParamLimit); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			return f, paramErr(AuditParamLimit, "%s, want 1 to %d", printable(v), maxAuditLimit)
		}
		f.Limit = n
	}
	return f, nil
}

// first is the first value of name in q, "" when it has none (what
// url.Values.Get returns).
func first(q map[string][]string, name string) string {
	if vs := q[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}
