package asterisk

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// newID returns a fresh id for a channel, bridge or playback callwarden
// creates, e.g. cw-callwarden-snoop-1a2b3c4d5e6f7a8b (see ownedID).
func (a *Adapter) newID(kind string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
	return a.ownedID(kind, hex.EncodeToString(b[:]))
}

// ownedID is the id of what callwarden creates in Asterisk:
// cw-<app>-<kind>-<suffix>. Naming the application makes everything an
// application created recognisable after a crash, by the next process of
// the same application (sweepOrphans), and by nobody else's.
func (a *Adapter) ownedID(kind, suffix string) string {
	return "cw-" + a.o.App + "-" + kind + "-" + suffix
}

// ownedKind parses an id made by ownedID for this application: kind and
// suffix, ok false for anyone else's id. The parse is strict (a known kind,
// then the exact suffix form), so that application "a" never claims the
// ids of application "a-b".
func (a *Adapter) ownedKind(id string) (kind, suffix string, ok bool) {
	return parseOwnedID(a.o.App, id)
}

// parseOwnedID parses an id ownedID made for application app.
func parseOwnedID(app, id string) (kind, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(id, "cw-"+app+"-")
	if !ok {
		return "", "", false
	}
	kind, suffix, ok = strings.Cut(rest, "-")
	if !ok {
		return "", "", false
	}
	switch kind {
	case kindBridge, kindSnoop, kindNotify, kindPlay:
		return kind, suffix, isHex(suffix, 16)
	case kindRecSnoop:
		return kind, suffix, isDigits(suffix, 12)
	}
	return "", "", false
}

// The kinds of ids callwarden gives what it creates.
const (
	kindBridge   = "bridge"   // a monitor session's mixing bridge
	kindSnoop    = "snoop"    // a monitor session's snoop channel
	kindNotify   = "notify"   // the snoop that plays the notify tone to an agent
	kindRecSnoop = "recsnoop" // the snoop a live recording records; suffix: the recording id
	kindPlay     = "play"     // a playback
)

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
