package enforce

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// AppendCanonicalAudit appends CanonicalAudit(r) to dst: the same bytes,
// written field by field instead of through encoding/json's reflection,
// because every decision is audited and the encoding was most of an
// audit append's cost. Anything the fast path does not handle itself (a
// string that needs escaping, a time encoding/json would refuse, a
// non-finite duration) is left to encoding/json, whose output, and
// errors, are the reference: TestAppendCanonicalAudit and
// FuzzAppendCanonicalAudit hold the two equal, and fail when AuditRecord
// gains a field this function does not write.
func AppendCanonicalAudit(dst []byte, r AuditRecord) ([]byte, error) {
	start := len(dst)
	b, ok := appendAudit(dst, &r)
	if ok {
		return b, nil
	}
	raw, err := marshalAudit(r)
	if err != nil {
		return dst[:start], err
	}
	return append(dst[:start], raw...), nil
}

// appendAudit writes r's canonical JSON, or reports false when a value
// needs encoding/json (the caller then discards what was written).
func appendAudit(b []byte, r *AuditRecord) ([]byte, bool) {
	ok := true
	str := func(key, v string, omitEmpty bool) {
		if !ok || (omitEmpty && v == "") {
			return
		}
		b = append(b, key...)
		b, ok = appendPlainString(b, v)
	}
	when := func(key string, t time.Time, omitZero bool) {
		if !ok || (omitZero && t.IsZero()) {
			return
		}
		b = append(b, key...)
		b, ok = appendTime(b, t)
	}
	list := func(key string, vs []string) {
		if !ok || len(vs) == 0 {
			return
		}
		b = append(b, key...)
		b = append(b, '[')
		for i, v := range vs {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendPlainString(b, v); !ok {
				return
			}
		}
		b = append(b, ']')
	}
	when(`{"time":`, r.Time, false)
	str(`,"source":`, r.Source, false)
	str(`,"user":`, r.User, true)
	str(`,"action":`, r.Action, false)
	str(`,"target":`, r.Target, true)
	str(`,"queue":`, r.Queue, true)
	str(`,"team":`, r.Team, true)
	str(`,"site":`, r.Site, true)
	str(`,"decision":`, r.Decision, false)
	str(`,"reason":`, r.Reason, false)
	str(`,"profile":`, r.Profile, true)
	str(`,"caller":`, r.Caller, true)
	str(`,"pbx":`, r.PBX, true)
	list(`,"channels":`, r.Channels)
	str(`,"detail":`, r.Detail, true)
	str(`,"asked_by":`, r.AskedBy, true)
	str(`,"outcome":`, r.Outcome, true)
	str(`,"session":`, r.Session, true)
	if ok && r.Duration != 0 {
		b = append(b, `,"duration":`...)
		b, ok = appendFloat(b, r.Duration)
	}
	str(`,"cause":`, r.Cause, true)
	when(`,"recorded_at":`, r.RecordedAt, true)
	str(`,"assign_profile":`, r.AssignProfile, true)
	list(`,"assign_queues":`, r.AssignQueues)
	when(`,"at":`, r.At, true)
	str(`,"recording":`, r.Recording, true)
	str(`,"addr":`, r.Addr, true)
	return append(b, '}'), ok
}

// appendPlainString appends s quoted when no byte of it needs escaping
// by encoding/json (printable ASCII other than the quote, the backslash
// and the HTML characters it escapes); otherwise it reports false.
func appendPlainString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// appendTime appends t in UTC as time.Time's MarshalJSON does
// (RFC 3339 with nanoseconds, trailing zeros trimmed), for the years it
// accepts.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// appendFloat appends f as encoding/json writes a float64.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// marshalAudit is CanonicalAudit's reference encoding.
func marshalAudit(r AuditRecord) ([]byte, error) {
	r.Time, r.RecordedAt, r.At = r.Time.UTC(), r.RecordedAt.UTC(), r.At.UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("audit record: %w", err)
	}
	return b, nil
}
