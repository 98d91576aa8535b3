package asterisk

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/pbx/asterisk/ariclient"
)

// Run keeps the event connection up until ctx ends, reconnecting with
// exponential backoff (MinBackoff doubling to MaxBackoff) whenever it
// breaks, then waits for the call handlers to finish their cleanup. It
// returns nil once ctx ends.
func (a *Adapter) Run(ctx context.Context) error {
	defer a.rest.close()
	defer a.drainHandlers()
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		a.runLease(ctx)
	}()
	defer func() { <-leaseDone }()
	backoff := a.o.MinBackoff
	for {
		wasUp, err := a.connectAndRead(ctx)
		a.setConnected(false)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, errReplaced):
			// Do not fight another instance for the application every
			// 100ms: each takeover costs Asterisk a session teardown.
			backoff = a.o.MaxBackoff
		case wasUp:
			backoff = a.o.MinBackoff
			a.log.Warn("ARI event connection lost; reconnecting", zap.Error(err))
		default:
			a.log.Warn("cannot connect to ARI; retrying", zap.Error(err), zap.Duration("backoff", backoff))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if !wasUp {
			backoff = min(2*backoff, a.o.MaxBackoff)
		}
	}
}

// connectAndRead dials the event websocket, waits until the application is
// registered, then reads and dispatches events until the connection or ctx
// ends. wasUp reports whether the connection got that far.
func (a *Adapter) connectAndRead(ctx context.Context) (wasUp bool, err error) {
	a.waitPreviousSession(ctx)
	dctx, cancel := context.WithTimeout(ctx, 2*a.o.Timeout)
	ws, err := a.rest.DialEvents(dctx, a.wsURL)
	cancel()
	if err != nil {
		return false, err
	}
	// On shutdown the call handlers clean up first (hang up snoops,
	// destroy bridges, release channels) while events still flow; only
	// then does the application leave Asterisk.
	readDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		a.drainHandlers()
		// Quiet the stream, then a clean close handshake: Asterisk 22 can
		// wedge a session closed while it writes events, and a new
		// connection of the same application then waits on it forever.
		qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), a.o.Timeout)
		if err := a.rest.SetEventFilter(qctx, a.o.App, quietEvents); err != nil {
			a.log.Debug("cannot quiet the event stream before leaving", zap.Error(err))
		}
		qcancel()
		ws.SendClose()
		_ = ws.SetReadDeadline(time.Now().Add(closeGrace))
		select {
		case <-readDone:
		case <-time.After(closeGrace):
		}
		_ = ws.Close()
	})
	a.events.Store(ws)
	// Whatever ends this connection, events may be lost from now on until
	// the next connection's resync: the model must not be trusted.
	defer a.model.unsync()
	defer a.events.Store(nil)
	quit := make(chan struct{}) // tells the reader nobody reads msgs any more
	defer func() {
		close(quit)
		if !stop() {
			<-readDone
		}
		_ = ws.Close()
		<-readDone // the reader has stopped too
	}()
	msgs := make(chan []byte, 256)
	readErr := make(chan error, 1)
	go func() {
		defer close(readDone)
		defer close(msgs)
		for {
			op, msg, err := ws.ReadMessage()
			if err != nil {
				if errors.Is(err, ariclient.ErrClosed) {
					// Let Asterisk close the TCP connection first.
					_ = ws.SetReadDeadline(time.Now().Add(closeGrace))
					ws.Drain()
				}
				readErr <- err
				return
			}
			if op == ariclient.OpText {
				select {
				case msgs <- msg:
				case <-quit:
					readErr <- errors.New("event reader stopped")
					return
				}
			}
		}
	}()
	// Asterisk answers the upgrade before it registers the application:
	// wait until it exists, dispatching events meanwhile, so Connected
	// means a Stasis() in the dialplan reaches us.
	regCtx, regCancel := context.WithTimeout(ctx, 5*a.o.Timeout)
	registered := make(chan error, 1)
	go func() { registered <- a.waitApplication(regCtx) }()
	defer regCancel()
	// The sweep for orphans runs beside the event loop (it waits for
	// StasisStarts to be dispatched) and never outlives this connection.
	sweepCtx, sweepCancel := context.WithCancel(ctx)
	var swept chan error
	var resynced chan pbxListing
	subscribed := false // every channel's events flow: a resync can start
	// resync forgets the model, lists the PBX beside the event loop and
	// merges the listing in when it comes back (case resynced below).
	resync := func() {
		a.model.beginResync()
		resynced = make(chan pbxListing, 1)
		go func() {
			var l pbxListing
			l.chans, l.bridges, l.err = a.listPBX(sweepCtx)
			resynced <- l
		}()
	}
	defer func() {
		sweepCancel()
		if swept != nil {
			<-swept
		}
		if resynced != nil {
			<-resynced
		}
	}()
	for {
		select {
		case msg, ok := <-msgs:
			if !ok {
				return wasUp, <-readErr
			}
			if a.handleMessage(ctx, msg) {
				return wasUp, errReplaced
			}
			if subscribed && resynced == nil && a.model.lost() {
				resync()
			}
		case err := <-registered:
			registered = nil
			if err != nil {
				return false, err
			}
			// Without every channel's events the model of the PBX and the
			// watchdog are blind: treat it as a failed connection and try
			// again.
			if err := a.rest.WatchAll(ctx, a.o.App); err != nil {
				return false, fmt.Errorf("subscribe to every channel and bridge: %w", err)
			}
			if err := a.rest.SetEventFilter(ctx, a.o.App, wantedEvents); err != nil {
				a.log.Warn("cannot set the application's event filter; receiving every event", zap.Error(err))
			}
			// Every event from here on reaches the model.
			subscribed = true
			resync()
			// Before reporting itself connected, end what a previous
			// process (kill -9) or connection left behind: a supervisor
			// still bridged to a snoop would otherwise listen unsupervised.
			swept = make(chan error, 1)
			go func() { swept <- a.sweepOrphans(sweepCtx) }()
		case l := <-resynced:
			resynced = nil
			if l.err != nil {
				// Decisions list the PBX meanwhile; a new connection
				// resyncs again.
				return wasUp, fmt.Errorf("list the PBX for its model: %w", l.err)
			}
			a.model.finishResync(l.chans, l.bridges)
			a.m.resyncs.Inc()
			if a.model.lost() {
				resync()
			}
			a.log.Debug("model of the PBX synced", zap.Int("channels", len(l.chans)), zap.Int("bridges", len(l.bridges)))
		case err := <-swept:
			swept = nil
			if err != nil {
				// Orphans could not be listed: not serving beats serving
				// beside a session nobody supervises. Try again.
				return false, fmt.Errorf("sweep for orphaned sessions: %w", err)
			}
			wasUp = true
			if a.everUp {
				a.m.reconnects.Inc()
			}
			a.everUp = true
			a.setConnected(true)
			a.log.Info("ARI connected", zap.String("url", redactURL(a.wsURL)))
		}
	}
}

