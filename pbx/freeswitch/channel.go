package freeswitch

import (
	"errors"
	"fmt"
	"strings"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// Channel variables of the dialplan contract.
const (
	varAction   = "callwarden_action"   // set by the dialplan: the verb
	varMode     = "callwarden_mode"     // monitor mode, or the action a check asks about
	varTarget   = "callwarden_target"   // the target user or extension
	varQueue    = "callwarden_queue"    // set by the dialplan: the call's queue
	varDecision = "callwarden_decision" // set by callwarden: allow or deny
	varReason   = "callwarden_reason"   // set by callwarden: the reason code
	varCCQueue  = "cc_queue"            // set by mod_callcenter
)

// channel is the requester's channel as the connect reply describes it.
type channel struct {
	uuid     string
	name     string // Channel-Name, e.g. sofia/internal/1001@pbx.example
	number   string // Caller-Caller-ID-Number (for the audit record only)
	username string // Caller-Username
	fromUser string // variable_sip_from_user
	fromHost string // variable_sip_from_host
	vars     map[string]string
}

// errBadChannel wraps every error of a connect reply that is not usable.
var errBadChannel = errors.New("unusable connect reply")

// parseChannel reads the channel out of the connect reply's headers.
func parseChannel(h map[string]string) (channel, error) {
	c := channel{
		uuid:     h["Unique-ID"],
		name:     h["Channel-Name"],
		number:   h["Caller-Caller-ID-Number"],
		username: h["Caller-Username"],
		fromUser: h["variable_sip_from_user"],
		fromHost: h["variable_sip_from_host"],
		vars:     make(map[string]string),
	}
	for k, v := range h {
		if name, ok := strings.CutPrefix(k, "variable_"); ok {
			c.vars[name] = v
		}
	}
	if c.uuid == "" {
		return c, fmt.Errorf("%w: no Unique-ID", errBadChannel)
	}
	if !validToken(c.uuid) || len(c.uuid) > maxArg {
		return c, fmt.Errorf("%w: Unique-ID %q", errBadChannel, c.uuid)
	}
	return c, nil
}

// identities are the names the requester is matched by, most specific
// first. All come from the channel itself (its endpoint, its SIP
// authentication), never from a variable the dialplan could have copied
// from the caller's input.
func (c channel) identities() []string {
	var ids []string
	if c.fromUser != "" && c.fromHost != "" {
		ids = append(ids, c.fromUser+"@"+c.fromHost)
	}
	ids = append(ids, c.name, c.username, c.fromUser)
	return ids
}

// resolveRequester names the user behind c ("" when nothing matches: the
// engine then denies unknown_user).
func resolveRequester(snap *enforce.Snapshot, c channel) string {
	for _, id := range c.identities() {
		if u, ok := snap.ResolveIdentity(id); ok {
			return u
		}
	}
	return ""
}

// verb is what the dialplan asks callwarden to do.
type verb uint8

const (
	verbInvalid verb = iota
	verbMonitor
	verbCheck
	verbRecord
	verbPlayback
)

var verbNames = [...]string{verbInvalid: "invalid", verbMonitor: "monitor", verbCheck: "check", verbRecord: "record", verbPlayback: "playback"}

func (v verb) String() string { return verbNames[v] }

// request is a parsed set of callwarden_* variables.
type request struct {
	verb   verb
	action enforce.Action // check: the action asked about; monitor: its mode's
	mode   session.Mode   // monitor: the mode asked for
	target string         // may be empty: the caller's own call
	// op is the record verb's operation (callwarden_mode start, stop,
	// pause, resume or toggle).
	op session.RecordOp
	// recording is the playback verb's recording id (callwarden_target).
	recording string
}

// errBadRequest wraps every request error; it is audited as
// invalid_request.
var errBadRequest = errors.New("invalid callwarden request")

const maxArg = 128

// parseRequest reads the request out of the channel variables.
// callwarden_action is the verb; for check, callwarden_mode names the
// action asked about: an action ("monitor.listen", "recording.start") or
// a monitor mode (listen, whisper, barge); callwarden_target the target.
func parseRequest(vars map[string]string) (request, error) {
	bad := func(format string, a ...any) (request, error) {
		return request{}, fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, a...))
	}
	verbS, mode, target := vars[varAction], vars[varMode], vars[varTarget]
	for _, kv := range [][2]string{{varAction, verbS}, {varMode, mode}, {varTarget, target}} {
		if len(kv[1]) > maxArg {
			return bad("%s longer than %d bytes", kv[0], maxArg)
		}
		if kv[1] != "" && !validToken(kv[1]) {
			return bad("%s %q has characters outside [A-Za-z0-9_.@+/:*#-]", kv[0], kv[1])
		}
	}
	var r request
	for v, name := range verbNames {
		if name == verbS && verb(v) != verbInvalid {
			r.verb = verb(v)
		}
	}
	switch r.verb {
	case verbInvalid:
		return bad("%s %q (want monitor, check, record or playback)", varAction, verbS)
	case verbMonitor:
		m, ok := session.ParseMode(mode)
		if !ok {
			return bad("monitor %s %q (want listen, whisper or barge)", varMode, mode)
		}
		if target == "" {
			return bad("monitor without %s", varTarget)
		}
		r.mode, r.action = m, m.Action()
	case verbCheck:
		if mode == "" {
			return bad("check without %s", varMode)
		}
		if m, ok := session.ParseMode(mode); ok {
			r.action = m.Action()
		} else if a, err := enforce.ParseAction(mode); err == nil {
			r.action = a
		} else {
			return bad("%s %q is neither a monitor mode nor an action", varMode, mode)
		}
	case verbRecord:
		op, ok := session.ParseRecordOp(mode)
		if !ok {
			return bad("record %s %q (want start, stop, pause, resume or toggle)", varMode, mode)
		}
		r.op, r.action = op, op.Action()
	case verbPlayback:
		if mode != "" && mode != "play" {
			return bad("playback %s %q (want play)", varMode, mode)
		}
		if !validRecordingID(target) {
			return bad("playback %s %q is not a recording id (12 digits)", varTarget, target)
		}
		r.recording, r.action = target, enforce.RecordingPlayback
	}
	r.target = target
	return r, nil
}

// validRecordingID reports whether s is a recording id as
// session.NewRecordingID makes them: 12 digits, dialable after *227.
func validRecordingID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validToken reports whether s holds only the characters of ids,
// extensions, identities and actions.
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("_.@+/:*#-", c) >= 0:
		default:
			return false
		}
	}
	return true
}
