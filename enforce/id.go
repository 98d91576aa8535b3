package enforce

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxIDLen is the longest id callwarden accepts, in bytes: user ids,
// profile names, queue, team, agent and site names, and PBX identities.
const MaxIDLen = 256

// idPunct is the punctuation an id may hold besides letters and digits: what
// channel names (PJSIP/1001), extensions (*222), SIP addresses
// (sip:1001@pbx.example.com) and slugs (team-a, sales_fr) need.
const idPunct = "._-@/:+*#~"

// ErrInvalidID is wrapped by CheckID's errors.
var ErrInvalidID = errors.New("invalid id")

// CheckID reports whether s is a well-formed id. Every entry point (the
// profiles file, the admin API, the check API and CLI, the PBX adapters)
// applies this one grammar, so that an id that can be written can also be
// asked about, and no id can carry what would forge a log line or a
// terminal line: an id is 1 to MaxIDLen bytes of valid UTF-8 made of
// letters, digits, combining marks and the characters of idPunct. Spaces,
// control characters (CR, LF, NUL, ESC), format characters (bidi
// overrides, zero-width joiners) and quotes are refused. The error quotes s
// escaped, never raw.
func CheckID(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", ErrInvalidID)
	case len(s) > MaxIDLen:
		return fmt.Errorf("%w: %d bytes long (at most %d)", ErrInvalidID, len(s), MaxIDLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidID, quoteID(s))
	}
	for i, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r) || strings.ContainsRune(idPunct, r) {
			continue
		}
		return fmt.Errorf("%w: %s has %U at byte %d (ids are letters, digits and %s)", ErrInvalidID, quoteID(s), r, i, idPunct)
	}
	return nil
}

// quoteID quotes s for an error message, escaped and cut short, so that an
// error about a hostile id is itself harmless.
func quoteID(s string) string {
	const show = 64
	if len(s) > show {
		return fmt.Sprintf("%+q...", s[:show])
	}
	return fmt.Sprintf("%+q", s)
}
