package asterisk

import (
	"context"
	"slices"
	"strings"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"
)

// inbox is a call handler's queue of events, fed by the dispatcher.
type inbox struct {
	ch  chan ari.Event
	ids []string
}

// inboxSize bounds a handler's backlog; beyond it events are dropped and
// counted (callwarden_asterisk_dropped_events_total{reason="inbox_full"}).
const inboxSize = 100

// subscribe routes the events of ids (channels, bridges, playbacks) to a
// new inbox. Subscribe before acting, so no event is missed.
func (a *Adapter) subscribe(ids ...string) *inbox {
	in := &inbox{ch: make(chan ari.Event, inboxSize)}
	a.follow(in, ids...)
	return in
}

// follow adds ids to in. Several handlers may follow the same id (two
// supervisors monitoring one agent each follow the agent's channel): every
// one of them gets its events.
func (a *Adapter) follow(in *inbox, ids ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		if slices.Contains(a.subs[id], in) {
			continue
		}
		a.subs[id] = append(a.subs[id], in)
		in.ids = append(in.ids, id)
	}
}

// unsubscribe stops routing to in.
func (a *Adapter) unsubscribe(in *inbox) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range in.ids {
		rest := slices.DeleteFunc(a.subs[id], func(x *inbox) bool { return x == in })
		if len(rest) == 0 {
			delete(a.subs, id)
		} else {
			a.subs[id] = rest
		}
	}
	in.ids = nil
}

// route hands ev to every inbox following one of its entities, once each;
// it reports whether any did.
func (a *Adapter) route(ev ari.Event) bool {
	keys := ev.Keys()
	var buf [4]*inbox
	targets := buf[:0]
	a.mu.Lock()
	for _, k := range keys {
		for _, in := range a.subs[k.ID] {
			if !slices.Contains(targets, in) {
				targets = append(targets, in)
			}
		}
	}
	a.mu.Unlock()
	for _, in := range targets {
		select {
		case in.ch <- ev:
		default:
			a.m.dropped.WithLabelValues("inbox_full").Inc()
			a.log.Warn("call handler inbox full; event dropped", zap.String("type", ev.GetType()))
		}
	}
	return len(targets) > 0
}

// markOurs records a snoop channel or bridge id this process is about to
// create, so the watchdog lets it be and sweepOrphans knows it is not an
// orphan.
func (a *Adapter) markOurs(id string) {
	a.mu.Lock()
	a.ours[id] = struct{}{}
	a.mu.Unlock()
}

// forget drops an id markOurs recorded, once it is destroyed.
func (a *Adapter) forget(id string) {
	a.mu.Lock()
	delete(a.ours, id)
	a.mu.Unlock()
}

// callwardens reports whether id is a snoop or bridge of a callwarden
// application of this deployment: created by this process, left by a
// previous one of this application (sweepOrphans ends it), or named by a
// sibling application (Options.Siblings).
func (a *Adapter) callwardens(id string) bool {
	if a.isOurs(id) {
		return true
	}
	if _, _, ok := a.ownedKind(id); ok {
		return true
	}
	for _, app := range a.o.Siblings {
		if _, _, ok := parseOwnedID(app, id); ok {
			return true
		}
	}
	return false
}

func (a *Adapter) isOurs(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.ours[id]
	return ok
}

// dispatch acts on one event. It never blocks on the network: REST calls
// run in handler goroutines.
func (a *Adapter) dispatch(ctx context.Context, ev ari.Event) {
	switch e := ev.(type) {
	case *ari.StasisStart:
		if e.Application != a.o.App {
			return
		}
		if a.route(ev) {
			return
		}
		if a.isOurs(e.Channel.ID) {
			return // a snoop of ours whose handler already moved on
		}
		if isSnoop(e.Channel.Name) {
			a.watchSnoop(ctx, e.Channel, "entered Stasis "+a.o.App)
			return
		}
		// Claimed here, before the handler runs, so that a sweep for
		// orphans never takes a channel that has just entered Stasis.
		a.claim(e.Channel.ID)
		a.spawn(ctx, func(ctx context.Context) {
			defer a.unclaim(e.Channel.ID)
			a.handleStart(ctx, e)
		})
		return
	case *ari.ChannelCreated:
		if isSnoop(e.Channel.Name) && !a.callwardens(e.Channel.ID) {
			a.watchSnoop(ctx, e.Channel, "created by another ARI client")
		}
	case *ari.ChannelDialplan:
		a.watchDialplan(ctx, e)
		a.watchSibling(ctx, e.Channel.ID, e.DialplanApp, e.DialplanAppData)
	case *ari.ChannelVarset:
		if e.Variable != varQueue && e.Variable != varQueueName {
			return // not a queue: nobody acts on it
		}
	case *ari.ChannelDestroyed:
		a.allowances.Forget(e.Channel.ID)
		a.mu.Lock()
		delete(a.ours, e.Channel.ID)
		delete(a.caught, e.Channel.ID)
		delete(a.claimed, e.Channel.ID)
		delete(a.pending, e.Channel.ID)
		delete(a.strandWatch, e.Channel.ID)
		a.mu.Unlock()
	case *ari.RecordingFinished:
		a.recordingEnded(ctx, e.Recording, "finished")
	case *ari.RecordingFailed:
		a.recordingEnded(ctx, e.Recording, "failed")
	}
	a.route(ev)
}

// spawn runs f in a handler goroutine that Run waits for; once Run is
// shutting down it starts nothing.
func (a *Adapter) spawn(ctx context.Context, f func(ctx context.Context)) {
	a.mu.Lock()
	if a.closing || ctx.Err() != nil {
		a.mu.Unlock()
		return
	}
	a.handlers.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.handlers.Done()
		f(ctx)
	}()
}

// drainHandlers stops new handlers and waits for the running ones.
func (a *Adapter) drainHandlers() {
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	a.handlers.Wait()
}

func isSnoop(channelName string) bool { return strings.HasPrefix(channelName, "Snoop/") }

// cleanupCtx is the context for undoing what a handler set up (snoops,
// bridges) even after ctx ended (shutdown).
func (a *Adapter) cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 2*a.o.Timeout)
}

// claim records that a handler of this process serves channel id.
func (a *Adapter) claim(id string) {
	a.mu.Lock()
	a.claimed[id] = struct{}{}
	a.mu.Unlock()
}

func (a *Adapter) unclaim(id string) {
	a.mu.Lock()
	delete(a.claimed, id)
	a.mu.Unlock()
}

// owns reports whether id is a snoop, bridge or Stasis channel this
// process created or serves.
func (a *Adapter) owns(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ours := a.ours[id]
	_, claimed := a.claimed[id]
	return ours || claimed
}
