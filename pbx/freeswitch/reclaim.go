package freeswitch

import (
	"context"
	"fmt"
	"strings"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// claimPBX hands the session registry what it needs to converge the
// records a dead daemon left on this FreeSWITCH (session.Registry.Converge).
func (a *Adapter) claimPBX() {
	if a.o.Sessions == nil || a.recs == nil {
		return
	}
	a.o.Sessions.Claim(session.Claimant{PBX: a.o.PBX, Probe: prober{api: a.api}, Audit: a.audit,
		Recordings: a.recs, Timers: &eslRecorder{a: a}})
}

// prober answers session.Prober with uuid_exists on the inbound
// connection.
type prober struct {
	api func(ctx context.Context, cmd string, args ...string) (string, error)
}

// SessionRuns reports whether the supervisor's channel (s.ChannelID) is
// still up: its eavesdrop runs in it. A record without it (written before
// records kept it) is taken for ended: the supervisor's channel was on the
// dead daemon's outbound socket, which FreeSWITCH hangs up with it.
func (p prober) SessionRuns(ctx context.Context, s enforce.LiveSession) (bool, error) {
	return p.exists(ctx, s.ChannelID)
}

// RecordingRuns reports whether the recorded channel (rec.Channel) is
// still up. Only callwarden stops a recording of its own on a live call
// (a user, a limit, or its watchdog), and each marks the metadata, so a
// recording whose channel is up and whose metadata says it runs still
// records.
func (p prober) RecordingRuns(ctx context.Context, rec enforce.Recording) (bool, error) {
	return p.exists(ctx, rec.Channel)
}

// exists asks uuid_exists about channel ("" or not a uuid: false).
func (p prober) exists(ctx context.Context, channel string) (bool, error) {
	if channel == "" || !validToken(channel) || len(channel) > maxArg {
		return false, nil
	}
	out, err := p.api(ctx, "uuid_exists", channel)
	if err != nil {
		return false, fmt.Errorf("uuid_exists %s: %w", channel, err)
	}
	switch strings.TrimSpace(out) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("uuid_exists %s: unexpected answer %q", channel, out)
}
