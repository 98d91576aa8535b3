package asterisk

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"
)

// strandedGrace is how long a request may sit in a sibling's Stasis
// application before this daemon first asks whether that application still
// has a daemon, and the time between the two answers that must both say no
// (see rescueStranded). A variable so that tests can shorten it.
var strandedGrace = time.Second

// strandedPollMax bounds the time between two looks at a request a live
// sibling is still serving (a refusal's prompt, a playback): the looks
// back off from strandedGrace to it.
const strandedPollMax = 4 * time.Second

// A request is stranded when its supervisor's channel entered the Stasis
// application of a sibling daemon (Options.Siblings) in the instant that
// daemon died: Asterisk sent the channel into the application before it
// read the closed websocket, so the failover dialplan did not fall back to
// the next daemon (Stasis() did not fail), and nobody will ever send it
// on. The supervisor would wait, undecided, until they hang up.
//
// The daemon holding the watchdog lease (one at a time) moves such a
// request into its own application (POST /channels/{id}/move, with the
// request's own arguments), where it is decided, enforced and audited like
// any other: the supervisor hears an answer a second or two late instead
// of none. A request is taken for stranded only when, twice, strandedGrace
// apart, it is still in the same Stasis application, in no bridge (a
// sibling's session is bridged), and Asterisk says that application is not
// registered (GET /applications/{app}: 404): a live sibling, or one
// reconnecting within the grace, keeps its requests.

// watchSibling starts watching a channel that entered a sibling's Stasis
// application (a ChannelDialplan event, or a take-over's listing):
// rescueStranded, once per channel at a time. A channel moved here stays
// marked until it is destroyed: its snapshot still names the sibling's
// application, and a later listing must not move it again.
func (a *Adapter) watchSibling(ctx context.Context, channel, appName, appData string) {
	app, ok := a.siblingStasis(appName, appData)
	if !ok {
		return
	}
	a.mu.Lock()
	_, watched := a.strandWatch[channel]
	a.strandWatch[channel] = struct{}{}
	a.mu.Unlock()
	if watched {
		return
	}
	a.spawn(ctx, func(ctx context.Context) {
		if a.rescueStranded(ctx, channel, app, appData) {
			return
		}
		a.mu.Lock()
		delete(a.strandWatch, channel)
		a.mu.Unlock()
	})
}

// siblingStasis returns the sibling application a dialplan application
// (name, data) is the Stasis of; ok is false when it is not one.
func (a *Adapter) siblingStasis(appName, appData string) (app string, ok bool) {
	if len(a.o.Siblings) == 0 || !strings.EqualFold(appName, "Stasis") {
		return "", false
	}
	app, _, _ = strings.Cut(appData, ",")
	return app, slices.Contains(a.o.Siblings, app)
}

// strandedState is what one look at a request in a sibling's application
// found.
type strandedState int

const (
	strandedNot     strandedState = iota // gone, moved on, bridged, or served here: stop watching
	strandedServed                       // its sibling is registered: the sibling's, for now
	strandedPassive                      // another daemon holds the watchdog lease: its to act on
	strandedOrphan                       // its sibling is not registered
)

// rescueStranded watches channel, in app's Stasis with appData (its Stasis
// arguments), for as long as it stays there, and moves it into this
// application once two looks strandedGrace apart find it stranded while
// this daemon holds the watchdog lease. It reports whether it moved it.
func (a *Adapter) rescueStranded(ctx context.Context, channel, app, appData string) (moved bool) {
	log := a.log.With(zap.String("channel", channel), zap.String("sibling", app))
	wait, orphan, warned := strandedGrace, 0, false
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		st, err := a.stranded(ctx, channel, app, appData)
		if err != nil && !warned {
			warned = true
			log.Warn("cannot tell whether a request in a sibling's application is stranded; asking again", zap.Error(err))
		}
		switch {
		case err != nil || st == strandedServed:
			orphan, wait = 0, min(2*wait, strandedPollMax)
			continue
		case st == strandedPassive:
			orphan, wait = 0, strandedGrace
			continue
		case st == strandedNot:
			return false
		}
		if orphan++; orphan < 2 {
			wait = strandedGrace
			continue
		}
		args, err := a.moveHere(ctx, channel, appData)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			log.Error("a request stranded in a dead sibling's application could not be moved here; it waits until hung up", zap.Error(err))
		default:
			log.Warn("request stranded in a dead sibling's application moved here to be decided", zap.String("args", args))
		}
		return true
	}
}

// moveHere sends channel, waiting in a Stasis application it entered with
// appData, into this application with the same arguments (POST
// /channels/{id}/move), and counts the outcome: moved, gone (hung up
// first: errors.Is(err, ErrNotFound)) or failed.
func (a *Adapter) moveHere(ctx context.Context, channel, appData string) (args string, err error) {
	_, args, _ = strings.Cut(appData, ",")
	err = a.rest.move(ctx, channel, a.o.App, args)
	outcome := "moved"
	switch {
	case errors.Is(err, ErrNotFound):
		outcome = "gone"
	case err != nil:
		outcome = "failed"
	}
	a.m.stranded.WithLabelValues(outcome).Inc()
	return args, err
}

// stranded looks at channel: still waiting in app's Stasis with the same
// arguments, in no bridge, not served here; then whether this daemon is
// the one to act (it holds the lease), then whether app has a daemon.
func (a *Adapter) stranded(ctx context.Context, channel, app, appData string) (strandedState, error) {
	if a.owns(channel) {
		return strandedNot, nil
	}
	if !a.active.Load() {
		return strandedPassive, nil
	}
	c, err := a.rest.listedChannel(ctx, channel)
	if errors.Is(err, ErrNotFound) {
		return strandedNot, nil
	}
	if err != nil {
		return strandedNot, err
	}
	if !strings.EqualFold(c.Dialplan.AppName, "Stasis") || c.Dialplan.AppData != appData {
		return strandedNot, nil // it moved on
	}
	bridged, err := a.inBridge(ctx, channel)
	if err != nil {
		return strandedNot, err
	}
	if bridged {
		return strandedNot, nil
	}
	switch err := a.rest.application(ctx, app); {
	case errors.Is(err, ErrNotFound):
		return strandedOrphan, nil
	case err != nil:
		return strandedNot, err
	}
	return strandedServed, nil
}

// inBridge reports whether channel is in a bridge: from the model when it
// is synced and knows the channel, else from a listing of the bridges.
func (a *Adapter) inBridge(ctx context.Context, channel string) (bool, error) {
	if bridge, ok := a.model.bridgeOf(channel); ok {
		return bridge != "", nil
	}
	bridges, err := a.rest.bridges(ctx)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(bridges, func(b ari.BridgeData) bool { return slices.Contains(b.ChannelIDs, channel) }), nil
}
