package asterisk

import (
	"errors"
	"fmt"
	"strings"

	"github.com/CyCoreSystems/ari/v5"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// verb is the first Stasis argument: what the dialplan asks callwarden to do.
type verb uint8

const (
	verbMonitor verb = iota + 1
	verbCheck
	verbRecord
	verbPlayback
)

var verbNames = [...]string{verbMonitor: "monitor", verbCheck: "check", verbRecord: "record", verbPlayback: "playback"}

func (v verb) String() string {
	if v > 0 && int(v) < len(verbNames) {
		return verbNames[v]
	}
	return "invalid"
}

// mode is a monitor session's mode (session.Mode); DTMF 4, 5 and 6 switch
// between them.
type mode = session.Mode

const (
	modeListen  = session.Listen
	modeWhisper = session.Whisper
	modeBarge   = session.Barge
)

func parseMode(s string) (mode, bool) { return session.ParseMode(s) }

// modeForDigit maps the in-session DTMF digits to modes.
func modeForDigit(d string) (mode, bool) { return session.ModeForDigit(d) }

// directions returns the snoop directions of a mode, seen from the target
// channel: spy is what the supervisor hears, whisper where its voice goes.
// Every mode hears both sides; whisper speaks to the agent only ("out":
// from Asterisk towards the target's phone), barge to both sides.
func directions(m mode) (spy, whisper ari.Direction) {
	switch m {
	case modeWhisper:
		return ari.DirectionBoth, ari.DirectionOut
	case modeBarge:
		return ari.DirectionBoth, ari.DirectionBoth
	default:
		return ari.DirectionBoth, ari.DirectionNone
	}
}

// recordOp is the operation of the record verb (session.RecordOp).
type recordOp = session.RecordOp

const (
	recStart  = session.RecStart
	recStop   = session.RecStop
	recPause  = session.RecPause
	recResume = session.RecResume
	recToggle = session.RecToggle
)

// request is a parsed Stasis(callwarden,...) argument list.
type request struct {
	verb      verb
	mode      mode           // monitor
	action    enforce.Action // check
	op        recordOp       // record
	target    string         // monitor, check, record: user id or extension; may be empty for check and record
	recording string         // playback: callwarden's recording id
	// continueOnDeny makes a refused monitor or playback continue in the
	// dialplan (CALLWARDEN_DECISION=deny) instead of hanging up.
	continueOnDeny bool
}

// errBadArgs wraps every argument error; it is audited as invalid_request.
var errBadArgs = errors.New("invalid Stasis arguments")

// maxArg bounds one argument; identities and ids are short.
const maxArg = 128

// parseArgs parses the Stasis application arguments (after the application
// name). The grammar is:
//
//	monitor,<listen|whisper|barge>,<target>[,continue]
//	check,<action>[,<target>]
//	record,<start|stop|pause|resume|toggle>[,<target>]
//	playback,<recording-id>[,continue]
func parseArgs(args []string) (request, error) {
	bad := func(format string, a ...any) (request, error) {
		return request{}, fmt.Errorf("%w: %s", errBadArgs, fmt.Sprintf(format, a...))
	}
	if len(args) == 0 {
		return bad("no verb (want monitor, check, record or playback)")
	}
	for i, s := range args {
		if len(s) > maxArg {
			return bad("argument %d longer than %d bytes", i+1, maxArg)
		}
		if !validToken(s) {
			return bad("argument %d %q has characters outside [A-Za-z0-9_.@+/:*#-]", i+1, s)
		}
	}
	var r request
	rest := args[1:]
	optContinue := func(extra []string) error {
		switch {
		case len(extra) == 0:
			return nil
		case len(extra) == 1 && extra[0] == "continue":
			r.continueOnDeny = true
			return nil
		case len(extra) == 1 && extra[0] == "":
			return nil
		}
		return fmt.Errorf("%w: unexpected arguments %q (only \"continue\" may follow)", errBadArgs, strings.Join(extra, ","))
	}
	switch args[0] {
	case "monitor":
		r.verb = verbMonitor
		if len(rest) < 2 {
			return bad("monitor needs a mode and a target: monitor,<listen|whisper|barge>,<target>")
		}
		m, ok := parseMode(rest[0])
		if !ok {
			return bad("monitor mode %q (want listen, whisper or barge)", rest[0])
		}
		if rest[1] == "" {
			return bad("monitor needs a target")
		}
		r.mode, r.target = m, rest[1]
		if err := optContinue(rest[2:]); err != nil {
			return request{}, err
		}
	case "check":
		r.verb = verbCheck
		if len(rest) < 1 || len(rest) > 2 {
			return bad("check wants check,<action>[,<target>]")
		}
		a, err := enforce.ParseAction(rest[0])
		if err != nil {
			return bad("%v", err)
		}
		r.action = a
		if len(rest) == 2 {
			r.target = rest[1]
		}
	case "record":
		r.verb = verbRecord
		if len(rest) < 1 || len(rest) > 2 {
			return bad("record wants record,<start|stop|pause|resume|toggle>[,<target>]")
		}
		op, ok := session.ParseRecordOp(rest[0])
		if !ok {
			return bad("record operation %q (want start, stop, pause, resume or toggle)", rest[0])
		}
		r.op = op
		if len(rest) == 2 {
			r.target = rest[1]
		}
	case "playback":
		r.verb = verbPlayback
		if len(rest) < 1 || rest[0] == "" {
			return bad("playback needs a recording id")
		}
		r.recording = rest[0]
		if err := optContinue(rest[1:]); err != nil {
			return request{}, err
		}
	default:
		return bad("unknown verb %q (want monitor, check, record or playback)", args[0])
	}
	return r, nil
}

// validToken reports whether s only holds characters of extensions, user
// ids, identities and recording ids.
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_.@+/:*#-", c) >= 0:
		default:
			return false
		}
	}
	return true
}
