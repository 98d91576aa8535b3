package enforce

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// The check parameters, shared by the HTTP query string and the CLI flags
// (which are mapped onto the same names) so both accept the same requests.
const (
	ParamUser       = "user"
	ParamAction     = "action"
	ParamQueue      = "queue"
	ParamTeam       = "team"
	ParamAgent      = "agent"
	ParamSite       = "site"
	ParamAssign     = "assign"
	ParamAt         = "at"
	ParamRecordedAt = "recorded_at"
)

// MaxParamLen bounds every parameter value. Identifiers longer than this are
// not real queue or user ids, and bounding them keeps audit records small.
const MaxParamLen = 256

// maxAssignQueues bounds the queues of one profile.assign request.
const maxAssignQueues = 64

// ParamError is a rejected check parameter. Its message names the parameter
// first ("action: unknown action ..."), so a CLI user or a dialplan author
// sees which one to fix; callers branch on it to answer 400 rather than 500.
type ParamError struct {
	Param string
	Err   error
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Err.Error() }

// Unwrap returns the underlying cause.
func (e *ParamError) Unwrap() error { return e.Err }

func paramErr(param string, format string, args ...any) error {
	return &ParamError{Param: param, Err: fmt.Errorf(format, args...)}
}

// known reports whether name is an accepted parameter. Unknown ones are
// rejected rather than ignored: a misspelt "quene=hr" silently dropped would
// turn a question about one queue into a question about none.
func known(name string) bool {
	switch name {
	case ParamUser, ParamAction, ParamQueue, ParamTeam, ParamAgent, ParamSite,
		ParamAssign, ParamAt, ParamRecordedAt:
		return true
	}
	return false
}

// ParseRequest turns check parameters into a Request. It is the only
// parser of check input: the check API calls it on the query string (a
// url.Values is a map[string][]string) and the CLI maps its flags onto the
// same names, so both accept and reject exactly the same requests.
//
// user and action are required. queue, team, agent and site describe the
// target. For action profile.assign, assign names the profile handed out
// (required, and accepted with no other action) and every queue value is a
// queue it is handed out on (AssignQueues); other actions take at most one
// queue. at (RFC 3339) is the instant to decide at and is returned as the
// zero time when absent, meaning "now"; recorded_at (RFC 3339) is when the
// recording was made. An empty value is the same as an absent one.
//
// Every error is a *ParamError naming the parameter.
func ParseRequest(q map[string][]string) (Request, time.Time, error) {
	var req Request
	var at time.Time
	if err := checkKeys(q); err != nil {
		return req, at, err
	}
	single := func(name string) (string, error) {
		vs := nonEmpty(q[name])
		if len(vs) > 1 {
			return "", paramErr(name, "given %d times, want at most once", len(vs))
		}
		if len(vs) == 0 {
			return "", nil
		}
		return vs[0], nil
	}
	var err error
	if req.User, err = single(ParamUser); err != nil {
		return req, at, err
	}
	if req.User == "" {
		return req, at, paramErr(ParamUser, "required")
	}
	action, err := single(ParamAction)
	if err != nil {
		return req, at, err
	}
	if action == "" {
		return req, at, paramErr(ParamAction, "required")
	}
	if req.Action, err = ParseAction(action); err != nil {
		return req, at, &ParamError{Param: ParamAction, Err: err}
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{ParamTeam, &req.Team}, {ParamAgent, &req.Agent}, {ParamSite, &req.Site}} {
		if *f.dst, err = single(f.name); err != nil {
			return req, at, err
		}
	}
	queues := nonEmpty(q[ParamQueue])
	assign, err := single(ParamAssign)
	if err != nil {
		return req, at, err
	}
	if req.Action == ProfileAssign {
		if assign == "" {
			return req, at, paramErr(ParamAssign, "required with action %s (the profile handed out)", ProfileAssign)
		}
		if len(queues) > maxAssignQueues {
			return req, at, paramErr(ParamQueue, "%d queues, want at most %d", len(queues), maxAssignQueues)
		}
		req.AssignProfile = assign
		req.AssignQueues = queues
	} else {
		if assign != "" {
			return req, at, paramErr(ParamAssign, "only valid with action %s", ProfileAssign)
		}
		if len(queues) > 1 {
			return req, at, paramErr(ParamQueue, "given %d times, want at most once (only %s takes several)", len(queues), ProfileAssign)
		}
		if len(queues) == 1 {
			req.Queue = queues[0]
		}
	}
	// Every id follows the grammar the profiles file and the admin API
	// enforce (CheckID): an id no policy can hold is refused as bad
	// input rather than decided unknown_user and audited.
	for _, f := range []struct{ name, v string }{{ParamUser, req.User}, {ParamTeam, req.Team},
		{ParamAgent, req.Agent}, {ParamSite, req.Site}, {ParamQueue, req.Queue}, {ParamAssign, req.AssignProfile}} {
		if f.v == "" {
			continue
		}
		if err := CheckID(f.v); err != nil {
			return req, at, &ParamError{Param: f.name, Err: err}
		}
	}
	for _, q := range req.AssignQueues {
		if err := CheckID(q); err != nil {
			return req, at, &ParamError{Param: ParamQueue, Err: err}
		}
	}
	if at, err = parseTime(ParamAt, single); err != nil {
		return req, time.Time{}, err
	}
	if req.RecordedAt, err = parseTime(ParamRecordedAt, single); err != nil {
		return req, time.Time{}, err
	}
	return req, at, nil
}

// checkKeys rejects unknown parameters and values that cannot be ids.
func checkKeys(q map[string][]string) error {
	// The common case, every key known and every value clean, needs no
	// order; a bad query is checked again in key order, so that the same
	// query always gets the same error.
	bad := false
	for k, vs := range q {
		if checkKey(k, vs) != nil {
			bad = true
			break
		}
	}
	if !bad {
		return nil
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := checkKey(k, q[k]); err != nil {
			return err
		}
	}
	return nil
}

// checkKey checks one parameter's name and values.
func checkKey(k string, vs []string) error {
	if !known(k) {
		return paramErr(printable(k), "unknown parameter (want one of %s)", knownList())
	}
	for _, v := range vs {
		if len(v) > MaxParamLen {
			return paramErr(k, "longer than %d bytes", MaxParamLen)
		}
		if !utf8.ValidString(v) {
			return paramErr(k, "not valid UTF-8")
		}
		if strings.IndexFunc(v, isControl) >= 0 {
			return paramErr(k, "contains a control character")
		}
	}
	return nil
}

func knownList() string {
	return strings.Join([]string{ParamUser, ParamAction, ParamQueue, ParamTeam, ParamAgent,
		ParamSite, ParamAssign, ParamAt, ParamRecordedAt}, ", ")
}

// printable quotes a rejected parameter name so that arbitrary bytes from
// the query string never reach an error message or a log line raw.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return fmt.Sprintf("%q", s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func nonEmpty(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

func parseTime(name string, single func(string) (string, error)) (time.Time, error) {
	s, err := single(name)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		var pe *time.ParseError
		if errors.As(err, &pe) {
			return time.Time{}, paramErr(name, "%q is not an RFC 3339 time such as 2026-11-03T10:00:00+01:00", s)
		}
		return time.Time{}, &ParamError{Param: name, Err: err}
	}
	return t, nil
}