func (a *Adapter) waitApplication(ctx context.Context) error {
	return a.rest.WaitApplication(ctx, a.o.App)
}

// previousSessionWait bounds how long a (re)connection waits for Asterisk
// to drop the application of a previous connection.
const previousSessionWait = 3 * time.Second

// waitPreviousSession waits, up to previousSessionWait, until Asterisk no
// longer knows the application. Asterisk 22 registers the application of
// a new websocket before the upgrade completes; if the previous session of
// the same application is still being torn down, the registration (which
// sends ApplicationReplaced to the old session under the application's
// lock) and the teardown (which unregisters under the session's lock) can
// deadlock, wedging ARI for good. An application Asterisk has destroyed
// cannot be replaced. One that keeps channels in Stasis is never destroyed
// on its own: after the bound the connection goes ahead.
func (a *Adapter) waitPreviousSession(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, previousSessionWait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		known, err := a.rest.Application(ctx, a.o.App)
		if err != nil || !known {
			return // gone (404), or Asterisk unreachable: the dial reports it
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			a.log.Debug("application still known to Asterisk; connecting anyway")
			return
		}
	}
}

// closeGrace bounds the wait for Asterisk's answer to our close frame.
const closeGrace = 2 * time.Second

// redactURL drops credentials a websocket URL might carry.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<invalid url>"
	}
	u.User = nil
	return u.String()
}

// errReplaced means another ARI client registered the application.
var errReplaced = errors.New("another ARI client registered this application (ApplicationReplaced): run one callwarden per application name")

// handleMessage decodes one websocket message and dispatches it. It
// reports whether Asterisk said another client took the application over.
func (a *Adapter) handleMessage(ctx context.Context, msg []byte) (replaced bool) {
	ev, typ, err := decodeEvent(msg)
	switch {
	case errors.Is(err, errUnknownEvent):
		a.m.unknown.WithLabelValues(typ).Inc()
		a.log.Debug("ARI event type unknown to the ARI library; dropped", zap.String("type", typ))
		return false
	case err != nil:
		a.m.dropped.WithLabelValues("malformed").Inc()
		a.log.Warn("undecodable ARI event dropped", zap.String("type", typ), zap.Error(err))
		// The model may have missed a change: it is not trusted until
		// the event loop has listed the PBX again.
		a.model.markLost()
		return false
	}
	// The model first: a handler the dispatch starts must find every
	// earlier event in it.
	a.model.apply(ev)
	if _, ok := ev.(*ari.ApplicationReplaced); ok {
		a.log.Error("ARI application taken over by another client; reconnecting after the maximum backoff")
		return true
	}
	a.dispatch(ctx, ev)
	return false
}

// pbxListing is a resync's listing of the PBX.
type pbxListing struct {
	chans   []ari.ChannelData
	bridges []ari.BridgeData
	err     error
}

// DropEventConnection ends the live event connection the way a network
// fault would, without stopping the adapter: it reconnects after
// Options.MinBackoff and resyncs its model of the PBX. Events of the gap
// are lost. It is for tests of that path; it reports whether a connection
// was up. The stream is quieted and the close is a clean handshake,
// because Asterisk 22 can wedge a session closed while it writes events.
func (a *Adapter) DropEventConnection(ctx context.Context) bool {
	ws := a.events.Load()
	if ws == nil {
		return false
	}
	if err := a.rest.SetEventFilter(ctx, a.o.App, quietEvents); err != nil {
		a.log.Debug("cannot quiet the event stream before dropping it", zap.Error(err))
	}
	ws.SendClose()
	_ = ws.SetReadDeadline(time.Now().Add(closeGrace))
	return true
}
